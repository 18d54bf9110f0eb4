"""Every engine build this CPU can run, side by side: which one should it use?

    PYTHONPATH=src python bench/paths.py              # ~30 s
    PYTHONPATH=src python bench/paths.py --quick      # ~10 s (a smoke run)

``cbackprop`` imports the widest build the CPU and the OS support (AVX-512,
then AVX2, then baseline). Where the widest may not be the fastest (AMD Zen
4 executes each 512-bit FMA as two 256-bit halves, so its AVX-512 peak is its
AVX2 peak; measured, AVX-512 still won there), this script is how to tell: for each build it measures, in its
own process forced with ``CBACKPROP_CPU`` and pinned to one thread, the FMA
peak per core, its register tile alone on packed panels, the GEMM at
dense-layer shapes of the mnist, deep (its 10-wide output layer) and big
configurations, and the big configuration's ``train_step``, and names the
fastest. Set ``CBACKPROP_CPU`` to it to use another build than the default;
it says to only where the gain is 5 % or more (a smaller one is a tie on the
machines measured, as avx2 against avx512 on Zen 4: bench/README.md).
"""
import argparse
import json
import os
import subprocess
import sys
import time

# (M, K, N, trans_a, trans_b, label): X@W, Xᵀ@δ and δ@Wᵀ of mnist's first layer and big's layers.
GEMM_SHAPES = [(64, 784, 128, False, False, "X@W 64x784x128"),
               (784, 64, 128, True, False, "X^T@D 784x64x128"),
               (64, 128, 784, False, True, "D@W^T 64x128x784"),
               (128, 256, 10, False, False, "X@W 128x256x10"),
               (512, 1024, 1024, False, False, "X@W 512x1024x1024")]
BIG = ([1024, 1024, 1024], 512)
# Another build is recommended over the default only if its big train_step is
# at least this much faster: on the 2-core machines measured, repeated runs of
# one build differ by up to a few per cent.
SWITCH_MIN_GAIN = 0.05


def best_seconds(fn, repeats, min_seconds):
    """Best per-call time over ``repeats`` blocks of calls lasting at least ``min_seconds``."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start >= min_seconds:
            break
        calls *= 2
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return min(times)


def measure(quick):
    """The figures of the build this process imported (run in a worker)."""
    import numpy as np

    import cbackprop as cb
    from cbackprop._backend import engine

    cb.set_num_threads(1)
    repeats, min_seconds = (2, 0.02) if quick else (5, 0.1)
    rng = np.random.default_rng(0)
    figures = {"path": cb.kernel_path, "peak": {}, "tile": {}, "gemm": {}, "big_step_ms": {}}
    for dtype in ("float64", "float32"):
        figures["peak"][dtype] = engine.fma_peak_gflops(dtype)
        figures["tile"][dtype] = engine.tile_gflops(dtype)
        for M, K, N, trans_a, trans_b, label in GEMM_SHAPES:
            A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
            B = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
            seconds = best_seconds(lambda: engine.op_gemm(A, B, trans_a, trans_b),
                                   repeats, min_seconds)
            figures["gemm"][f"{label} {dtype}"] = 2.0 * M * K * N / seconds / 1e9
        sizes, batch = BIG
        net = cb.Network(sizes, ["relu", "identity"], optimizer=cb.SGD(lr=1e-4), dtype=dtype, seed=0)
        X = rng.standard_normal((batch, sizes[0])).astype(dtype)
        Y = rng.standard_normal((batch, sizes[-1])).astype(dtype)
        figures["big_step_ms"][dtype] = best_seconds(lambda: net.train_step(X, Y), repeats,
                                                     min_seconds) * 1e3
    return figures


def run_worker(path, quick):
    env = dict(os.environ, CBACKPROP_CPU=path, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    command = [sys.executable, __file__, "--worker"] + (["--quick"] if quick else [])
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the {path} worker failed:\n{result.stderr}")
    return json.loads(result.stdout)


def print_table(runs):
    paths = [run["path"] for run in runs]
    print(f"{'one thread':32s}" + "".join(f"{path:>12s}" for path in paths))
    for dtype in ("float64", "float32"):
        print(f"{'FMA peak GF/s ' + dtype:32s}" + "".join(f"{run['peak'][dtype]:12.1f}" for run in runs))
    for dtype in ("float64", "float32"):
        print(f"{'register tile GF/s ' + dtype:32s}" + "".join(f"{run['tile'][dtype]:12.1f}" for run in runs))
    for key in runs[0]["gemm"]:
        print(f"{'GF/s ' + key:32s}" + "".join(f"{run['gemm'][key]:12.1f}" for run in runs))
    for dtype in ("float64", "float32"):
        print(f"{'big train_step ms ' + dtype:32s}"
              + "".join(f"{run['big_step_ms'][dtype]:12.1f}" for run in runs))


def fastest(runs):
    """The build with the least big train_step time summed over both dtypes."""
    return min(runs, key=lambda run: sum(run["big_step_ms"].values()))["path"]


def verdict(runs):
    """The line naming the fastest build, and whether to switch from the
    default (``runs[0]``): only for a gain of SWITCH_MIN_GAIN or more."""
    best = fastest(runs)
    step = {run["path"]: sum(run["big_step_ms"].values()) for run in runs}
    default = runs[0]["path"]
    line = f"fastest on the big train_step: {best}"
    if best == default:
        return line
    gain = step[default] / step[best] - 1
    if gain < SWITCH_MIN_GAIN:
        return (f"{line}, {100 * gain:.1f} % ahead of the default ({default}): within "
                f"{100 * SWITCH_MIN_GAIN:.0f} %, a tie; keep the default")
    return f"{line}, {100 * gain:.1f} % ahead of the default ({default}) (set CBACKPROP_CPU={best} to use it)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (a smoke run)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.quick)))
        return 0
    from cbackprop import _backend

    runs = [run_worker(path, args.quick) for path in _backend.available_paths()]
    print(f"engine builds this CPU runs: {', '.join(run['path'] for run in runs)} "
          f"(default: {runs[0]['path']})")
    print_table(runs)
    print(verdict(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
