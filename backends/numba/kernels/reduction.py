"""Kernels of the reductions and nn ops: ArgReduce, LogSumExp, Softmax, LogSoftmax,
CrossentropyCategorical1Hot, CrossentropySoftmax1HotDx, SumTo (``Reduce`` is a fused loop,
``loops``)."""

from __future__ import annotations

from fusegraph.backends.numba.codebuilder import tuple_trailing
from fusegraph.backends.numba.kernels.base import (
    _at,
    _function,
    _new,
    _raise,
    _shape_vars,
    register_kernel,
)
from fusegraph.backends.numba.kernels.shape import _read_shape_vector
from fusegraph.backends.numba.scalar_code import cast_expr, np_dtype
from fusegraph.ops import grad_ops, nn, reduction
from fusegraph.types import is_float

# ----------------------------------------------------------------------------------------
# reductions


def _grouped(code, nd, axes):
    """Bind ``y`` to ``i0`` with the kept axes first and the ``axes`` last; returns
    (kept dims, reduced dims, perm)."""
    kept = [k for k in range(nd) if k not in axes]
    perm = kept + sorted(axes)
    order = ",".join(map(str, perm))
    code("y = i0" if perm == list(range(nd)) else f"y = permuted(i0, {order!r})")
    dims = _shape_vars(code, "y", "n", nd)
    return dims[: len(kept)], dims[len(kept) :], perm


@register_kernel(reduction.ArgReduce)
def _arg_reduce(op, in_types, out_types, name):
    code = _function(name, 1)
    src = in_types[0].dtype
    nd = len(in_types[0].shape)
    better = {"argmax": ">", "argmin": "<"}[op.kind]
    if src == "bool":
        test = "v and not best" if op.kind == "argmax" else "best and not v"
    elif is_float(src):
        test = f"v {better} best or (v != v and best == best)"
    else:
        test = f"v {better} best"
    if op.axis is None:
        code("y = i0.ravel()" if nd else "y = i0.reshape(1)")
        outer, inner = [], ["y.shape[0]"]
        yidx = lambda j: j  # noqa: E731
        out_dims = ["1"] * nd if op.keepdims else []
    else:
        outer, inner, _ = _grouped(code, nd, {op.axis})
        yidx = lambda j: _at([f"o{k}" for k in range(len(outer))] + [j])  # noqa: E731
        out_dims = list(outer)
        if op.keepdims:
            out_dims.insert(op.axis, "1")
    _raise(code, f"{inner[0]} == 0", "ValueError", "attempt to get argmax of an empty sequence")
    _new(code, "out", out_dims, "int64")
    oidx = code.loops(outer, "o")
    code(f"best = y[{yidx('0')}]", "arg = 0")
    with code.loop("t", f"1, {inner[0]}"):
        code(f"v = y[{yidx('t')}]")
        with code.block(f"if {test}:"):
            code("best = v", "arg = t")
    if op.keepdims and op.axis is not None:
        oidx.insert(op.axis, "0")
    elif op.keepdims:
        oidx = ["0"] * nd
    code(f"out[{_at(oidx)}] = arg")
    return code.returning("out", len(outer))


def _group_max(code, inner, dt, src, yidx):
    """``top``: the NaN-propagating max of the group (-inf when empty)."""
    code(f"top = {np_dtype(dt)}(-np.inf)")
    idx = code.loops(inner, "r")
    code(f"v = {cast_expr(f'y[{yidx(idx)}]', src, dt)}")
    with code.block("if v > top or v != v:"):
        code("top = v")
    code.dedent(len(inner))
    return idx


@register_kernel(reduction.LogSumExp)
def _logsumexp(op, in_types, out_types, name):
    code = _function(name, 1)
    src, dt = in_types[0].dtype, out_types[0].dtype
    nd = len(in_types[0].shape)
    axes = set(op.axis)
    outer, inner, _ = _grouped(code, nd, axes)
    kept_it = iter(outer)
    out_dims = [
        "1" if k in axes else next(kept_it) for k in range(nd) if op.keepdims or k not in axes
    ]
    _new(code, "out", out_dims, dt)
    oidx = code.loops(outer, "o")

    def yidx(r):
        return _at(oidx + r)

    _group_max(code, inner, dt, src, yidx)
    code(f"shift = top if math.isfinite(top) else {np_dtype(dt)}(0)", f"total = {np_dtype(dt)}(0)")
    idx = code.loops(inner, "r")
    code(f"total += vecmath.exp({cast_expr(f'y[{yidx(idx)}]', src, dt)} - shift)")
    code.dedent(len(inner))
    it = iter(oidx)
    full = ["0" if k in axes else next(it) for k in range(nd) if op.keepdims or k not in axes]
    code(f"out[{_at(full)}] = vecmath.log(total) + shift")
    return code.returning("out", len(outer))


@register_kernel(nn.Softmax, nn.LogSoftmax)
def _softmax(op, in_types, out_types, name):
    code = _function(name, 1)
    src, dt = in_types[0].dtype, out_types[0].dtype
    nd = len(in_types[0].shape)
    outer, inner, perm = _grouped(code, nd, set(op.axis))
    _new(code, "out", [f"i0.shape[{k}]" for k in range(nd)], dt)
    order = ",".join(map(str, perm))
    code("ot = out" if perm == list(range(nd)) else f"ot = permuted(out, {order!r})")
    oidx = code.loops(outer, "o")

    def yidx(r):
        return _at(oidx + r)

    _group_max(code, inner, dt, src, yidx)
    code(f"total = {np_dtype(dt)}(0)")
    idx = code.loops(inner, "r")
    v = f"{cast_expr(f'y[{yidx(idx)}]', src, dt)} - top"
    if isinstance(op, nn.Softmax):
        code(f"e = vecmath.exp({v})", f"ot[{yidx(idx)}] = e", "total += e")
    else:
        code(f"s = {v}", f"ot[{yidx(idx)}] = s", "total += vecmath.exp(s)")
    code.dedent(len(inner))
    if isinstance(op, nn.LogSoftmax):
        code("total = vecmath.log(total)")
    idx = code.loops(inner, "r")
    code(
        f"ot[{yidx(idx)}] = ot[{yidx(idx)}] "
        + ("/" if isinstance(op, nn.Softmax) else "-")
        + " total"
    )
    return code.returning("out", len(inner) + len(outer))


@register_kernel(nn.CrossentropyCategorical1Hot)
def _crossentropy(op, in_types, out_types, name):
    code = _function(name, 2)
    tc, tt = in_types
    dt = out_types[0].dtype
    nd = len(tt.shape)
    for k in range(nd):
        _raise(code, f"i0.shape[{k}] != i1.shape[{k}]", "ValueError", "true_dist shape mismatch")
    code(f"kk = i0.shape[{nd}]")
    dims = [f"i1.shape[{k}]" for k in range(nd)]
    _new(code, "out", dims, dt)
    idx = code.loops(dims, "j")
    code(f"c = {cast_expr(f'i1[{_at(idx)}]', tt.dtype, 'int64')}")
    _raise(code, "c < 0 or c >= kk", "IndexError", "class index out of range")
    picked = "i0[" + _at([*idx, "c"]) + "]"
    code(f"p = {cast_expr(picked, tc.dtype, dt)}")
    code(f"out[{_at(idx)}] = " + ("-p" if op.log_input else "-vecmath.log(p)"))
    return code.returning("out", nd)


@register_kernel(nn.CrossentropySoftmax1HotDx)
def _crossentropy_softmax_dx(op, in_types, out_types, name):
    code = _function(name, 3)
    tdy, tsm, tt = in_types
    dt = out_types[0].dtype
    nd = len(tt.shape)
    lead = nd - len(tdy.shape)
    for k in range(nd):
        _raise(code, f"i1.shape[{k}] != i2.shape[{k}]", "ValueError", "true_dist shape mismatch")
    for k, static in enumerate(tdy.shape):
        if static != 1:
            cond = f"i0.shape[{k}] != i2.shape[{lead + k}]"
            _raise(code, cond, "ValueError", "operands could not be broadcast together")
    code(f"kk = i1.shape[{nd}]")
    _new(code, "out", [f"i1.shape[{k}]" for k in range(nd + 1)], dt)
    idx = code.loops([f"i2.shape[{k}]" for k in range(nd)], "j")
    code(f"c = {cast_expr(f'i2[{_at(idx)}]', tt.dtype, 'int64')}")
    _raise(code, "c < 0 or c >= kk", "IndexError", "class index out of range")
    dy_idx = ["0" if s == 1 else idx[lead + k] for k, s in enumerate(tdy.shape)]
    code(f"g = {cast_expr(f'i0[{_at(dy_idx)}]', tdy.dtype, dt)}")
    with code.loop("r", "kk"):
        at = _at([*idx, "r"])
        code(f"p = {cast_expr(f'i1[{at}]', tsm.dtype, dt)}")
        code(f"out[{at}] = g * (p - {np_dtype(dt)}(1) if r == c else p)")
    return code.returning("out", nd)


@register_kernel(grad_ops.SumTo, may_return_view=True)
def _sum_to(op, in_types, out_types, name):
    code = _function(name, 2)
    dt = in_types[0].dtype
    ndg, ndo = len(in_types[0].shape), len(out_types[0].shape)
    lead = ndg - ndo
    dims = _read_shape_vector(code, "i1", ndo)
    for k, s in enumerate(dims):
        cond = f"{s} != 1 and i0.shape[{lead + k}] != {s}"
        _raise(code, cond, "ValueError", "cannot sum down to the shape")
    code(f"out = np.zeros({tuple_trailing(dims)}, dtype={np_dtype(dt)})")
    idx = code.loops([f"i0.shape[{k}]" for k in range(ndg)], "j")
    oidx = [f"0 if {s} == 1 else j{lead + k}" for k, s in enumerate(dims)]
    o = _at(oidx)
    if dt == "bool":
        code(f"out[{o}] = out[{o}] or i0[{_at(idx)}]")
    else:
        code(f"out[{o}] += i0[{_at(idx)}]")
    return code.returning("out", ndg)
