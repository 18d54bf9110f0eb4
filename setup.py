"""Build of cbackprop's compiled engine.

``CBACKPROP_DEBUG_CYTHON=1`` turns Cython's bounds, wraparound and
initialisation checks back on for a test build; ``CBACKPROP_NO_OPENMP=1``
builds a serial engine.
"""
import os
import platform
import subprocess
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("CBACKPROP_DEBUG_CYTHON", "") not in ("", "0")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "cdivision": True,
    "embedsignature": True,
}

# No tuning for the build machine's own CPU and no -ffast-math: the wheel
# must run on any x86-64 CPU, and NaN/inf checks and agreement with the
# reference depend on IEEE semantics.
BASE_FLAGS = ["-O3", "-fno-math-errno"] if os.name != "nt" else ["/O2"]
if os.name != "nt" and not DEBUG:
    BASE_FLAGS.append("-g0")  # no debug info in release wheels (a third of their size)
NUMPY_MACROS = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]
if DEBUG:
    # Guard zones after every buffer region, verified after every pass.
    NUMPY_MACROS.append(("CBACKPROP_DEBUG_GUARDS", "1"))


def openmp_flags():
    """``-fopenmp`` when the compiler takes it; otherwise the engine builds serial."""
    if os.environ.get("CBACKPROP_NO_OPENMP"):
        return []
    compiler = sysconfig.get_config_var("CC") or "cc"
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        command = compiler.split() + ["-fopenmp", source, "-o", os.path.join(tmp, "probe")]
        try:
            ok = subprocess.run(command, capture_output=True).returncode == 0
        except OSError:
            ok = False
    return ["-fopenmp"] if ok else []


OPENMP = openmp_flags()


def engine(name, extra_flags=()):
    return Extension(
        f"cbackprop.{name}",
        [f"src/cbackprop/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=NUMPY_MACROS,
        extra_compile_args=BASE_FLAGS + OPENMP + list(extra_flags),
        extra_link_args=OPENMP,
    )


def is_x86_64():
    return platform.machine().lower() in ("x86_64", "amd64")


# The same engine twice: baseline flags for any CPU, and an AVX2/FMA build
# that cbackprop._backend imports only after a run-time CPU check.
ENGINES = [engine("_engine_baseline")]
if is_x86_64() and os.name != "nt":
    ENGINES.append(engine("_engine_avx2", ["-mavx2", "-mfma"]))

setup(
    ext_modules=cythonize(
        ENGINES,
        compiler_directives=DIRECTIVES,
        include_path=["src/cbackprop"],
    ),
)
