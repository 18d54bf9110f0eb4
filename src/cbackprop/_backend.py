"""Which compiled engine runs, chosen once at import.

The engine is compiled three times from the same sources (its GEMM tiles from
one template, ``_kernels/tiles.h``): with baseline flags, with ``-mavx2
-mfma``, and for x86-64-v4 (AVX-512 F/CD/BW/DQ/VL). The fastest build the
CPU and the OS support is imported; ``CBACKPROP_CPU=baseline|avx2|avx512``
forces one (so every path is tested on one machine) and refuses one this CPU
cannot run. On a CPU that runs 512-bit instructions as two halves (AMD Zen
4) the AVX-512 build is still the faster one, told so that it picks its
half-vector ten-column tiles (bench/README.md, "Which engine build").
"""
import numbers
import operator
import os

import numpy as np

try:
    from . import _engine_baseline  # type: ignore[attr-defined] # an extension module
except ImportError as exc:
    here = os.path.dirname(__file__)
    if any(name.startswith("_engine_baseline.") and not name.endswith((".pyx", ".c"))
           for name in os.listdir(here)):
        raise   # built, but it does not load: its own error says why
    raise ImportError(   # a source tree never built in place
        f"cbackprop's compiled engine is not built in {here}: install the package "
        "(pip install .) and run from outside the source tree, or build it in place "
        "(python setup.py build_ext --inplace)") from None

#: Fastest first.
PATHS = ("avx512", "avx2", "baseline")
#: Test-only builds, only when forced (and built: CBACKPROP_TEST_TILES=1),
#: with the instructions they need.
TEST_PATHS = {"avx512_on_avx2": "avx2"}


def _import(path):
    if path == "avx512":
        from . import _engine_avx512 as module
    elif path == "avx2":
        from . import _engine_avx2 as module
    elif path == "avx512_on_avx2":
        from . import _engine_avx512_on_avx2 as module
    else:
        module = _engine_baseline
    return module


def available_paths():
    """The engine builds this CPU can run and this installation has, fastest first."""
    paths = []
    for path in PATHS:
        if not _engine_baseline.cpu_runs(path):
            continue
        try:
            _import(path)
        except ImportError:  # not built (a non-x86 build)
            continue
        paths.append(path)
    return paths


def _choose():
    requested = os.environ.get("CBACKPROP_CPU", "auto").strip().lower() or "auto"
    if requested not in ("auto",) + PATHS + tuple(TEST_PATHS):
        raise ImportError(f"CBACKPROP_CPU must be 'auto', {', '.join(map(repr, PATHS))} "
                          f"(or a test build: {', '.join(map(repr, TEST_PATHS))}), "
                          f"got {requested!r}")
    if requested != "auto":
        if not _engine_baseline.cpu_runs(TEST_PATHS.get(requested, requested)):
            features = _engine_baseline.cpu_features()
            missing = [name for name, present in features.items() if not present]
            raise ImportError(f"CBACKPROP_CPU={requested}, but this CPU (or its OS) cannot run "
                              f"that build; missing: {', '.join(missing)}")
        try:
            return _import(requested), requested
        except ImportError:
            if requested not in TEST_PATHS:
                raise
            raise ImportError(f"CBACKPROP_CPU={requested} asks for a test build, which this "
                              "installation does not have: it is built only with "
                              "CBACKPROP_TEST_TILES=1 (python setup.py build_ext --inplace)"
                              ) from None
    path = available_paths()[0]
    return _import(path), path


engine, kernel_path = _choose()
engine.set_halves_512(_engine_baseline.cpu_halves_512())


#: The most threads set_num_threads takes: beyond some thousands OpenMP's
#: thread creation fails (100,000 crashed the interpreter at the first
#: threaded product), long after more threads stopped helping.
MAX_THREADS = 1024
if engine.get_num_threads() > MAX_THREADS:   # OMP_NUM_THREADS's default, capped alike
    engine.set_num_threads(MAX_THREADS)

#: Set in a process forked after a team of threads ran a pass in its parent.
_forked_from_threads = False


def _after_fork_in_child():
    """A forked child stays on one thread if a team of threads ran a pass in
    its parent: GNU libgomp's thread pool does not survive fork(), and the
    child's first parallel region would wait forever for threads that are
    not there (multiprocessing's default start method on Linux forks)."""
    global _forked_from_threads
    if engine.threads_have_run():
        _forked_from_threads = True
        engine.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_num_threads(n):
    """Threads for the compiled passes (GEMMs and large element-wise loops):
    an integer from 1 to ``MAX_THREADS`` (1024).

    The default is OpenMP's, which honours ``OMP_NUM_THREADS`` (capped at
    1024); small products always run on one thread. Without OpenMP the
    engine is serial and this setting is ignored. A process forked from one
    in which a pass ran on several threads (a ``multiprocessing`` worker on
    Linux) runs on one, and refuses more with RuntimeError: OpenMP's threads
    do not survive ``fork``; start such workers with ``spawn`` or
    ``forkserver`` to use threads in them.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"the number of threads must be an int, got {n!r}")
    n = operator.index(n)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"the number of threads must be from 1 to {MAX_THREADS}, got {n}")
    if n > 1 and _forked_from_threads:
        raise RuntimeError(
            f"cannot use {n} threads in a process forked after its parent ran passes on several: "
            "OpenMP's threads do not survive fork(); start the process with multiprocessing's "
            "'spawn' or 'forkserver' method to use threads in it")
    engine.set_num_threads(n)


def get_num_threads():
    """Threads the compiled passes use (set_num_threads; by default OpenMP's)."""
    return engine.get_num_threads()
