"""The op catalogue is complete: every public op function has rows in the op tables, and
every op class is built by some row (so its type rule, impl and gradient are exercised).
And it is open: a toy elementwise op added with its record, its Numba rendering and a row
of the elemwise table works like the built-in ones."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from harness import check_case

import fusegraph as fg
import fusegraph.ops as ops
from fusegraph.backends.numba import scalar_code
from fusegraph.graph import Op, toposort
from fusegraph.ops import scalar
from fusegraph.ops.fused import FusedElemwise

HERE = Path(__file__).resolve().parent
TABLES = ["elemwise", "shape", "indexing", "linalg", "reduction", "nn", "checks"]

# Public functions that are not ops of their own: helpers and the gradient-shaping
# identities (tested in tests/test_gradient.py).
NOT_TABLE_OPS = {
    "elemwise", "getitem", "sum_to", "alloc", "join", "logsoftmax", "switch",
    "crossentropy_categorical_1hot", "stop_gradient", "disconnected_grad", "zero_grad",
    "grad_clip", "grad_scale",
    "as_op",  # wraps users' functions: tests/test_extending.py
}  # fmt: skip


def _load_table(name):
    spec = importlib.util.spec_from_file_location(f"table_{name}", HERE / f"test_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES = {name: _load_table(name) for name in TABLES}
CASES = [case for module in MODULES.values() for case in module.CASES]


def test_every_public_op_function_has_table_rows():
    covered = {name for case in CASES for name in case.covers}
    functions = {n for n in ops.__all__ if n[0].islower()} - NOT_TABLE_OPS
    missing = sorted(functions - covered)
    assert not missing, f"op functions without rows in the op tables: {missing}"
    unknown = sorted(covered - set(ops.__all__) - {"transpose"})
    assert not unknown, f"rows cover names that are not public ops: {unknown}"


def test_every_op_class_is_built_by_some_row():
    built = set()
    for case in CASES:
        syms = [fg.tensor(dtype=a.dtype.name, shape=(None,) * a.ndim) for a in case.inputs]
        try:
            outs = case.build(*syms)
        except Exception:  # rows that expect build-time errors
            continue
        outs = outs if isinstance(outs, list) else [outs]
        built.update(type(node.op) for node in toposort(outs))
    classes = {
        obj
        for obj in vars(ops).values()
        if isinstance(obj, type)
        and issubclass(obj, Op)
        and obj.__module__.startswith("fusegraph.ops")
    }
    gradient_only = {ops.SumTo, ops.StopGradient, ops.ZeroGrad, ops.GradClip, ops.GradScale}
    users = {ops.PythonOp}  # fg.as_op's, around users' functions: tests/test_extending.py
    missing = sorted(c.__name__ for c in classes - gradient_only - users - built)
    assert not missing, f"op classes no table row builds: {missing}"


# ----------------------------------------------------------------------------------------
# Adding an elementwise op: the three pieces, here added at run time (in the package they
# are a record in ops/scalar.py's _BUILTIN, an entry of scalar_code.RENDERINGS and a row of
# UNARY or BINARY in tests/ops/test_elemwise.py).

ELEMWISE = MODULES["elemwise"]

# 1. The record (which also makes fg.cube_plus_one).
CUBE_PLUS_ONE = scalar.float_op(
    "cube_plus_one", lambda x: x**3 + 1, grad=lambda T, z, g, x: [3 * g * x * x]
)


# 2. The Numba rendering.
def render_cube_plus_one(in_dtypes, out, args):
    x = scalar_code.cast_expr(args[0], in_dtypes[0], out)
    return f"np.{out}({x} * {x} * {x} + np.{out}(1.0))"


# 3. The row of the op table: name -> (NumPy reference, input generator, tolerance).
ROW = ("cube_plus_one", ELEMWISE._flt(lambda x: x**3 + 1), ELEMWISE._any, 1e-12)


@pytest.fixture
def toy_record(tmp_path, monkeypatch):
    """Register the record for one test; the registry is global, so always unregister.
    Generated modules go to a temporary cache (they are keyed by their source, which holds
    the rendering, but the user's cache should not keep a test's toy op)."""
    monkeypatch.setenv("FUSEGRAPH_CACHE_DIR", str(tmp_path))
    scalar.register(CUBE_PLUS_ONE)
    try:
        yield CUBE_PLUS_ONE
    finally:
        scalar.unregister("cube_plus_one")
        scalar_code.unregister_rendering("cube_plus_one")
    assert not hasattr(fg, "cube_plus_one") and "cube_plus_one" not in scalar_code.RENDERINGS


@pytest.fixture
def toy_op(toy_record):
    scalar_code.register_rendering("cube_plus_one", render_cube_plus_one)
    return fg.cube_plus_one


def test_toy_op_row_passes_in_both_backends(toy_op):
    assert fg.ops.cube_plus_one is toy_op and "cube_plus_one" in scalar_code.RENDERINGS
    for case in ELEMWISE.unary_cases(*ROW):
        check_case(case, "py")  # values, dtypes, static types, layouts, verify_grad
        case.grad = False  # Numba's gradient: test_toy_op_gradient_is_the_closed_form
        check_case(case, "numba")


def test_toy_op_gradient_is_the_closed_form(toy_op):
    x = fg.vector("x")
    g = fg.grad(toy_op(x).sum(), x)
    xv = np.array([-2.0, -0.5, 0.0, 1.5, 3.0])
    for mode in ("py", "numba"):
        np.testing.assert_allclose(fg.function([x], g, mode=mode)(xv), 3 * xv**2, rtol=1e-14)


def test_toy_op_fuses_with_its_neighbours(toy_op):
    x = fg.vector("x")
    f = fg.function([x], fg.exp(-toy_op(x * 0.5)))
    fused = [node for node in toposort(f.graph.outputs) if isinstance(node.op, FusedElemwise)]
    assert len(fused) == 1
    names = {step.op.name for step in fused[0].op.steps}
    assert {"cube_plus_one", "mul", "neg", "exp"} <= names
    assert re.search(r"np.float64\((\w+) \* \1 \* \1 \+ np.float64\(1.0\)\)", f.source)
    xv = np.linspace(-2, 2, 7)
    np.testing.assert_allclose(f(xv), np.exp(-((xv * 0.5) ** 3 + 1)), rtol=1e-14)


def test_toy_op_without_rendering_fails_loudly(toy_record):
    with pytest.raises(RuntimeError, match=r"no rendering for the ops \['cube_plus_one'\]"):
        scalar_code.check_renderings()
    x = fg.vector("x")
    y = fg.cube_plus_one(x)
    np.testing.assert_allclose(fg.function([x], y, mode="py")([2.0]), [9.0])
    with pytest.raises(NotImplementedError, match="'cube_plus_one' has no Numba rendering"):
        fg.function([x], y)
