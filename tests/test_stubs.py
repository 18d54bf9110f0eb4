"""The type stubs (.pyi) say what the package has: every class and function
they declare exists at run time, with the same parameters and defaults, and
every base class they give is a base at run time (a type checker trusts the
stubs alone: a class declared in the wrong module passes its check and
fails when run)."""
import ast
import builtins
import functools
import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest

import cbackprop as cb
from cbackprop import losses, optimizers
from cbackprop._network_base import NetworkBase

PACKAGE = Path(cb.__file__).parent


def _module_name(stub):
    parts = stub.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


STUBS = {_module_name(stub): stub for stub in sorted(PACKAGE.rglob("*.pyi"))}


@functools.cache
def _samples():
    """{class: [instances]} of the package's objects, each under every class
    of its MRO: what the stubs' attribute declarations are checked on."""
    net = cb.Network([2, 3, 1], ["relu", "identity"], seed=0)
    X, Y = np.ones((4, 2)), np.zeros((4, 1))
    trace = net.trace(X, Y)
    objects = [net.fit(X, Y, epochs=1), trace, trace.layers[0],
               cb.check_gradients(net, X, Y, max_checks_per_layer=2, seed=0),
               *(cls() for cls in losses.LOSSES.values()),
               *(cls() for cls in optimizers.OPTIMIZERS.values())]
    samples = {}
    for obj in objects:
        for cls in type(obj).__mro__:
            samples.setdefault(cls, []).append(obj)
    return samples


def _is_type_alias(node):
    return (isinstance(node, ast.AnnAssign)
            and getattr(node.annotation, "id", None) == "TypeAlias")


def _declarations(module_name):
    """(name, ast node) of the stub's top-level classes, functions and
    variables, private names and type aliases (which exist for type checkers
    only) left out."""
    tree = ast.parse(STUBS[module_name].read_text())
    for node in tree.body:
        if _is_type_alias(node):
            continue
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            name = node.name
        elif isinstance(node, ast.AnnAssign):
            name = node.target.id
        else:
            continue
        if not name.startswith("_") or name == "__version__":
            yield name, node


def _stub_parameters(function):
    """[(name, default or None, kind)] as the stub declares them; a default
    of ``...`` (any) is None too."""
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    result = [(a.arg, d, "positional") for a, d in zip(positional, defaults)]
    if args.vararg:
        result.append((args.vararg.arg, None, "var_positional"))
    result += [(a.arg, d, "keyword_only") for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        result.append((args.kwarg.arg, None, "var_keyword"))
    return result


KINDS = {inspect.Parameter.POSITIONAL_ONLY: "positional",
         inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
         inspect.Parameter.VAR_POSITIONAL: "var_positional",
         inspect.Parameter.KEYWORD_ONLY: "keyword_only",
         inspect.Parameter.VAR_KEYWORD: "var_keyword"}


def _assert_same_signature(where, function, runtime):
    stub = _stub_parameters(function)
    actual = list(inspect.signature(runtime).parameters.values())
    if stub and stub[0][0] in ("self", "cls") and (not actual or actual[0].name != stub[0][0]):
        stub = stub[1:]   # a bound method or classmethod: inspect leaves it out
    assert [(n, k) for n, _, k in stub] == [(p.name, KINDS[p.kind]) for p in actual], where
    for (name, default, _), parameter in zip(stub, actual):
        if default is None or (isinstance(default, ast.Constant) and default.value is Ellipsis):
            has_default = default is not None
            assert has_default == (parameter.default is not inspect.Parameter.empty), \
                f"{where}: {name}"
            continue
        assert ast.literal_eval(default) == parameter.default, f"{where}: {name}"


def _imported_names(module_name):
    """{alias: (module, name)} of the stub's relative ``from X import Y as alias``."""
    is_package = STUBS[module_name].name == "__init__.pyi"
    parts = module_name.split(".")
    names = {}
    for node in ast.parse(STUBS[module_name].read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            up = node.level - 1 if is_package else node.level
            source = ".".join(parts[:len(parts) - up] + ([node.module] if node.module else []))
            for alias in node.names:
                names[alias.asname or alias.name] = (source, alias.name)
    return names


def _cases():
    for module_name in STUBS:
        for name, node in _declarations(module_name):
            yield pytest.param(module_name, name, node, id=f"{module_name}.{name}")


@pytest.mark.parametrize("module_name, name, node", list(_cases()))
def test_every_stub_declaration_exists_as_declared(module_name, name, node):
    module = importlib.import_module(module_name)
    assert hasattr(module, name), f"{module_name}.{name} is in the stub, not in the module"
    runtime = getattr(module, name)
    if isinstance(node, ast.FunctionDef):
        _assert_same_signature(f"{module_name}.{name}", node, runtime)
        return
    if not isinstance(node, ast.ClassDef):
        return
    assert inspect.isclass(runtime)
    imported = _imported_names(module_name)
    for base in node.bases:
        # A base the stub names (its own, imported, or a builtin) is one at run time.
        if not isinstance(base, ast.Name):   # dict[str, ...]: a builtin's
            continue
        base_name = base.id
        if base_name in imported:
            source, attribute = imported[base_name]
            base_runtime = getattr(importlib.import_module(source), attribute)
        else:
            base_runtime = getattr(module, base_name, getattr(builtins, base_name, None))
        assert inspect.isclass(base_runtime), f"{name}({base_name}): no such class"
        assert issubclass(runtime, base_runtime), f"{name}({base_name})"
    for member in node.body:
        where = f"{module_name}.{name}"
        if isinstance(member, ast.AnnAssign):   # an attribute of the instances
            attribute = member.target.id
            instances = _samples().get(runtime)
            assert instances, f"{where}: no sample instance to check {attribute} on"
            assert all(hasattr(obj, attribute) for obj in instances), f"{where}.{attribute}"
            continue
        if not isinstance(member, ast.FunctionDef) or (member.name.startswith("_")
                                                       and member.name != "__init__"):
            continue
        decorators = {getattr(d, "id", getattr(d, "attr", None)) for d in member.decorator_list}
        static = inspect.getattr_static(runtime, member.name, None)
        if decorators & {"property", "setter"}:
            assert isinstance(static, property), f"{where}.{member.name} is no property"
            if "setter" in decorators:
                assert static.fset is not None, f"{where}.{member.name} has no setter"
            continue
        assert isinstance(static, classmethod) == ("classmethod" in decorators), \
            f"{where}.{member.name}: classmethod in one, not the other"
        # __init__'s parameters are the class's call (object's own
        # __init__, inherited, shows as (*args, **kwargs) and takes none).
        target = runtime if member.name == "__init__" else getattr(runtime, member.name)
        _assert_same_signature(f"{where}.{member.name}", member, target)


def _stub_names(module_name):
    """Every name the stub gives its module: declared, or imported ``as`` itself."""
    names = {name for name, _ in _declarations(module_name)}
    for node in ast.parse(STUBS[module_name].read_text()).body:
        if isinstance(node, ast.ImportFrom):
            names |= {a.asname for a in node.names if a.asname == a.name}
    return names


def test_every_public_name_is_in_the_stubs():
    """The other way round: nothing public is missing from the stubs (a type
    checker would refuse a name that runs)."""
    assert set(cb.__all__) - _stub_names("cbackprop") == set()
    assert set(cb.ops.__all__) - _stub_names("cbackprop.ops") == set()
    # the twins, and the modules the loss and optimizer classes live in
    assert set(cb.ops.__all__) - _stub_names("cbackprop.reference.ops") == set()
    assert {"ops", "Network"} <= _stub_names("cbackprop.reference")
    assert set(losses.__all__) | {"Loss"} <= _stub_names("cbackprop.losses")
    assert set(optimizers.__all__) | {"Optimizer"} <= _stub_names("cbackprop.optimizers")
    assert {"losses", "optimizers"} <= _stub_names("cbackprop")
    base = next(node for name, node in _declarations("cbackprop._network_base")
                if name == "NetworkBase")
    declared = {member.name for member in base.body if isinstance(member, ast.FunctionDef)}
    public = {name for name in vars(NetworkBase) if not name.startswith("_")}
    assert public - declared == set()


@pytest.mark.parametrize("module_name", ["cbackprop", "cbackprop.ops", "cbackprop.losses",
                                         "cbackprop.optimizers"])
def test_a_stubs_all_is_the_modules(module_name):
    """A type checker takes `from module import *` from the stub's __all__."""
    stub_all = next(node.value for node in ast.parse(STUBS[module_name].read_text()).body
                    if isinstance(node, ast.Assign) and node.targets[0].id == "__all__")
    assert sorted(ast.literal_eval(stub_all)) == sorted(importlib.import_module(module_name).__all__)


@pytest.mark.parametrize("name", ["train_step", "forward", "loss"])
def test_the_compiled_networks_methods_read_as_its_own(name):
    """Network.train_step, forward and loss are the engine's functions (no
    Python frame before a ready batch reaches C): named, documented and
    called as methods of Network, with the reference's parameters."""
    method = getattr(cb.Network, name)
    assert method.__name__ == name and method.__qualname__ == f"Network.{name}"
    assert method.__doc__.splitlines()[0] == getattr(NetworkBase, name).__doc__.splitlines()[0]
    assert (list(inspect.signature(method).parameters)
            == list(inspect.signature(getattr(NetworkBase, name)).parameters))
    net = cb.Network([3, 2], ["sigmoid"], seed=0)
    assert getattr(net, name).__self__ is net
