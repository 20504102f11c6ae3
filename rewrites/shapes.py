"""Symbolic shapes for rewrites: each dim of a variable is a known int or a symbol that
stands for an unknown length, and two equal symbols are provably equal lengths.

A symbol is ``(weakref to a variable, axis)``: the length of that axis of that variable
(weak, so the cache of dims never keeps a graph alive). Dims flow
through ops that preserve or move them (elementwise broadcasting, dimshuffle, reductions,
reshape/alloc/broadcast_to from a shape vector built of ``x.shape`` entries, dot ...), so
``same_shape(g, x)`` can prove that a gradient needs no ``SumTo``.
"""

from __future__ import annotations

import weakref

from fusegraph.graph import Constant, Variable, static_value
from fusegraph.ops.creation import Alloc
from fusegraph.ops.elemwise import Elemwise
from fusegraph.ops.grad_ops import SumTo
from fusegraph.ops.indexing import IncSubtensor, Subtensor
from fusegraph.ops.linalg import Dot, MatMul
from fusegraph.ops.nn import CrossentropyCategorical1Hot, LogSoftmax, Softmax
from fusegraph.ops.reduction import Reduce
from fusegraph.ops.shape_ops import BroadcastTo, DimShuffle, MakeVector, Reshape, Shape, ShapeI

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def dims(var: Variable) -> tuple:
    """Per dim of ``var``: its length if known, else a symbol for it."""
    cached = _CACHE.get(var)
    if cached is None:
        cached = _infer(var)
        _CACHE[var] = cached
    return cached


def same_shape(a: Variable, b: Variable) -> bool:
    """True if ``a`` and ``b`` provably have the same shape at run time."""
    return a.ndim == b.ndim and dims(a) == dims(b)


def _symbol(var, axis):
    return (weakref.ref(var), axis)


def symbol_source(dim):
    """For a symbol: ``(variable, axis)`` whose length it is; None for known lengths or a
    variable that no longer exists."""
    if isinstance(dim, tuple):
        var, axis = dim[0](), dim[1]
    else:
        return None
    return None if var is None else (var, axis)


def _own(var):
    return tuple(d if d is not None else _symbol(var, i) for i, d in enumerate(var.type.shape))


def _merge_static(var, inferred):
    """Prefer the static shape where it is known."""
    return tuple(s if s is not None else d for s, d in zip(var.type.shape, inferred))


def _infer(var: Variable) -> tuple:
    node = var.owner
    if node is None or len(node.outputs) != 1:
        return _own(var)
    # A deep chain would recurse once per node; graphs that deep keep their own symbols.
    rule = _RULES.get(type(node.op))
    if rule is None:
        if getattr(node.op, "forward_identity", False) or type(node.op) in _SAME:
            return _merge_static(var, dims(node.inputs[0]))
        return _own(var)
    try:
        inferred = rule(node, var)
    except RecursionError:
        return _own(var)
    return _merge_static(var, inferred) if inferred is not None else _own(var)


_SAME = {Softmax, LogSoftmax, IncSubtensor}


def _elemwise(node, var):
    """Elementwise ops broadcast only dims of static length 1: the other dims of an axis
    are equal at run time (``types.check_no_runtime_broadcast``), so any one of them names
    the axis. The first in input order does, a known length before all."""
    out = []
    ndim = var.ndim
    aligned = [(1,) * (ndim - x.ndim) + dims(x) for x in node.inputs]
    for axis in range(ndim):
        ds = [a[axis] for a in aligned if a[axis] != 1]
        known = [d for d in ds if isinstance(d, int)]
        out.append(known[0] if known else ds[0] if ds else 1)
    return tuple(out)


def _dimshuffle(node, var):
    src = dims(node.inputs[0])
    return tuple(1 if a == "x" else src[a] for a in node.op.new_order)


def _reduce(node, var):
    src = dims(node.inputs[0])
    axes = node.op.axis
    if node.op.keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(src))
    return tuple(d for i, d in enumerate(src) if i not in axes)


def shape_entries(vec: Variable, length: int) -> tuple:
    """The dims a shape vector stands for: ints where known, the symbol of ``x.shape[i]``
    where an entry is one, else None."""
    value = static_value(vec)
    if value is not None:
        return tuple(int(v) for v in value)
    op = None if vec.owner is None else vec.owner.op
    if isinstance(op, Shape):
        return dims(vec.owner.inputs[0])
    if isinstance(op, MakeVector):
        return tuple(scalar_dim(s) for s in vec.owner.inputs)
    return (None,) * length


def scalar_dim(s: Variable):
    """The dim a 0-d integer stands for: its value if constant, the symbol of ``x.shape[i]``
    where it is one (``ShapeI`` or an index into ``Shape``), else None."""
    if isinstance(s, Constant):
        return int(s.data)
    node = s.owner
    if node is not None and isinstance(node.op, ShapeI):
        return dims(node.inputs[0])[node.op.i]
    if node is not None and isinstance(node.op, Subtensor):
        # ``x.shape[k]`` as user code writes it: an integer index into a Shape.
        idx, src = node.op.idx, node.inputs[0].owner
        if src is not None and isinstance(src.op, Shape) and len(idx) == 1:
            kind, k = idx[0][0], idx[0][-1]
            x = src.inputs[0]
            if kind == "int" and isinstance(k, int) and -x.ndim <= k < x.ndim:
                return dims(x)[k]
    return None


def _from_shape_vector(node, var):
    entries = shape_entries(node.inputs[-1], var.ndim)
    if len(entries) != var.ndim:
        return None
    return tuple(
        _symbol(var, i) if e is None or (isinstance(e, int) and e < 0) else e
        for i, e in enumerate(entries)
    )


def _dot(node, var):
    a, b = (dims(x) for x in node.inputs)
    if not a or not b:
        return a or b
    return a[:-1] + (b[:-2] + b[-1:] if len(b) >= 2 else ())


def _matmul(node, var):
    a, b = (dims(x) for x in node.inputs)
    if len(a) > 2 or len(b) > 2:
        return None  # batch dims broadcast: keep the result's own symbols
    return a[:-1] + b[1:]


def _second_input(node, var):
    return dims(node.inputs[1])


#: op class -> the rule giving its output's dims (exact classes: a subclass may differ)
_RULES = {
    Elemwise: _elemwise,
    DimShuffle: _dimshuffle,
    Reduce: _reduce,
    Reshape: _from_shape_vector,
    BroadcastTo: _from_shape_vector,
    Alloc: _from_shape_vector,
    SumTo: _from_shape_vector,
    Dot: _dot,
    MatMul: _matmul,
    # one loss per row: the shape of the class indices (checked against the rows)
    CrossentropyCategorical1Hot: _second_input,
}
