"""The ``specialize`` rule set: cheaper forms of general ops, for the backends.

Powers with small constant exponents become products, ``sqrt`` and ``reciprocal``.
Products of at most 2-d operands become ``Dot`` (what a backend maps onto BLAS): after
this pass, by the operands' dims,

==========================  ==============================================================
``TensorDot``, one axis     ``Dot(a', b')`` with ``a'`` = ``a`` or ``a.T`` (the contracted
                            axis last), ``b'`` = ``b`` or ``b.T`` (the contracted axis
                            first): 1-d·1-d → dot, 2-d·1-d / 1-d·2-d → gemv, 2-d·2-d → gemm
``TensorDot``, no axes      ``a[..., None, ...] * b`` (outer product, elementwise)
``MatMul``, both <= 2-d     ``Dot`` (the same product for those dims)
``Dot`` with a 0-d operand  an elementwise ``mul``
``Dot`` (n, 1)·(1, m)       an elementwise ``mul`` (outer product)
==========================  ==============================================================

A transposed operand is a ``DimShuffle{(1, 0)}`` view, which a BLAS call takes as a
transpose flag; transposes of transposes cancel.

The gradient of ``categorical_crossentropy(softmax(x), t)`` with respect to ``x`` becomes one
``CrossentropySoftmax1HotDx`` node, ``dy * (softmax(x) - onehot(t))``, as in Theano.
"""

from __future__ import annotations

from fusegraph import ops
from fusegraph.graph import Variable
from fusegraph.ops.creation import ARange
from fusegraph.ops.linalg import Dot, MatMul, TensorDot
from fusegraph.ops.nn import CrossentropySoftmax1HotDx, Softmax
from fusegraph.ops.reduction import Reduce
from fusegraph.ops.shape_ops import BroadcastTo, DimShuffle
from fusegraph.rewrites.engine import Const, Pattern, RuleSet
from fusegraph.rewrites.patterns import elemwise, fit, scalar_name
from fusegraph.rewrites.shapes import dims, scalar_dim
from fusegraph.types import is_float, is_int

specialize = RuleSet("specialize")

# --------------------------------------------------------------------------- powers

#: Integer exponents up to this magnitude become products (by repeated squaring).
MAX_INT_POWER = 8


def _exponent(c) -> float | None:
    """The value of a constant exponent whose elements are all equal, else None."""
    data = c.data
    if data.size == 0 or data.dtype.kind not in "iuf":
        return None
    first = data.flat[0]
    return float(first) if (data == first).all() else None


def _power_base(node, x):
    """``x`` cast to the dtype of ``x ** c`` (so products keep the result's dtype), or None
    when that dtype is neither int nor float."""
    dtype = node.outputs[0].dtype
    if not (is_float(dtype) or is_int(dtype)):
        return None
    return ops.cast(x, dtype)


def _int_power(x, n: int):
    """``x ** n`` for ``n >= 1`` by repeated squaring (at most ``2 log2 n`` products)."""
    result, square = None, x
    while n:
        if n & 1:
            result = square if result is None else ops.mul(result, square)
        n >>= 1
        if n:
            square = ops.mul(square, square)
    return result


_POW = elemwise("pow", "x", Const(name="c"))


@specialize.rule(_POW)
def pow_to_mul(node, x, c):
    """``x ** n`` → products of ``x`` for integer ``2 <= |n| <= 8`` (``1 / x**|n|`` for
    float negative ``n``): a few multiplies instead of a call to ``pow``."""
    n = _exponent(c)
    if n is None or not n.is_integer() or not 2 <= abs(n) <= MAX_INT_POWER:
        return None
    base = _power_base(node, x)
    if base is None or (n < 0 and not is_float(base.dtype)):
        return None  # integers to negative powers are an error in NumPy
    new = _int_power(base, abs(int(n)))
    return fit(ops.reciprocal(new) if n < 0 else new, node.outputs[0])


@specialize.rule(_POW)
def pow_to_sqrt(node, x, c):
    """``x ** 0.5`` → ``sqrt(x)`` and ``x ** -0.5`` → ``1 / sqrt(x)`` (float results)."""
    n = _exponent(c)
    if n not in (0.5, -0.5) or not is_float(node.outputs[0].dtype):
        return None
    root = ops.sqrt(_power_base(node, x))
    return fit(root if n > 0 else ops.reciprocal(root), node.outputs[0])


@specialize.rule(_POW)
def pow_to_reciprocal(node, x, c):
    """``x ** -1`` → ``reciprocal(x)`` (float results; integers to negative powers are an
    error in NumPy)."""
    if _exponent(c) != -1.0 or not is_float(node.outputs[0].dtype):
        return None
    return fit(ops.reciprocal(_power_base(node, x)), node.outputs[0])


# --------------------------------------------------------------------------- products


def _transpose(x):
    """The transpose of the matrix ``x``; cancels a transpose."""
    node = x.owner
    if node is not None and isinstance(node.op, DimShuffle) and node.op.new_order == (1, 0):
        return node.inputs[0]
    return ops.dimshuffle(x, (1, 0))


@specialize.rule(Pattern(TensorDot, ("a", "b")))
def tensordot_to_dot(node, a, b):
    """``tensordot`` over one axis of at most 2-d operands → ``Dot`` of (transposed)
    operands: the same sum of products, in the form a backend maps onto BLAS."""
    op = node.op
    if len(op.axes_a) != 1 or not (1 <= a.ndim <= 2 and 1 <= b.ndim <= 2):
        return None
    if a.ndim == 2 and op.axes_a == (0,):
        a = _transpose(a)
    if b.ndim == 2 and op.axes_b == (1,):
        b = _transpose(b)
    return fit(Dot()(a, b), node.outputs[0], proven=True)


@specialize.rule(Pattern(TensorDot, ("a", "b")))
def tensordot_outer_to_mul(node, a, b):
    """``tensordot`` over no axes → ``a[..., None, ...] * b`` (broadcasting): an outer
    product is elementwise (and fuses)."""
    if node.op.axes_a:
        return None
    # b's leading length-1 axes are left to broadcasting; a's trailing ones are needed.
    left = a if a.ndim == 0 else ops.dimshuffle(a, tuple(range(a.ndim)) + ("x",) * b.ndim)
    return fit(ops.mul(left, b), node.outputs[0], proven=True)


@specialize.rule(Pattern(MatMul, ("a", "b")))
def matmul_to_dot(node, a, b):
    """``matmul`` of at most 2-d operands → ``Dot``: the same product for those dims."""
    if a.ndim > 2 or b.ndim > 2:
        return None
    return fit(Dot()(a, b), node.outputs[0], proven=True)


@specialize.rule(Pattern(Dot, ("a", "b")))
def dot_rank_one_to_mul(node, a, b):
    """``dot`` of an ``(n, 1)`` and a ``(1, m)`` matrix (the gradient of a matrix-vector
    ``matmul``) → their broadcast elementwise product: an outer product, which fuses."""
    if a.ndim != 2 or b.ndim != 2 or a.type.shape[1] != 1 or b.type.shape[0] != 1:
        return None
    return fit(ops.mul(a, b), node.outputs[0], proven=True)


@specialize.rule(Pattern(Dot, ("a", "b")))
def dot_scalar_to_mul(node, a, b):
    """``dot`` with a 0-d operand → elementwise ``mul`` (what ``np.dot`` computes then)."""
    if a.ndim and b.ndim:
        return None
    return fit(ops.mul(a, b), node.outputs[0], proven=True)


# --------------------------------------------------------------------------- softmax gradient


def _one_hot_where(w: Variable, sm: Variable):
    """``(true_dist, c)`` when ``w`` is ``where(arange(0, k) == true_dist[..., None], c, z)``
    with ``k`` the length of ``sm``'s last axis, ``z`` zero (a constant 0 or ``0 * y``) and
    ``c`` a float constant along the last axis: the one-hot gradient of
    ``CrossentropyCategorical1Hot``; else None."""
    if scalar_name(w) != "where":
        return None
    hot, c, z = w.owner.inputs
    zero_sm = (
        scalar_name(z) == "mul" and any(map(_is_zero, z.owner.inputs)) and sm in z.owner.inputs
    )
    if not (_is_zero(z) or zero_sm):  # 0 * sm is 0: sm is a probability (or NaN)
        return None
    if c.owner is not None and isinstance(c.owner.op, BroadcastTo):
        c = c.owner.inputs[0]  # where broadcasts it all the same
    constant_rows = c.ndim < w.ndim or c.type.shape[-1] == 1
    if not (constant_rows and is_float(c.dtype)) or scalar_name(hot) != "eq":
        return None
    for rng, col in (hot.owner.inputs, hot.owner.inputs[::-1]):
        node, shuffle = rng.owner, col.owner
        if node is None or shuffle is None or not isinstance(node.op, ARange):
            continue
        start, stop, step = node.inputs
        if not (_is_zero(start) and Const(1).match(step, {}) and scalar_dim(stop) == dims(sm)[-1]):
            continue
        order = tuple(range(w.ndim - 1)) + ("x",)
        if isinstance(shuffle.op, DimShuffle) and shuffle.op.new_order == order:
            return shuffle.inputs[0], c
    return None


def _is_zero(v: Variable) -> bool:
    return Const(0).match(v, {})


@specialize.rule(elemwise("sub", "w", elemwise("mul", "a", "b")))
def softmax_crossentropy_dx(node, w, a, b):
    """``w - softmax(x) * sum(w, -1, keepdims)`` with ``w`` the one-hot gradient of a
    cross-entropy (what ``grad`` writes for ``categorical_crossentropy(softmax(x), t)``,
    after stabilize) → ``CrossentropySoftmax1HotDx(-c, softmax(x), t)``: one loop instead of
    an ``arange``, a comparison, a ``where``, a row sum and a product."""
    for sm, total in ((a, b), (b, a)):
        red = total.owner
        if not (
            sm.owner is not None
            and isinstance(sm.owner.op, Softmax)
            and sm.owner.op.axis == (sm.ndim - 1,)
            and sm.ndim == w.ndim
            and red is not None
            and isinstance(red.op, Reduce)
            and red.op.kind == "sum"
            and red.op.axis == (w.ndim - 1,)
            and red.op.keepdims
            and red.inputs[0] is w
        ):
            continue
        found = _one_hot_where(w, sm)
        if found is None:
            return None
        true, c = found
        negated = scalar_name(c) == "neg"
        rows = c.owner.inputs[0] if negated else c  # dy = -c, one per row
        if rows.ndim == w.ndim:
            rows = ops.dimshuffle(rows, tuple(range(rows.ndim - 1)))
        dy = rows if negated else ops.neg(rows)
        # The one-hot's length is sm's last dim (proven above); its rows are those of
        # true_dist, which the new op checks against sm's at run time.
        return fit(CrossentropySoftmax1HotDx()(dy, sm, true), node.outputs[0], proven=True)
    return None
