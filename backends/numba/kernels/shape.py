"""Kernels of the shape ops and constructors: Shape, ShapeI, MakeVector, Reshape, DimShuffle,
BroadcastTo, Join, Alloc, ARange, Eye; and CheckParameterValue, which returns its input."""

from __future__ import annotations

import numpy as np

from fusegraph.backends.numba import scalar_code
from fusegraph.backends.numba.codebuilder import tuple_trailing
from fusegraph.backends.numba.kernels.base import (
    _at,
    _check_size,
    _function,
    _new,
    _raise,
    _shape_vars,
    register_kernel,
)
from fusegraph.backends.numba.scalar_code import cast_expr, np_dtype
from fusegraph.ops import checks, creation, shape_ops

# ----------------------------------------------------------------------------------------
# shape ops


@register_kernel(shape_ops.Shape)
def _shape(op, in_types, out_types, name):
    code = _function(name, 1)
    nd = len(in_types[0].shape)
    _new(code, "out", [str(nd)], "int64")
    for k in range(nd):
        code(f"out[{k}] = i0.shape[{k}]")
    return code.returning("out")


@register_kernel(shape_ops.ShapeI)
def _shape_i(op, in_types, out_types, name):
    code = _function(name, 1)
    _new(code, "out", [], "int64")
    code(f"out[()] = i0.shape[{op.i}]", "return out")
    return code.text()


@register_kernel(shape_ops.MakeVector)
def _make_vector(op, in_types, out_types, name):
    code = _function(name, len(in_types))
    _new(code, "out", [str(len(in_types))], op.dtype)
    for k, t in enumerate(in_types):
        code(f"out[{k}] = {cast_expr(f'i{k}[()]', t.dtype, op.dtype)}")
    return code.returning("out")


def _read_shape_vector(code, arg, n):
    """Bind ``s0..`` to the entries of a shape vector input of static length ``n``."""
    _raise(code, f"{arg}.shape[0] != {n}", "ValueError", "the shape vector has the wrong length")
    names = [f"s{k}" for k in range(n)]
    for k, s in enumerate(names):
        code(f"{s} = np.int64({arg}[{k}])")
    return names


@register_kernel(shape_ops.Reshape, may_return_view=True)
def _reshape(op, in_types, out_types, name):
    code = _function(name, 2)
    dims = _read_shape_vector(code, "i1", op.ndim)
    # NumPy takes any negative entry as the unknown one (a test each, one raise)
    code("size = i0.size", "known = 1", "free = -1", "unknown = 0")
    for k, s in enumerate(dims):
        with code.block(f"if {s} < 0:"):
            code(f"free = {k}", "unknown += 1")
        with code.block("else:"):
            code(f"known *= {s}")
    _raise(code, "unknown > 1", "ValueError", "can only specify one unknown dimension")
    with code.block("if free >= 0:"):
        _raise(code, "known == 0 or size % known != 0", "ValueError", "cannot reshape")
        for k, s in enumerate(dims):
            code(f"{s} = size // known if free == {k} else {s}")
    with code.block("elif known != size:"):
        code('raise ValueError("cannot reshape array into the requested shape")')
    # a product that wrapped around int64 can equal the size: check the dims themselves
    itemsize = np.dtype(out_types[0].dtype).itemsize
    _check_size(code, dims, itemsize, "ValueError", "cannot reshape array into the requested shape")
    if op.ndim == 0:
        _new(code, "out", [], out_types[0].dtype)
        code("out[()] = c_view(as_c(i0), (1,))[0]", "return out")
    else:  # the checks above stand for reshape's, which Numba compiles per signature
        code(f"return c_view(as_c(i0), {tuple_trailing(dims)})")
    return code.text()


def _check_dropped(code, op):
    """ValueError unless the axes the DimShuffle ``op`` drops from ``i0`` have length 1."""
    for a in op.dropped:
        _raise(code, f"i0.shape[{a}] != 1", "ValueError", "cannot drop an axis of length != 1")


@register_kernel(shape_ops.DimShuffle, may_return_view=True)
def _dimshuffle(op, in_types, out_types, name):
    code = _function(name, 1)
    _check_dropped(code, op)
    kept = [a for a in op.new_order if a != "x"]
    perm = kept + list(op.dropped)
    y = "i0"
    if perm == list(reversed(range(op.input_ndim))) and op.input_ndim > 1:
        y = "i0.T"  # typed F-layout for a C input: BLAS takes it without a copy
    elif perm != list(range(op.input_ndim)):
        y = f"permuted(i0, {','.join(map(str, perm))!r})"
    items = ["None" if a == "x" else ":" for a in op.new_order] + ["0"] * len(op.dropped)
    if not out_types[0].shape:
        _new(code, "out", [], out_types[0].dtype)
        code(f"out[()] = {y}[{_at(items)}]", "return out")
    elif "x" in op.new_order or op.dropped:
        code(f"return {y}[{', '.join(items)}]")
    else:
        code(f"return {y}")
    return code.text()


def dimshuffle_c_view(op, in_types, out_types, name):
    """The kernel of a DimShuffle that only adds and drops length-1 axes (``keeps_order``)
    for a C-contiguous input (typed C): a view typed C, as a reshape is, so that the
    kernels reading it need no conversion."""
    code = _function(name, 1)
    _check_dropped(code, op)
    dims = ["1" if a == "x" else f"i0.shape[{a}]" for a in op.new_order]
    code(f"return c_view(i0, {tuple_trailing(dims)})")
    return code.text()


def keeps_order(op) -> bool:
    """Whether the DimShuffle ``op`` keeps its input's axes in order (it only adds and drops
    length-1 axes): of a C-contiguous array, its result is C-contiguous."""
    kept = [a for a in op.new_order if a != "x"]
    return kept == sorted(kept) and bool(op.new_order)


def _check_broadcast_to(code, src_ndim, dims, dtype):
    """ValueError unless an array ``i0`` of ``src_ndim`` dims broadcasts to ``dims``, and
    an array of ``dims`` and ``dtype`` could exist."""
    lead = len(dims) - src_ndim
    for s in dims:
        _raise(code, f"{s} < 0", "ValueError", "negative dimensions are not allowed")
    for k in range(src_ndim):
        d = dims[lead + k]
        cond = f"i0.shape[{k}] != 1 and i0.shape[{k}] != {d}"
        _raise(code, cond, "ValueError", "operands could not be broadcast to the shape")
    _check_size(code, dims, np.dtype(dtype).itemsize, "ValueError", "array is too big")


@register_kernel(shape_ops.BroadcastTo, may_return_view=True)
def _broadcast_to(op, in_types, out_types, name):
    code = _function(name, 2)
    dims = _read_shape_vector(code, "i1", len(out_types[0].shape))
    _check_broadcast_to(code, len(in_types[0].shape), dims, in_types[0].dtype)
    if not in_types[0].shape:
        code(f"return np.full({tuple_trailing(dims)}, i0[()], dtype={np_dtype(in_types[0].dtype)})")
    else:
        code(f"return np.broadcast_to(i0, {tuple_trailing(dims)})")
    return code.text()


@register_kernel(shape_ops.Join)
def _join(op, in_types, out_types, name):
    code = _function(name, len(in_types))
    nd, ax = len(out_types[0].shape), op.axis
    dims = _shape_vars(code, "i0", "n", nd)
    code(f"total = n{ax}")
    for k in range(1, len(in_types)):
        for d in range(nd):
            if d != ax:
                cond = f"i{k}.shape[{d}] != n{d}"
                _raise(code, cond, "ValueError", "input array dimensions must match")
        code(f"total += i{k}.shape[{ax}]")
    dims[ax] = "total"
    _new(code, "out", dims, out_types[0].dtype)
    code("start = 0")
    # Explicit loops: a slice assignment compiles Numba's broadcasting and overlap checks,
    # about 0.4 s for each input.
    for k in range(len(in_types)):
        idx = code.loops([f"i{k}.shape[{d}]" for d in range(nd)], "j")
        dst = [f"start + j{d}" if d == ax else f"j{d}" for d in range(nd)]
        code(f"out[{_at(dst)}] = i{k}[{_at(idx)}]")
        code.dedent(nd)
        code(f"start += i{k}.shape[{ax}]")
    return code.returning("out")


# ----------------------------------------------------------------------------------------
# creation


@register_kernel(creation.Alloc)
def _alloc(op, in_types, out_types, name):
    code = _function(name, 2)
    out = out_types[0]
    dims = _read_shape_vector(code, "i1", len(out.shape))
    src_nd = len(in_types[0].shape)
    _check_broadcast_to(code, src_nd, dims, out.dtype)
    _new(code, "out", dims, out.dtype)
    if src_nd == 0:
        code("v = i0[()]")
    idx = code.loops(dims, "j")
    lead = len(dims) - src_nd
    src = [f"0 if i0.shape[{k}] == 1 else j{lead + k}" for k in range(src_nd)]
    code(f"out[{_at(idx)}] = " + ("v" if src_nd == 0 else f"i0[{_at(src)}]"))
    return code.returning("out", len(dims))


@register_kernel(creation.ARange)
def _arange(op, in_types, out_types, name):
    # NumPy: length = ceil((stop - start) / step), out[0] = start, out[1] = start + step (both
    # cast to dtype), then out[i] = out[0] + i * (out[1] - out[0]) in dtype.
    code = _function(name, 3)
    dt = op.dtype
    for k, v in enumerate(("start", "stop", "step")):
        t = in_types[k].dtype
        code(f"{v} = " + (f"np.int64(i{k}[()])" if t == "bool" else f"i{k}[()]"))
    _raise(code, "step == 0", "ZeroDivisionError", "division by zero")
    if all(t.dtype == "bool" or t.dtype.startswith("int") for t in in_types):
        # stop - start may not fit in int64; its magnitude does in uint64 (NumPy computes
        # it with Python ints)
        code(
            "up = stop >= start",
            "lo, hi = (start, stop) if up else (stop, start)",
            "span = np.float64(np.uint64(hi) - np.uint64(lo))",
            "q = (span if up else -span) / step",
        )
    else:
        code("q = (stop - start) / step")
    _raise(code, "not math.isfinite(q)", "ValueError", "arange: cannot compute the length")
    _raise(code, "q > 9.2e18", "ValueError", "Maximum allowed size exceeded")
    code("n = max(0, int(math.ceil(q)))")
    _new(code, "out", ["n"], dt)
    if dt == "bool":
        _raise(code, "n > 2", "TypeError", "arange() of booleans has at most length 2")
    src = scalar_code.as_dtype(np.result_type(*(t.dtype for t in in_types)))
    first = cast_expr("start", src, dt)
    second = cast_expr("(start + step)", src, dt)
    with code.block("if n > 0:"):
        code(f"out[0] = {first}")
    with code.block("if n > 1:"):
        code(f"out[1] = {second}")
    if dt != "bool":
        code("delta = out[1] - out[0] if n > 1 else out[0]")
        with code.loop("i", "2, n"):
            code(f"out[i] = out[0] + {np_dtype(dt)}(i) * delta")
    return code.returning("out")


@register_kernel(creation.Eye)
def _eye(op, in_types, out_types, name):
    code = _function(name, 3)
    code("n = np.int64(i0[()])", "m = np.int64(i1[()])", "k = np.int64(i2[()])")
    _raise(code, "n < 0 or m < 0", "ValueError", "negative dimensions are not allowed")
    code(f"out = np.zeros((n, m), dtype={np_dtype(op.dtype)})")
    with code.loop("i", "max(0, -k), min(n, m - k)"):
        code(f"out[i, i + k] = {np_dtype(op.dtype)}(1)")
    return code.returning("out")


@register_kernel(checks.CheckParameterValue, may_return_view=True)
def _check_parameter_value(op, in_types, out_types, name):
    code = _function(name, len(in_types))
    for k in range(1, len(in_types)):
        with code.block(f"for ok in i{k}.flat:"):
            with code.block("if not ok:"):
                code(f"raise ValueError({op.message!r})")
    code("return i0")
    return code.text()
