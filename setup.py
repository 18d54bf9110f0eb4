"""Build of cbackprop's compiled engine.

``CBACKPROP_DEBUG_CYTHON=1`` turns Cython's bounds, wraparound and
initialisation checks back on for a test build.
"""
import os
import platform

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

# No -march=native and no -ffast-math: the wheel must run on any x86-64 CPU,
# and NaN/inf checks and agreement with the reference depend on IEEE semantics.
BASE_FLAGS = ["-O3", "-fno-math-errno"] if os.name != "nt" else ["/O2"]
NUMPY_MACROS = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]


def engine(name, extra_flags=()):
    return Extension(
        f"cbackprop.{name}",
        [f"src/cbackprop/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=NUMPY_MACROS,
        extra_compile_args=BASE_FLAGS + list(extra_flags),
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
