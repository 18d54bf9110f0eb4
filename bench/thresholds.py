"""A/B of one engine threshold: the engine build this CPU runs, against the
same C source with one constant changed (or several, ``A=1,B=2``), timed
interleaved in one process.

The constants are the engine's thresholds: an ``enum`` of a ``.pxi``
compiled into the engine (``_kernels/gemm.pxi``...) or a ``#define`` of a
``_kernels`` header (``tiles.h``, ``vmath_template.h``...; a header change
reaches every build). Needs an in-place build, which leaves the
generated C beside the sources::

    python setup.py build_ext --inplace
    PYTHONPATH=src python bench/thresholds.py C_ROW_ORDER_MAX_KC=0 float64 128x10x256T,256x10x1024T
    PYTHONPATH=src python bench/thresholds.py CB_B_IN_PLACE_MAX_BYTES_F64=262144 float64 64x784x128
    PYTHONPATH=src python bench/thresholds.py CB_PANEL_ROWS_F64=0 float64 64x128x784T --threads 2
    PYTHONPATH=src python bench/thresholds.py CB_KC_F64=384,CB_PANEL_ROWS_F64=1008 float64 1024x1024x1024

A shape is M x K x N, with ``t`` for op(A) = Aᵀ and ``T`` for op(B) = Bᵀ (as
bench/alignment.py); operands start on 64 bytes, as the engine's own do.
An activation's name instead (``tanh``) times its forward pass on 128 x 256
values, in ns per element, and a function of vmath.h's (``sqrt``, ``log``...:
the engine's ``VECTOR_MATH``) its vector kernel on as many::

    PYTHONPATH=src python bench/thresholds.py VM_TANH_SATURATES=9 float32 tanh
    PYTHONPATH=src python bench/thresholds.py CB_ROOT_BY_NEWTON=0 float64 sqrt

An optimizer's name (``adam``, ``rmsprop``: bench/benchlib/updates.py's
``OPTIMIZERS``) times its update pass (``Engine.apply_update``) on the
bench's in-cache network, in ns per parameter::

    PYTHONPATH=src python bench/thresholds.py CB_ROOT_BY_NEWTON=0 float64 adam,rmsprop

``halves_512=0|1`` instead of a constant times the build as imported against
the same build told the other way by ``engine.set_halves_512`` (the
ten-column tiles in whole or half vectors of a 64-byte build, and the
AVX-512 build's square roots by Newton steps or by the instruction, and
float64's in Adam and RMSprop a third by Newton steps when halved): a
setting chosen at run time, so nothing is compiled. Products, vector
functions and optimizers; activations do not read it::

    PYTHONPATH=src python bench/thresholds.py halves_512=1 float64 64x128x10,128x256x10
    PYTHONPATH=src python bench/thresholds.py halves_512=0 float64 sqrt,adam,rmsprop

A name that a header defines once per dtype (``vmath_template.h``'s
``VM_TANH_SATURATES``) is changed in both; only the dtype asked for is timed. Each
line gives the figure of the build as it is and of the variant, the best of
15 rounds (of ~0.1 s for a product, 200 passes for an activation), one
thread (products: ``--threads N`` runs both engines on a team of N), and
their ratio: variant / as built of GF/s, as built / variant of ns, so that
> 1 means the changed value is faster.
bench/README.md ("The engine's thresholds") lists what was measured this way.
"""
import argparse
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[name] = "1"

import numpy as np  # noqa: E402  (after pinning the thread counts)

import cbackprop as cb  # noqa: E402
from cbackprop._activations import REGISTRY  # noqa: E402
from cbackprop._backend import engine as _running  # noqa: E402
from benchlib.settings import UPDATE_NETWORKS, product_shape  # noqa: E402
from benchlib.updates import ENGINE_SETTINGS, OPTIMIZERS, update_call  # noqa: E402

VECTOR_MATH = _running.VECTOR_MATH

PACKAGE = Path(cb.__file__).resolve().parent
# The instruction flags of each build (setup.py's AVX2_FLAGS / AVX512_FLAGS).
ISA_FLAGS = {"baseline": [], "avx2": ["-mavx2", "-mfma"],
             "avx512": ["-mavx2", "-mfma", "-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq",
                        "-mavx512vl"]}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("change", help="NAME=VALUE: an enum of the engine's .pxi or a #define "
                                       "of a _kernels header; several joined by commas")
    parser.add_argument("dtype", choices=["float32", "float64"])
    parser.add_argument("shapes", help="comma-separated products or activations, e.g. "
                                       "64x784x128,256x10x1024T,tanh")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of both engines (default 1; products only)")
    args = parser.parse_args()
    args.changes = []
    for change in args.change.split(","):
        name, equals, value = change.partition("=")
        if not (name and equals and value):
            parser.error(f"the change is NAME=VALUE (or several, joined by commas), got "
                         f"{args.change!r}")
        args.changes.append((name, value))
    names = [name for name, value in args.changes]
    if "halves_512" in names and len(names) > 1:
        parser.error("halves_512 is changed alone")
    if len(set(names)) < len(names):
        parser.error(f"a name is changed twice in {args.change!r}")
    if names == ["halves_512"] and args.changes[0][1] not in ("0", "1"):
        parser.error(f"halves_512 is 0 or 1, got {args.changes[0][1]!r}")
    if args.threads < 1:
        parser.error(f"--threads is at least 1, got {args.threads}")
    if args.threads > 1 and any(shape in REGISTRY or shape in VECTOR_MATH or shape in OPTIMIZERS
                                for shape in args.shapes.split(",")):
        parser.error("--threads above 1 times products only")
    for shape in args.shapes.split(","):
        if shape not in REGISTRY and shape not in VECTOR_MATH and shape not in OPTIMIZERS:
            try:
                product_shape(shape)
            except ValueError as error:
                parser.error(f"{error}, or an activation's name ({', '.join(REGISTRY)}), a "
                             f"vector function's ({', '.join(VECTOR_MATH)}) or an "
                             f"optimizer's ({', '.join(OPTIMIZERS)})")
    return args


def build_variant(changes, workdir):
    """The running build's C with each (name, value) of ``changes`` set,
    compiled into workdir."""
    path = cb.kernel_path
    module = f"_engine_{path}"
    source = (PACKAGE / f"{module}.c").read_text()
    headers = workdir / "headers"
    headers.mkdir()
    for header in (PACKAGE / "_kernels").glob("*.h"):
        (headers / header.name).write_text(header.read_text())
    for name, value in changes:
        enum = enum_definition(module, name)
        define = re.compile(rf"^#define {name} .*$", re.M)
        defined_in = [header for header in sorted(headers.glob("*.h"))
                      if define.search(header.read_text())]
        if enum.search(source):
            source = enum.sub(rf"\g<1>{value}", source)
        elif defined_in:
            header = defined_in[0]
            header.write_text(define.sub(f"#define {name} {value}", header.read_text()))
        else:
            sys.exit(f"{name} is neither an enum of {module}.c nor a #define of a _kernels header")
    (workdir / f"{module}.c").write_text(source)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    compiler = (sysconfig.get_config_var("CC") or "cc").split()
    flags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-g0", "-fPIC", "-fopenmp", "-fwrapv",
             "--param", "vect-max-version-for-alias-checks=40",   # as setup.py
             "-DNPY_NO_DEPRECATED_API=NPY_2_0_API_VERSION", f"-DCB_ISA=CB_ISA_{path.upper()}",
             f"-I{headers}", f"-I{np.get_include()}", f"-I{sysconfig.get_paths()['include']}"]
    target = workdir / f"{module}{suffix}"
    subprocess.run(compiler + flags + ISA_FLAGS[path] + ["-shared", str(workdir / f"{module}.c"),
                                                          "-o", str(target)], check=True)
    return module, target


def enum_definition(module, name):
    """The pattern of the enum member ``name``'s definition in the C that
    Cython generates for cbackprop's ``module``: the name whole, so that
    ``CHUNK`` is not read as ``UPDATE_CHUNK`` (Cython spells a member
    ``__pyx_e_``, each part of the module's dotted name after its length,
    joined by ``_``, then ``_`` and the name). Group 1 is all but the
    value, which ends at a comma or a space (the last member of an enum has
    no comma)."""
    prefix = "_".join(f"{len(part)}{part}" for part in ("cbackprop", module))
    return re.compile(rf"(\b__pyx_e_{prefix}_{re.escape(name)} = )[^,\s]+")


def load(module, path):
    """The engine built at ``path``, set up as _backend sets the running one:
    one thread, and the ten-column tiles of this CPU (``halves_512``), which
    a freshly loaded module would otherwise take in whole vectors."""
    from cbackprop._backend import engine as running
    spec = importlib.util.spec_from_file_location(f"cbackprop.{module}", path)
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)
    engine.set_num_threads(1)
    engine.set_halves_512(running.tile_table()["halves_512"])
    return engine


def on_cache_lines(shape, dtype, rng):
    size = int(np.prod(shape))
    block = np.empty(size + 64, dtype)
    shift = (-block.ctypes.data % 64) // block.itemsize
    array = block[shift:shift + size].reshape(shape)
    array[...] = rng.standard_normal(shape)
    return array


def main():
    args = parse_args()
    name, value = args.changes[0]
    threads = "one thread" if args.threads == 1 else f"{args.threads} threads"
    print(f"{cb.kernel_path} build, {args.dtype}, {threads}: as built vs {args.change}")
    with tempfile.TemporaryDirectory() as tmp:
        if name == "halves_512":
            if any(shape in REGISTRY for shape in args.shapes.split(",")):
                sys.exit("halves_512 changes no activation; give products, vector functions "
                         "or optimizers, not activations")
            from cbackprop._backend import engine
            engine.set_num_threads(1)
            engines = {"as built": Told(engine, engine.tile_table()["halves_512"]),
                       "variant": Told(engine, value == "1")}
        else:
            module, variant_path = build_variant(args.changes, Path(tmp))
            engines = {"as built": load(module, PACKAGE / variant_path.name),
                       "variant": load(module, variant_path)}
        for engine in engines.values():
            (engine.engine if isinstance(engine, Told) else engine).set_num_threads(args.threads)
        rng = np.random.default_rng(0)
        for shape in args.shapes.split(","):
            if shape in REGISTRY:
                compare_activation(engines, shape, args.dtype, rng)
            elif shape in VECTOR_MATH:
                compare_vector_math(engines, shape, args.dtype, rng)
            elif shape in OPTIMIZERS:
                compare_update(engines, shape, args.dtype)
            else:
                compare_gemm(engines, shape, args.dtype, rng)


class Told:
    """An engine told ``halves_512`` before each call it runs."""

    def __init__(self, engine, halves_512):
        self.engine, self.halves_512 = engine, halves_512

    def told(self, call):
        """``call`` run with this engine told its setting first."""
        def run(*args):
            self.engine.set_halves_512(self.halves_512)
            return call(*args)
        return run

    def op_gemm(self, *args):
        return self.told(self.engine.op_gemm)(*args)

    def vector_math(self, *args):
        return self.told(self.engine.vector_math)(*args)


def interleaved_best(engines, run, calls):
    """Best seconds per call of ``run(engine)`` for each engine, over 15 rounds."""
    best = dict.fromkeys(engines, float("inf"))
    for _ in range(15):
        for label, engine in engines.items():
            start = time.perf_counter()
            for _ in range(calls):
                run(engine)
            best[label] = min(best[label], (time.perf_counter() - start) / calls)
    return best


def compare_gemm(engines, shape, dtype, rng):
    M, K, N, trans_a, trans_b = product_shape(shape)
    A = on_cache_lines((K, M) if trans_a else (M, K), dtype, rng)
    B = on_cache_lines((N, K) if trans_b else (K, N), dtype, rng)
    C = on_cache_lines((M, N), dtype, rng)
    best = interleaved_best(engines, lambda engine: engine.op_gemm(A, B, trans_a, trans_b, C),
                            max(1, int(2e8 / (2 * M * N * K))))
    rates = {label: 2 * M * N * K / seconds / 1e9 for label, seconds in best.items()}
    print(f"  {shape:<16} as built {rates['as built']:6.1f} GF/s   variant "
          f"{rates['variant']:6.1f} GF/s   variant / as built "
          f"{rates['variant'] / rates['as built']:.3f}")


def compare_activation(engines, name, dtype, rng):
    z = on_cache_lines((128, 256), dtype, rng)
    out = on_cache_lines((128, 256), dtype, rng)
    code = REGISTRY[name].code
    best = interleaved_best(engines, lambda engine: engine.op_activation_forward(code, z, out), 200)
    ns = {label: seconds / z.size * 1e9 for label, seconds in best.items()}
    print(f"  {name + ' forward':<16} as built {ns['as built']:6.3f} ns   variant "
          f"{ns['variant']:6.3f} ns   as built / variant {ns['as built'] / ns['variant']:.3f}")


def compare_vector_math(engines, name, dtype, rng):
    """vmath.h's ``name`` over 128 x 256 values (their magnitudes, which every
    function takes)."""
    x = on_cache_lines((128, 256), dtype, rng)
    np.abs(x, out=x)
    best = interleaved_best(engines, lambda engine: engine.vector_math(name, x), 200)
    ns = {label: seconds / x.size * 1e9 for label, seconds in best.items()}
    print(f"  {name:<16} as built {ns['as built']:6.3f} ns   variant "
          f"{ns['variant']:6.3f} ns   as built / variant {ns['as built'] / ns['variant']:.3f}")


def compare_update(engines, name, dtype):
    """The optimizer ``name``'s update pass on the bench's in-cache network,
    one network per engine (Network builds its engine from the module that
    cbackprop.network imported, swapped here for each)."""
    import cbackprop.network as network
    sizes = UPDATE_NETWORKS["in cache"]
    n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    running, updates = network._engine, {}
    try:
        for label, engine in engines.items():
            network._engine = engine.engine if isinstance(engine, Told) else engine
            updates[label] = update_call(sizes, dtype, OPTIMIZERS[name](),
                                         **ENGINE_SETTINGS.get(name, {}))
            if isinstance(engine, Told):
                updates[label] = engine.told(updates[label])
    finally:
        network._engine = running
    best = interleaved_best(updates, lambda update: update(), 200)
    ns = {label: seconds / n_params * 1e9 for label, seconds in best.items()}
    print(f"  {name + ' update':<16} as built {ns['as built']:6.3f} ns   variant "
          f"{ns['variant']:6.3f} ns   as built / variant {ns['as built'] / ns['variant']:.3f}")


if __name__ == "__main__":
    main()
