"""The ``canonicalize`` rule set: algebraic identities (``x * 1``, ``--x`` ...), shape-op
cleanups (dimshuffle, reshape, broadcast, cast chains) and the reductions and ``SumTo``
nodes that gradients of broadcasting leave behind where shapes prove them useless.

Every rule keeps its variable's dtype and every statically known dim (``keeps_type``).
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from fusegraph.graph import Constant, Op, as_tensor, constant, static_value
from fusegraph.ops.checks import CheckParameterValue
from fusegraph.ops.creation import Alloc
from fusegraph.ops.elemwise import Elemwise, add, cast, lt, maximum, mul
from fusegraph.ops.grad_ops import SumTo
from fusegraph.ops.indexing import Subtensor, getitem
from fusegraph.ops.reduction import Reduce
from fusegraph.ops.shape_ops import (
    BroadcastTo,
    DimShuffle,
    MakeVector,
    Reshape,
    Shape,
    ShapeI,
    dimshuffle,
    shape_i,
)
from fusegraph.rewrites.engine import Pattern, RuleSet, keeps_type
from fusegraph.rewrites.patterns import elemwise
from fusegraph.rewrites.shapes import dims, same_shape, shape_entries, symbol_source
from fusegraph.types import is_float, is_int

canonicalize = RuleSet("canonicalize")

_BROADCASTS = (BroadcastTo, Alloc)
_FILL_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# --------------------------------------------------------------------------- helpers


def _checked(node, new):
    """``new`` if it may replace ``node``'s output, else None."""
    return new if new is not None and keeps_type(node.outputs[0], new) else None


def _uniform(const: Constant):
    """The value all elements of a non-empty constant share, else None (cached)."""
    if const in _FILL_CACHE:
        return _FILL_CACHE[const]
    data = const.data
    value = None
    if data.size:
        first = data.flat[0]
        if data.size == 1 or bool(np.all(data == first)):
            value = first
    _FILL_CACHE[const] = value
    return value


def fill_value(var):
    """The value every element of ``var`` has when it is known while building (a constant,
    or a dimshuffle / broadcast / alloc of one), else None."""
    while var.owner is not None and isinstance(var.owner.op, (DimShuffle, *_BROADCASTS)):
        var = var.owner.inputs[0]
    return _uniform(var) if isinstance(var, Constant) else None


def _is_fill(var, value) -> bool:
    found = fill_value(var)
    return found is not None and not np.isnan(found) and found == value


def _as_output(node, x):
    """``x`` cast to the dtype of ``node``'s output, if it provably has its shape."""
    out = node.outputs[0]
    if not same_shape(out, x):
        return None
    return _checked(node, cast(x, out.dtype))


def _identity_operand(node, x, neutral, value):
    """``x`` (as the output) when ``neutral`` is filled with ``value`` (op(x, value) == x)."""
    return _as_output(node, x) if _is_fill(neutral, value) else None


def _either_operand(node, a, b, value):
    """``_identity_operand`` for a commutative op: ``a`` if ``b`` is neutral, else ``b``."""
    found = _identity_operand(node, a, b, value)
    return found if found is not None else _identity_operand(node, b, a, value)


def shape_entry(vec, axis: int):
    """Entry ``axis`` of the int shape vector ``vec`` as a 0-d int64 variable, built from
    what ``vec`` is made of (a constant, ``x.shape`` or a ``MakeVector``) when possible."""
    value = static_value(vec)
    if value is not None:
        return constant(int(np.asarray(value)[axis]), "int64")
    owner = vec.owner
    if owner is not None and isinstance(owner.op, MakeVector):
        return cast(owner.inputs[axis], "int64")
    if owner is not None and isinstance(owner.op, Shape):
        return shape_i(owner.inputs[0], axis)
    return getitem(vec, axis)


def _shape_vector(vec, axes):
    """The entries ``axes`` of the shape vector ``vec``, as a new shape vector."""
    value = static_value(vec)
    if value is not None:
        return constant(np.asarray(value, "int64")[list(axes)], "int64")
    if not axes:
        return constant(np.zeros(0, "int64"))
    return MakeVector("int64")(*(shape_entry(vec, a) for a in axes))


def _count(vec, axes, dtype):
    """The product of entries ``axes`` of shape vector ``vec``, as a 0-d ``dtype``."""
    known, parts = 1, []
    for a in axes:
        entry = shape_entry(vec, a)
        if isinstance(entry, Constant):
            known *= int(entry.data)
        else:
            parts.append(entry)
    total = constant(known, "int64") if known != 1 or not parts else None
    for p in parts:
        total = p if total is None else mul(total, p)
    return cast(total, dtype)


def _size_guard(count, vec, ndim, dtype):
    """``count``, checked at run time (when some entry of the shape vector ``vec`` is not
    static) as the broadcast it replaces was: ValueError when an array of that shape would
    hold 2**62 bytes or more (its product in float64, which cannot wrap around, with a
    margin for rounding) -- a count that wrapped around would give a wrong sum."""
    entries = shape_entries(vec, ndim)
    if None not in entries:
        return count  # static dims were checked when the broadcast's type was made
    known = math.prod(e or 1 for e in entries if e is not None)
    nbytes = constant(float(np.dtype(dtype).itemsize * known))
    for a, e in enumerate(entries):
        if e is None:
            nbytes = mul(nbytes, maximum(cast(shape_entry(vec, a), "float64"), 1.0))
    return CheckParameterValue("array is too big")(count, lt(nbytes, 2.0**62))


def _drop_axes(x, axes):
    """``x`` without its length-1 ``axes``."""
    return dimshuffle(x, tuple(a for a in range(x.ndim) if a not in axes))


def _keep_axes(x, axes, ndim):
    """``x`` with length-1 axes inserted at the positions ``axes`` of an ``ndim``-d result."""
    rest = iter(range(x.ndim))
    return dimshuffle(x, tuple("x" if a in axes else next(rest) for a in range(ndim)))


# --------------------------------------------------------------------------- arithmetic


@canonicalize.rule(elemwise("mul", "a", "b"))
def mul_by_one(node, a, b):
    """``x * 1 -> x`` (cast to the product's dtype) where the product has x's shape: the
    1 may be any constant, ones_like or broadcast of ones; multiplying by one is exact."""
    return _either_operand(node, a, b, 1)


@canonicalize.rule(elemwise("add", "a", "b"))
def add_zero(node, a, b):
    """``x + 0 -> x`` (cast to the sum's dtype) where the sum has x's shape; exact except
    that ``-0.0 + 0.0`` is ``+0.0`` (equal as numbers; accepted, as in Theano)."""
    return _either_operand(node, a, b, 0)


@canonicalize.rule(elemwise("sub", "x", "zero"))
def sub_zero(node, x, zero):
    """``x - 0 -> x`` (cast to the difference's dtype) where the difference has x's shape."""
    return _identity_operand(node, x, zero, 0)


@canonicalize.rule(elemwise("true_div", "x", "one"))
def div_by_one(node, x, one):
    """``x / 1 -> x`` cast to the quotient's float dtype (the conversion true_div does
    anyway; dividing by one is exact) where the quotient has x's shape."""
    return _identity_operand(node, x, one, 1)


@canonicalize.rule(elemwise("pow", "x", "one"))
def pow_one(node, x, one):
    """``x ** 1 -> x`` (cast to the power's dtype) where the power has x's shape."""
    return _identity_operand(node, x, one, 1)


@canonicalize.rule(elemwise("neg", elemwise("neg", "x")))
def neg_neg(node, x):
    """``-(-x) -> x``: negation is its own inverse (also for wrapping integers)."""
    return _checked(node, x)


def _finite(var) -> bool:
    """True if every element of ``var`` is provably finite: an integer or bool tensor, a
    finite constant, or a cast of an integer to float (int64's range fits in float32's)."""
    if not is_float(var.dtype):
        return True
    if isinstance(var, Constant):
        return bool(np.isfinite(var.data).all())
    owner = var.owner
    return (
        owner is not None
        and isinstance(owner.op, Elemwise)
        and owner.op.scalar_op.name == "cast"
        and not is_float(owner.inputs[0].dtype)
    )


@canonicalize.rule(elemwise("mul", "a", "b"))
def mul_by_zero(node, a, b):
    """``x * 0 -> zeros`` only where ``x`` is provably finite (integer or bool, or cast
    from one): for a float ``x``, ``inf * 0`` and ``nan * 0`` are nan, so it stays. The
    sign of a zero may change (``-3 * 0.0`` is ``-0.0``; equal as numbers)."""
    out = node.outputs[0]
    for x, zero in ((a, b), (b, a)):
        if not _is_fill(zero, 0) or not _finite(x):
            continue
        if out.ndim == 0:
            return _checked(node, constant(0, out.dtype))
        for ref in (x, zero):
            if same_shape(out, ref):
                return _checked(node, Alloc()(constant(0, out.dtype), Shape()(ref)))
    return None


def _term(var):
    """``(coefficient, base)`` of a term ``c * base`` with a float constant ``c`` of one
    element, or ``(None, var)`` for a bare term (coefficient 1)."""
    node = var.owner
    if node is not None and isinstance(node.op, Elemwise) and node.op.scalar_op.name == "mul":
        for c, base in (node.inputs, node.inputs[::-1]):
            if isinstance(c, Constant) and c.data.size == 1 and is_float(c.dtype):
                return c, base
    return None, var


def _positive(c) -> int:
    """+1 or -1 if the coefficient (None means 1) is finite and of that sign, else 0."""
    if c is None:
        return 1
    v = float(c.data.reshape(-1)[0])
    return 0 if not math.isfinite(v) or v == 0 else (1 if v > 0 else -1)


@canonicalize.rule(elemwise("add", "left", "right"))
def add_like_terms(node, left, right):
    """``a*x + b*x -> (a+b)*x`` (also ``a*x + x``, ``x + x``) for float results with float
    constants ``a``, ``b`` of one element and of the same sign: without cancellation in
    ``a+b`` the result differs by rounding only, and it overflows exactly when the
    original does. Integer sums, symbolic or opposite-sign coefficients are left alone."""
    out = node.outputs[0]
    if not is_float(out.dtype):
        return None
    (ca, xa), (cb, xb) = _term(left), _term(right)
    if xa is not xb:
        return None
    sign = _positive(ca)
    if sign == 0 or sign != _positive(cb):
        return None
    one = constant(1.0, out.dtype)
    new = mul(add(ca if ca is not None else one, cb if cb is not None else one), xa)
    return _checked(node, new) if same_shape(new, out) else None


# --------------------------------------------------------------------------- casts


@canonicalize.rule(elemwise("cast", "x"))
def useless_cast(node, x):
    """``cast(x, x.dtype) -> x``: the conversion does nothing."""
    return x if x.dtype == node.outputs[0].dtype else None


def _exact_cast(src: str, dst: str) -> bool:
    """True if converting any ``src`` value to ``dst`` is exact (NumPy's "safe" casting
    is not: int64 to float64 rounds above 2**53)."""
    if src == "bool" or src == dst:
        return True
    if not np.can_cast(src, dst, "safe"):
        return False
    if is_float(src) or not is_float(dst):
        return True
    info = np.iinfo(src)
    return info.bits - (info.min < 0) <= np.finfo(dst).nmant + 1


@canonicalize.rule(elemwise("cast", elemwise("cast", "x")))
def cast_of_lossless_cast(node, x):
    """``cast(cast(x, a), b) -> cast(x, b)`` when every x converts to ``a`` exactly, so
    the second cast sees x's values; not when ``a`` is a float and ``b`` an integer
    (float-to-int conversion out of range is undefined, int-to-int wraps)."""
    mid, out = node.inputs[0], node.outputs[0]
    if not _exact_cast(x.dtype, mid.dtype) or (is_float(mid.dtype) and is_int(out.dtype)):
        return None
    return _checked(node, cast(x, out.dtype))


@canonicalize.rule(Pattern(CheckParameterValue))
def check_that_holds(node):
    """``check_parameter(x, c) -> x`` when every condition is a constant that holds (a
    constant that fails stays, to raise when run)."""
    conditions = node.inputs[1:]
    if all(isinstance(c, Constant) and bool(np.all(c.data)) for c in conditions):
        return node.inputs[0]
    return None


# --------------------------------------------------------------------------- dimshuffle


@canonicalize.rule(Pattern(DimShuffle))
def useless_dimshuffle(node):
    """A dimshuffle that keeps every axis in place is its input."""
    op = node.op
    return node.inputs[0] if op.new_order == tuple(range(op.input_ndim)) else None


@canonicalize.rule(Pattern(DimShuffle, (Pattern(DimShuffle, ("x",)),)))
def dimshuffle_of_dimshuffle(node, x):
    """Two dimshuffles compose into one (or none if the composition is the identity);
    axes the outer one drops had length 1, so the inner input's axis had length 1 too."""
    inner = node.inputs[0].owner.op.new_order
    order = tuple("x" if a == "x" else inner[a] for a in node.op.new_order)
    return _checked(node, dimshuffle(x, order))


@canonicalize.rule(Pattern(DimShuffle, (Pattern(Reduce, ("x",)),)))
def dimshuffle_of_keepdims_reduce(node, x):
    """``dimshuffle(reduce(x, axes, keepdims=True))`` reduces without keepdims and
    shuffles the rest: the kept length-1 axes need not exist (the bias gradient's
    ``sum(g, 0, keepdims=True).dimshuffle(1)`` becomes ``sum(g, 0)``)."""
    op = node.inputs[0].owner.op
    if not op.keepdims:
        return None
    axes = op.axis
    order = []
    for a in node.op.new_order:
        if a == "x" or a in axes:
            order.append("x")
        else:
            order.append(a - sum(1 for r in axes if r < a))
    reduced = Reduce(op.kind, axes, False)(x)
    return _checked(node, dimshuffle(reduced, tuple(order)))


# --------------------------------------------------------------------------- reshape


@canonicalize.rule(Pattern(Reshape, (Pattern(Reshape, ("x", "inner")), "shape")))
def reshape_of_reshape(node, x, inner, shape):
    """``reshape(reshape(x, s1), s2) -> reshape(x, s2)``: both keep the element order."""
    return _checked(node, Reshape(node.op.ndim)(x, shape))


@canonicalize.rule(Pattern(Reshape, ("x", "shape")))
def useless_reshape(node, x, shape):
    """A reshape to the shape ``x`` provably has is ``x``; one entry may be -1 when the
    others are known positive ints (so the -1 resolves to x's own dim)."""
    if x.ndim != node.op.ndim:
        return None
    entries, own = shape_entries(shape, x.ndim), dims(x)
    wild = [i for i, e in enumerate(entries) if e == -1]
    if len(wild) > 1:
        return None
    for i, (e, d) in enumerate(zip(entries, own)):
        if i in wild:
            continue
        if e is None or e != d or (wild and not (isinstance(e, int) and e > 0)):
            return None
    return _checked(node, x)


# --------------------------------------------------------------------------- broadcasts


@canonicalize.rule(Pattern(_BROADCASTS, ("x", "shape")))
def useless_broadcast(node, x, shape):
    """``broadcast_to(x, s)`` or ``alloc(x, s)`` where ``x`` provably has shape ``s`` is
    ``x`` (graphs never write into values, so the copy alloc makes is not needed)."""
    out = node.outputs[0]
    return _checked(node, x) if same_shape(x, out) else None


@canonicalize.rule(Pattern(_BROADCASTS, (Pattern(_BROADCASTS, ("x", "inner")), "shape")))
def broadcast_of_broadcast(node, x, inner, shape):
    """Broadcasting a broadcast of ``x`` is broadcasting ``x`` (broadcasting is
    transitive; the values are the same)."""
    return _checked(node, type(node.op)()(x, shape))


@canonicalize.rule(Pattern(DimShuffle, (Pattern(_BROADCASTS, ("x", "shape")),)))
def dimshuffle_of_broadcast(node, x, shape):
    """``broadcast_to(x, s).dimshuffle(order)`` is ``broadcast_to(x', s')`` with ``x'``
    (``x`` aligned to ``s``) and ``s`` reordered alike, 1 for each ``'x'``: the broadcast
    moves outward, past ``expand_dims``/transposes, to the elementwise consumer that can
    drop it (the gradient of a mean feeding ``g[:, None] * ...``)."""
    order = node.op.new_order
    ndim = node.op.input_ndim
    if sorted(a for a in order if a != "x") != list(range(ndim)):
        return None  # drops an axis
    aligned = dimshuffle(x, ("x",) * (ndim - x.ndim) + tuple(range(x.ndim)))
    one = constant(1, "int64")
    vec = MakeVector("int64")(*(one if a == "x" else shape_entry(shape, a) for a in order))
    return _checked(node, type(node.inputs[0].owner.op)()(dimshuffle(aligned, order), vec))


def _aligned(var, ndim):
    """``dims(var)`` padded on the left with 1s to ``ndim`` dims (NumPy's alignment)."""
    return (1,) * (ndim - var.ndim) + dims(var)


def _supplied(var, x, others, ndim) -> bool:
    """True if each dim that broadcasting ``x`` to ``var`` gives is 1, already x's, or
    provably another operand's, so the elementwise result keeps its shape without it; and
    each dim of ``x`` is 1 or the broadcast one (the elementwise op broadcasts only dims of
    static length 1, where ``broadcast_to`` also broadcasts unknown dims that are 1)."""
    full, own = _aligned(var, ndim), _aligned(x, ndim)
    rest = [_aligned(u, ndim) for u in others]
    return all(
        (d == 1 or d == own[k] or any(r[k] == d for r in rest)) and own[k] in (1, d)
        for k, d in enumerate(full)
    )


@canonicalize.rule(Pattern(Elemwise))
def elemwise_drop_broadcast(node):
    """An elementwise input ``broadcast_to(x, s)`` (or ``alloc``) is replaced by ``x``
    when each dim of ``s`` is 1, x's own, or provably another input's (``ones_like(m) *
    g``, ``m - full(m.shape, v)``, gradients of means and sums): the result's shape and
    values are the same."""
    out = node.outputs[0]
    for k, var in enumerate(node.inputs):
        if var.owner is None or not isinstance(var.owner.op, _BROADCASTS):
            continue
        x = var.owner.inputs[0]
        others = node.inputs[:k] + node.inputs[k + 1 :]
        if _supplied(var, x, others, out.ndim):
            new = node.op(*node.inputs[:k], x, *node.inputs[k + 1 :])
            if keeps_type(out, new):
                return new
    return None


@canonicalize.rule(Pattern(Elemwise))
def elemwise_lift_broadcast(node):
    """``f(broadcast_to(x, s), c) -> broadcast_to(f(x, c), s)`` where every other input
    has only length-1 dims: the function runs on the small ``x`` (and folds to a constant
    when ``x`` and ``c`` are constants)."""
    out = node.outputs[0]
    broadcasts = [v for v in node.inputs if v.owner is not None and v.ndim == out.ndim]
    broadcasts = [v for v in broadcasts if isinstance(v.owner.op, _BROADCASTS)]
    if not broadcasts or any(
        v.owner.inputs[1] is not broadcasts[0].owner.inputs[1] for v in broadcasts
    ):
        return None
    small = []
    for var in node.inputs:
        if var in broadcasts:
            small.append(var.owner.inputs[0])
        elif all(d == 1 for d in dims(var)):
            small.append(var)
        else:
            return None
    vec = broadcasts[0].owner.inputs[1]
    return _checked(node, BroadcastTo()(node.op(*small), vec))


def _expanded_scalar(var):
    """The 0-d variable that ``var`` (all of whose dims are length 1) holds: the input of
    a dimshuffle that only adds axes, the value of a constant, or None."""
    if var.ndim == 0:
        return var
    if isinstance(var, Constant) and var.data.size == 1:
        return constant(var.data.reshape(()), var.dtype)
    node = var.owner
    if node is not None and isinstance(node.op, DimShuffle) and node.inputs[0].ndim == 0:
        return node.inputs[0]
    return None


@canonicalize.rule(Pattern(Elemwise))
def elemwise_of_expanded_scalars(node):
    """``f(s[None, None], 2.0) -> f(s, 2.0)[None, None]``: an elementwise op on scalars
    given extra length-1 axes runs on the scalars, so that it joins their scalar
    arithmetic (the ``-1 / n`` of a mean's gradient) instead of being a node of its own."""
    out = node.outputs[0]
    if out.ndim == 0 or any(d != 1 for d in out.type.shape):
        return None
    scalars = [_expanded_scalar(v) for v in node.inputs]
    if any(s is None for s in scalars) or all(isinstance(s, Constant) for s in scalars):
        return None
    return _checked(node, dimshuffle(node.op(*scalars), ("x",) * out.ndim))


@canonicalize.rule(Pattern(Elemwise))
def elemwise_drop_leading_axes(node):
    """An elementwise input that a dimshuffle only gives leading length-1 axes is read
    without them (elementwise ops align inputs on the right, as NumPy), when another
    input has the result's ndim: ``x + s[None, None]`` is ``x + s``."""
    out = node.outputs[0]
    for k, var in enumerate(node.inputs):
        owner = var.owner
        if owner is None or not isinstance(owner.op, DimShuffle):
            continue
        x = owner.inputs[0]
        added = var.ndim - x.ndim
        if owner.op.new_order != ("x",) * added + tuple(range(x.ndim)):
            continue
        others = node.inputs[:k] + node.inputs[k + 1 :]
        if not any(v.ndim == out.ndim for v in others):
            continue
        new = node.op(*node.inputs[:k], x, *node.inputs[k + 1 :])
        if keeps_type(out, new):
            return new
    return None


# --------------------------------------------------------------------------- reductions


@canonicalize.rule(Pattern(Reduce, (Pattern(_BROADCASTS, ("x", "shape")),)))
def sum_of_broadcast(node, x, shape):
    """``sum(broadcast_to(x, s), axes)``: the axes the broadcast added count instead of
    summing (``sum(broadcast_to(c, s)) -> c * prod(s)``), x's own axes are summed on x.
    Only where the count is provably nonzero or the factor finite (``inf * 0`` is nan,
    a sum over nothing is 0). Exact for ints (they wrap alike); for floats ``c * n`` is
    the correctly rounded sum."""
    op, bc = node.op, node.inputs[0]
    if op.kind != "sum" or not op.axis:
        return None
    out, lead = node.outputs[0], bc.ndim - x.ndim
    entries, own_dims = shape_entries(shape, bc.ndim), dims(x)
    counted, own = [], []
    for a in op.axis:
        d = own_dims[a - lead] if a >= lead else None
        if a < lead or (d == 1 and entries[a] != 1):
            counted.append(a)
        elif entries[a] is not None and d == entries[a]:
            own.append(a - lead)
        else:  # x may or may not be broadcast along it: decided at run time
            return None
    nonzero = all(isinstance(entries[a], int) and entries[a] > 0 for a in counted)
    finite = _finite(x) and not (own and is_float(out.dtype))  # a float sum may overflow
    if not (nonzero or finite):
        return None
    y = Reduce("sum", tuple(own), True)(x) if own else x
    y = _drop_axes(cast(y, out.dtype), [a - lead for a in op.axis if a >= lead])
    kept = [a for a in range(bc.ndim) if a not in op.axis]
    target = tuple(entries[a] for a in kept)
    if None in target or dims(y) != target:
        y = BroadcastTo()(y, _shape_vector(shape, kept))
    if counted:
        y = mul(y, _size_guard(_count(shape, counted, out.dtype), shape, bc.ndim, bc.dtype))
    if op.keepdims:
        y = _keep_axes(y, op.axis, bc.ndim)
    return _checked(node, y)


@canonicalize.rule(Pattern(Reduce, ("x",)))
def reduce_over_length_one_axes(node, x):
    """A reduction over axes of length 1 (or over no axis) only converts each element:
    the sum, product, mean, max or min of one element is it (cast to the result's
    dtype; ``all``/``any`` give its truth value)."""
    op = node.op
    own = dims(x)
    if any(own[a] != 1 for a in op.axis):
        return None
    y = cast(x, node.outputs[0].dtype)
    return _checked(node, y if op.keepdims else _drop_axes(y, op.axis))


@canonicalize.rule(Pattern(SumTo, ("g", "shape")))
def sum_to_same_shape(node, g, shape):
    """``SumTo(g, x.shape) -> g`` where ``g`` provably has x's shape (nothing was
    broadcast, so nothing is summed)."""
    return _checked(node, g) if same_shape(g, node.outputs[0]) else None


@canonicalize.rule(Pattern(SumTo, ("g", "shape")))
def sum_to_static_axes(node, g, shape):
    """``SumTo(g, s)`` where each target dim is provably either 1 (sum that axis, with
    the leading axes g has beyond s) or g's own dim (keep it) becomes a plain sum and
    dimshuffle, cast back to g's dtype (int sums wrap alike)."""
    out = node.outputs[0]
    lead = g.ndim - out.ndim
    entries, own = shape_entries(shape, out.ndim), dims(g)
    axes = list(range(lead))
    for i, e in enumerate(entries):
        d = own[lead + i]
        if e == 1 and d != 1:
            axes.append(lead + i)
        elif e is None or e != d:
            return None
    if not axes:
        return _checked(node, g)
    y = cast(Reduce("sum", tuple(axes), True)(g), g.dtype)
    return _checked(node, _drop_axes(y, range(lead)))


# --------------------------------------------------------------------------- shapes


@canonicalize.rule(Pattern(Shape, ("x",)))
def shape_of_known(node, x):
    """``x.shape`` is a constant when every dim is known, or ``v.shape`` of an ancestor
    ``v`` with provably the same shape (so the shape does not wait for ``x``)."""
    own = dims(x)
    if all(isinstance(d, int) for d in own):
        return constant(np.array(own, dtype="int64"))
    sources = [symbol_source(d) for d in own if not isinstance(d, int)]
    if any(src is None for src in sources) or len({id(src[0]) for src in sources}) != 1:
        return None
    v = sources[0][0]
    if v is x or v.ndim != x.ndim or dims(v) != own:
        return None
    return Shape()(v)


@canonicalize.rule(Pattern(ShapeI, ("x",)))
def shape_i_of_known(node, x):
    """``x.shape[i]`` is a constant when the dim is known, or ``v.shape[j]`` of the
    ancestor ``v`` whose dim it provably is."""
    d = dims(x)[node.op.i]
    if isinstance(d, int):
        return constant(d, "int64")
    source = symbol_source(d)
    if source is None or source[0] is x:
        return None
    return shape_i(*source)


@canonicalize.rule(Pattern(ShapeI, ("x",)))
def shape_i_from_infer_shape(node, x):
    """``x.shape[i]`` from the ``infer_shape`` of the op computing ``x`` (users' ops and
    ``fg.as_op`` declare one), so that the shape does not wait for the op to run."""
    owner = x.owner
    if owner is None or type(owner.op).infer_shape is Op.infer_shape:
        return None
    input_shapes = [tuple(shape_i(v, k) for k in range(v.ndim)) for v in owner.inputs]
    shapes = owner.op.infer_shape(None, owner, input_shapes)
    if shapes is None:
        return None
    if len(shapes) != len(owner.outputs) or len(shapes[x.index]) != x.ndim:
        raise ValueError(
            f"{owner.op}.infer_shape returned {len(shapes)} shapes of lengths "
            f"{[len(s) for s in shapes]}; expected the shapes of its outputs "
            f"{[str(o.type) for o in owner.outputs]} (node built at {owner.trace})"
        )
    return _checked(node, cast(as_tensor(shapes[x.index][node.op.i]), "int64"))


@canonicalize.rule(Pattern(Subtensor, ("vec",)))
def index_of_shape_vector(node, vec):
    """``x.shape[k] -> ShapeI(k)(x)`` and ``MakeVector(a, b)[1] -> b``: an entry of a
    shape vector read from what the vector is made of."""
    idx, owner = node.op.idx, vec.owner
    if owner is None or vec.ndim != 1 or len(idx) != 1 or idx[0][0] != "int":
        return None
    length = vec.type.shape[0]
    k = idx[0][1]
    if length is None or not isinstance(k, int) or not -length <= k < length:
        return None
    if isinstance(owner.op, Shape):
        return shape_i(owner.inputs[0], k % length)
    if isinstance(owner.op, MakeVector):
        return _checked(node, cast(owner.inputs[k % length], vec.dtype))
    return None
