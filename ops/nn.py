"""Neural-network ops: ``softmax`` and ``log_softmax`` (stable, max-shifted) and the
Theano cross-entropy losses ``binary_crossentropy`` and ``categorical_crossentropy``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusegraph.graph import Apply, Op, as_tensor, as_tensor_args
from fusegraph.ops import elemwise as ew
from fusegraph.ops.reduction import axis_field, sum, with_axes
from fusegraph.ops.scalar import float_dtype
from fusegraph.types import (
    TensorType,
    broadcast_static,
    check_no_runtime_broadcast,
    fmt_shape,
    is_float,
    is_int,
)

# --------------------------------------------------------------------------- softmax


@dataclass(frozen=True)
class _SoftmaxBase(Op):
    """Shared type rule: the input's shape, in the float dtype ``exp`` would give."""

    axis: tuple | None = (-1,)

    def __post_init__(self):
        object.__setattr__(self, "axis", axis_field(self.axis))

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        if (op := with_axes(self, x)) is not self:
            return op.make_node(x)
        return Apply(self, [x], [TensorType(float_dtype(x.dtype), x.type.shape)])

    def impl(self, x):
        x = x.astype(float_dtype(x.dtype.name), copy=False)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # Shift by the maximum so exp cannot overflow; an empty axis has none.
            top = np.max(x, axis=self.axis, keepdims=True, initial=-np.inf)
            return np.asarray(self._shifted(x - top))

    def __str__(self) -> str:
        return f"{type(self).__name__}{{axis={self.axis!r}}}"


@dataclass(frozen=True)
class Softmax(_SoftmaxBase):
    """``exp(x) / sum(exp(x))`` over ``axis`` (max-shifted: large values do not overflow)."""

    def _shifted(self, s):
        e = np.exp(s)
        return e / np.sum(e, axis=self.axis, keepdims=True)

    def vjp(self, inputs, outputs, grads):
        """``y * (g - sum(g * y))`` with the sum over ``axis`` (kept dims)."""
        (x,), (y,), (g,) = inputs, outputs, grads
        if not is_float(x.dtype):
            return [None]
        dot = sum(ew.mul(g, y), self.axis, keepdims=True)
        return [ew.mul(y, ew.sub(g, dot))]


@dataclass(frozen=True)
class LogSoftmax(_SoftmaxBase):
    """``x - log(sum(exp(x)))`` over ``axis`` (max-shifted: large values do not overflow)."""

    def _shifted(self, s):
        return s - np.log(np.sum(np.exp(s), axis=self.axis, keepdims=True))

    def vjp(self, inputs, outputs, grads):
        """``g - exp(out) * sum(g)`` with the sum over ``axis`` (kept dims)."""
        (x,), (out,), (g,) = inputs, outputs, grads
        if not is_float(x.dtype):
            return [None]
        total = sum(g, self.axis, keepdims=True)
        return [ew.sub(g, ew.mul(ew.exp(out), total))]


def softmax(x, axis=-1):
    """Softmax ``exp(x) / sum(exp(x), axis)``, computed stably.

    Ints compute in float as ``exp`` would (float64 for int32/int64, float32 for small
    ints). A slice along ``axis`` that holds +inf, NaN, or only -inf gives NaN (as
    ``scipy.special.softmax``).

    Args:
        x: the input tensor.
        axis: the axis (or tuple of axes, or None for all) to normalise over.
    """
    return Softmax(axis_field(axis))(x)


def log_softmax(x, axis=-1):
    """Log-softmax ``x - logsumexp(x, axis)``, computed stably (Theano's ``logsoftmax``).

    Same dtypes and special values as ``softmax``; ``-inf`` entries next to finite ones
    give ``-inf``.

    Args:
        x: the input tensor.
        axis: the axis (or tuple of axes, or None for all) to normalise over.
    """
    return LogSoftmax(axis_field(axis))(x)


logsoftmax = log_softmax

# --------------------------------------------------------------------------- cross-entropy


def binary_crossentropy(output, target):
    """Elementwise ``-(target * log(output) + (1 - target) * log(1 - output))`` (Theano's
    ``binary_crossentropy``; inputs broadcast, dtypes follow the elementwise ops).

    Args:
        output: predicted probabilities, in (0, 1).
        target: the targets (usually 0 or 1).
    """
    output, target = as_tensor_args(output, target)
    hit = ew.mul(target, ew.log(output))
    miss = ew.mul(ew.sub(1, target), ew.log(ew.sub(1, output)))
    return ew.neg(ew.add(hit, miss))


def _check_classes(true, k):
    """IndexError unless every class index in ``true`` is in ``[0, k)``."""
    bad = (true < 0) | (true >= k)
    if np.any(bad):
        raise IndexError(f"class index {true[bad][0]} is out of range for {k} classes")


def _one_hot(true, dist):
    """``arange(k) == true[..., None]`` for the ``k`` classes of ``dist``'s last axis: the
    differentiable one-hot of the class indices, as a graph."""
    from fusegraph import ops

    k = ops.shape_i(dist, dist.ndim - 1)
    return ew.eq(ops.arange(k), ops.expand_dims(true, -1))


@dataclass(frozen=True)
class CrossentropyCategorical1Hot(Op):
    """``-log(coding_dist[..., true_dist[...]])``: the cross-entropy of each row of
    probabilities ``coding_dist`` (shape ``(..., k)``) against a class index in
    ``true_dist`` (integers, shape ``(...)``). A class outside ``[0, k)`` raises IndexError
    when run. With ``log_input`` the rows are log-probabilities (``-coding_dist[..., i]``),
    the form stabilization rewrites ``softmax`` cross-entropies into."""

    log_input: bool = False

    def make_node(self, coding_dist, true_dist) -> Apply:
        coding, true = as_tensor(coding_dist), as_tensor(true_dist)
        if coding.ndim < 1 or true.ndim != coding.ndim - 1:
            raise TypeError(
                f"{self}: coding_dist must have at least 1 dim and true_dist one dim less; "
                f"got shapes {fmt_shape(coding.type.shape)} and {fmt_shape(true.type.shape)}"
            )
        if not is_int(true.dtype):
            raise TypeError(f"{self}: true_dist must hold integer class indices, not {true.dtype}")
        shape = []
        for axis, (a, b) in enumerate(zip(coding.type.shape[:-1], true.type.shape, strict=True)):
            if a is not None and b is not None and a != b:
                raise ValueError(
                    f"{self}: coding_dist {fmt_shape(coding.type.shape)} and true_dist "
                    f"{fmt_shape(true.type.shape)} disagree on axis {axis} ({a} vs {b})"
                )
            shape.append(a if a is not None else b)
        return Apply(self, [coding, true], [TensorType(float_dtype(coding.dtype), shape)])

    def impl(self, coding, true):
        if coding.shape[:-1] != true.shape:
            raise ValueError(
                f"coding_dist of shape {coding.shape} needs true_dist of shape "
                f"{coding.shape[:-1]}, got {true.shape}"
            )
        _check_classes(true, coding.shape[-1])
        picked = np.take_along_axis(coding, true.astype(np.intp)[..., None], axis=-1)[..., 0]
        picked = picked.astype(float_dtype(coding.dtype.name), copy=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(-picked if self.log_input else -np.log(picked))

    def vjp(self, inputs, outputs, grads):
        """``-g / p`` at each row's true class and 0 elsewhere (built from a one-hot
        comparison against ``arange(k)``, so it stays differentiable); none for the
        integer class indices."""
        from fusegraph import ops

        (coding, true), (g,) = inputs, grads
        if not is_float(coding.dtype):
            return [None, None]
        hot = _one_hot(true, coding)
        if self.log_input:
            return [ew.where(hot, ew.neg(ops.expand_dims(g, -1)), 0), None]
        # Divide by 1 off the true class: p may be 0 there, and 0/0 would not be wanted.
        picked = ew.where(hot, coding, 1)
        return [ew.where(hot, ew.true_div(ew.neg(ops.expand_dims(g, -1)), picked), 0), None]


@dataclass(frozen=True)
class CrossentropySoftmax1HotDx(Op):
    """``dy[..., None] * (sm - onehot(true_dist))``: the gradient of the one-hot
    cross-entropy of ``sm = softmax(x)`` (last axis) with respect to ``x``, given the
    gradient ``dy`` of each row's loss (Theano's ``crossentropy_softmax_1hot_with_bias_dx``,
    without the bias). The ``specialize`` rule ``softmax_crossentropy_dx`` builds it from the
    graph ``grad`` writes (a one-hot ``where``, its row sums and a product with ``sm``): one
    loop instead of five nodes. ``dy`` broadcasts against ``true_dist`` where its static
    shape says so; a class outside ``[0, k)`` raises IndexError when run."""

    def make_node(self, dy, sm, true_dist) -> Apply:
        dy, sm, true = as_tensor(dy), as_tensor(sm), as_tensor(true_dist)
        if sm.ndim < 1 or true.ndim != sm.ndim - 1 or dy.ndim > true.ndim:
            raise TypeError(
                f"{self}: sm needs at least 1 dim, true_dist one dim less and dy at most as "
                f"many as true_dist; got shapes {fmt_shape(dy.type.shape)}, "
                f"{fmt_shape(sm.type.shape)} and {fmt_shape(true.type.shape)}"
            )
        if not (is_float(dy.dtype) and is_float(sm.dtype)) or not is_int(true.dtype):
            raise TypeError(
                f"{self}: dy and sm must be float and true_dist integer; got {dy.dtype}, "
                f"{sm.dtype} and {true.dtype}"
            )
        rows = broadcast_static([dy.type.shape, sm.type.shape[:-1], true.type.shape], str(self))
        dtype = np.result_type(dy.dtype, sm.dtype).name
        return Apply(self, [dy, sm, true], [TensorType(dtype, (*rows, sm.type.shape[-1]))])

    def check_inputs(self, node, arrays) -> None:
        dy, sm, true = (np.shape(a) for a in arrays)
        if sm[:-1] != true:
            raise ValueError(f"sm of shape {sm} needs true_dist of shape {sm[:-1]}, got {true}")
        check_no_runtime_broadcast(
            [x.type.shape for x in (node.inputs[0], node.inputs[2])], [dy, true]
        )

    def impl(self, dy, sm, true):
        k = sm.shape[-1]
        _check_classes(true, k)
        dtype = np.result_type(dy.dtype, sm.dtype)
        hot = np.arange(k) == true[..., None]
        return np.asarray(np.asarray(dy, dtype)[..., None] * (sm.astype(dtype) - hot), dtype)

    def vjp(self, inputs, outputs, grads):
        """``sum(g * (sm - onehot), -1)`` for ``dy`` (summed where it broadcast) and
        ``g * dy[..., None]`` for ``sm``; none for the class indices."""
        from fusegraph import ops
        from fusegraph.ops.grad_ops import sum_to

        (dy, sm, true), (g,) = inputs, grads
        hot = _one_hot(true, sm)
        g_dy = sum(ew.mul(g, ew.sub(sm, hot)), axis=-1)
        g_sm = ew.mul(g, ops.expand_dims(dy, -1))
        return [
            ew.cast(sum_to(g_dy, dy, static=True), dy.dtype),
            ew.cast(sum_to(g_sm, sm, static=True), sm.dtype),
            None,
        ]


def crossentropy_categorical_1hot(coding_dist, true_dist):
    """``-log(coding_dist[i, true_dist[i]])`` per row (Theano's name; see
    ``CrossentropyCategorical1Hot``).

    Args:
        coding_dist: probabilities, shape ``(..., k)``.
        true_dist: integer class indices, shape ``(...)``.
    """
    return CrossentropyCategorical1Hot()(coding_dist, true_dist)


def categorical_crossentropy(coding_dist, true_dist):
    """Cross-entropy between predicted distributions and targets (Theano semantics).

    If ``true_dist`` has the same ndim as ``coding_dist`` (one-hot rows or probabilities),
    the result is ``-sum(true_dist * log(coding_dist), axis=-1)``. If it has one dim less
    and holds integers (class indices), it is ``-log(coding_dist[..., true_dist])`` per
    row, and an index outside ``[0, k)`` raises IndexError when run.

    Args:
        coding_dist: predicted probabilities, shape ``(..., k)``.
        true_dist: targets, shape ``(..., k)``, or integer class indices, shape ``(...)``.
    """
    coding, true = as_tensor_args(coding_dist, true_dist)
    if coding.ndim == 0:
        raise TypeError("categorical_crossentropy: coding_dist must have at least 1 dim, got 0-d")
    if true.ndim == coding.ndim:
        return ew.neg(sum(ew.mul(true, ew.log(coding)), axis=-1))
    if true.ndim == coding.ndim - 1:
        return CrossentropyCategorical1Hot()(coding, true)
    raise TypeError(
        f"categorical_crossentropy: coding_dist of shape {fmt_shape(coding.type.shape)} needs "
        f"true_dist with {coding.ndim} dims (distributions) or {coding.ndim - 1} (class "
        f"indices); got shape {fmt_shape(true.type.shape)}"
    )


__all__ = [
    "softmax",
    "log_softmax",
    "logsoftmax",
    "binary_crossentropy",
    "categorical_crossentropy",
    "crossentropy_categorical_1hot",
    "Softmax",
    "LogSoftmax",
    "CrossentropyCategorical1Hot",
    "CrossentropySoftmax1HotDx",
]
