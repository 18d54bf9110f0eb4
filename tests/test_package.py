"""Package-level behaviour: thread settings, the command-line self-check."""
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cbackprop as cb


@pytest.fixture
def restore_threads():
    before = cb.get_num_threads()
    yield
    cb.set_num_threads(before)


def test_thread_count_round_trips(restore_threads):
    cb.set_num_threads(1)
    assert cb.get_num_threads() == 1
    cb.set_num_threads(2)
    assert cb.get_num_threads() in (1, 2)   # 1 when built without OpenMP


def test_numpy_integer_thread_counts_are_taken(restore_threads):
    cb.set_num_threads(np.int64(1))
    assert cb.get_num_threads() == 1
    cb.set_num_threads(np.uint8(2))
    assert cb.get_num_threads() in (1, 2)
    assert type(cb.get_num_threads()) is int


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-3, ValueError), ("2", TypeError),
                                        (2.0, TypeError), (True, TypeError),
                                        (np.True_, TypeError), (np.float64(2), TypeError),
                                        (1025, ValueError), (10**5, ValueError),
                                        (2**64, ValueError)])
def test_bad_thread_counts_are_refused(bad, error, restore_threads):
    before = cb.get_num_threads()
    with pytest.raises(error):
        cb.set_num_threads(bad)
    assert cb.get_num_threads() == before


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_do_not_depend_on_the_thread_count(dtype, restore_threads):
    """Every micro-tile and every update chunk is computed whole by one thread,
    so one and three threads give bit-identical training (large enough
    products that the threaded paths run)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((530, 300))   # 530 x 257 hidden values: threaded element-wise passes
    Y = rng.standard_normal((530, 70))
    finals = []
    for threads in (1, 3):
        cb.set_num_threads(threads)
        net = cb.Network([300, 257, 70], ["tanh", "identity"], optimizer=cb.Adam(1e-3),
                         dtype=dtype, seed=3)
        losses = [net.train_step(X, Y) for _ in range(3)]
        finals.append((losses, net.forward(X), *net.get_params()[0]))
    for ours, theirs in zip(*finals):
        np.testing.assert_array_equal(ours, theirs)


def test_python_m_cbackprop_self_check():
    result = subprocess.run([sys.executable, "-m", "cbackprop"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"kernel path: {cb.kernel_path}" in result.stdout
    assert result.stdout.count(" ok") == 2


def test_python_m_cbackprop_help_says_what_it_does():
    result = subprocess.run([sys.executable, "-m", "cbackprop", "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m cbackprop")
    assert "self-check" in result.stdout and "largest relative difference" not in result.stdout


def import_python_sources_alone(directory, broken=None):
    """``import cbackprop`` from a copy of the package's Python files in
    ``directory`` (with an empty file named ``broken`` beside them, if
    given): the finished process."""
    package = Path(cb.__file__).parent
    for source in package.rglob("*.py"):
        target = directory / "cbackprop" / source.relative_to(package)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    if broken is not None:
        (directory / "cbackprop" / broken).write_bytes(b"")
    return subprocess.run([sys.executable, "-c", "import cbackprop"], cwd=directory,
                          capture_output=True, text=True)


def test_a_package_without_its_engine_says_how_to_build_it(tmp_path):
    """A source tree never built in place (run with PYTHONPATH=src after
    pip install .): the import names the missing build and both ways to make
    it, where Python had said 'most likely due to a circular import'."""
    result = import_python_sources_alone(tmp_path)
    assert result.returncode == 1
    assert "compiled engine is not built in" in result.stderr
    assert "pip install ." in result.stderr and "build_ext --inplace" in result.stderr
    assert "circular import" not in result.stderr


def test_an_engine_that_does_not_load_gives_its_own_error(tmp_path):
    """A built but broken extension (here an empty file) is not reported as
    'not built': its loader's error comes through."""
    result = import_python_sources_alone(
        tmp_path, broken=Path(cb._backend._engine_baseline.__file__).name)
    assert result.returncode == 1
    assert "not built" not in result.stderr and "ImportError" in result.stderr


def test_reference_ops_imports_only_numpy_and_the_registry():
    """The reference maths stays plain NumPy: besides numpy and math it reads
    only the activation registry (constants), never the compiled engine."""
    source = (Path(cb.reference.__file__).parent / "ops.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported == {"math", "numpy", ".._activations"}


def test_activation_names_are_defined_once():
    from cbackprop import _activations, _validation
    from cbackprop.reference import ops as reference_ops

    assert _validation._ALIASES is reference_ops.ALIASES is cb.ops._ALIASES is _activations.ALIASES
    assert _validation.ACTIVATIONS is cb.ops._ACTIVATION_NAMES is _activations.ACTIVATIONS
    assert set(reference_ops.ACTIVATIONS) == set(_activations.REGISTRY)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", [cb.SGD(0.01, momentum=0.9), cb.Adam(1e-3)])
def test_parameter_buffers_start_on_64_bytes(dtype, optimizer):
    """The GEMM reads the first layer's weights in place only from 32-byte
    aligned rows: the engine's parameter buffers start on 64 bytes, and still
    do after SGD steps have swapped them with the gradient buffers."""
    net = cb.Network([784, 128, 10], ["relu", "identity"], optimizer=optimizer, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((64, 784)), rng.standard_normal((64, 10))
    for _ in range(3):
        engine = net._engine
        assert engine.params.ctypes.data % 64 == 0 and engine.grads.ctypes.data % 64 == 0
        net.train_step(X, Y)


def test_every_public_name_says_what_it_is():
    """help() has text for every public class, function, method and property
    (the Network's properties had none)."""
    import inspect
    missing = []
    for name in cb.__all__:
        obj = getattr(cb, name)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj) and obj.__module__.startswith("cbackprop"):
            for cls in obj.__mro__:
                if not cls.__module__.startswith("cbackprop"):
                    continue
                for attribute, member in vars(cls).items():
                    if attribute.startswith("_") or not (inspect.isroutine(member)
                                                         or isinstance(member, property)):
                        continue
                    if not inspect.getdoc(member):
                        missing.append(f"{cls.__name__}.{attribute}")
    assert missing == []
