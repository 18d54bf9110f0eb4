"""Two networks trained from two Python threads at once: does the compute overlap?

    PYTHONPATH=src python bench/threads.py            # ~10 s
    PYTHONPATH=src python bench/threads.py --steps 50

The compiled ``train_step`` runs without the GIL, so two Python threads that
each train their own network should take about as long as one of them alone
on a machine with two free cores (each engine pinned to one OpenMP thread
here, so the two do not compete for the same cores). The script times the
same work done one network after the other and then concurrently, and
checks that both ways end with bit-identical parameters. Not a test: the
figures depend on what else the machine is doing.
"""
import argparse
import os
import threading
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (after pinning the thread counts)

import cbackprop as cb  # noqa: E402

CONFIGS = {"mnist": ([784, 128, 10], 64), "deep": ([256, 256, 256, 256, 10], 128),
           "wide": ([1024, 1024, 10], 256)}


def make(sizes, batch, seed):
    rng = np.random.default_rng(seed)
    net = cb.Network(sizes, ["relu"] * (len(sizes) - 2) + ["identity"],
                     optimizer=cb.SGD(lr=1e-4), seed=seed)
    X = rng.standard_normal((batch, sizes[0]))
    Y = rng.standard_normal((batch, sizes[-1]))
    return net, X, Y


def train(net, X, Y, steps):
    for _ in range(steps):
        net.train_step(X, Y)


def measure(sizes, batch, steps):
    jobs = [make(sizes, batch, seed) for seed in (1, 2)]
    for net, X, Y in jobs:
        train(net, X, Y, 2)  # warm-up: workspaces allocated
    start = time.perf_counter()
    for job in jobs:
        train(*job, steps)
    sequential = time.perf_counter() - start
    after_sequential = [job[0].get_params()[0] for job in jobs]

    jobs = [make(sizes, batch, seed) for seed in (1, 2)]
    for net, X, Y in jobs:
        train(net, X, Y, 2)
    threads = [threading.Thread(target=train, args=(*job, steps)) for job in jobs]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    concurrent = time.perf_counter() - start
    identical = all(np.array_equal(a, b) for params_a, (net, _, _) in zip(after_sequential, jobs)
                    for a, b in zip(params_a, net.get_params()[0]))
    return sequential, concurrent, identical


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print(f"cbackprop {cb.__version__}, kernel {cb.kernel_path}, engine threads per network "
          f"{cb.get_num_threads()}, {os.cpu_count()} cpus, {args.steps} steps per network")
    print(f"{'config':8s} {'one after the other':>20s} {'two threads':>12s} {'overlap':>8s}  same params")
    for name, (sizes, batch) in CONFIGS.items():
        sequential, concurrent, identical = measure(sizes, batch, args.steps)
        print(f"{name:8s} {sequential * 1e3:17.1f} ms {concurrent * 1e3:9.1f} ms "
              f"{sequential / concurrent:7.2f}x  {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
