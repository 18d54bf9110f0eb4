"""GEMM GFLOP/s against the 16-byte offsets of its operands from a 64-byte line.

The engine reads the B of a small product (at most 96 rows) in place only
when B's rows start on 64-byte lines, and packs it otherwise; this shows
what that costs and what numpy.matmul does on the same operands:

    PYTHONPATH=src python bench/alignment.py float64 64x64x64t
    PYTHONPATH=src python bench/alignment.py float32 64x784x128

A shape is M x K x N, with ``t`` for op(A) = Aᵀ (``X^T@D``) and ``T`` for
op(B) = Bᵀ (``D@W^T``). Each cell is ``ours/numpy`` in GFLOP/s, the best of
``--samples`` samples of ~2 ms, both libraries interleaved, on one thread.
The first row measured is often a little low for both (the core warming up).
"""
import argparse
import os
import sys
import time

for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[name] = "1"
if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
    # As in run.py: keep freed outputs on the heap instead of remapping them.
    os.environ.update(MALLOC_MMAP_THRESHOLD_="100000000", MALLOC_TRIM_THRESHOLD_="1000000000")
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np  # noqa: E402

from benchlib.settings import product_shape  # noqa: E402
from cbackprop._backend import engine  # noqa: E402

OFFSETS = (0, 16, 32, 48)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dtype", choices=["float32", "float64"])
    parser.add_argument("shape", help="M x K x N, e.g. 64x64x64t")
    parser.add_argument("--samples", type=int, default=25)
    args = parser.parse_args()
    try:
        args.product = product_shape(args.shape)
    except ValueError as error:
        parser.error(str(error))
    if args.samples < 1:
        parser.error(f"--samples must be >= 1, got {args.samples}")
    return args


def at_offset(values, offset):
    """A C-contiguous copy of ``values`` starting ``offset`` bytes past a 64-byte line."""
    block = np.empty(values.nbytes + 128, dtype=np.uint8)
    start = -block.ctypes.data % 64 + offset
    out = block[start:start + values.nbytes].view(values.dtype).reshape(values.shape)
    out[...] = values
    return out


def best_seconds(fns, calls, samples):
    """Best seconds per call of each function, their samples taken in turn."""
    best = [float("inf")] * len(fns)
    for _ in range(samples):
        for index, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[index] = min(best[index], (time.perf_counter() - start) / calls)
    return best


def gflops_text(flops_per_second):
    """GFLOP/s in 5 characters; tiny products (a debug build) keep 3 decimals."""
    gflops = flops_per_second / 1e9
    return f"{gflops:5.1f}" if gflops >= 1 else f"{gflops:5.3f}"


def main():
    args = parse_args()
    engine.set_num_threads(1)
    M, K, N, trans_a, trans_b = args.product
    rng = np.random.default_rng(0)
    a_values = rng.standard_normal((K, M) if trans_a else (M, K)).astype(args.dtype)
    b_values = rng.standard_normal((N, K) if trans_b else (K, N)).astype(args.dtype)
    flops = 2.0 * M * N * K
    calls = max(1, int(2e-3 / (flops / 40e9)))
    print(f"{args.dtype} {args.shape}: GFLOP/s ours/numpy, A offset (rows) x B offset (columns), bytes")
    print("        " + "".join(f"B+{b:<11d}" for b in OFFSETS))
    for offset_a in OFFSETS:
        cells = []
        for offset_b in OFFSETS:
            A, B = at_offset(a_values, offset_a), at_offset(b_values, offset_b)
            op_a, op_b = (A.T if trans_a else A), (B.T if trans_b else B)
            ours, numpy = best_seconds([lambda: engine.op_gemm(A, B, trans_a, trans_b),
                                        lambda: op_a @ op_b], calls, args.samples)
            cells.append(f"{gflops_text(flops / ours)}/{gflops_text(flops / numpy)} ")
        print(f"A+{offset_a:<4d}  " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
