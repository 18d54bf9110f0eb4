"""The benchmark's settings: configurations, dtypes, constants and targets,
and the command line. Imports neither NumPy nor cbackprop: bench/run.py
reads the thread counts from here before either loads."""
import argparse
import os
import sys
from pathlib import Path


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
# What is trained: name -> (hidden activation, output activation, loss,
# optimizer name, its settings besides lr, the configs it runs on (None: all)).
WORKLOADS = {
    "relu-sgd": ("relu", "identity", "mse", "sgd", {}, None),
    "sigmoid-adam": ("sigmoid", "identity", "mse", "adam", {}, None),
    "tanh-momentum": ("tanh", "identity", "mse", "sgd", {"momentum": 0.9}, None),
    "softmax-ce-adam": ("relu", "softmax", "cross_entropy", "adam", {}, ("small", "mnist")),
}
TOLERANCE = {"float64": 1e-6, "float32": 1e-3}
# The cross-check reads a loss difference relative to the larger loss, but
# never to less than this (about sqrt(eps)): a cross-entropy the network has
# driven near zero is -log(p) with p within a few eps of 1, so its rounding
# is absolute, not relative. A float32 one of 2e-6 carries ~3e-9 of it, 1.5e-3
# of itself (softmax-ce-adam small, after ~25,000 steps on its four batches).
LOSS_SCALE_FLOOR = {"float64": 1.5e-8, "float32": 3.5e-4}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Variables that choose a library's vector level below what the CPU has
# (cbackprop's path, OpenBLAS's kernels, torch's and oneDNN's): with them one
# machine can stand in for a CPU without AVX-512. The header names any set.
ISA_VARS = ("CBACKPROP_CPU", "OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
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
GEMM_ROUNDS = 3  # rounds of (ours, numpy[, torch]) phases; a ratio is their median
FMA_LIMIT_CONFIGS = ("big",)  # configs whose step is compared with its FMA-limit time
ELEMENTWISE_SHAPE = (128, 256)  # the arrays of the element-wise passes
ELEMENTWISE_ROUNDS = 3
# The update passes' networks: 9,610 parameters (75 KiB in float64, in L1/L2),
# and 4.2 M (34 MiB per float64 array: beyond L2, and beyond L3 for 4 arrays).
UPDATE_NETWORKS = {"in cache": (64, 128, 10), "beyond L2": (2048, 2048, 10)}
UPDATE_ROUNDS = 9
FIT_CONFIGS = ("tiny", "small")  # fit's section: relu + SGD + MSE, float64
FIT_SAMPLES = 4096               # rows of the fit section's random data
FIT_DIGITS_REPEATS = 3           # digits: best of this many fits each

# Targets (the project's issue), per dtype.
# reference us / compiled us, every workload: tiny and small at every thread count ...
SPEEDUP_TARGETS_ALL_THREADS = {"tiny": 30.0, "small": 8.0}
# ... the others {threads: goal}
SPEEDUP_TARGETS_BY_THREADS = {1: 1.2, 2: 1.3}
TORCH_TARGET = 1.0  # torch us / compiled us: tiny and small always, the others at 1 thread
# A train_step call on an already-valid batch in a hot loop, every workload on
# this config at 1 thread: at most this many µs (the per-call floor).
CALL_FLOOR_CONFIG, CALL_FLOOR_US = "tiny", 1.0
FMA_LIMIT_TARGET = 1.25  # compiled step / FMA-limit time, FMA_LIMIT_CONFIGS at 1 thread (relu-sgd)
# ours / numpy.matmul at 1 thread, per class and dtype: median, and every shape
GEMM_MEDIAN_TARGET, GEMM_MIN_TARGET = 0.95, 0.90
GEMM_PEAK_SIZE, GEMM_PEAK_TARGET = 1024, 0.85  # n x n x n at 1 thread: ours / FMA peak
SMALL_PRODUCT, SMALL_PRODUCT_TARGET = 128, 0.95  # every product with M, K, N <= 128
ELEMENTWISE_TARGET = 1.0  # numpy ns / ours ns of every element-wise pass, 1 thread
# Adam's update pass at 1 thread: ns per parameter in cache, per dtype, and at
# most this multiple of SGD with momentum's beyond L2.
ADAM_IN_CACHE_NS = {"float64": 2.0, "float32": 1.0}
ADAM_OVER_MOMENTUM_TARGET = 1.5
# fit at 1 thread: tiny at most this many µs per minibatch step, and each
# config at least this multiple of the reference's fit; digits at least this
# multiple of scikit-learn's MLPClassifier (by the CPU's vector ISA), at a
# test accuracy of at least DIGITS_ACCURACY and no lower than scikit-learn's.
FIT_TINY_US = 0.5
FIT_OVER_REFERENCE = {"tiny": 50.0, "small": 10.0}
DIGITS_OVER_SKLEARN = {"avx512": 10.0, "avx2": 5.0, "baseline": 5.0}
DIGITS_ACCURACY = 0.95


BENCH_DIR = Path(__file__).resolve().parent.parent
RUN_SCRIPT = BENCH_DIR / "run.py"  # what the parent starts with --worker
RESULTS_DIR = BENCH_DIR / "results"
# A run's figures, unless --json says where: not a file the repository keeps
# (latest.json, avx2-zen3.json, ... are full runs saved by name), so that
# running the README's first command changes nothing git tracks.
DEFAULT_JSON = "run.json"


def product_shape(text):
    """``(M, K, N, trans_a, trans_b)`` of a product written M x K x N (an x
    between the sizes), then ``t`` for op(A) = Aᵀ or ``T`` for op(B) = Bᵀ."""
    sizes = text.rstrip("tT")
    parts = sizes.lower().split("x")
    if (len(text) - len(sizes) > 1 or len(parts) != 3
            or not all(part.isdigit() and int(part) > 0 for part in parts)):
        raise ValueError(f"{text!r} is not a product such as 64x784x128, 64x784x128t "
                         "(A transposed) or 64x784x128T (B transposed)")
    M, K, N = (int(part) for part in parts)
    return M, K, N, text.endswith("t"), text.endswith("T")


def comma_list(text):
    return [item for item in text.replace(",", " ").split() if item]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Time train_step of the compiled network against the NumPy reference "
                    "(and PyTorch), and the engine's GEMM against numpy.matmul.")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats, shorter blocks, fewer GEMM samples and squares "
                             "(about 1-1.5 minutes per thread count)")
    parser.add_argument("--threads", nargs="+", default=["1,2"], metavar="N",
                        help="thread counts, one worker process each (default 1,2; space or "
                             "comma separated)")
    parser.add_argument("--configs", nargs="+", metavar="NAME",
                        help=f"subset of: {', '.join(CONFIGS)} (space or comma separated)")
    parser.add_argument("--workloads", nargs="+", metavar="NAME",
                        help=f"subset of: {', '.join(WORKLOADS)} (default all)")
    parser.add_argument("--dtypes", nargs="+", metavar="DTYPE",
                        help="float64 and/or float32 (default both)")
    parser.add_argument("--repeats", type=int, help="timed blocks per implementation")
    parser.add_argument("--target-ms", type=float,
                        help="wall time of one block of the slower implementation")
    parser.add_argument("--lr", type=float, default=LEARNING_RATE,
                        help=f"learning rate of every workload's optimizer "
                             f"(default {LEARNING_RATE:g})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM section")
    parser.add_argument("--no-elementwise", action="store_true",
                        help="skip the element-wise passes (activations, losses)")
    parser.add_argument("--no-updates", action="store_true",
                        help="skip the optimizer update passes")
    parser.add_argument("--no-fit", action="store_true",
                        help="skip the fit section (tiny, small, digits against scikit-learn)")
    parser.add_argument("--fit-samples", type=int, default=FIT_SAMPLES, metavar="ROWS",
                        help=f"rows of the fit section's random data (default {FIT_SAMPLES}; "
                             "beyond the L2 cache, a shuffled epoch gathers its rows from L3 "
                             "or memory)")
    parser.add_argument("--json", metavar="PATH",
                        help="where to write the figures (default bench/results/run.json, which git "
                             "ignores: the runs kept in bench/results are saved by name)")
    parser.add_argument("--png", metavar="PATH",
                        help="where to draw the chart (default bench/results/speedups.png, "
                             "or the --json path with .png)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="workers print a progress line per timed configuration and per "
                             "section (stderr)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    args.configs = names(parser, "--configs", args.configs, CONFIGS)
    args.workloads = names(parser, "--workloads", args.workloads, WORKLOADS)
    args.dtypes = names(parser, "--dtypes", args.dtypes, DTYPES)
    for workload in args.workloads:
        runs_on = WORKLOADS[workload][5]
        if runs_on is not None and not set(runs_on) & set(args.configs):
            parser.error(f"{workload} runs on {', '.join(runs_on)} only: none of them is "
                         f"in --configs")
    try:
        args.threads = [int(t) for item in args.threads for t in comma_list(item)]
    except ValueError:
        parser.error("--threads takes integers, e.g. 1,2")
    if not args.threads or min(args.threads) < 1:
        parser.error("--threads must be >= 1")
    if len(set(args.threads)) != len(args.threads):
        parser.error(f"--threads names a count twice: {args.threads}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if not 0 <= args.lr < float("inf"):
        parser.error(f"--lr must be finite and >= 0, got {args.lr}")
    if args.target_ms is not None and not args.target_ms > 0:
        parser.error(f"--target-ms must be > 0, got {args.target_ms}")
    if args.worker and (len(args.threads) != 1 or not args.out):
        parser.error("--worker takes one --threads value and --out")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 11
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.fit_samples < 1:
        parser.error("--fit-samples must be >= 1")
    if args.target_ms is None:
        args.target_ms = 25.0 if args.quick else 150.0
    args.warmup_steps = 1 if args.quick else 5
    args.warmup_s = 0.01 if args.quick else 0.03
    args.gemm_squares = GEMM_SQUARES_QUICK if args.quick else GEMM_SQUARES
    args.gemm_samples = 2 if args.quick else 4      # samples per library per round
    args.gemm_target_s = 0.003 if args.quick else 0.01  # one sample
    if not args.worker:
        args.json_path, args.png_path = output_paths(parser, args)
        busy = [t for t in args.threads if t > (os.cpu_count() or 1)]
        if busy:
            print(f"note: --threads {busy} is more than this machine's {os.cpu_count()} CPUs: "
                  "those workers share cores", file=sys.stderr)
    return args


def names(parser, option, given, choices):
    """The names of a list option (space or comma separated), all of them by default."""
    chosen = [n for item in (given or choices) for n in comma_list(item)]
    if not chosen:
        parser.error(f"{option}: name at least one of {list(choices)}")
    unknown = [n for n in chosen if n not in choices]
    if unknown:
        parser.error(f"{option}: unknown {unknown}; choose from {list(choices)}")
    if len(set(chosen)) != len(chosen):
        parser.error(f"{option} names one twice: {chosen}")
    return chosen


# What matplotlib writes by every backend the bench may get (a path without a
# suffix gets .png, as matplotlib would add it).
CHART_SUFFIXES = (".png", ".pdf", ".svg")


def output_paths(parser, args):
    """The JSON and chart paths, checked before anything is timed: a run is
    minutes long, and a path it cannot write ended it with a traceback. Their
    directories are created here (a run that fails later leaves them)."""
    json_path = Path(args.json) if args.json else RESULTS_DIR / DEFAULT_JSON
    if args.png:
        png_path = Path(args.png)
        if not png_path.suffix:
            png_path = png_path.with_suffix(".png")
    else:
        png_path = json_path.with_suffix(".png") if args.json else RESULTS_DIR / "speedups.png"
    if png_path.suffix.lower() not in CHART_SUFFIXES:
        parser.error(f"--png: the chart is written as {', '.join(CHART_SUFFIXES)}, "
                     f"not {png_path.suffix}")
    if json_path.resolve() == png_path.resolve():
        parser.error(f"--json and the chart would both be written to {json_path}")
    for option, path in (("--json", json_path), ("--png", png_path)):
        if path.is_dir():
            parser.error(f"{option}: {path} is a directory")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            parser.error(f"{option}: cannot create {path.parent}: {error.strerror}")
        if not os.access(path if path.exists() else path.parent, os.W_OK):
            parser.error(f"{option}: {path} is not writable")
    return json_path, png_path


def pin_threads(n):
    for name in THREAD_VARS:
        os.environ[name] = str(n)
