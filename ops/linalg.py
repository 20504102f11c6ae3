"""Linear algebra ops: ``dot``, ``matmul`` (the ``@`` operator), ``tensordot`` and ``outer``,
with NumPy's semantics, dtype promotion and static-shape rules."""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from fusegraph.graph import Apply, Op, as_tensor_args
from fusegraph.ops.elemwise import mul
from fusegraph.ops.shape_ops import dimshuffle, flatten
from fusegraph.types import TensorType, broadcast_static, fmt_shape, upcast


def _check_contracted(op, a, b, axis_a: int, axis_b: int) -> None:
    """Raise ValueError if the contracted dims ``a[axis_a]`` and ``b[axis_b]`` are both
    statically known and differ."""
    da, db = a.type.shape[axis_a], b.type.shape[axis_b]
    if da is not None and db is not None and da != db:
        raise ValueError(
            f"{op}: shapes {fmt_shape(a.type.shape)} and {fmt_shape(b.type.shape)} are not "
            f"aligned: dim {axis_a % a.ndim} of the first ({da}) != dim {axis_b % b.ndim} of "
            f"the second ({db})"
        )


@dataclass(frozen=True)
class Dot(Op):
    """``np.dot``: a product for 0-d operands, else a sum over the last axis of ``a`` and
    the second-to-last axis of ``b`` (the only axis when ``b`` is 1-d)."""

    def make_node(self, a, b) -> Apply:
        a, b = as_tensor_args(a, b)
        sa, sb = a.type.shape, b.type.shape
        if a.ndim == 0 or b.ndim == 0:
            # NumPy multiplies; the 0-d operand never changes the other's shape.
            shape = sb if a.ndim == 0 else sa
        elif b.ndim == 1:
            _check_contracted(self, a, b, -1, 0)
            shape = sa[:-1]
        else:
            _check_contracted(self, a, b, -1, -2)
            shape = sa[:-1] + sb[:-2] + sb[-1:]
        return Apply(self, [a, b], [TensorType(upcast(a.dtype, b.dtype), shape)])

    def impl(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            # np.dot documents a 0-d operand as multiplication; its scaling shortcut gives
            # 0 for 0 * inf, where multiplication (and IEEE) give NaN.
            return np.asarray(np.multiply(a, b, dtype=upcast(a.dtype.name, b.dtype.name)))
        return np.asarray(np.dot(a, b))

    def vjp(self, inputs, outputs, grads):
        a, b = inputs
        (g,) = grads
        if a.ndim == 0 or b.ndim == 0:
            from fusegraph.ops.grad_ops import sum_to

            return [sum_to(g * b, a), sum_to(g * a, b)]
        return _tensordot_vjp(a, b, (a.ndim - 1,), (max(b.ndim - 2, 0),), g)


@dataclass(frozen=True)
class MatMul(Op):
    """``np.matmul``: matrix products over the last two axes, broadcasting the leading
    (batch) axes; a 1-d operand is a row (first) or column (second) vector."""

    def make_node(self, a, b) -> Apply:
        a, b = as_tensor_args(a, b)
        sa, sb = a.type.shape, b.type.shape
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(
                f"{self}: operands must be at least 1-d, got shapes {fmt_shape(sa)} and "
                f"{fmt_shape(sb)} (use mul for products with a scalar)"
            )
        _check_contracted(self, a, b, -1, 0 if b.ndim == 1 else -2)
        batch_a, batch_b = sa[:-2], sb[:-2]
        try:
            batch = broadcast_static([batch_a, batch_b], str(self))
        except ValueError:
            raise ValueError(
                f"{self}: the batch dims of shapes {fmt_shape(sa)} and {fmt_shape(sb)} "
                "cannot be broadcast together"
            ) from None
        shape = batch + (sa[-2:-1] if a.ndim >= 2 else ()) + (sb[-1:] if b.ndim >= 2 else ())
        return Apply(self, [a, b], [TensorType(upcast(a.dtype, b.dtype), shape)])

    def impl(self, a, b):
        return np.asarray(np.matmul(a, b))

    def vjp(self, inputs, outputs, grads):
        from fusegraph.ops.grad_ops import sum_to

        a, b = inputs
        (g,) = grads
        # Treat 1-d operands as a row (a) or column (b) matrix, as matmul does, then
        # drop the added axis from the gradients again.
        a2 = dimshuffle(a, ("x", 0)) if a.ndim == 1 else a
        b2 = dimshuffle(b, (0, "x")) if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = _insert_axis(g2, g2.ndim - (0 if b.ndim == 1 else 1))
        if b.ndim == 1:
            g2 = _insert_axis(g2, g2.ndim)
        ga, gb = MatMul()(g2, _swap_last(b2)), MatMul()(_swap_last(a2), g2)
        if a2.ndim > 2 or b2.ndim > 2:  # batch dims may have been broadcast
            ga, gb = sum_to(ga, a2), sum_to(gb, b2)
        if a.ndim == 1:
            ga = dimshuffle(ga, (1,))
        if b.ndim == 1:
            gb = dimshuffle(gb, (0,))
        return [ga, gb]


@dataclass(frozen=True)
class TensorDot(Op):
    """``np.tensordot``: sum products over ``a``'s ``axes_a`` paired with ``b``'s ``axes_b``
    (non-negative, normalised by ``tensordot``); the result has ``a``'s remaining axes,
    then ``b``'s."""

    axes_a: tuple
    axes_b: tuple

    def make_node(self, a, b) -> Apply:
        a, b = as_tensor_args(a, b)
        sa, sb = a.type.shape, b.type.shape
        if len(self.axes_a) != len(self.axes_b):
            raise ValueError(
                f"{self}: {len(self.axes_a)} axes of a and {len(self.axes_b)} axes of b; "
                "they must be paired"
            )
        for axes, x, which in ((self.axes_a, a, "a"), (self.axes_b, b, "b")):
            bad = [ax for ax in axes if not 0 <= ax < x.ndim]
            if bad:
                raise ValueError(
                    f"{self}: axis {bad[0]} is out of range for {which} of shape "
                    f"{fmt_shape(x.type.shape)}"
                )
            if len(set(axes)) != len(axes):
                raise ValueError(f"{self}: duplicate axes are not allowed ({which}: {axes})")
        for ax_a, ax_b in zip(self.axes_a, self.axes_b, strict=True):
            _check_contracted(self, a, b, ax_a, ax_b)
        shape = tuple(d for i, d in enumerate(sa) if i not in self.axes_a) + tuple(
            d for i, d in enumerate(sb) if i not in self.axes_b
        )
        return Apply(self, [a, b], [TensorType(upcast(a.dtype, b.dtype), shape)])

    def impl(self, a, b):
        return np.asarray(np.tensordot(a, b, (list(self.axes_a), list(self.axes_b))))

    def vjp(self, inputs, outputs, grads):
        return _tensordot_vjp(*inputs, self.axes_a, self.axes_b, grads[0])


def _tensordot_vjp(a, b, axes_a, axes_b, g):
    """Gradients of ``tensordot(a, b, (axes_a, axes_b))`` given the output's gradient
    ``g`` (whose axes are a's free axes, then b's): each is a tensordot of ``g`` with the
    other operand over that operand's free axes, transposed back into place."""
    free_a = [i for i in range(a.ndim) if i not in axes_a]
    free_b = [i for i in range(b.ndim) if i not in axes_b]
    g_a = tuple(range(len(free_a)))
    g_b = tuple(range(len(free_a), g.ndim))
    pair_ab = dict(zip(axes_a, axes_b, strict=True))
    pair_ba = dict(zip(axes_b, axes_a, strict=True))
    ga = TensorDot(g_b, tuple(free_b))(g, b)
    ga_axes = free_a + [pair_ba[axis] for axis in sorted(axes_b)]
    gb = TensorDot(tuple(free_a), g_a)(a, g)
    gb_axes = [pair_ab[axis] for axis in sorted(axes_a)] + free_b
    return [
        dimshuffle(ga, tuple(ga_axes.index(i) for i in range(a.ndim))),
        dimshuffle(gb, tuple(gb_axes.index(i) for i in range(b.ndim))),
    ]


def _swap_last(x):
    """``x`` with its last two axes swapped."""
    return dimshuffle(x, tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))


def _insert_axis(x, position):
    order = list(range(x.ndim))
    order.insert(position, "x")
    return dimshuffle(x, tuple(order))


def dot(a, b):
    """Dot product with ``np.dot`` semantics.

    0-d operands multiply; 1-d by 1-d is the inner product; otherwise the sum runs over the
    last axis of ``a`` and the second-to-last axis of ``b`` (its only axis when 1-d).

    Args:
        a: first operand (variable, array or number).
        b: second operand.

    Raises:
        ValueError: when the contracted dims are statically known and differ.
    """
    return Dot()(a, b)


def matmul(a, b):
    """Matrix product with ``np.matmul`` semantics (the ``@`` operator).

    Leading (batch) axes broadcast; a 1-d ``a`` is a row vector and a 1-d ``b`` a column
    vector, and the added axis is removed from the result.

    Args:
        a: first operand, at least 1-d.
        b: second operand, at least 1-d.

    Raises:
        ValueError: for a 0-d operand, or statically known mismatching contracted or batch
            dims.
    """
    return MatMul()(a, b)


def _axis_list(axes, name):
    if isinstance(axes, (int, np.integer)):
        return [operator.index(axes)]
    try:
        return [operator.index(ax) for ax in axes]
    except TypeError:
        raise TypeError(f"tensordot: {name} must be ints, got {axes!r}") from None


def tensordot(a, b, axes=2):
    """Sum products over chosen axes of ``a`` and ``b`` (``np.tensordot`` semantics).

    Args:
        a: first operand.
        b: second operand.
        axes: an int ``n`` (the last ``n`` axes of ``a`` with the first ``n`` of ``b``;
            0 gives the outer product) or a pair ``(axes_a, axes_b)`` of ints or equal-length
            sequences of ints (negative axes count from the end).

    Raises:
        ValueError: for axes out of range, duplicated or unpaired, or statically known
            mismatching contracted dims. Unlike NumPy (which then silently computes an
            outer product), a negative int ``axes`` is an error.
    """
    a, b = as_tensor_args(a, b)
    if isinstance(axes, (int, np.integer)):
        n = operator.index(axes)
        if n < 0:
            raise ValueError(f"tensordot: axes must be >= 0, got {n}")
        if n > a.ndim or n > b.ndim:
            raise ValueError(
                f"tensordot: cannot sum over {n} axes of shapes {fmt_shape(a.type.shape)} "
                f"and {fmt_shape(b.type.shape)}"
            )
        axes_a, axes_b = list(range(a.ndim - n, a.ndim)), list(range(n))
    else:
        try:
            first, second = axes
        except (TypeError, ValueError):
            raise ValueError(
                f"tensordot: axes must be an int or a pair (axes_a, axes_b), got {axes!r}"
            ) from None
        axes_a, axes_b = _axis_list(first, "axes_a"), _axis_list(second, "axes_b")
        for axes_x, x in ((axes_a, a), (axes_b, b)):
            # Normalise in range axes only; TensorDot reports the out-of-range ones.
            axes_x[:] = [ax + x.ndim if -x.ndim <= ax < 0 else ax for ax in axes_x]
    return TensorDot(tuple(axes_a), tuple(axes_b))(a, b)


def outer(a, b):
    """Outer product of the flattened operands (``np.outer`` semantics).

    Args:
        a: first operand, any shape (flattened to length ``M``).
        b: second operand, any shape (flattened to length ``N``).

    Returns:
        An ``(M, N)`` variable: ``flatten(a)[:, None] * flatten(b)[None, :]``.
    """
    a, b = (x if x.ndim == 1 else flatten(x) for x in as_tensor_args(a, b))
    return mul(dimshuffle(a, (0, "x")), dimshuffle(b, ("x", 0)))


__all__ = ["Dot", "MatMul", "TensorDot", "dot", "matmul", "tensordot", "outer"]
