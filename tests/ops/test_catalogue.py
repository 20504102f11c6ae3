"""The op catalogue is complete: every public op function has rows in the op tables, and
every op class is built by some row (so its type rule, impl and gradient are exercised)."""

import importlib.util
from pathlib import Path

import fusegraph as fg
import fusegraph.ops as ops
from fusegraph.graph import Op, toposort

HERE = Path(__file__).resolve().parent
TABLES = ["elemwise", "shape", "indexing", "linalg", "reduction", "nn", "checks"]

# Public functions that are not ops of their own: helpers and the gradient-shaping
# identities (tested in tests/test_gradient.py).
NOT_TABLE_OPS = {
    "elemwise", "getitem", "sum_to", "alloc", "join", "logsoftmax", "switch",
    "crossentropy_categorical_1hot", "stop_gradient", "disconnected_grad", "zero_grad",
    "grad_clip", "grad_scale",
}  # fmt: skip


def _load_cases():
    cases = []
    for name in TABLES:
        spec = importlib.util.spec_from_file_location(f"table_{name}", HERE / f"test_{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases += module.CASES
    return cases


CASES = _load_cases()


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
    missing = sorted(c.__name__ for c in classes - gradient_only - built)
    assert not missing, f"op classes no table row builds: {missing}"
