"""The registries of activations, losses and optimizers: the contract's
names are all there (the one literal list of them in the tests), and every
part that derives from an entry has it — the reference maths, the kernels'
codes, the exports and the type stubs."""
import ast
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cbackprop as cb
from cbackprop import _activations, losses, optimizers
from cbackprop._backend import available_paths
from cbackprop.reference import ops as reference_ops
from cbackprop.reference import passes

# The contract's names (../shared/CONTRACT.md): the registries may add, never drop.
CONTRACT_ACTIVATIONS = {"sigmoid", "relu", "tanh", "identity", "leaky_relu", "softmax",
                        "gelu", "gelu_tanh", "silu"}
CONTRACT_ALIASES = {"linear": "identity"}
CONTRACT_LOSSES = {"mse": "MSE", "bce": "BCE", "cross_entropy": "CrossEntropy"}
CONTRACT_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}

STUB = Path(cb.__file__).with_name("__init__.pyi")


def test_the_contract_names_are_registered():
    assert CONTRACT_ACTIVATIONS <= set(_activations.REGISTRY)
    assert CONTRACT_ALIASES.items() <= _activations.ALIASES.items()
    assert CONTRACT_LOSSES.keys() <= losses.LOSSES.keys()
    assert CONTRACT_OPTIMIZERS.keys() <= optimizers.OPTIMIZERS.keys()
    for registry, contract in ((losses.LOSSES, CONTRACT_LOSSES),
                               (optimizers.OPTIMIZERS, CONTRACT_OPTIMIZERS)):
        for name, class_name in contract.items():
            assert registry[name] is getattr(cb, class_name)
            assert class_name in cb.__all__


@pytest.mark.parametrize("registry", [
    {name: entry.code for name, entry in _activations.REGISTRY.items()},
    {name: cls.code for name, cls in losses.LOSSES.items()},
    {name: cls.code for name, cls in optimizers.OPTIMIZERS.items()},
], ids=["activations", "losses", "optimizers"])
def test_kernel_codes_are_distinct_small_integers(registry):
    codes = list(registry.values())
    assert all(isinstance(code, int) and code >= 0 for code in codes)
    assert len(set(codes)) == len(codes)


def registry_codes():
    return ({name: entry.code for name, entry in _activations.REGISTRY.items()},
            {name: cls.code for name, cls in losses.LOSSES.items()},
            {name: cls.code for name, cls in optimizers.OPTIMIZERS.items()})


@pytest.mark.parametrize("path", available_paths())
def test_every_build_numbers_its_kernels_as_the_registries_do(path):
    """The kernels' enums repeat the registries' codes; each engine build can
    tell when they drift apart."""
    engine = importlib.import_module(f"cbackprop._engine_{path}")
    assert engine.kernel_code_mismatches(*registry_codes()) == []
    activations, loss_codes, optimizer_codes = registry_codes()
    swapped = {**activations, "relu": activations["tanh"], "tanh": activations["relu"]}
    assert len(engine.kernel_code_mismatches(swapped, loss_codes, optimizer_codes)) == 2
    assert engine.kernel_code_mismatches(activations, loss_codes,
                                         {**optimizer_codes, "adam": 7}) == [
        "optimizer 'adam': kernel number 1, registry code 7",
        "vector update 'adam': kernel number 1, registry code 7"]
    assert engine.kernel_code_mismatches({**activations, "swish": 9}, loss_codes,
                                         optimizer_codes) == [
        "activation 'swish': kernel number None, registry code 9"]


@pytest.mark.parametrize("path", available_paths())
def test_a_build_whose_kernels_disagree_with_the_registries_is_refused(path):
    """A registry code changed before the engine loads: importing cbackprop
    with that build raises RuntimeError naming the disagreement (an
    ImportError would let _backend pass the build over for a slower one)."""
    code = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("cbackprop._activations",
                                                      {_activations.__file__!r})
        registry = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(registry)
        relu, tanh = registry.REGISTRY["relu"], registry.REGISTRY["tanh"]
        registry.REGISTRY["relu"] = relu._replace(code=tanh.code)
        sys.modules["cbackprop._activations"] = registry
        try:
            import cbackprop
        except RuntimeError as error:
            print(error)
        else:
            print("imported", cbackprop.kernel_path)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "CBACKPROP_CPU": path}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "disagree with its registries" in result.stdout, result.stdout
    assert "activation 'relu': kernel number 1, registry code 2" in result.stdout


def test_every_activation_entry_is_complete():
    for name, entry in _activations.REGISTRY.items():
        assert entry.name == name
        assert entry.derivative in ("output", "z")
        assert entry.init in ("he", "xavier")
        assert entry.doc
        forward, backward = reference_ops.ACTIVATIONS[name]
        assert forward.__name__ == f"{name}_forward" and backward.__name__ == f"{name}_backward"


def test_every_loss_and_optimizer_has_its_reference_maths():
    assert set(passes.LOSSES) == set(losses.LOSSES)
    assert set(reference_ops.OPTIMIZER_STEPS) == set(optimizers.OPTIMIZERS)
    for name, cls in losses.LOSSES.items():
        assert cls.name == name
        assert cls.output_activation in (None, *_activations.REGISTRY)


def test_every_optimizer_runs_its_own_kernel():
    """A code that reached another optimizer's kernel would give another
    trajectory: each optimizer's first step, compiled, equals its reference."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    results = {}
    for name, cls in optimizers.OPTIMIZERS.items():
        nets = [Net([3, 4, 2], ["tanh", "identity"], optimizer=cls(), seed=1)
                for Net in (cb.Network, cb.reference.Network)]
        for _ in range(3):
            for net in nets:
                net.train_step(X, Y)
        (compiled, _), (reference, _) = (net.get_params() for net in nets)
        for c, r in zip(compiled, reference):
            np.testing.assert_allclose(c, r, rtol=1e-12, atol=1e-14)
        results[name] = compiled[0]
    firsts = list(results.values())
    assert all(not np.array_equal(a, b) for i, a in enumerate(firsts) for b in firsts[i + 1:])


def _stub_literal(alias_name):
    """The strings of a ``Name: TypeAlias = Literal[...]`` in __init__.pyi."""
    for node in ast.walk(ast.parse(STUB.read_text())):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == alias_name:
            return {elt.value for elt in node.value.slice.elts}
    raise AssertionError(f"no {alias_name} in {STUB}")


def test_the_type_stubs_name_every_registered_activation_and_optimizer():
    assert _stub_literal("Activation") == set(_activations.REGISTRY) | set(_activations.ALIASES)
    stub = ast.parse(STUB.read_text())
    classes = {node.name for node in stub.body if isinstance(node, ast.ClassDef)}
    assert {cls.__name__ for cls in optimizers.OPTIMIZERS.values()} <= classes
    assert {cls.__name__ for cls in losses.LOSSES.values()} <= classes
    # The names the constructor and the optimizer setter take, in the stub of
    # the Networks' base: every Literal naming one of them names them all.
    base_stub = ast.parse(STUB.with_name("_network_base.pyi").read_text())
    found = {"sgd": 0, "mse": 0}
    for literal in (*ast.walk(stub), *ast.walk(base_stub)):
        if isinstance(literal, ast.Subscript) and getattr(literal.value, "id", None) == "Literal":
            values = {getattr(e, "value", None) for e in getattr(literal.slice, "elts", [])}
            if "sgd" in values:
                assert values == set(optimizers.OPTIMIZERS)
                found["sgd"] += 1
            if "mse" in values:
                assert values == set(losses.LOSSES)
                found["mse"] += 1
    assert found == {"sgd": 2, "mse": 1}   # __init__'s optimizer and loss, the setter


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(ValueError, match="gelu_tanh"):
        cb.Network([2, 2], ["swish"])
    with pytest.raises(ValueError, match="cb.RMSprop"):
        cb.Network([2, 2], ["identity"], optimizer="adagrad")
    net = cb.Network([2, 2], ["identity"], optimizer="rmsprop")
    assert net.optimizer == cb.RMSprop()


def test_the_constructor_documents_every_registered_name():
    doc = cb.Network.__init__.__doc__
    for name in (*_activations.REGISTRY, *losses.LOSSES, *optimizers.OPTIMIZERS):
        assert f'``"{name}"``' in doc, name
    for cls in (*losses.LOSSES.values(), *optimizers.OPTIMIZERS.values()):
        assert f"cbackprop.{cls.__name__}" in doc


# A second valid value of every hyper-parameter of every registered optimizer.
CHANGED = {"lr": 0.003, "momentum": 0.7, "nesterov": True, "weight_decay": 0.02, "beta1": 0.5,
           "beta2": 0.9, "eps": 1e-3, "alpha": 0.8, "clip_norm": 0.05, "clip_value": 0.01}


@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZERS))
def test_every_setting_change_takes_effect_on_the_next_step(name):
    """The engine keeps the kernel's settings between steps: a change of any
    hyper-parameter (in place, on the network's optimizer) must reach the
    very next step, as it does in the reference."""
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    cls = optimizers.OPTIMIZERS[name]
    nets = [Net([3, 4, 2], ["silu", "identity"], optimizer=cls(), seed=1)
            for Net in (cb.Network, cb.reference.Network)]
    for field in cls().config():
        for net in nets:
            net.train_step(X, Y)
            setattr(net.optimizer, field, CHANGED[field])
        for net in nets:
            net.train_step(X, Y)
        (compiled, _), (reference, _) = (net.get_params() for net in nets)
        for c, r in zip(compiled, reference):
            np.testing.assert_allclose(c, r, rtol=1e-12, atol=1e-14, err_msg=field)


def test_a_loss_setting_change_takes_effect_on_the_next_step():
    """The engine keeps the loss kernel's settings between calls too: a change
    of the network's loss object (scale, reduction) reaches the very next
    step and loss, as in the reference."""
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    nets = [Net([3, 4, 2], ["tanh", "identity"], optimizer=cb.SGD(lr=0.05), seed=1)
            for Net in (cb.Network, cb.reference.Network)]
    for net in nets:
        net.train_step(X, Y)
        net.loss_function.scale = 3.0
    output = nets[0].predict(X)
    after = [net.train_step(X, Y) for net in nets]
    assert after[0] == pytest.approx(3.0 * np.mean((output - Y) ** 2), rel=1e-12)
    assert after[0] == pytest.approx(after[1], rel=1e-12)
    for net in nets:
        net.loss_function.reduction = "sum"
    summed = [net.loss(X, Y) for net in nets]
    assert summed[0] == pytest.approx(3.0 * np.sum((nets[0].predict(X) - Y) ** 2), rel=1e-12)
    assert summed[0] == pytest.approx(summed[1], rel=1e-12)
    for c, r in zip(nets[0].get_params()[0], nets[1].get_params()[0]):
        np.testing.assert_allclose(c, r, rtol=1e-12, atol=1e-14)
