"""Build of cbackprop's compiled engine.

``CBACKPROP_DEBUG_CYTHON=1`` turns Cython's bounds, wraparound and
initialisation checks back on for a test build; ``CBACKPROP_NO_OPENMP=1``
builds a serial engine; ``CBACKPROP_TEST_TILES=1`` adds a test-only engine
(never put in a wheel) that compiles the AVX-512 tile logic for AVX2, so an
AVX2-only machine tests it (``CBACKPROP_CPU=avx512_on_avx2``).
"""
import os
import platform
import subprocess
import sysconfig
import tempfile
from pathlib import Path

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
# reference depend on IEEE semantics. -fno-trapping-math keeps every result
# bit for bit (the engine never reads the floating-point exception flags) but
# lets gcc evaluate both sides of a select: without it, a loop like leaky
# relu's `z if z > 0 else slope * z` vectorises only with AVX-512's masks
# and runs element by element, mispredicted branches included, elsewhere.
BASE_FLAGS = (["-O3", "-fno-math-errno", "-fno-trapping-math"] if os.name != "nt"
              else ["/O2"])
if os.name != "nt" and not DEBUG:
    BASE_FLAGS.append("-g0")  # no debug info in release wheels (a third of their size)
NUMPY_MACROS = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]
if DEBUG:
    # Guard zones after every buffer region, verified after every pass.
    NUMPY_MACROS.append(("CBACKPROP_DEBUG_GUARDS", "1"))


def compiles(flags, source="int main(void) { return 0; }\n"):
    """Whether the C compiler builds ``source`` with ``flags``."""
    compiler = sysconfig.get_config_var("CC") or "cc"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        command = compiler.split() + list(flags) + [path, "-o", os.path.join(tmp, "probe")]
        try:
            return subprocess.run(command, capture_output=True).returncode == 0
        except OSError:
            return False


def openmp_flags():
    """``-fopenmp`` when the compiler takes it; otherwise the engine builds serial."""
    if os.environ.get("CBACKPROP_NO_OPENMP"):
        return []
    probe = "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n"
    return ["-fopenmp"] if compiles(["-fopenmp"], probe) else []


# GCC vectorises a loop whose arrays might overlap by checking at run time
# that they do not, but gives up past 10 such checks: the one-pass Adam and
# RMSprop updates (4 arrays read, 3 written) need about 15 and then run
# scalar, 4x slower (bench/README.md, "The engine's thresholds").
ALIAS_CHECKS = ["--param", "vect-max-version-for-alias-checks=40"]
if os.name != "nt" and compiles(ALIAS_CHECKS):
    BASE_FLAGS += ALIAS_CHECKS


OPENMP = openmp_flags()


# The C headers every engine includes: an edit to one rebuilds the engines
# (Cython follows the .pxi includes itself; setuptools knows nothing of these).
KERNEL_HEADERS = sorted(str(path) for path in Path("src/cbackprop/_kernels").glob("*.h"))


def engine(name, isa, extra_flags=()):
    """The engine built as ``cbackprop.<name>``; ``isa`` picks the row of the
    blocking table in _kernels/tiles.h, ``extra_flags`` the instructions."""
    return Extension(
        f"cbackprop.{name}",
        [f"src/cbackprop/{name}.pyx"],
        depends=KERNEL_HEADERS,
        include_dirs=[np.get_include(), "src/cbackprop/_kernels"],
        define_macros=NUMPY_MACROS + [("CB_ISA", f"CB_ISA_{isa.upper()}")],
        extra_compile_args=BASE_FLAGS + OPENMP + list(extra_flags),
        extra_link_args=OPENMP,
    )


def is_x86_64():
    return platform.machine().lower() in ("x86_64", "amd64")


AVX2_FLAGS = ["-mavx2", "-mfma"]
# x86-64-v4's AVX-512 subsets, named one by one (gcc 12 also takes
# -march=x86-64-v4, which would add BMI/MOVBE/... that the run-time check does not test).
AVX512_FLAGS = AVX2_FLAGS + ["-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq", "-mavx512vl"]

# The same engine three times: baseline flags for any CPU, and AVX2/FMA and
# AVX-512 builds that cbackprop._backend imports only after a run-time CPU check.
ENGINES = [engine("_engine_baseline", "baseline")]
if is_x86_64() and os.name != "nt":
    ENGINES.append(engine("_engine_avx2", "avx2", AVX2_FLAGS))
    ENGINES.append(engine("_engine_avx512", "avx512", AVX512_FLAGS))
    if os.environ.get("CBACKPROP_TEST_TILES", "") not in ("", "0"):
        # The AVX-512 table row (12-row tiles of 64-byte vectors) compiled for
        # AVX2: the compiler splits each vector in two. Slow, for tests only.
        # -Wno-psabi: gcc notes that 64-byte vectors would be passed differently
        # across a call boundary; every such function is static, so no ABI is involved.
        ENGINES.append(engine("_engine_avx512_on_avx2", "avx512", AVX2_FLAGS + ["-Wno-psabi"]))

setup(
    ext_modules=cythonize(
        ENGINES,
        compiler_directives=DIRECTIVES,
        include_path=["src/cbackprop"],
    ),
)
