"""What a worker records about its machine: torch, the CPU, the BLAS, the
engine build, and the vector FMA peak its figures are read against."""
import ctypes
import os
import platform
import subprocess

import numpy as np

import cbackprop as cb
from cbackprop._backend import _engine_baseline, engine

from .settings import ISA_VARS, MALLOC_VARS, THREAD_VARS


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


def checkout_commit():
    """The bench's checkout as ``git describe`` gives it (a short hash, with
    ``-dirty`` for uncommitted changes to tracked files), or None outside
    one: the report names the code its figures were measured on."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        result = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


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


def openblas_core():
    """The kernel family OpenBLAS picked for this CPU ("SkylakeX", "Haswell",
    ...; OPENBLAS_CORETYPE overrides it), from the library numpy loaded; None
    when numpy's BLAS is not OpenBLAS or does not say."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                       "openblas_get_corename64_", "openblas_get_corename"):
            function = getattr(lib, symbol, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                return function().decode()
    return None


def torch_capability(torch):
    """torch's own vector level ("AVX512", "AVX2", ...; ATEN_CPU_CAPABILITY
    lowers it), or None."""
    try:
        return torch.backends.cpu.get_cpu_capability() if torch else None
    except AttributeError:
        return None


def worker_info(torch, torch_skipped):
    return {
        "env": {name: os.environ.get(name) for name in THREAD_VARS + tuple(MALLOC_VARS)},
        "isa_env": {name: os.environ[name] for name in ISA_VARS if name in os.environ},
        "cb_get_num_threads": cb.get_num_threads(),
        "torch_get_num_threads": torch.get_num_threads() if torch else None,
        "kernel_path": cb.kernel_path,
        "tile_table": engine.tile_table(),
        "cpu_features": _engine_baseline.cpu_features(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "blas_core": openblas_core(),
        "cbackprop": cb.__version__,
        "commit": checkout_commit(),
        "torch": torch.__version__ if torch else None,
        "torch_capability": torch_capability(torch),
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


def measure_tile_gflops(dtypes):
    """{dtype: GFLOP/s} of this build's full register tile alone on packed
    panels: the ceiling of what the GEMM's blocked loops can reach."""
    return {dtype: engine.tile_gflops(dtype) for dtype in dtypes}
