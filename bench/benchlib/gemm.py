"""The engine's GEMM (``engine.op_gemm``) against ``numpy.matmul``: the
products of the dense layers, small products and squares, in rounds of one
phase per library (bench/README.md, "GEMM"); with PyTorch, ``torch.matmul``
too on the squares that the peak target reads (GEMM_PEAK_SIZE), for what
another BLAS reaches of the FMA peak on the same machine."""
import gc
import math
import statistics
import time

import numpy as np

from cbackprop import ops
from cbackprop._backend import engine

from .settings import (CONFIGS, GEMM_CONFIGS, GEMM_FORMS, GEMM_PEAK_SIZE, GEMM_ROUNDS,
                       GEMM_SMALL)
from .timing import pause


def gemm_layer_shapes(configs):
    """{(m, n_in, n_out): label} for the selected configs' layers."""
    shapes = {}
    for name in GEMM_CONFIGS:
        if name not in configs:
            continue
        sizes, batch = CONFIGS[name]
        for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
            shapes.setdefault((batch, n_in, n_out), {}).setdefault(name, []).append(str(layer))
    return {key: " ".join(f"{name} L{','.join(ls)}" for name, ls in by_config.items())
            for key, by_config in shapes.items()}


def layer_products(m, n_in, n_out):
    """(form, M, K, N) of the three products of a dense layer with batch m."""
    return [("X@W", m, n_in, n_out), ("X^T@D", n_in, m, n_out), ("D@W^T", m, n_out, n_in)]


def gemm_case(form, M, K, N, cls, source):
    """An M x K x N product in one of the forms of a dense layer's products:
    X@W     A (M x K), B (K x N)
    X^T@D   A (K x M) read transposed, B (K x N)          (dW = X^T @ delta)
    D@W^T   A (M x K), B (N x K) read transposed          (delta @ W^T)
    """
    a_shape, b_shape = {"X@W": ((M, K), (K, N)), "X^T@D": ((K, M), (K, N)),
                        "D@W^T": ((M, K), (N, K))}[form]
    return {"class": cls, "form": form, "source": source, "M": M, "K": K, "N": N,
            "a_shape": a_shape, "b_shape": b_shape,
            "trans_a": form == "X^T@D", "trans_b": form == "D@W^T"}


def gemm_cases(configs, squares):
    """The three products of each layer shape of the selected configs (classed
    by form), then the small products and the squares in the three forms. A
    product listed twice is timed once, under its first class."""
    products = {}
    for (m, n_in, n_out), label in gemm_layer_shapes(configs).items():
        for form, M, K, N in layer_products(m, n_in, n_out):
            products.setdefault((form, M, K, N), (form, label))
    groups = [("small", "small", GEMM_SMALL)]
    groups += [("squares", f"square {n}", [(n, n, n)]) for n in squares]
    for cls, label, shapes in groups:
        for M, K, N in shapes:
            for form in GEMM_FORMS:
                products.setdefault((form, M, K, N), (cls, label))
    return [gemm_case(form, M, K, N, cls, label)
            for (form, M, K, N), (cls, label) in products.items()]


def aligned_copy(array):
    """``array`` copied to a buffer starting on 64 bytes, as the engine's own
    activations, deltas and parameters do (numpy's allocator gives 16)."""
    block = np.empty(array.nbytes + 64, dtype=np.uint8)
    start = -block.ctypes.data % 64
    out = block[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


def gemm_operands(case, dtype, rng, torch=None):
    """(ours, numpy's) product of ``case`` as calls on the same operands, and
    torch's when ``torch`` is given (else None): each allocates its output."""
    A = aligned_copy(rng.standard_normal(case["a_shape"]).astype(dtype))
    B = aligned_copy(rng.standard_normal(case["b_shape"]).astype(dtype))
    ours = lambda: engine.op_gemm(A, B, case["trans_a"], case["trans_b"])  # noqa: E731
    opA = A.T if case["trans_a"] else A
    opB = B.T if case["trans_b"] else B
    theirs = lambda: opA @ opB  # noqa: E731
    if torch is None:
        return ours, theirs, None
    # The same 64-byte-aligned buffers ours and numpy read, so that the three
    # libraries differ in their kernels only.
    tA, tB = torch.from_numpy(A), torch.from_numpy(B)
    tA, tB = (tA.T if case["trans_a"] else tA), (tB.T if case["trans_b"] else tB)
    return ours, theirs, lambda: torch.matmul(tA, tB)


def relative_error(result, expected):
    """max |result - expected| / max |expected|."""
    result = np.asarray(result)
    return float(np.max(np.abs(result - expected)) / max(np.max(np.abs(expected)), 1e-300))


def time_calls(fn, calls):
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls
    finally:
        gc.enable()


def calls_per_sample(fn, target_s):
    fn()  # warm-up
    return max(1, math.ceil(target_s / time_calls(fn, 1)))


def call_overhead_us(args):
    """Per-call time of a 1x1x1 float64 product: the fixed cost (argument
    checks, allocation of the output and, for ours, of the pack buffers)
    inside every GEMM figure; it dominates the products with N or K = 10.
    ``ops`` is the same product through ``cb.ops.gemm``, the public call
    (with its checks of the arguments), which the figures above leave out."""
    case = gemm_case("X@W", 1, 1, 1, "overhead", "1x1x1")
    ours, theirs, _ = gemm_operands(case, "float64", np.random.default_rng(0))
    A, B = np.ones((1, 1)), np.ones((1, 1))
    public = lambda: ops.gemm(A, B)  # noqa: E731
    return {lib: min(time_calls(fn, 2000) for _ in range(3)) * 1e6
            for lib, fn in (("ours", ours), ("ops", public), ("numpy", theirs))}


def median_round_ratio(ours_rounds, numpy_rounds):
    """(median, per-round ratios) of ours/numpy speed, each round's ratio from
    the best sample (seconds) of each library in that round."""
    ratios = [min(theirs) / min(ours) for ours, theirs in zip(ours_rounds, numpy_rounds)]
    return statistics.median(ratios), ratios


def summarise_gemm(row, peak_gflops):
    """GFLOP/s from the best sample over all rounds, as a fraction of
    ``peak_gflops`` too (torch's where it was timed); the ratio is the median
    over rounds."""
    flops = 2.0 * row["M"] * row["K"] * row["N"]
    for lib in ("ours", "numpy", "torch"):
        if f"{lib}_s_samples" not in row:
            continue
        best = min(min(samples) for samples in row[f"{lib}_s_samples"])
        row[f"{lib}_gflops"] = flops / best / 1e9
        row[f"{lib}_of_peak"] = row[f"{lib}_gflops"] / peak_gflops
    row["peak_gflops"] = peak_gflops
    row["ratio"], row["round_ratios"] = median_round_ratio(row["ours_s_samples"],
                                                           row["numpy_s_samples"])
    return row


def bench_gemm(args, peak_per_core, torch=None):
    """GFLOP/s of the engine's GEMM and of numpy.matmul (and of torch.matmul
    on the GEMM_PEAK_SIZE squares, given ``torch``): GEMM_ROUNDS rounds of
    one phase per library, every product it times in each phase."""
    rng = np.random.default_rng(args.seed)
    threads = args.threads[0]
    rows = []
    for case in gemm_cases(args.configs, args.gemm_squares):
        peak_square = case["M"] == case["K"] == case["N"] == GEMM_PEAK_SIZE
        for dtype in args.dtypes:
            ours, theirs, torch_fn = gemm_operands(case, dtype, rng, torch if peak_square else None)
            expected = theirs()
            fns = {"ours": ours, "numpy": theirs}
            row = dict(case, dtype=dtype, threads=threads, rel_err=relative_error(ours(), expected))
            if torch_fn is not None:
                fns["torch"] = torch_fn
                row["torch_rel_err"] = relative_error(torch_fn(), expected)
            rows.append(dict(row, fns=fns, calls={}, **{f"{lib}_s_samples": [] for lib in fns}))
    libs = [lib for lib in ("ours", "numpy", "torch") if any(lib in row["fns"] for row in rows)]
    for _ in range(GEMM_ROUNDS):
        for lib in libs:
            pause()
            for row in rows:
                fn = row["fns"].get(lib)
                if fn is None:
                    continue
                if lib not in row["calls"]:
                    row["calls"][lib] = calls_per_sample(fn, args.gemm_target_s)
                row[f"{lib}_s_samples"].append([time_calls(fn, row["calls"][lib])
                                                for _ in range(args.gemm_samples)])
    for row in rows:
        del row["fns"], row["a_shape"], row["b_shape"]
        summarise_gemm(row, threads * peak_per_core[row["dtype"]])
    return rows
