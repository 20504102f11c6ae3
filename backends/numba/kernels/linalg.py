"""Kernels of the linear-algebra ops: Dot, MatMul, TensorDot (BLAS for floats, exact loops for
integers; see the package docstring for dot on transposed operands)."""

from __future__ import annotations

from fusegraph.backends.numba import scalar_code
from fusegraph.backends.numba.codebuilder import tuple_trailing
from fusegraph.backends.numba.kernels.base import (
    _at,
    _function,
    _new,
    _raise,
    _shape_vars,
    register_kernel,
)
from fusegraph.backends.numba.scalar_code import cast_expr, np_dtype
from fusegraph.ops import linalg
from fusegraph.types import is_float

# ----------------------------------------------------------------------------------------
# linear algebra


def _mul_acc_exprs(dtype):
    """(accumulator init, update of ``acc`` with ``a * b``, final cast) for a loop dtype."""
    if dtype == "bool":
        return "False", "acc = acc or (ea and eb)", "acc"
    if dtype.startswith("uint"):
        return "np.uint64(0)", "acc += np.uint64(ea) * np.uint64(eb)", f"np.{dtype}(acc)"
    return "np.int64(0)", "acc += np.int64(ea) * np.int64(eb)", f"np.{dtype}(acc)"


def _blas_operand(a, ta, out):
    """``a`` as ``blas_dot`` takes it: cast to the product's dtype when it differs."""
    return f"{a}.astype({np_dtype(out.dtype)})" if ta.dtype != out.dtype else a


def _loop_dot(code, out_var, a, b, nda, ndb, dtype):
    """Explicit loops for ``np.dot`` of int/bool operands (1-d or 2-d) into ``out_var``."""
    init, update, final = _mul_acc_exprs(dtype)
    rows = ["i"] if nda == 2 else []
    cols = ["j"] if ndb == 2 else []
    if nda == 2:
        code.block(f"for i in range({a}.shape[0]):")
    if ndb == 2:
        code.block(f"for j in range({b}.shape[1]):")
    code(f"acc = {init}")
    with code.loop("p", f"{a}.shape[{nda - 1}]"):
        code(f"ea = {a}[{_at(rows + ['p'])}]", f"eb = {b}[{_at(['p'] + cols)}]", update)
    code(f"{out_var}[{_at(rows + cols)}] = {final}")
    code.dedent((nda == 2) + (ndb == 2))


def _dot2(code, a, b, ta, tb, out, out_var):
    """``out_var`` (already allocated, shape checked) = dot of 1-d/2-d ``a`` and ``b``."""
    nda, ndb = len(ta.shape), len(tb.shape)
    if is_float(out.dtype):
        code(f"blas_dot({_blas_operand(a, ta, out)}, {_blas_operand(b, tb, out)}, {out_var})")
    else:
        _loop_dot(code, out_var, a, b, nda, ndb, out.dtype)


@register_kernel(linalg.Dot)
def _dot(op, in_types, out_types, name):
    code = _function(name, 2)
    ta, tb = in_types
    out = out_types[0]
    nda, ndb = len(ta.shape), len(tb.shape)
    if nda == 0 or ndb == 0:
        return _scaled(code, ta, tb, out)
    if nda > 2 or ndb > 2:
        # np.dot(a, b)[i.., j.., k] = sum(a[i.., :] * b[j.., :, k]): a C copy of each, made
        # 2-d, is one BLAS/loop product: (M, K) x (K, rest of b moved after its K axis).
        axes_b = [k for k in range(ndb) if k != max(ndb - 2, 0)] if ndb > 1 else []
        return _tensordot(code, ta, tb, out, (nda - 1,), (max(ndb - 2, 0),), axes_b)
    kb = "i1.shape[0]"
    _raise(code, f"i0.shape[{nda - 1}] != {kb}", "ValueError", "shapes not aligned")
    dims = (["i0.shape[0]"] if nda == 2 else []) + (["i1.shape[1]"] if ndb == 2 else [])
    _new(code, "out", dims, out.dtype)
    _dot2(code, "i0", "i1", ta, tb, out, "out")
    return code.returning("out")


def _scaled(code, ta, tb, out):
    """Dot with a 0-d operand: ``np.multiply(a, b, dtype=out)``."""
    big, small, tbig, tsmall = ("i1", "i0", tb, ta) if len(ta.shape) == 0 else ("i0", "i1", ta, tb)
    nd = len(tbig.shape)
    dims = _shape_vars(code, big, "n", nd)
    code(f"s = {cast_expr(f'{small}[()]', tsmall.dtype, out.dtype)}")
    _new(code, "out", dims, out.dtype)
    idx = code.loops(dims, "j")
    v = cast_expr(f"{big}[{_at(idx)}]", tbig.dtype, out.dtype)
    pair = ("s", v) if len(ta.shape) == 0 else (v, "s")
    op = scalar_code.ScalarOp("mul")
    expr = scalar_code.scalar_expr(op, (out.dtype, out.dtype), out.dtype, list(pair))
    code(f"out[{_at(idx)}] = {expr}")
    return code.returning("out", nd)


@register_kernel(linalg.MatMul)
def _matmul(op, in_types, out_types, name):
    code = _function(name, 2)
    ta, tb = in_types
    out = out_types[0]
    nda, ndb = len(ta.shape), len(tb.shape)
    ka = f"i0.shape[{nda - 1}]"
    kb = f"i1.shape[{0 if ndb == 1 else ndb - 2}]"
    _raise(code, f"{ka} != {kb}", "ValueError", "matmul: mismatch in its core dimension")
    nbatch = max(nda, ndb) - 2
    bdims = []
    for k in range(nbatch):
        # batch axis k, right-aligned in each operand's batch dims
        da = nda - 2 - nbatch + k
        db = ndb - 2 - nbatch + k
        sa = f"i0.shape[{da}]" if da >= 0 else "1"
        sb = f"i1.shape[{db}]" if db >= 0 else "1"
        code(f"b{k} = {sa} if {sa} != 1 else {sb}")
        cond = f"({sa} != 1 and {sa} != b{k}) or ({sb} != 1 and {sb} != b{k})"
        _raise(code, cond, "ValueError", "matmul: batch dims cannot be broadcast")
        bdims.append(f"b{k}")
    core = ([f"i0.shape[{nda - 2}]"] if nda >= 2 else []) + (
        [f"i1.shape[{ndb - 1}]"] if ndb >= 2 else []
    )
    if nbatch <= 0:
        _new(code, "out", core, out.dtype)
        _dot2(code, "i0", "i1", ta, tb, out, "out")
        return code.returning("out")
    _new(code, "out", bdims + core, out.dtype)
    idx = code.loops(bdims, "j")
    for arr, nd, var in (("i0", nda, "a"), ("i1", ndb, "b")):
        sel = []
        for k in range(nd - 2):
            axis_in_batch = nbatch - (nd - 2) + k
            sel.append(f"0 if {arr}.shape[{k}] == 1 else j{axis_in_batch}")
        code(f"{var} = {arr}[{', '.join(sel)}]" if sel else f"{var} = {arr}")
    sub_a = type(ta)(ta.dtype, ta.shape[-2:]) if nda >= 2 else ta
    sub_b = type(tb)(tb.dtype, tb.shape[-2:]) if ndb >= 2 else tb
    code(f"o = out[{', '.join(idx)}]")
    _dot2(code, "a", "b", sub_a, sub_b, type(out)(out.dtype, (None,) * len(core)), "o")
    return code.returning("out", nbatch)


def _tensordot(code, ta, tb, out, axes_a, axes_b, perm_b_free=None):
    """``np.tensordot``: move the summed axes of ``a`` last and of ``b`` first, make both
    C-contiguous 2-d matrices (copies, as NumPy), one dot, then reshape."""
    nda, ndb = len(ta.shape), len(tb.shape)
    free_a = [k for k in range(nda) if k not in axes_a]
    free_b = (
        [k for k in range(ndb) if k not in axes_b] if perm_b_free is None else list(perm_b_free)
    )
    for pa, pb in zip(axes_a, axes_b):
        _raise(code, f"i0.shape[{pa}] != i1.shape[{pb}]", "ValueError", "shape-mismatch for sum")
    code("kk = 1", "ma = 1", "nb = 1")
    for pa in axes_a:
        code(f"kk *= i0.shape[{pa}]")
    for k in free_a:
        code(f"ma *= i0.shape[{k}]")
    for k in free_b:
        code(f"nb *= i1.shape[{k}]")
    dt = np_dtype(out.dtype)
    for arr, t, perm, shape2 in (
        ("i0", ta, free_a + list(axes_a), "(ma, kk)"),
        ("i1", tb, list(axes_b) + free_b, "(kk, nb)"),
    ):
        order = ",".join(map(str, perm))
        moved = arr if perm == list(range(len(perm))) else f"permuted({arr}, {order!r})"
        if not perm:
            moved = f"{arr}.reshape(1)"
        cast = f".astype({dt})" if t.dtype != out.dtype else ""
        code(f"m{arr[1]} = c_view(as_c({moved}){cast}, {shape2})")
    two = type(out)(out.dtype, (None, None))
    _new(code, "o2", ["ma", "nb"], out.dtype)
    _dot2(code, "m0", "m1", two, two, two, "o2")
    dims = [f"i0.shape[{k}]" for k in free_a] + [f"i1.shape[{k}]" for k in free_b]
    if dims:
        code(f"return c_view(o2, {tuple_trailing(dims)})")
    else:
        _new(code, "out", [], out.dtype)
        code("out[()] = o2[0, 0]", "return out")
    return code.text()


@register_kernel(linalg.TensorDot)
def _tensordot_kernel(op, in_types, out_types, name):
    code = _function(name, 2)
    return _tensordot(code, *in_types, out_types[0], op.axes_a, op.axes_b)
