"""The package's import graph: no cycles, and the reference never reaches the engine.

The graph is read from the sources, not from ``sys.modules``: every import
statement of every ``.py`` file under ``src/cbackprop``, at module level and
inside functions alike (a function-level import is a dependency that is
merely deferred), plus the Python-level imports of the compiled engine's
Cython sources. Relative imports are resolved to module names, and
``from . import x`` names submodule ``x`` when ``x`` is a module.

Importing ``pkg.mod`` from outside ``pkg`` first runs ``pkg/__init__.py``,
so it depends on everything that ``__init__`` imports: the graph has that
edge too. (A module inside ``pkg`` only runs once ``pkg`` is already being
imported, so the edge is not added for it; this also leaves out the root
package, which contains every module.)
"""
import ast
import re
from pathlib import Path

import pytest

import cbackprop as cb

# The sources beside these tests (an installed wheel has no .pyx files to read);
# the installed package only when the tests run without the source tree.
SOURCE_DIR = Path(__file__).resolve().parent.parent / "src" / "cbackprop"
PACKAGE_DIR = SOURCE_DIR if (SOURCE_DIR / "__init__.py").exists() else Path(cb.__file__).resolve().parent
ROOT = PACKAGE_DIR.name   # "cbackprop"
ENGINE_PREFIX = f"{ROOT}._engine_"
# The Python modules that import the compiled engine (besides the engines themselves).
ENGINE_GATEWAYS = {f"{ROOT}._backend", f"{ROOT}.network", f"{ROOT}.ops"}


def module_name(path):
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def python_sources():
    """``{module name: (path, is_package)}`` of every .py file of the package."""
    return {module_name(path): (path, path.name == "__init__.py")
            for path in sorted(PACKAGE_DIR.rglob("*.py")) if "__pycache__" not in path.parts}


def engine_sources():
    """``{module name: path}`` of the compiled engine modules (one .pyx each)."""
    sources = {module_name(path): path for path in sorted(PACKAGE_DIR.glob("_engine_*.pyx"))}
    assert sources, f"no engine sources (_engine_*.pyx) under {PACKAGE_DIR}"
    return sources


def resolve(module, is_package, level, name):
    """The absolute name of ``from <level dots><name> import ...`` in ``module``."""
    if not level:
        return name
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name}" if name else package


def from_import_targets(module, base, names, modules):
    """What ``from <base> import <names>`` in ``module`` imports: each name
    that is a submodule of ``base``, and ``base`` itself unless it is a
    package ``module`` belongs to and every name is a submodule (then base's
    ``__init__`` is running already)."""
    submodules = {f"{base}.{name}" for name in names} & set(modules)
    inside = module.startswith(base + ".")
    return submodules if inside and len(submodules) == len(names) else submodules | {base}


def imports_in_source(module, is_package, source, modules):
    """The modules of ``modules`` that ``source`` (the text of ``module``)
    imports, from every import statement in it, functions included."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(module, is_package, node.level, node.module)
            if node.level:
                assert base in modules, f"{module}: relative import of unknown module {base}"
            found |= from_import_targets(module, base, [a.name for a in node.names], modules)
    return found & set(modules) - {module}


_INCLUDE = re.compile(r'^\s*include\s+"([^"]+)"', re.M)
_FROM_IMPORT = re.compile(r"^\s*from\s+(\.*)([\w.]*)\s+import\s+(.+)$", re.M)
_IMPORT = re.compile(r"^\s*import\s+([\w.]+)", re.M)   # never matches ``cimport``


def cython_text(path):
    """A .pyx file with its ``include``\\ d .pxi files spliced in."""
    text = path.read_text()
    return text + "".join(cython_text(path.parent / name) for name in _INCLUDE.findall(text))


def engine_imports(module, path, modules):
    """The package modules the Cython source of ``module`` imports at run time."""
    text = cython_text(path)
    found = set(_IMPORT.findall(text))
    for dots, name, names in _FROM_IMPORT.findall(text):
        base = resolve(module, False, len(dots), name)
        names = [alias.split()[0] for alias in names.strip("() ").split(",") if alias.strip()]
        found |= from_import_targets(module, base, names, modules)
    return found & set(modules) - {module}


def with_package_inits(graph):
    """Add ``M -> pkg`` wherever ``M`` imports a module of package ``pkg``
    from outside it: Python runs ``pkg/__init__.py`` first."""
    packages = {name for name, (_, is_package) in python_sources().items() if is_package}
    full = {}
    for module, targets in graph.items():
        full[module] = set(targets)
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts)):
                package = ".".join(parts[:i])
                outside = module != package and not module.startswith(package + ".")
                if package in packages and outside:
                    full[module].add(package)
    return full


def import_graph():
    """``{module: set of modules it imports}`` for the whole package."""
    sources, engines = python_sources(), engine_sources()
    modules = set(sources) | set(engines)
    graph = {module: imports_in_source(module, is_package, path.read_text(), modules)
             for module, (path, is_package) in sources.items()}
    graph.update({module: engine_imports(module, path, modules)
                  for module, path in engines.items()})
    return with_package_inits(graph)


def find_cycles(graph):
    """Every cycle closed by a back edge of a depth-first search, each as
    ``[a, b, ..., a]``; none when the graph is acyclic."""
    cycles, state, stack = [], {}, []   # state: 1 on the stack, 2 finished

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def path_to(graph, start, goal):
    """A shortest import chain from ``start`` to a module ``goal`` accepts, or None."""
    came_from, frontier = {start: None}, [start]
    while frontier:
        following = []
        for module in frontier:
            if goal(module):
                chain = [module]
                while came_from[chain[-1]] is not None:
                    chain.append(came_from[chain[-1]])
                return chain[::-1]
            for target in sorted(graph.get(module, ())):
                if target not in came_from:
                    came_from[target] = module
                    following.append(target)
        frontier = following
    return None


GRAPH = import_graph()


# -- the rules ----------------------------------------------------------------------------
def test_the_package_has_no_import_cycle():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def reaches_the_engine(module):
    return module.startswith(ENGINE_PREFIX) or module in ENGINE_GATEWAYS


@pytest.mark.parametrize("module", sorted(m for m in GRAPH
                                          if m == f"{ROOT}.reference"
                                          or m.startswith(f"{ROOT}.reference.")))
def test_the_reference_never_imports_the_compiled_engine(module):
    chain = path_to(GRAPH, module, reaches_the_engine)
    assert chain is None, f"{module} reaches the compiled engine: " + " -> ".join(chain)


def test_the_reference_passes_read_only_the_reference_ops_and_numpy():
    path, is_package = python_sources()[f"{ROOT}.reference.passes"]
    external = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            external.update(alias.name for alias in node.names)
    assert external == {"numpy"}
    assert GRAPH[f"{ROOT}.reference.passes"] == {f"{ROOT}.reference.ops"}


# -- the graph is read as Python reads imports ----------------------------------------------
def test_the_graph_sees_the_imports_that_matter():
    assert f"{ROOT}._backend" in GRAPH[f"{ROOT}.network"]
    assert f"{ROOT}._engine_baseline" in GRAPH[f"{ROOT}._backend"]
    assert f"{ROOT}._engine_avx512" in GRAPH[f"{ROOT}._backend"]     # inside a function
    assert f"{ROOT}._validation" in GRAPH[f"{ROOT}._engine_baseline"]  # from the Cython source
    # ``from .reference import passes``: the submodule, and the package's __init__ first.
    assert {f"{ROOT}.reference.passes", f"{ROOT}.reference"} <= GRAPH[f"{ROOT}._gradcheck"]
    assert f"{ROOT}._network_base" in GRAPH[f"{ROOT}.reference.network"]
    assert f"{ROOT}.reference" not in GRAPH[f"{ROOT}.reference.network"]


def test_function_level_and_relative_imports_are_edges():
    modules = {"pkg", "pkg.base", "pkg.sub", "pkg.sub.a", "pkg.sub.b", "pkg.util"}
    source = ("from . import b, helper\n"
              "from .. import util\n"
              "def f():\n"
              "    from ..base import Base\n"
              "    import pkg.sub\n")
    # ``helper`` is a name of pkg.sub's __init__; b and util are modules.
    assert imports_in_source("pkg.sub.a", False, source, modules) == {
        "pkg.sub", "pkg.sub.b", "pkg.util", "pkg.base"}
    assert imports_in_source("pkg.sub.a", False, "from . import b\n", modules) == {"pkg.sub.b"}
    assert imports_in_source("pkg.sub", True, "from .a import x\n", modules) == {"pkg.sub.a"}
    assert imports_in_source("pkg.base", False, "from .sub import a\n", modules) == {
        "pkg.sub", "pkg.sub.a"}


def test_a_cycle_is_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    # Through a package __init__: pkg.x imported from outside runs pkg first.
    graph = with_package_inits({"cbackprop._m": {"cbackprop.reference.ops"},
                                "cbackprop.reference": {"cbackprop._m"}})
    assert find_cycles(graph) == [["cbackprop._m", "cbackprop.reference", "cbackprop._m"]]
