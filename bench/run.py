"""Benchmark ``train_step``: compiled ``cb.Network`` against ``cb.reference.Network``.

Run from the repository root::

    PYTHONPATH=src python bench/run.py            # thorough run (~40 s on 2 cores)
    PYTHONPATH=src python bench/run.py --quick    # under a minute
    PYTHONPATH=src python bench/run.py --configs tiny mnist --threads 2 --json out.json

What it measures: the wall time of one ``net.train_step(X, Y)`` (forward,
backward and an SGD update) in microseconds, for the compiled engine and the
NumPy reference, on dense networks with relu hidden layers, an identity
output layer and the "mse" loss, in float32 and float64.

How: both networks are built with the same seed and train in lock-step on the
same cycled pool of pre-generated batches (already cast to the dtype, so no
conversion is timed). After a warm-up, each repeat times a block of N steps
of one implementation and then the same N steps of the other (the order
alternates between repeats); N is chosen so that a block of the slower one
takes about ``--target-ms``. The figure reported is the median per-step time
over the repeats; the speedup is reference / compiled.

The run doubles as a cross-check: the losses the two networks return at the
same step are compared over every timed step (the reference is re-synced
to the compiled parameters before each repeat, so float32 rounding cannot
build up over tens of thousands of steps), and the largest
``|loss_compiled - loss_reference| / |loss|`` must stay below 1e-6 (float64)
or 1e-3 (float32); otherwise the failing configs are printed and the exit
code is 1.

BLAS and OpenMP thread counts are pinned (``--threads``, default 1) before
NumPy is imported and printed with the results, together with the versions,
kernel path, CPU and BLAS. All figures are written to a JSON file
(``bench/results/latest.json`` unless ``--json`` says otherwise).
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
# Small enough that when a relu pre-activation sits within float32 rounding of
# zero (so the two nets take different branches for one step) the losses part
# by ~1e-4 relative, well inside the float32 tolerance; 1e-3 parts them by
# ~1.5e-3 on the tiny config.
LEARNING_RATE = 1e-4
POOL_SIZE = 4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Time train_step of the compiled and the reference network.")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and shorter blocks (under a minute)")
    parser.add_argument("--threads", type=int, default=1,
                        help="value for OMP/OPENBLAS/MKL_NUM_THREADS (default 1)")
    parser.add_argument("--configs", nargs="+", metavar="NAME",
                        help=f"subset of: {', '.join(CONFIGS)} (space or comma separated)")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--repeats", type=int, help="timed blocks per implementation")
    parser.add_argument("--target-ms", type=float,
                        help="wall time of one block of the slower implementation")
    parser.add_argument("--lr", type=float, default=LEARNING_RATE,
                        help=f"SGD learning rate (default {LEARNING_RATE:g})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH",
                        help="where to write the figures (default bench/results/latest.json)")
    args = parser.parse_args(argv)

    names = [n for item in (args.configs or CONFIGS) for n in item.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")
    args.configs = names
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.repeats is None:
        args.repeats = 5 if args.quick else 11
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.target_ms is None:
        args.target_ms = 50.0 if args.quick else 150.0
    args.warmup = 2 if args.quick else 5
    return args


def pin_threads(n):
    for name in THREAD_VARS:
        os.environ[name] = str(n)


# Thread counts must be in the environment before NumPy (and its BLAS) loads.
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    pin_threads(ARGS.threads)

import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import cbackprop as cb  # noqa: E402


# --------------------------------------------------------------------- machine

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


def machine_info():
    return {
        "threads": {name: os.environ.get(name) for name in THREAD_VARS},
        "numpy": np.__version__,
        "cbackprop": cb.__version__,
        "kernel_path": cb.kernel_path,
        # The compiled engine's own OpenMP thread count, where it has one.
        "cbackprop_threads": cb.get_num_threads() if hasattr(cb, "get_num_threads") else None,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "blas": blas_info(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ------------------------------------------------------------------ the runs

def build_networks(sizes, dtype, seed, lr=LEARNING_RATE):
    activations = ["relu"] * (len(sizes) - 2) + ["identity"]
    kwargs = dict(loss="mse", dtype=dtype, seed=seed)
    compiled = cb.Network(sizes, activations, optimizer=cb.SGD(lr=lr), **kwargs)
    reference = cb.reference.Network(sizes, activations,
                                     optimizer=cb.SGD(lr=lr), **kwargs)
    return compiled, reference


def make_batch_pool(sizes, batch, dtype, seed):
    """A few fixed batches, C-contiguous and already in ``dtype``."""
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(POOL_SIZE):
        X = rng.standard_normal((batch, sizes[0])).astype(dtype)
        Y = rng.standard_normal((batch, sizes[-1])).astype(dtype)
        pool.append((X, Y))
    return pool


class LockStep:
    """Feeds both networks the same batch sequence, one block at a time."""

    def __init__(self, compiled, reference, pool):
        self.nets = {"compiled": compiled, "reference": reference}
        self.pool = pool
        self.step = 0

    def resync(self):
        """Copy the compiled parameters into the reference (plain SGD has no
        other state). Float32 rounding differences otherwise accumulate over
        tens of thousands of steps until a relu flips in one net and not the
        other, and the two trajectories part for reasons that are not bugs."""
        self.nets["reference"].set_params(*self.nets["compiled"].get_params())

    def next_block(self, n):
        batches = [self.pool[(self.step + i) % len(self.pool)] for i in range(n)]
        self.step += n
        return batches

    def time_block(self, which, batches):
        """Run ``batches`` through one network: (seconds, losses)."""
        train_step = self.nets[which].train_step
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

    def run_pair(self, n, reference_first=False):
        batches = self.next_block(n)
        order = ("reference", "compiled") if reference_first else ("compiled", "reference")
        return {which: self.time_block(which, batches) for which in order}


def max_relative_loss_difference(losses_a, losses_b):
    a = np.asarray(losses_a, dtype=np.float64)
    b = np.asarray(losses_b, dtype=np.float64)
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b) / scale))


def choose_block_size(lockstep, warmup, target_seconds):
    """Warm up both, then pick N so the slower block takes ~target_seconds."""
    pair = lockstep.run_pair(warmup)
    # Refine the estimate on at least ~10 ms of work (the first calls are noisy).
    n = max(1, int(0.01 / max(pair["reference"][0], pair["compiled"][0]) * warmup))
    pair = lockstep.run_pair(n)
    slower_per_step = max(pair["reference"][0], pair["compiled"][0]) / n
    return max(1, round(target_seconds / slower_per_step))


def bench_one(name, dtype, args):
    sizes, batch = CONFIGS[name]
    compiled, reference = build_networks(sizes, dtype, args.seed, args.lr)
    lockstep = LockStep(compiled, reference, make_batch_pool(sizes, batch, dtype, args.seed))
    n = choose_block_size(lockstep, args.warmup, args.target_ms / 1000)

    per_step = {"compiled": [], "reference": []}
    losses = {"compiled": [], "reference": []}
    for repeat in range(args.repeats):
        lockstep.resync()
        pair = lockstep.run_pair(n, reference_first=bool(repeat % 2))
        for which, (seconds, block_losses) in pair.items():
            per_step[which].append(seconds / n * 1e6)
            losses[which].extend(block_losses)

    compiled_us = statistics.median(per_step["compiled"])
    reference_us = statistics.median(per_step["reference"])
    rel_dloss = max_relative_loss_difference(losses["compiled"], losses["reference"])
    return {
        "config": name, "sizes": sizes, "batch": batch, "dtype": dtype,
        "block_steps": n, "repeats": args.repeats,
        "compiled_us": compiled_us, "reference_us": reference_us,
        "speedup": reference_us / compiled_us,
        "compiled_us_samples": per_step["compiled"],
        "reference_us_samples": per_step["reference"],
        "max_rel_dloss": rel_dloss, "tolerance": TOLERANCE[dtype],
        "first_loss": losses["compiled"][0], "last_loss": losses["compiled"][-1],
        "ok": rel_dloss <= TOLERANCE[dtype], "error": None,
    }


def bench_one_safely(name, dtype, args):
    """A diverged or crashing config is a failed cross-check, not a crash."""
    try:
        return bench_one(name, dtype, args)
    except (FloatingPointError, ValueError) as exc:
        sizes, batch = CONFIGS[name]
        return {"config": name, "sizes": sizes, "batch": batch, "dtype": dtype,
                "ok": False, "error": f"{type(exc).__name__}: {exc}"}


# ------------------------------------------------------------------ reporting

def print_machine(info, args):
    print("cbackprop train_step benchmark: compiled vs reference "
          f"({'quick' if args.quick else 'thorough'}; {args.repeats} repeats, "
          f"blocks of ~{args.target_ms:g} ms; SGD lr={args.lr:g}, mse, relu/identity)")
    print("threads: " + ", ".join(f"{k}={v}" for k, v in info["threads"].items())
          + f", cb.get_num_threads()={info['cbackprop_threads']}")
    print(f"numpy {info['numpy']} (BLAS: {info['blas']}), cbackprop {info['cbackprop']}, "
          f"kernel_path={info['kernel_path']}, python {info['python']}")
    print(f"cpu: {info['cpu']} ({info['cpu_count']} logical cpus)")
    print()


COLUMNS = [  # (header, width, formatter)
    ("config", 7, lambda r: r["config"]),
    ("dtype", 7, lambda r: r["dtype"]),
    ("steps", 11, lambda r: f"{r['repeats']}x{r['block_steps']}"),
    ("compiled us/step", 16, lambda r: f"{r['compiled_us']:,.1f}"),
    ("reference us/step", 17, lambda r: f"{r['reference_us']:,.1f}"),
    ("speedup", 7, lambda r: f"{r['speedup']:.2f}x"),
    ("max |dloss|/|loss|", 18, lambda r: f"{r['max_rel_dloss']:.2e}"),
    ("check", 5, lambda r: "ok" if r["ok"] else "FAIL"),
]


def format_row(result):
    if result.get("error"):
        head = "  ".join(f"{COLUMNS[i][2](result):<{COLUMNS[i][1]}}" for i in range(2))
        return f"{head}  FAIL ({result['error']})"
    cells = []
    for i, (_, width, fmt) in enumerate(COLUMNS):
        cells.append(f"{fmt(result):<{width}}" if i < 2 else f"{fmt(result):>{width}}")
    return "  ".join(cells)


def print_header():
    cells = [f"{h:<{w}}" if i < 2 else f"{h:>{w}}" for i, (h, w, _) in enumerate(COLUMNS)]
    line = "  ".join(cells)
    print(line)
    print("-" * len(line))


def write_json(path, info, args, results):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "settings": {"quick": args.quick, "repeats": args.repeats,
                     "target_ms": args.target_ms, "warmup": args.warmup,
                     "seed": args.seed, "lr": args.lr, "loss": "mse",
                     "pool_size": POOL_SIZE, "tolerance": TOLERANCE},
        "results": results,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def main(args):
    info = machine_info()
    print_machine(info, args)
    print_header()
    results = []
    for name in args.configs:
        for dtype in args.dtypes:
            result = bench_one_safely(name, dtype, args)
            print(format_row(result), flush=True)
            results.append(result)

    default_json = Path(__file__).resolve().parent / "results" / "latest.json"
    written = write_json(args.json or default_json, info, args, results)
    print(f"\nfigures written to {written}")

    failed = [r for r in results if not r["ok"]]
    for r in failed:
        reason = r["error"] or (f"max |dloss|/|loss| = {r['max_rel_dloss']:.2e} "
                                f"> {r['tolerance']:g}")
        print(f"CROSS-CHECK FAILED: {r['config']} {r['dtype']}: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
