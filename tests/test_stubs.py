"""The type stubs (.pyi) say what the package has: every class and function
they declare exists at run time, with the same parameters and defaults, and
every base class they give is a base at run time (a type checker trusts the
stubs alone: a class declared in the wrong module passes its check and
fails when run)."""
import ast
import importlib
import inspect
from pathlib import Path

import pytest

import cbackprop as cb

PACKAGE = Path(cb.__file__).parent
STUBS = {"cbackprop": PACKAGE / "__init__.pyi", "cbackprop.ops": PACKAGE / "ops.pyi",
         "cbackprop.reference": PACKAGE / "reference" / "__init__.pyi",
         "cbackprop._network_base": PACKAGE / "_network_base.pyi"}


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
        # A base the stub names (its own, or imported) is one at run time.
        if not isinstance(base, ast.Name):   # dict[str, ...]: a builtin's
            continue
        base_name = base.id
        if base_name in imported:
            source, attribute = imported[base_name]
            base_runtime = getattr(importlib.import_module(source), attribute)
        else:
            base_runtime = getattr(module, base_name, None)
        if inspect.isclass(base_runtime):
            assert issubclass(runtime, base_runtime), f"{name}({base_name})"
    for member in node.body:
        if isinstance(member, ast.FunctionDef) and (not member.name.startswith("_")
                                                    or member.name == "__init__"):
            decorators = {getattr(d, "id", getattr(d, "attr", None)) for d in member.decorator_list}
            if decorators & {"property", "setter"}:
                continue
            # __init__'s parameters are the class's call (object's own
            # __init__, inherited, shows as (*args, **kwargs) and takes none).
            target = runtime if member.name == "__init__" else getattr(runtime, member.name)
            _assert_same_signature(f"{module_name}.{name}.{member.name}", member, target)
