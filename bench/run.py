"""Benchmark ``train_step`` of the compiled ``cb.Network`` against the NumPy
``cb.reference.Network`` (and PyTorch, when it is importable), plus the
engine's GEMM against ``numpy.matmul``.

Usage, from the repository root::

    PYTHONPATH=src python bench/run.py              # thorough: a few minutes on 2 idle cores
    PYTHONPATH=src python bench/run.py --quick      # < 1 minute per thread count, all included
    PYTHONPATH=src python bench/run.py --configs tiny,mnist --dtypes float32 --threads 2

What is timed: one ``net.train_step(X, Y)`` (forward, backward, SGD update,
the loss returned as a float) in microseconds, on dense networks with relu
hidden layers, an identity output layer and the "mse" loss, in float32 and
float64. The speedup is reference / compiled (and torch / compiled).

Processes. The parent process runs nothing itself: for each thread count in
``--threads`` (default ``1,2``) it starts a worker, ``python bench/run.py
--worker --threads N ...``, with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS set to N before NumPy loads, and with
MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised so that glibc keeps the
reference's per-step temporaries instead of mapping and unmapping them on
every step (that alone moves the reference by up to 2x; keeping them is the
reference's favourable case). Workers run one after the other, write their
figures to a temporary JSON file, and the parent merges them into one table.

Phases, not interleaving. OpenBLAS (reference), libgomp (compiled engine)
and PyTorch's own OpenMP runtime all keep idle worker threads spinning for a
while after a parallel region; on a 2-core machine those spinning threads
steal the cores from whichever library runs next. So for each (config,
dtype) a worker warms up all implementations (a rough per-step estimate that
fixes the block length N), then runs *phases* separated by
``time.sleep(0.3)``: up to four compiled repeats, the same reference repeats,
the same torch repeats, and again until every repeat has run (11 repeats:
phases of 4, 4 and 3), so that a slow spell on a shared machine falls on
all implementations' repeats alike rather than on one implementation's
whole phase. Each repeat times a block of N consecutive steps with
``time.perf_counter`` and the garbage collector off; N is chosen so that a
block of the slower of compiled/reference takes about ``--target-ms`` (torch
gets its own N for the same duration). The figure is the median per-step
time over the repeats; the JSON keeps every sample.

Cross-check. At the start of each compiled repeat the compiled parameters are
saved (``get_params()``); the matching reference repeat first loads them
(``set_params``), so both run the same steps from the same parameters on the
same batches (a cycled pool of four pre-generated batches, already in the
dtype). Their per-step losses must agree: max |dloss|/|loss| <= 1e-6 in
float64, 1e-3 in float32, or the failing configs are named and the exit code
is 1. The torch model starts each repeat from the same saved parameters
(``W`` transposed into ``Linear.weight``); its first-step loss is compared to
the compiled one and printed, but never fails the run.

The machine. Before timing anything each worker records the vector ISA
(``cb.kernel_path``: the engine build chosen at import), its GEMM tile table
(``engine.tile_table()``) and the CPU flags it was chosen from, and measures
this build's FMA peak on one core per benchmarked dtype
(``engine.fma_peak_gflops``: independent vector FMA chains, ~0.5 s each),
and the GF/s of its full register tile alone on packed panels
(``engine.tile_gflops``: the GEMM's inner loop without packing or edges, the
ceiling of what the blocked loops around it can reach). At
T threads the peak a figure is compared with is T x that per-core peak. For
``big`` the table gives its FMA-limit time: the FLOPs of one step's matrix
products (X@W and dW = X^T@D for every layer, D@W^T for every layer but the
first; 2*m*n_in*n_out each) at that peak, and the step's multiple of it.

GEMM. ``cbackprop._backend.engine.op_gemm(A, B, trans_a, trans_b)``
against ``numpy.matmul`` on the same operands. The shape classes: the three
products of a dense layer (``X@W``, ``X^T@D`` for dW, ``D@W^T`` for the delta
passed back) at the layer shapes of the mnist, deep, wide and big configs;
``small``, M x K x N = 32x64x128, 64x64x64 and 128x128x128; and ``squares``,
n x n x n with n = 256, 512, 1024 (512 and 1024 with --quick); small products
and squares each in the three forms. Both dtypes, at every thread count. The
operands start on 64 bytes, as the engine's own buffers do: the engine reads
a small product's B in place only from rows on 64-byte lines and packs it
otherwise (from numpy's 16-byte aligned arrays, X^T@D 64x64x64 in float64
measures ~0.90 of numpy.matmul instead of ~0.94: see alignment.py). A round
is one phase per library (every product timed with ours, a pause, every
product with numpy.matmul, a pause); three rounds run, also with --quick. A
phase takes a few samples per product (4, or 2 with --quick) of a few calls
each (~10 ms, 3 ms with --quick). GFLOP/s = 2*M*K*N / t from the best sample
over all rounds, also shown as a fraction of the peak. A ratio is the median
of three interleaved runs in one process: per round, ours best-in-round
GFLOP/s / numpy best-in-round GFLOP/s, and the median of the three, so a
burst of load from outside must spoil two rounds of one library to bias it.

Targets (the project's issue) are printed as PASS/FAIL after the tables;
they do not change the exit code. train_step: tiny >= 15x and small >= 4x
the reference at every thread count, and faster than torch; mnist, deep,
wide and big >= 1.2x the reference and faster than torch at 1 thread, >= 1.3x
the reference at 2 threads; big at 1 thread within 1.25x of its FMA-limit
time. GEMM at 1 thread, per class and dtype: median ratio >= 0.95 and none
below 0.90; 1024x1024x1024 >= 85 % of the peak in every form; every product
with M, K and N <= 128 >= 0.95. All figures (every sample, the peaks, the
ISA, tile table and CPU flags) go to ``bench/results/latest.json`` (or
``--json``) and, when matplotlib is importable, a bar chart to
``bench/results/speedups.png`` (or ``--png``).
"""
import argparse
import os
import sys

CONFIGS = {
    # name: (layer sizes, batch size)
    "tiny": ([2, 2, 1], 4),
    "small": ([64, 32, 10], 32),
    "mnist": ([784, 128, 10], 64),
    "deep": ([256, 256, 256, 256, 10], 128),
    "wide": ([1024, 1024, 10], 256),
    "big": ([1024, 1024, 1024], 512),
}
DTYPES = ("float64", "float32")
TOLERANCE = {"float64": 1e-6, "float32": 1e-3}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# glibc: serve allocations below 100 MB from the heap and do not trim it, so
# the reference does not mmap/munmap (and page-fault on) its temporaries.
MALLOC_VARS = {"MALLOC_MMAP_THRESHOLD_": "100000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}
# Small enough that when a relu pre-activation sits within float32 rounding of
# zero (so the two nets take different branches for one step) the losses part
# by ~1e-4 relative, well inside the float32 tolerance.
LEARNING_RATE = 1e-4
POOL_SIZE = 4
PAUSE_S = 0.3  # longer than OpenBLAS's (~0.1 s) and libgomp's spin-wait before sleeping
PHASE_REPEATS = 4  # repeats of one implementation per phase; the phases take turns

GEMM_CONFIGS = ("mnist", "deep", "wide", "big")
GEMM_FORMS = ("X@W", "X^T@D", "D@W^T")
GEMM_SMALL = ((32, 64, 128), (64, 64, 64), (128, 128, 128))  # (M, K, N)
GEMM_SQUARES = (256, 512, 1024)
GEMM_SQUARES_QUICK = (512, 1024)
# A layer's products are classed by form; the small products and the squares
# (each timed in the three forms) are classes of their own.
GEMM_CLASSES = GEMM_FORMS + ("small", "squares")
GEMM_ROUNDS = 3  # alternating (ours phase, numpy phase) rounds; a ratio is their median
FMA_LIMIT_CONFIGS = ("big",)  # configs whose step is compared with its FMA-limit time

# Targets (the project's issue), per dtype.
# reference us / compiled us: tiny and small at every thread count ...
SPEEDUP_TARGETS_ALL_THREADS = {"tiny": 15.0, "small": 4.0}
# ... the others {threads: goal}
SPEEDUP_TARGETS_BY_THREADS = {1: 1.2, 2: 1.3}
TORCH_TARGET = 1.0  # torch us / compiled us: tiny and small always, the others at 1 thread
FMA_LIMIT_TARGET = 1.25  # compiled step / FMA-limit time, FMA_LIMIT_CONFIGS at 1 thread
# ours / numpy.matmul at 1 thread, per class and dtype: median, and every shape
GEMM_MEDIAN_TARGET, GEMM_MIN_TARGET = 0.95, 0.90
GEMM_PEAK_SIZE, GEMM_PEAK_TARGET = 1024, 0.85  # n x n x n at 1 thread: ours / FMA peak
SMALL_PRODUCT, SMALL_PRODUCT_TARGET = 128, 0.95  # every product with M, K, N <= 128


def comma_list(text):
    return [item for item in text.replace(",", " ").split() if item]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Time train_step of the compiled network against the NumPy reference "
                    "(and PyTorch), and the engine's GEMM against numpy.matmul.")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats, shorter blocks, fewer GEMM samples and squares "
                             "(under a minute per thread count)")
    parser.add_argument("--threads", default="1,2",
                        help="thread counts, one worker process each (default 1,2)")
    parser.add_argument("--configs", nargs="+", metavar="NAME",
                        help=f"subset of: {', '.join(CONFIGS)} (space or comma separated)")
    parser.add_argument("--dtypes", nargs="+", metavar="DTYPE",
                        help="float64 and/or float32 (default both)")
    parser.add_argument("--repeats", type=int, help="timed blocks per implementation")
    parser.add_argument("--target-ms", type=float,
                        help="wall time of one block of the slower implementation")
    parser.add_argument("--lr", type=float, default=LEARNING_RATE,
                        help=f"SGD learning rate (default {LEARNING_RATE:g})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM section")
    parser.add_argument("--json", metavar="PATH",
                        help="where to write the figures (default bench/results/latest.json)")
    parser.add_argument("--png", metavar="PATH",
                        help="where to draw the chart (default bench/results/speedups.png, "
                             "or the --json path with .png)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="workers print a progress line per measurement (stderr)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    args.configs = [n for item in (args.configs or CONFIGS) for n in comma_list(item)]
    unknown = [n for n in args.configs if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")
    args.dtypes = [d for item in (args.dtypes or DTYPES) for d in comma_list(item)]
    if not args.dtypes or any(d not in DTYPES for d in args.dtypes):
        parser.error(f"--dtypes: choose from {list(DTYPES)}")
    try:
        args.threads = [int(t) for t in comma_list(args.threads)]
    except ValueError:
        parser.error("--threads takes integers, e.g. 1,2")
    if not args.threads or min(args.threads) < 1:
        parser.error("--threads must be >= 1")
    if args.worker and (len(args.threads) != 1 or not args.out):
        parser.error("--worker takes one --threads value and --out")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 11
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.target_ms is None:
        args.target_ms = 25.0 if args.quick else 150.0
    args.warmup_steps = 1 if args.quick else 5
    args.warmup_s = 0.01 if args.quick else 0.03
    args.gemm_squares = GEMM_SQUARES_QUICK if args.quick else GEMM_SQUARES
    args.gemm_samples = 2 if args.quick else 4      # samples per library per round
    args.gemm_target_s = 0.003 if args.quick else 0.01  # one sample
    return args


def pin_threads(n):
    for name in THREAD_VARS:
        os.environ[name] = str(n)


# Thread counts must be in the environment before NumPy (and its BLAS) loads.
# The parent times nothing; it keeps its own pools at one thread.
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    pin_threads(ARGS.threads[0] if ARGS.worker else 1)

import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import operator  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import cbackprop as cb  # noqa: E402
from cbackprop._backend import _engine_baseline, engine  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def log(args, message):
    if args.verbose:
        print(message, file=sys.stderr, flush=True)


def pause():
    """Let the previous library's idle threads stop spinning."""
    time.sleep(PAUSE_S)


# ===================================================================== worker
# --------------------------------------------------------------- environment

def load_torch(args):
    """(torch module or None, why not)."""
    if args.no_torch:
        return None, "skipped (--no-torch)"
    try:
        import torch
    except Exception as exc:  # absent, or a broken install: skip the columns
        return None, f"not importable ({type(exc).__name__}: {exc})"
    torch.set_num_threads(args.threads[0])
    return torch, None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_info():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # numpy 1.x has no mode="dicts"; the figure is optional
        return "unknown"


def worker_info(torch, torch_skipped):
    return {
        "env": {name: os.environ.get(name) for name in THREAD_VARS + tuple(MALLOC_VARS)},
        "cb_get_num_threads": cb.get_num_threads(),
        "torch_get_num_threads": torch.get_num_threads() if torch else None,
        "kernel_path": cb.kernel_path,
        "tile_table": engine.tile_table(),
        "cpu_features": _engine_baseline.cpu_features(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "cbackprop": cb.__version__,
        "torch": torch.__version__ if torch else None,
        "torch_skipped": torch_skipped,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "platform": platform.platform(),
    }


def measure_fma_peak(dtypes):
    """{dtype: GFLOP/s} of this build's vector FMA on one core (~0.5 s each):
    what the machine can do, against which the GEMM and the big step are read."""
    return {dtype: engine.fma_peak_gflops(dtype) for dtype in dtypes}


# ------------------------------------------------------------ the networks

def activations_for(sizes):
    return ["relu"] * (len(sizes) - 2) + ["identity"]


def build_networks(sizes, dtype, seed, lr):
    kwargs = dict(loss="mse", dtype=dtype, seed=seed)
    compiled = cb.Network(sizes, activations_for(sizes), optimizer=cb.SGD(lr=lr), **kwargs)
    reference = cb.reference.Network(sizes, activations_for(sizes),
                                     optimizer=cb.SGD(lr=lr), **kwargs)
    return compiled, reference


class TorchNet:
    """The same model in PyTorch, with cbackprop's ``train_step``/``set_params``."""

    def __init__(self, torch, sizes, dtype, lr):
        self.torch = torch
        torch_dtype = getattr(torch, dtype)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out, dtype=torch_dtype))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
        self.loss_fn = torch.nn.MSELoss(reduction="mean")
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)

    def set_params(self, weights, biases):
        """cbackprop's W is (fan_in, fan_out); Linear.weight is (out, in)."""
        torch = self.torch
        with torch.no_grad():
            for linear, W, b in zip(self.linears, weights, biases):
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                linear.bias.copy_(torch.from_numpy(b))

    def train_step(self, X, Y):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(X), Y)
        loss.backward()
        self.opt.step()
        return loss.item()  # synchronous, and a float like cbackprop's

    def convert(self, pool):
        return [(self.torch.from_numpy(X), self.torch.from_numpy(Y)) for X, Y in pool]


def matmul_flops_per_step(sizes, batch):
    """FLOPs of the matrix products of one train_step: X@W and dW = X^T@D for
    every layer, D@W^T (the delta passed back) for every layer but the first;
    2*m*n_in*n_out each."""
    flops = 0
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        products = 2 if layer == 0 else 3
        flops += products * 2 * batch * n_in * n_out
    return flops


def add_fma_limit(result, peak_per_core):
    """The time the step's products would take at threads x the per-core FMA
    peak, and the compiled step's multiple of it."""
    flops = matmul_flops_per_step(result["sizes"], result["batch"])
    peak = result["threads"] * peak_per_core[result["dtype"]] * 1e9
    result["fma_limit_us"] = flops / peak * 1e6
    result["step_over_limit"] = result["compiled_us"] / result["fma_limit_us"]
    return result


def make_batch_pool(sizes, batch, dtype, seed):
    """A few fixed batches, C-contiguous and already in ``dtype``."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, sizes[0])).astype(dtype),
             rng.standard_normal((batch, sizes[-1])).astype(dtype))
            for _ in range(POOL_SIZE)]


# ------------------------------------------------------------------ timing

def batches_from(pool, start, n):
    return [pool[(start + i) % len(pool)] for i in range(n)]


def time_block(train_step, batches):
    """Run ``batches`` through one network: (seconds, losses)."""
    losses = [0.0] * len(batches)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for i, (X, Y) in enumerate(batches):
            losses[i] = train_step(X, Y)
        elapsed = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed, losses


def warm_up(train_step, pool, min_steps, min_seconds):
    """Warm up; return a rough per-step time (it only sets block lengths)."""
    train_step(*pool[0])  # first call: allocations, page faults
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        train_step(*pool[steps % len(pool)])
        steps += 1
    return (time.perf_counter() - start) / steps


def phase_lengths(repeats):
    """Repeats per phase: at most PHASE_REPEATS, as even as possible (11 -> 4, 4, 3)."""
    phases = -(-repeats // PHASE_REPEATS)
    return [repeats // phases + (1 if i < repeats % phases else 0) for i in range(phases)]


def compiled_phase(net, pool, repeats, n, first_step):
    """Time ``repeats`` blocks of ``n`` steps, saving the parameters (and the
    step index) each block starts from, for the other implementations."""
    starts, snapshots, seconds, losses = [], [], [], []
    step = first_step
    for _ in range(repeats):
        starts.append(step)
        snapshots.append(net.get_params())
        elapsed, block_losses = time_block(net.train_step, batches_from(pool, step, n))
        seconds.append(elapsed)
        losses.append(block_losses)
        step += n
    return starts, snapshots, seconds, losses


def replay_phase(net, pool, starts, snapshots, n):
    """Time the same blocks from the same parameters on another implementation."""
    seconds, losses = [], []
    for start, (weights, biases) in zip(starts, snapshots):
        net.set_params(weights, biases)
        elapsed, block_losses = time_block(net.train_step, batches_from(pool, start, n))
        seconds.append(elapsed)
        losses.append(block_losses)
    return seconds, losses


def relative_difference(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b) / scale))


def microseconds(seconds, n):
    return [s / n * 1e6 for s in seconds]


def block_lengths(implementations, args):
    """Warm every implementation up (no pauses: the rough per-step times only
    set the block lengths). Returns N for compiled and reference together (a
    block of the slower takes ~target_ms) and N for torch alone."""
    target = args.target_ms / 1000
    est = {name: warm_up(net.train_step, pool, args.warmup_steps, args.warmup_s)
           for name, (net, pool) in implementations.items()}
    n = max(1, round(target / max(est["compiled"], est["reference"])))
    n_torch = max(1, round(target / est["torch"])) if "torch" in est else None
    return n, n_torch


def bench_config(name, dtype, args, torch):
    sizes, batch = CONFIGS[name]
    compiled, reference = build_networks(sizes, dtype, args.seed, args.lr)
    pool = make_batch_pool(sizes, batch, dtype, args.seed)
    implementations = {"compiled": (compiled, pool), "reference": (reference, pool)}
    if torch is not None:
        torch_net = TorchNet(torch, sizes, dtype, args.lr)
        torch_net.set_params(*compiled.get_params())
        implementations["torch"] = (torch_net, torch_net.convert(pool))
    n, n_torch = block_lengths(implementations, args)

    c_seconds, c_losses, r_seconds, r_losses, t_seconds, t_losses = [], [], [], [], [], []
    step = 0
    for repeats in phase_lengths(args.repeats):
        pause()
        starts, snapshots, seconds, losses = compiled_phase(compiled, pool, repeats, n, step)
        c_seconds += seconds
        c_losses += losses
        step = starts[-1] + n
        pause()
        seconds, losses = replay_phase(reference, pool, starts, snapshots, n)
        r_seconds += seconds
        r_losses += losses
        if torch is not None:
            pause()
            seconds, losses = replay_phase(*implementations["torch"], starts, snapshots, n_torch)
            t_seconds += seconds
            t_losses += losses
    result = {
        "config": name, "sizes": sizes, "batch": batch, "dtype": dtype,
        "threads": args.threads[0], "repeats": args.repeats, "block_steps": n,
        "compiled_us_samples": microseconds(c_seconds, n),
        "reference_us_samples": microseconds(r_seconds, n),
        "max_rel_dloss": relative_difference(sum(c_losses, []), sum(r_losses, [])),
        "tolerance": TOLERANCE[dtype],
        "first_loss": c_losses[0][0], "last_loss": c_losses[-1][-1],
        "torch_block_steps": n_torch, "torch_us_samples": None,
        "torch_first_step_rel_dloss": None, "error": None,
    }
    if torch is not None:
        result["torch_us_samples"] = microseconds(t_seconds, n_torch)
        result["torch_first_step_rel_dloss"] = relative_difference(
            [block[0] for block in c_losses], [block[0] for block in t_losses])
    return summarise(result)


def summarise(result):
    median = statistics.median
    result["compiled_us"] = median(result["compiled_us_samples"])
    result["reference_us"] = median(result["reference_us_samples"])
    result["speedup"] = result["reference_us"] / result["compiled_us"]
    if result["torch_us_samples"]:
        result["torch_us"] = median(result["torch_us_samples"])
        result["speedup_vs_torch"] = result["torch_us"] / result["compiled_us"]
    else:
        result["torch_us"] = result["speedup_vs_torch"] = None
    result["ok"] = result["max_rel_dloss"] <= result["tolerance"]
    return result


def bench_config_safely(name, dtype, args, torch):
    """A diverged or crashing config is a failed cross-check, not a crash."""
    try:
        return bench_config(name, dtype, args, torch)
    except (FloatingPointError, ValueError) as exc:
        sizes, batch = CONFIGS[name]
        return {"config": name, "sizes": sizes, "batch": batch, "dtype": dtype,
                "threads": args.threads[0], "ok": False,
                "error": f"{type(exc).__name__}: {exc}"}


# -------------------------------------------------------------------- GEMM

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


def gemm_operands(case, dtype, rng):
    A = aligned_copy(rng.standard_normal(case["a_shape"]).astype(dtype))
    B = aligned_copy(rng.standard_normal(case["b_shape"]).astype(dtype))
    ours = lambda: engine.op_gemm(A, B, case["trans_a"], case["trans_b"])  # noqa: E731
    opA = A.T if case["trans_a"] else A
    opB = B.T if case["trans_b"] else B
    theirs = lambda: opA @ opB  # noqa: E731
    return ours, theirs


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
    inside every GEMM figure; it dominates the products with N or K = 10."""
    case = gemm_case("X@W", 1, 1, 1, "overhead", "1x1x1")
    ours, theirs = gemm_operands(case, "float64", np.random.default_rng(0))
    return {lib: min(time_calls(fn, 2000) for _ in range(3)) * 1e6
            for lib, fn in (("ours", ours), ("numpy", theirs))}


def median_round_ratio(ours_rounds, numpy_rounds):
    """(median, per-round ratios) of ours/numpy speed, each round's ratio from
    the best sample (seconds) of each library in that round."""
    ratios = [min(theirs) / min(ours) for ours, theirs in zip(ours_rounds, numpy_rounds)]
    return statistics.median(ratios), ratios


def summarise_gemm(row, peak_gflops):
    """GFLOP/s from the best sample over all rounds, as a fraction of
    ``peak_gflops`` too; the ratio is the median over rounds."""
    flops = 2.0 * row["M"] * row["K"] * row["N"]
    for lib in ("ours", "numpy"):
        best = min(min(samples) for samples in row[f"{lib}_s_samples"])
        row[f"{lib}_gflops"] = flops / best / 1e9
        row[f"{lib}_of_peak"] = row[f"{lib}_gflops"] / peak_gflops
    row["peak_gflops"] = peak_gflops
    row["ratio"], row["round_ratios"] = median_round_ratio(row["ours_s_samples"],
                                                           row["numpy_s_samples"])
    return row


def bench_gemm(args, peak_per_core):
    """GFLOP/s of the engine's GEMM and of numpy.matmul: GEMM_ROUNDS rounds of
    one phase per library, every product in each phase."""
    rng = np.random.default_rng(args.seed)
    threads = args.threads[0]
    rows = []
    for case in gemm_cases(args.configs, args.gemm_squares):
        for dtype in args.dtypes:
            ours, theirs = gemm_operands(case, dtype, rng)
            expected = theirs()
            err = float(np.max(np.abs(ours() - expected)) / max(np.max(np.abs(expected)), 1e-300))
            rows.append(dict(case, dtype=dtype, threads=threads, rel_err=err,
                             fns={"ours": ours, "numpy": theirs}, calls={},
                             ours_s_samples=[], numpy_s_samples=[]))
    for _ in range(GEMM_ROUNDS):
        for lib in ("ours", "numpy"):
            pause()
            for row in rows:
                fn = row["fns"][lib]
                if lib not in row["calls"]:
                    row["calls"][lib] = calls_per_sample(fn, args.gemm_target_s)
                row[f"{lib}_s_samples"].append([time_calls(fn, row["calls"][lib])
                                                for _ in range(args.gemm_samples)])
    for row in rows:
        del row["fns"], row["a_shape"], row["b_shape"]
        summarise_gemm(row, threads * peak_per_core[row["dtype"]])
    return rows


def worker_main(args):
    start = time.perf_counter()
    torch, torch_skipped = load_torch(args)
    info = worker_info(torch, torch_skipped)
    info["fma_peak_gflops"] = measure_fma_peak(args.dtypes)
    info["tile_gflops"] = {dtype: engine.tile_gflops(dtype) for dtype in args.dtypes}
    log(args, f"[{args.threads[0]} thr] FMA peak per core {info['fma_peak_gflops']} GFLOP/s")
    results = []
    for name in args.configs:
        for dtype in args.dtypes:
            result = bench_config_safely(name, dtype, args, torch)
            if name in FMA_LIMIT_CONFIGS and not result.get("error"):
                add_fma_limit(result, info["fma_peak_gflops"])
            results.append(result)
            log(args, f"[{args.threads[0]} thr] {name} {dtype} done at "
                      f"{time.perf_counter() - start:.1f} s")
    gemm = [] if args.no_gemm else bench_gemm(args, info["fma_peak_gflops"])
    log(args, f"[{args.threads[0]} thr] GEMM done at {time.perf_counter() - start:.1f} s")
    info["gemm_call_overhead_us"] = None if args.no_gemm else call_overhead_us(args)
    info["wall_s"] = time.perf_counter() - start
    Path(args.out).write_text(json.dumps({"info": info, "results": results, "gemm": gemm}))
    return 0


# ===================================================================== parent
# ------------------------------------------------------------------ workers

def worker_command(args, threads, out):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--threads", str(threads),
           "--out", out, "--configs", *args.configs, "--dtypes", *args.dtypes,
           "--repeats", str(args.repeats), "--target-ms", str(args.target_ms),
           "--lr", repr(args.lr), "--seed", str(args.seed)]
    for flag in ("quick", "no_torch", "no_gemm", "verbose"):
        if getattr(args, flag):
            cmd.append("--" + flag.replace("_", "-"))
    return cmd


def worker_env(threads):
    env = dict(os.environ, **MALLOC_VARS)
    env.update({name: str(threads) for name in THREAD_VARS})
    return env


def busy_cpu_seconds():
    """CPU time used by the whole machine so far (None where /proc is missing)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_worker(args, threads):
    """Run one worker process; its figures, or None if it failed. Also
    measures how many cores other processes kept busy meanwhile."""
    with tempfile.TemporaryDirectory(prefix="cbackprop-bench-") as tmp:
        out = os.path.join(tmp, f"threads{threads}.json")
        busy0, ours0, start = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(worker_command(args, threads, out), env=worker_env(threads))
        busy1, ours1, wall = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter() - start
        if proc.returncode != 0 or not os.path.exists(out):
            print(f"worker for {threads} thread(s) failed (exit code {proc.returncode})")
            return None
        figures = json.loads(Path(out).read_text())
    other = None
    if busy0 is not None:
        other = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / wall
    figures["info"]["other_load_cores"] = other
    return figures


# ---------------------------------------------------------------- reporting

def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def print_header(args, workers):
    first = workers[0]["info"]
    print("cbackprop train_step benchmark: compiled vs reference"
          + (" vs torch" if first["torch"] else "")
          + f" ({'quick' if args.quick else 'thorough'}; {args.repeats} repeats of ~"
          f"{args.target_ms:g} ms blocks per implementation, in alternating phases; "
          f"SGD lr={args.lr:g}, mse, relu/identity)")
    print(f"cpu: {first['cpu']} ({first['cpu_count']} logical cpus), {first['platform']}")
    print(f"cpu flags: {describe_cpu_features(first['cpu_features'])}")
    print(f"vector ISA: {describe_isa(first)}; {describe_peaks(workers)}")
    print(f"python {first['python']}, numpy {first['numpy']} (BLAS: {first['blas']}), "
          f"cbackprop {first['cbackprop']}, torch {first['torch'] or '-'}")
    if not first["torch"]:
        print(f"torch: {first['torch_skipped']}; torch columns left out")
    for w in workers:
        info = w["info"]
        env = ", ".join(f"{k}={v}" for k, v in info["env"].items())
        print(f"worker threads={w['threads']}: {env}; cb.get_num_threads()="
              f"{info['cb_get_num_threads']}, torch.get_num_threads()="
              f"{fmt(info['torch_get_num_threads'], 'd')}; wall {info['wall_s']:.1f} s, "
              f"other processes kept {fmt(info['other_load_cores'], '.2f', '?')} cores busy")
    if any((w["info"]["other_load_cores"] or 0) > 0.2 for w in workers):
        print("WARNING: other processes were running; at 2 threads on 2 cores a busy core "
              "can slow any library by several times (see bench/README.md)")
    print()


def describe_isa(info):
    """e.g. 'avx512 (64-byte vectors, tiles 12x16 f64 / 12x32 f32)'."""
    table = info["tile_table"]
    tiles = " / ".join(f"{table['mr']}x{nr} {dtype.replace('float', 'f')}"
                       for dtype, nr in table["nr"].items())
    return f"{info['kernel_path']} ({table['vector_bytes']}-byte vectors, tiles {tiles})"


def describe_cpu_features(features):
    present = [name for name, on in features.items() if on]
    absent = [name for name, on in features.items() if not on]
    return " ".join(present) + (f" (absent: {' '.join(absent)})" if absent else "")


def describe_peaks(workers):
    """The per-core FMA peak each worker measured."""
    parts = []
    for w in workers:
        tiles = w["info"].get("tile_gflops", {})
        peaks = ", ".join(f"{gflops:.1f} GF/s {dtype}"
                          + (f" (register tile alone {tiles[dtype]:.1f}, {tiles[dtype] / gflops:.0%})"
                             if dtype in tiles else "")
                          for dtype, gflops in w["info"]["fma_peak_gflops"].items())
        parts.append(peaks + (f" ({w['threads']}-thread worker)" if len(workers) > 1 else ""))
    return "measured FMA peak per core: " + "; ".join(parts)


def fmt_x(value):
    return "-" if value is None else f"{value:.2f}x"


def train_columns(with_torch):
    columns = [  # (header, width, formatter); the first three left-aligned
        ("config", 6, lambda r: r["config"]),
        ("dtype", 7, lambda r: r["dtype"]),
        ("thr", 3, lambda r: str(r["threads"])),
        ("steps", 8, lambda r: f"{r['repeats']}x{r['block_steps']}"),
        ("compiled us", 11, lambda r: f"{r['compiled_us']:,.1f}"),
        ("reference us", 12, lambda r: f"{r['reference_us']:,.1f}"),
        ("vs ref", 7, lambda r: f"{r['speedup']:.2f}x"),
    ]
    if with_torch:
        columns += [
            ("torch us", 10, lambda r: fmt(r["torch_us"], ",.1f")),
            ("vs torch", 8, lambda r: fmt_x(r["speedup_vs_torch"])),
        ]
    columns += [
        ("FMA-limit us", 12, lambda r: fmt(r.get("fma_limit_us"), ",.1f")),
        ("step / limit", 12, lambda r: fmt_x(r.get("step_over_limit"))),
    ]
    columns.append(("ref |dL|/|L|", 12, lambda r: f"{r['max_rel_dloss']:.1e}"))
    if with_torch:
        columns.append(("torch |dL|/|L|", 14,
                        lambda r: fmt(r["torch_first_step_rel_dloss"], ".1e")
                        + ("*" if (r["torch_first_step_rel_dloss"] or 0) > r["tolerance"]
                           else " ")))
    columns.append(("check", 5, lambda r: "ok" if r["ok"] else "FAIL"))
    return columns


def format_cells(values, columns):
    return "  ".join(f"{v:<{w}}" if i < 3 else f"{v:>{w}}"
                     for i, (v, (_, w, _)) in enumerate(zip(values, columns)))


def print_train_table(results, with_torch):
    columns = train_columns(with_torch)
    header = format_cells([h for h, _, _ in columns], columns)
    print(header)
    print("-" * len(header))
    previous = None
    for r in results:
        if previous and previous != r["config"]:
            print()
        previous = r["config"]
        if r.get("error"):
            print(format_cells([r["config"], r["dtype"], str(r["threads"])], columns[:3])
                  + f"  FAIL ({r['error']})")
        else:
            print(format_cells([fmt_fn(r) for _, _, fmt_fn in columns], columns))
    print("\nus = microseconds per train_step (median over repeats); vs ref = reference/compiled"
          + ("; vs torch = torch/compiled" if with_torch else "")
          + f";\nFMA-limit us ({', '.join(FMA_LIMIT_CONFIGS)}) = FLOPs of the step's matrix "
            "products (X@W and X^T@D for every layer, D@W^T for all but the first)\n"
            "  / (threads x the per-core FMA peak); step / limit = compiled us / FMA-limit us"
          + ";\nref |dL|/|L| = max over all timed steps (limit 1e-6 float64, 1e-3 float32)"
          + ("; torch |dL|/|L| = max over first steps of repeats, report only "
             "(* above that limit)" if with_torch else ""))


def shape_text(row):
    return f"{row['M']}x{row['K']}x{row['N']} {row['form']}"


def print_gemm(gemm, dtypes, threads, workers):
    rounds = len(gemm[0]["ours_s_samples"])
    samples = len(gemm[0]["ours_s_samples"][0])
    print(f"\nGEMM: engine.op_gemm (ours) vs numpy.matmul, {rounds} rounds of one phase per "
          f"library, {samples} samples per phase.\nGF/s = 2*M*K*N / t, best sample over all "
          f"rounds; % = of the FMA peak at T threads, T x the per-core peak;\nratio = ours/numpy, "
          f"the median over the {rounds} rounds of ours best-in-round / numpy best-in-round")
    for dtype in dtypes:
        print_gemm_table([r for r in gemm if r["dtype"] == dtype], dtype, threads)
    print_gemm_summary(gemm, dtypes, threads)
    errors = [r["rel_err"] for r in gemm]
    print(f"largest |ours - numpy| / max|numpy| over all products: {max(errors):.1e}")
    for w in workers:
        overhead = w["info"]["gemm_call_overhead_us"]
        print(f"fixed cost per call (1x1x1 float64), {w['threads']} thr: "
              f"ours {overhead['ours']:.2f} us, numpy {overhead['numpy']:.2f} us")


def print_gemm_table(rows, dtype, threads):
    """One dtype: a line per product, a column group per thread count."""
    order = {cls: i for i, cls in enumerate(GEMM_CLASSES)}
    products = {}
    for r in sorted(rows, key=lambda r: order[r["class"]]):
        key = (r["class"], r["form"], r["M"], r["K"], r["N"], r["source"])
        products.setdefault(key, {})[r["threads"]] = r
    peaks = {r["threads"]: r["peak_gflops"] for r in rows}
    cell = 34
    head = f"{'form':<6} {'M x K x N':<16} {'from':<18}"
    titles = "".join(f" | {t} thr, peak {peaks[t]:.1f} GF/s".ljust(cell)
                     for t in threads if t in peaks)
    print(f"\n{dtype:<{len(head)}}{titles}".rstrip())
    print(head + "".join(f" | {'ours':>6} {'%':>5} {'numpy':>6} {'%':>5} {'ratio':>5}"
                         for t in threads if t in peaks))
    print("-" * (len(head) + cell * len(peaks)))
    previous = None
    for (cls, form, M, K, N, source), cells in products.items():
        if previous and previous != cls:
            print()
        previous = cls
        line = f"{form:<6} {f'{M}x{K}x{N}':<16} {source[:18]:<18}"
        for t in threads:
            r = cells.get(t)
            if t in peaks:
                line += (f" | {r['ours_gflops']:6.1f} {100 * r['ours_of_peak']:4.0f}% "
                         f"{r['numpy_gflops']:6.1f} {100 * r['numpy_of_peak']:4.0f}% "
                         f"{r['ratio']:5.2f}" if r else " | " + "-".center(cell - 3))
        print(line.rstrip())


def gemm_class_summary(gemm):
    """{(class, dtype, threads): (median ratio, the row with the smallest ratio)}."""
    groups = {}
    for row in gemm:
        groups.setdefault((row["class"], row["dtype"], row["threads"]), []).append(row)
    return {key: (statistics.median(r["ratio"] for r in rows), min(rows, key=lambda r: r["ratio"]))
            for key, rows in groups.items()}


def print_gemm_summary(gemm, dtypes, threads):
    summary = gemm_class_summary(gemm)
    cell = 38
    print("\nratio ours/numpy per class: median, minimum (at M x K x N form)")
    print((f"{'class':<8} {'dtype':<7}" + "".join(f" | {t} thr".ljust(cell) for t in threads))
          .rstrip())
    for cls in GEMM_CLASSES:
        for dtype in dtypes:
            if not any((cls, dtype, t) in summary for t in threads):
                continue
            line = f"{cls:<8} {dtype:<7}"
            for t in threads:
                median, worst = summary.get((cls, dtype, t), (None, None))
                line += (f" | {median:4.2f}  {worst['ratio']:4.2f} ({shape_text(worst)})"
                         if worst else " | -").ljust(cell)
            print(line.rstrip())


# ------------------------------------------------------------------ targets

COMPARISONS = {">=": operator.ge, ">": operator.gt, "<=": operator.le}
TORCH_TARGET_ALL_THREADS = ("tiny", "small")


def target(what, measured, op, goal, unit="x"):
    """One verdict; a figure that was not measured (None) fails."""
    passed = measured is not None and COMPARISONS[op](measured, goal)
    return {"what": what, "measured": measured, "op": op, "target": goal, "unit": unit,
            "pass": passed}


def reference_target(config, threads):
    """The reference/compiled speedup required, or None where none is set."""
    if config in SPEEDUP_TARGETS_ALL_THREADS:
        return SPEEDUP_TARGETS_ALL_THREADS[config]
    return SPEEDUP_TARGETS_BY_THREADS.get(threads)


def train_targets(results):
    checks = []
    for r in results:
        goal = reference_target(r["config"], r["threads"])
        if goal is not None:
            checks.append(target(f"{r['config']} {r['dtype']} {r['threads']} thr: "
                                 "reference/compiled", r.get("speedup"), ">=", goal))
    for r in results:
        if r.get("speedup_vs_torch") is not None and (
                r["config"] in TORCH_TARGET_ALL_THREADS or r["threads"] == 1):
            checks.append(target(f"{r['config']} {r['dtype']} {r['threads']} thr: torch/compiled",
                                 r["speedup_vs_torch"], ">", TORCH_TARGET))
    for r in results:
        if r["config"] in FMA_LIMIT_CONFIGS and r["threads"] == 1:
            checks.append(target(f"{r['config']} {r['dtype']} 1 thr: compiled step / FMA limit",
                                 r.get("step_over_limit"), "<=", FMA_LIMIT_TARGET))
    return checks


def gemm_targets(gemm):
    one_thread = [r for r in gemm if r["threads"] == 1]
    checks = []
    for (cls, dtype, _), (median, worst) in gemm_class_summary(one_thread).items():
        checks.append(target(f"GEMM {cls} {dtype} 1 thr: median ours/numpy", median,
                             ">=", GEMM_MEDIAN_TARGET))
        checks.append(target(f"GEMM {cls} {dtype} 1 thr: min ours/numpy ({shape_text(worst)})",
                             worst["ratio"], ">=", GEMM_MIN_TARGET))
    n = GEMM_PEAK_SIZE
    dtypes = list(dict.fromkeys(r["dtype"] for r in one_thread))
    for dtype in dtypes:
        squares = [r for r in one_thread if r["dtype"] == dtype and r["M"] == r["K"] == r["N"] == n]
        if squares:  # the three forms
            worst = min(squares, key=lambda r: r["ours_of_peak"])
            checks.append(target(f"GEMM {n}x{n}x{n} {dtype} 1 thr: min ours / FMA peak "
                                 f"({worst['form']})", worst["ours_of_peak"], ">=",
                                 GEMM_PEAK_TARGET, unit="%"))
    for dtype in dtypes:
        small = [r for r in one_thread
                 if r["dtype"] == dtype and max(r["M"], r["K"], r["N"]) <= SMALL_PRODUCT]
        if small:
            worst = min(small, key=lambda r: r["ratio"])
            checks.append(target(f"GEMM M,K,N <= {SMALL_PRODUCT} {dtype} 1 thr: min ours/numpy "
                                 f"({shape_text(worst)})", worst["ratio"], ">=",
                                 SMALL_PRODUCT_TARGET))
    return checks


def evaluate_targets(results, gemm):
    """The issue's targets, as dicts (what, measured, op, target, unit, pass)."""
    return train_targets(results) + gemm_targets(gemm)


def format_figure(value, unit):
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if unit == "%" else f"{value:.2f}x"


def format_goal(goal, unit):
    return f"{100 * goal:g}%" if unit == "%" else f"{goal:g}x"


def print_targets(checks):
    print("\nTargets (informational: they do not change the exit code)")
    if not checks:
        print("  none apply (most targets are set for 1 and 2 threads)")
        return
    width = max(len(c["what"]) for c in checks)
    for c in checks:
        goal = f"{c['op']} {format_goal(c['target'], c['unit'])}"
        print(f"  {c['what']:<{width}}  {format_figure(c['measured'], c['unit']):>8}  "
              f"{goal:<8}  {'PASS' if c['pass'] else 'FAIL'}")
    failed = sum(not c["pass"] for c in checks)
    print(f"  {len(checks) - failed} of {len(checks)} targets pass")


# ------------------------------------------------------------------ outputs

def write_json(path, args, workers, results, gemm, checks):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = workers[0]["info"]
    payload = {
        "machine": {k: first[k] for k in ("cpu", "cpu_count", "machine", "hostname", "platform",
                                          "blas", "kernel_path", "tile_table", "cpu_features")},
        "versions": {k: first[k] for k in ("python", "numpy", "cbackprop", "torch")},
        "threads": [w["threads"] for w in workers],
        "workers": [dict(w["info"], threads=w["threads"]) for w in workers],
        "settings": {"quick": args.quick, "repeats": args.repeats, "target_ms": args.target_ms,
                     "warmup_steps": args.warmup_steps, "seed": args.seed, "lr": args.lr,
                     "loss": "mse", "pool_size": POOL_SIZE, "pause_s": PAUSE_S,
                     "tolerance": TOLERANCE, "malloc_env": MALLOC_VARS,
                     "gemm_rounds": GEMM_ROUNDS, "gemm_samples": args.gemm_samples,
                     "gemm_target_s": args.gemm_target_s},
        "results": results,
        "gemm": gemm,
        "targets": checks,
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def set_log_ticks(ax, values):
    """Log scale from below 1x to above the largest bar, ticks labelled 0.5x, 1x, 2x..."""
    low = min([0.5] + [v / 1.5 for v in values])
    high = max([2.0] + [v * 1.6 for v in values])
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    ticks = [m * 10.0 ** e for e in range(-3, 5) for m in (1, 2, 5) if low <= m * 10.0 ** e <= high]
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:g}x" for t in ticks])
    ax.minorticks_off()


def plot_speedups(path, results, configs, dtypes, threads, with_torch, title):
    """Grouped bars, log scale: vs reference (and vs torch). None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [("speedup", "reference us / compiled us", True)]
    if with_torch:
        panels.append(("speedup_vs_torch", "torch us / compiled us", False))
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 4.6 * len(panels)), squeeze=False)
    series = [(d, t) for d in dtypes for t in threads]
    colours = {"float64": plt.cm.Blues, "float32": plt.cm.Oranges}
    width = 0.8 / len(series)
    by_key = {(r["config"], r["dtype"], r["threads"]): r for r in results}
    for ax, (field, label, show_targets) in zip(axes[:, 0], panels):
        for i, (dtype, t) in enumerate(series):
            shade = colours[dtype](0.45 + 0.45 * threads.index(t) / max(1, len(threads) - 1))
            xs, ys, goals = [], [], []
            for c, name in enumerate(configs):
                value = by_key.get((name, dtype, t), {}).get(field)
                if value:
                    xs.append(c - 0.4 + width * (i + 0.5))
                    ys.append(value)
                    goals.append(reference_target(name, t))
            bars = ax.bar(xs, ys, width * 0.92, color=shade, label=f"{dtype}, {t} thr")
            ax.bar_label(bars, labels=[f"{y:.2g}" if y < 10 else f"{y:.0f}" for y in ys],
                         fontsize=7, padding=1)
            if show_targets:
                marked = [(x, goal) for x, goal in zip(xs, goals) if goal is not None]
                ax.hlines([goal for _, goal in marked], [x - width * 0.4 for x, _ in marked],
                          [x + width * 0.4 for x, _ in marked], colors="black", linewidth=1.5,
                          label="target" if i == 0 else None)
        ax.axhline(1.0, color="crimson", linewidth=1, linestyle="--", label="1x")
        set_log_ticks(ax, [r[field] for r in results if r.get(field)])
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels([f"{n}\n{CONFIGS[n][0]} b{CONFIGS[n][1]}" for n in configs],
                           fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncol=3, loc="upper right")
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def output_paths(args):
    json_path = Path(args.json) if args.json else RESULTS_DIR / "latest.json"
    if args.png:
        png_path = Path(args.png)
    else:
        png_path = json_path.with_suffix(".png") if args.json else RESULTS_DIR / "speedups.png"
    return json_path, png_path


def report_cross_check(results):
    failed = [r for r in results if not r["ok"]]
    for r in failed:
        reason = r["error"] or (f"max |dloss|/|loss| = {r['max_rel_dloss']:.2e} "
                                f"> {r['tolerance']:g}")
        print(f"CROSS-CHECK FAILED: {r['config']} {r['dtype']} {r['threads']} thr: {reason}")
    return failed


def parent_main(args):
    workers = []
    for threads in args.threads:
        figures = run_worker(args, threads)
        if figures is None:
            return 1
        workers.append(dict(figures, threads=threads))
    order = {(n, d, t): i for i, (n, d, t) in enumerate(
        (n, d, t) for n in args.configs for d in args.dtypes for t in args.threads)}
    results = sorted((r for w in workers for r in w["results"]),
                     key=lambda r: order[(r["config"], r["dtype"], r["threads"])])
    gemm = [row for w in workers for row in w["gemm"]]
    with_torch = workers[0]["info"]["torch"] is not None

    print_header(args, workers)
    print_train_table(results, with_torch)
    if gemm:
        print_gemm(gemm, args.dtypes, args.threads, workers)
    checks = evaluate_targets(results, gemm)
    print_targets(checks)

    json_path, png_path = output_paths(args)
    print(f"\nfigures written to {write_json(json_path, args, workers, results, gemm, checks)}")
    first = workers[0]["info"]
    title = (f"cbackprop train_step speedups, {first['cpu']}, kernel {first['kernel_path']}, "
             f"{time.strftime('%Y-%m-%d')}" + (" (quick)" if args.quick else ""))
    drawn = plot_speedups(png_path, results, args.configs, args.dtypes, args.threads,
                          with_torch, title)
    print(f"chart drawn to {drawn}" if drawn else "matplotlib not importable: no chart")
    return 1 if report_cross_check(results) else 0


if __name__ == "__main__":
    sys.exit(worker_main(ARGS) if ARGS.worker else parent_main(ARGS))
