"""Benchmark ``train_step`` of the compiled ``cb.Network`` against the NumPy
``cb.reference.Network`` (and PyTorch, when it is importable), plus the
engine's GEMM against ``numpy.matmul``.

Usage, from the repository root::

    python bench/run.py              # thorough: 10-12 minutes on 2 idle cores
    python bench/run.py --quick      # 1-1.5 minutes per thread count, all included
    python bench/run.py --configs tiny,mnist --dtypes float32 --threads 2

(with ``PYTHONPATH=src`` before them to time an in-place build).

The options, the method (processes, phases, cross-check, the machine, GEMM),
the targets and the outputs are described in bench/README.md; the code is in
bench/benchlib/.
"""
import sys

from benchlib.settings import parse_args, pin_threads


def main(argv=None):
    args = parse_args(argv)
    # Thread counts must be in the environment before NumPy (and its BLAS) loads.
    # The parent times nothing; it keeps its own pools at one thread.
    pin_threads(args.threads[0] if args.worker else 1)
    # Imported only now, after the thread counts are set: these modules load
    # NumPy and cbackprop.
    from benchlib.workers import parent_main, worker_main
    return worker_main(args) if args.worker else parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
