"""Which compiled engine runs, chosen once at import.

The engine is compiled twice from the same source: with baseline flags, and
with ``-mavx2 -mfma``. The AVX2 build is imported only when the CPU reports
both features. ``CBACKPROP_CPU=baseline`` forces the portable build (so both
paths are tested on one machine).
"""
import os

from . import _engine_baseline


def _choose():
    requested = os.environ.get("CBACKPROP_CPU", "auto").strip().lower() or "auto"
    if requested not in ("auto", "baseline", "avx2"):
        raise ImportError(f"CBACKPROP_CPU must be 'auto', 'baseline' or 'avx2', got {requested!r}")
    if requested == "baseline":
        return _engine_baseline, "baseline"
    if not _engine_baseline.cpu_has_avx2_fma():
        if requested == "avx2":
            raise ImportError("CBACKPROP_CPU=avx2, but this CPU lacks AVX2/FMA")
        return _engine_baseline, "baseline"
    try:
        from . import _engine_avx2
    except ImportError:  # built without the AVX2 variant (a non-x86 build)
        if requested == "avx2":
            raise
        return _engine_baseline, "baseline"
    return _engine_avx2, "avx2"


engine, kernel_path = _choose()


def set_num_threads(n):
    """Threads for the compiled passes (GEMMs and large element-wise loops).

    The default is OpenMP's, which honours ``OMP_NUM_THREADS``; small
    products always run on one thread. Without OpenMP the engine is serial
    and this setting is ignored.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"the number of threads must be an int, got {n!r}")
    engine.set_num_threads(n)


def get_num_threads():
    return engine.get_num_threads()
