"""The layers of DESIGN.md §1 hold: a lower layer never imports a higher one.

    fusegraph.{types, graph} -> fusegraph.ops -> fusegraph.gradient, fusegraph.rewrites
        -> fusegraph.backends -> fusegraph.function;  ops/ never imports numba.

Every ``.py`` file of the package (the folders ``pyproject.toml`` maps onto ``fusegraph``,
and their sub-packages) is parsed, not imported, and every import counts: module level,
inside functions (lazy), under ``if TYPE_CHECKING`` and ``importlib.import_module("...")``
/ ``__import__("...")`` calls with a literal name. ``from fusegraph import ops`` is an
import of the module ``fusegraph.ops``; ``from fusegraph.graph import Variable`` one of
``fusegraph.graph``. A module may import its own layer and the layers below it.

Modules DESIGN.md does not name are placed in ``COMPILER_MODULES`` below, with the reason
where it is not obvious; a new ``compiler/*.py`` module fails ``test_every_module_has_a_layer``
until it is placed. The sub-packages take their package's layer (``PACKAGES``).
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

# --------------------------------------------------------------------------- the layers

#: Lowest first: a module may import modules of its own layer and of the layers before it.
LAYERS = ("base", "graph", "ops", "gradient/rewrites", "backends", "function", "facade")

#: The modules of the package root (``compiler/*.py``), by layer.
COMPILER_MODULES = {
    # base: no fusegraph imports; everything stands on them.
    "fusegraph.errors": "base",
    "fusegraph.sourceinfo": "base",
    "fusegraph.types": "base",  # DESIGN pairs it with graph; graph imports it, never back
    # graph: the IR.
    "fusegraph.graph": "graph",
    "fusegraph.tensor_methods": "graph",  # Variable's operator mixin, imported by graph
    "fusegraph.constructors": "graph",  # fg.vector & co: root Variables of a TensorType
    "fusegraph.shared": "graph",  # a SharedVariable is a root Variable holding a value
    # ops
    "fusegraph.random": "ops",  # RandomStream only builds ops.random nodes on shared state
    # gradient/rewrites: DESIGN names gradient next to rewrites.
    "fusegraph.gradient": "gradient/rewrites",
    # function: what a user calls, standing on the whole pipeline.
    "fusegraph.function": "function",
    "fusegraph.mode": "function",  # names backends and rewrite passes; fg.function's input
    "fusegraph.derivatives": "function",  # jacobian/hessian/verify_grad compile functions
    "fusegraph.printing": "function",  # dprint/to_dot print compiled Functions
    # facade: the public namespace and the command line.
    "fusegraph": "facade",  # compiler/__init__.py re-exports every layer
    "fusegraph.__main__": "facade",  # `python -m fusegraph` (the cache commands)
}

#: Sub-packages: every module in them has the package's layer.
PACKAGES = {
    "fusegraph.ops": "ops",
    "fusegraph.rewrites": "gradient/rewrites",
    "fusegraph.backends": "backends",
}

#: ``ops/`` never imports these (llvmlite is Numba's code generator).
NOT_IN_OPS = ("numba", "llvmlite")

#: The passes of ``rewrites/`` share helpers through ``rewrites/patterns.py`` and
#: ``rewrites/shapes.py``, never by importing each other (``rewrites/passes.py`` lists them).
PASSES = (
    "fusegraph.rewrites.canonicalize",
    "fusegraph.rewrites.stabilize",
    "fusegraph.rewrites.specialize",
    "fusegraph.rewrites.fusion",
    "fusegraph.rewrites.identity",
)

#: The rewrite engine is generic over op classes: it imports nothing above the graph IR
#: (op-aware patterns such as ``elemwise`` are in ``rewrites/patterns.py``).
ENGINE = "fusegraph.rewrites.engine"

#: ``fusegraph.mode`` may import the rewrite passes only lazily (inside a function), so
#: that importing it does not import every rule set.
MODE, MODE_LAZY_ONLY = "fusegraph.mode", "fusegraph.rewrites"

#: Allowed breaks of the rules above: (importer, imported) -> why. Each must still occur
#: (else the test asks for its removal).
EXCEPTIONS = {
    ("fusegraph.tensor_methods", "fusegraph.ops"): (
        "the one documented hook (REVIEW §4.4): x + y on a Variable builds an ops node, so "
        "the IR's operator mixin looks fusegraph.ops up by name when an operator is called"
    ),
}

# --------------------------------------------------------------------------- the reader


@dataclass(frozen=True)
class Import:
    importer: str  # module name
    path: str  # the file, relative to the repository
    line: int
    imported: str  # a module name (a fusegraph submodule when it is one), or a top name
    lazy: bool  # inside a function


def _package_dirs() -> dict:
    """Package name -> its folder, for the packages pyproject.toml maps (as installed)."""
    dirs = {}
    for name in ("fusegraph", *PACKAGES):
        (path,) = importlib.import_module(name).__path__
        dirs[name] = Path(path)
    return dirs


def package_files() -> dict:
    """Module name -> file, for every .py file in the package folders and the sub-packages
    below them (folders with an ``__init__.py``; ``backends/numba/fitting`` holds offline
    scripts, not modules)."""
    files = {}
    for package, folder in _package_dirs().items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder)
            if any(not (folder / p / "__init__.py").exists() for p in rel.parents):
                continue
            parts = rel.with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join((package, *parts))] = path
    return files


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from {'.' * level}{name} import ...`` in ``module``."""
    if level == 0:
        return name or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _literal_import(call: ast.Call) -> str | None:
    """The module name of ``importlib.import_module("x")`` / ``import_module("x")`` /
    ``__import__("x")`` with a literal absolute name, else None."""
    func = call.func
    fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if fname not in ("import_module", "__import__") or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


def imports_of(module: str, source: str, path: str, known: set, is_package=False) -> list:
    """Every import in ``source`` (the text of ``module``), resolved against the module
    names in ``known``."""
    found = []

    def add(node, name, lazy):
        found.append(Import(module, path, node.lineno, name, lazy))

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(child, alias.name, lazy)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(module, is_package, child.level, child.module)
                subs = (f"{base}.{alias.name}" for alias in child.names)
                for name in dict.fromkeys(sub if sub in known else base for sub in subs):
                    add(child, name, lazy)
            elif isinstance(child, ast.Call):
                name = _literal_import(child)
                if name is not None:
                    add(child, name, lazy)
            visit(child, inner)

    visit(ast.parse(source, path), False)
    return found


def all_imports() -> list:
    files = package_files()
    root = _package_dirs()["fusegraph"].parent
    found = []
    for module, path in files.items():
        rel = str(path.relative_to(root))
        found += imports_of(module, path.read_text(), rel, set(files), path.name == "__init__.py")
    return found


def layer_of(module: str) -> str | None:
    """The layer of a fusegraph module (None if it has none)."""
    if module in COMPILER_MODULES:
        return COMPILER_MODULES[module]
    for package, layer in PACKAGES.items():
        if module == package or module.startswith(package + "."):
            return layer
    return None


def _is_fusegraph(name: str) -> bool:
    return name == "fusegraph" or name.startswith("fusegraph.")


def upward(imports, known) -> list:
    """The imports that break the layering (unknown fusegraph modules included), as
    (Import, why) pairs."""
    bad = []
    for imp in imports:
        if not _is_fusegraph(imp.imported) or imp.imported == imp.importer:
            continue
        if imp.imported not in known:
            bad.append((imp, "imports a fusegraph module that does not exist"))
            continue
        low, high = layer_of(imp.importer), layer_of(imp.imported)
        if LAYERS.index(high) > LAYERS.index(low):
            bad.append((imp, f"layer {low!r} imports layer {high!r}"))
    return bad


def rule_breaks(imports) -> list:
    """The imports that break the rules beside the layer order, as (Import, why) pairs."""
    bad = []
    for imp in imports:
        top = imp.imported.split(".")[0]
        if imp.importer.startswith("fusegraph.ops") and top in NOT_IN_OPS:
            bad.append((imp, f"ops/ imports {top}"))
        if imp.importer in PASSES and imp.imported in PASSES and imp.imported != imp.importer:
            bad.append((imp, "a rewrite pass borrows from another (use rewrites/patterns.py)"))
        if (
            imp.importer == ENGINE
            and _is_fusegraph(imp.imported)
            and layer_of(imp.imported) not in ("base", "graph")
        ):
            bad.append((imp, "the generic rewrite engine imports op-aware code"))
        if (
            imp.importer == MODE
            and not imp.lazy
            and (imp.imported == MODE_LAZY_ONLY or imp.imported.startswith(MODE_LAZY_ONLY + "."))
        ):
            bad.append((imp, "fusegraph.mode imports the rewrite passes at module level"))
    return bad


def _report(bad) -> str:
    return "\n".join(
        f"  {imp.path}:{imp.line} {imp.importer} -> {imp.imported}"
        f"{' (lazy)' if imp.lazy else ''}: {why}"
        for imp, why in bad
    )


def _unexcused(bad) -> list:
    return [(imp, why) for imp, why in bad if (imp.importer, imp.imported) not in EXCEPTIONS]


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def imports():
    return all_imports()


def test_every_module_has_a_layer():
    files = package_files()
    assert "fusegraph.graph" in files and "fusegraph.ops.elemwise" in files
    assert "fusegraph.backends.numba.kernels.base" in files
    unplaced = sorted(m for m in files if layer_of(m) is None)
    assert not unplaced, f"place these modules in COMPILER_MODULES of {__file__}: {unplaced}"
    stale = sorted(set(COMPILER_MODULES) - set(files))
    assert not stale, f"COMPILER_MODULES names modules that no longer exist: {stale}"
    assert set(COMPILER_MODULES.values()) | set(PACKAGES.values()) <= set(LAYERS)


def test_no_layer_imports_a_higher_one(imports):
    bad = _unexcused(upward(imports, set(package_files())))
    assert not bad, "imports up the layers (DESIGN.md §1):\n" + _report(bad)


def test_rules_beside_the_order_hold(imports):
    """ops/ never imports numba; the rewrite passes do not borrow from each other; the
    rewrite engine is generic; fusegraph.mode imports the rewrite passes only lazily."""
    bad = _unexcused(rule_breaks(imports))
    assert not bad, "broken import rules:\n" + _report(bad)


def test_every_exception_is_still_needed(imports):
    used = {
        (imp.importer, imp.imported)
        for imp, _ in upward(imports, set(package_files())) + rule_breaks(imports)
    }
    stale = sorted(set(EXCEPTIONS) - used)
    assert not stale, f"these EXCEPTIONS no longer occur; delete them: {stale}"


def test_graph_stacks_lists_through_the_hook_ops_installs():
    """``as_tensor([x, y])`` builds ``ops.stack``'s node though the IR imports no ops."""
    import fusegraph as fg
    from fusegraph import graph, ops

    assert graph._stack is ops.stack
    x, y = fg.scalar("x"), fg.scalar("y")
    v = fg.as_tensor([x, y, 2.0])
    assert v.type.shape == (3,) and v.owner.inputs[:2] == (x, y)


# --------------------------------------------------------------------------- the checker


KNOWN = {
    "fusegraph",
    "fusegraph.types",
    "fusegraph.graph",
    "fusegraph.ops",
    "fusegraph.ops.shape_ops",
    "fusegraph.rewrites.passes",
    "fusegraph.mode",
    "fusegraph.rewrites.stabilize",
    "fusegraph.rewrites.specialize",
}


def _check(module, source):
    imports = imports_of(module, source, "x.py", KNOWN)
    return [(imp.line, imp.imported, why) for imp, why in upward(imports, KNOWN)], [
        (imp.line, imp.imported, why) for imp, why in rule_breaks(imports)
    ]


def test_the_checker_sees_lazy_from_importlib_and_relative_imports():
    source = (
        "import importlib\n"
        "from fusegraph.types import TensorType\n"
        "def f():\n"
        "    from fusegraph.ops.shape_ops import stack\n"
        "    return importlib.import_module('fusegraph.ops')\n"
        "def g():\n"
        "    from fusegraph import ops, graph\n"
        "    from .ops import shape_ops\n"
        "    import fusegraph.rewrites.passes\n"
        "    from fusegraph.ops import shape\n"
    )
    up, _ = _check("fusegraph.graph", source)
    assert up == [
        (4, "fusegraph.ops.shape_ops", "layer 'graph' imports layer 'ops'"),
        (5, "fusegraph.ops", "layer 'graph' imports layer 'ops'"),
        (7, "fusegraph.ops", "layer 'graph' imports layer 'ops'"),
        (8, "fusegraph.ops.shape_ops", "layer 'graph' imports layer 'ops'"),
        (9, "fusegraph.rewrites.passes", "layer 'graph' imports layer 'gradient/rewrites'"),
        (10, "fusegraph.ops", "layer 'graph' imports layer 'ops'"),
    ]
    assert _check("fusegraph.function", source)[0] == []  # the top may import anything
    assert _check("fusegraph.ops.x", "import fusegraph.ops.shape")[0] == [
        (1, "fusegraph.ops.shape", "imports a fusegraph module that does not exist")
    ]


def test_the_checker_applies_the_other_rules():
    assert _check("fusegraph.ops.x", "def f():\n    from numba import njit\n")[1] == [
        (2, "numba", "ops/ imports numba")
    ]
    lazy = "def f():\n    from fusegraph.rewrites.passes import known_names\n"
    assert _check("fusegraph.mode", lazy) == ([], [])
    eager = "from fusegraph.rewrites.passes import known_names"
    why = "fusegraph.mode imports the rewrite passes at module level"
    assert _check("fusegraph.mode", eager)[1] == [(1, "fusegraph.rewrites.passes", why)]
    borrowed = "from fusegraph.rewrites.stabilize import fit"
    assert _check("fusegraph.rewrites.specialize", borrowed)[1] == [
        (
            1,
            "fusegraph.rewrites.stabilize",
            "a rewrite pass borrows from another (use rewrites/patterns.py)",
        )
    ]
    op_aware = "def elemwise():\n    from fusegraph.ops.shape_ops import stack\n"
    assert _check(ENGINE, op_aware)[1] == [
        (2, "fusegraph.ops.shape_ops", "the generic rewrite engine imports op-aware code")
    ]
