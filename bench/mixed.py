"""A training loop that calls NumPy between steps, at 1 and at 2 threads.

    PYTHONPATH=src python bench/mixed.py                 # ~15 s
    OPENBLAS_THREAD_TIMEOUT=4 PYTHONPATH=src python bench/mixed.py
    OMP_WAIT_POLICY=passive PYTHONPATH=src python bench/mixed.py

Each iteration is one NumPy matrix product (256 x 256, OpenBLAS at the
script's thread count) and one compiled ``train_step`` ([784, 128, 10],
batch 256, relu + softmax, cross-entropy). Both libraries' idle threads
spin for a while before they sleep: after a NumPy call OpenBLAS's threads
keep their cores busy while the engine's OpenMP team needs them, and the
team's threads spin at its barriers while their partner waits for a core.
The blocks of 1 and 2 threads are interleaved; the script prints the median
ms per iteration of each, and of the steps alone. Not a test: the figures
depend on what else the machine is doing. The environment variables
above (set before the script starts) change how long each library spins.
"""
import argparse
import os
import statistics
import time

THREADS = (1, 2)
os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(max(THREADS))

import numpy as np  # noqa: E402  (after setting the thread counts)

import cbackprop as cb  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 784)).astype(args.dtype)
    labels = rng.integers(0, 10, 256)
    net = cb.Network([784, 128, 10], ["relu", "softmax"], loss="cross_entropy",
                     optimizer=cb.SGD(lr=1e-4), dtype=args.dtype, seed=0)
    A, B = rng.standard_normal((256, 256)), rng.standard_normal((256, 256))

    def block(threads, with_numpy, iterations=40):
        cb.set_num_threads(threads)
        start = time.perf_counter()
        for _ in range(iterations):
            if with_numpy:
                A @ B
            net.train_step(X, labels)
        return (time.perf_counter() - start) / iterations

    cases = [(threads, with_numpy) for with_numpy in (True, False) for threads in THREADS]
    times = {case: [] for case in cases}
    for round_ in range(args.rounds):
        for case in cases if round_ % 2 == 0 else cases[::-1]:
            times[case].append(block(*case))
    spin = {name: os.environ.get(name, "unset")
            for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    print(f"cbackprop {cb.__version__} ({cb.kernel_path}), numpy {np.__version__}, "
          f"{os.cpu_count()} cpus, {args.dtype}; " + ", ".join(f"{k}={v}" for k, v in spin.items()))
    for threads, with_numpy in cases:
        what = "A @ B, then train_step" if with_numpy else "train_step alone      "
        print(f"  {threads} thread{'s' if threads > 1 else ' '}: {what} "
              f"{statistics.median(times[threads, with_numpy]) * 1e3:7.3f} ms per iteration")


if __name__ == "__main__":
    main()
