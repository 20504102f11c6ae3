"""Reductions over axes: ``sum prod mean max min all any`` (one op family), ``argmax``/``argmin``,
a numerically stable ``logsumexp``, and ``var``/``std`` built as graphs of those ops."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from fusegraph.graph import Apply, Op, as_tensor, constant
from fusegraph.ops import elemwise as ew
from fusegraph.ops.scalar import float_dtype
from fusegraph.ops.shape_ops import normalize_axes, shape_i
from fusegraph.types import TensorType, as_dtype, is_float

# --------------------------------------------------------------------------- axis helpers


def axis_field(axis):
    """Check the type of an op's ``axis`` parameter: None stays None, an int or a sequence
    of ints becomes a tuple of ints (raises TypeError otherwise)."""
    if axis is None:
        return None
    items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    try:
        return tuple(operator.index(a) for a in items)
    except TypeError:
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}") from None


def normalize_axis(axis, x, op) -> tuple:
    """The axes ``axis`` (None for all, an int or a tuple of ints) designates on variable
    ``x``, as a sorted tuple of non-negative ints (``shape.normalize_axes``, naming ``op``)."""
    if axis is None:
        return tuple(range(x.ndim))
    return tuple(sorted(normalize_axes(axis_field(axis), x.ndim, str(op), x.type.shape)))


def with_axes(op, x):
    """``op`` with its ``axis`` field normalised for ``x`` (``normalize_axis``), so that
    equal reductions are equal ops; ``op`` itself when it already is."""
    axes = normalize_axis(op.axis, x, op)
    return op if axes == op.axis else replace(op, axis=axes)


def reduced_shape(shape: tuple, axes: tuple, keepdims: bool) -> tuple:
    """``shape`` with ``axes`` removed, or set to 1 when ``keepdims``."""
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _fmt_axis(axis, keepdims) -> str:
    return f"{{axis={axis!r}{', keepdims=True' if keepdims else ''}}}"


def _restore_axes(g, x, axes, keepdims):
    """``g`` (a reduction's output gradient) with the reduced ``axes`` of ``x`` put back as
    length-1 dims, so it broadcasts against ``x``."""
    from fusegraph import ops

    if keepdims or not axes:
        return g
    kept = iter(range(g.ndim))
    return ops.dimshuffle(g, tuple("x" if a in axes else next(kept) for a in range(x.ndim)))


def _broadcast_back(g, x, axes, keepdims):
    """``g`` with the reduced ``axes`` put back and broadcast to the shape of ``x``."""
    from fusegraph import ops

    return ops.broadcast_to(_restore_axes(g, x, axes, keepdims), ops.shape(x))


# --------------------------------------------------------------------------- Reduce


def _mean(x, axis, keepdims):
    if math.prod(x.shape[a] for a in axis) == 0:
        # NumPy returns 0/0 = nan here, after warning "Mean of empty slice".
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype("float64")
        return np.full(reduced_shape(x.shape, axis, keepdims), np.nan, dtype)
    return np.mean(x, axis=axis, keepdims=keepdims)


_REDUCERS = {
    "sum": np.sum,
    "prod": np.prod,
    "mean": _mean,
    "max": np.max,
    "min": np.min,
    "all": np.all,
    "any": np.any,
}


@lru_cache(maxsize=256)
def reduce_dtype(kind: str, dtype: str) -> str:
    """The result dtype of reduction ``kind`` on ``dtype`` (NumPy's rule)."""
    if kind in ("all", "any"):
        return "bool"
    if kind in ("max", "min"):
        return dtype
    if kind == "mean":
        return dtype if is_float(dtype) else "float64"
    # sum/prod accumulate small ints and bool in the platform int (NumPy's rule).
    return as_dtype(np.add.reduce(np.zeros(1, dtype)).dtype)


@dataclass(frozen=True)
class Reduce(Op):
    """Reduce over ``axis`` with ``kind`` (sum, prod, mean, max, min, all, any).

    ``axis`` is None (all axes) or a tuple of ints; nodes always carry the canonical
    sorted, non-negative tuple so equal reductions compare equal.
    """

    kind: str
    axis: tuple | None = None
    keepdims: bool = False

    def __post_init__(self):
        if self.kind not in _REDUCERS:
            raise ValueError(f"unknown reduction {self.kind!r}; use one of {', '.join(_REDUCERS)}")
        object.__setattr__(self, "axis", axis_field(self.axis))
        object.__setattr__(self, "keepdims", bool(self.keepdims))

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        if (op := with_axes(self, x)) is not self:
            return op.make_node(x)
        dtype = reduce_dtype(self.kind, x.dtype)
        shape = reduced_shape(x.type.shape, self.axis, self.keepdims)
        return Apply(self, [x], [TensorType(dtype, shape)])

    def impl(self, x):
        return np.asarray(_REDUCERS[self.kind](x, axis=self.axis, keepdims=self.keepdims))

    def vjp(self, inputs, outputs, grads):
        """Gradient per kind. ``max``/``min`` route ``g`` to every element equal to the
        result, so each of several tied maxima gets the full ``g`` (as Theano and PyTensor;
        the sum over the ties is then ``k * g``). ``prod`` is exact with zeros: an element
        gets the product of the others. ``all``/``any`` have boolean outputs and pass no
        gradient."""
        (x,), (out,), (g,) = inputs, outputs, grads
        if not is_float(x.dtype) or self.kind in ("all", "any"):
            return [None]
        axes = self.axis
        if self.kind == "sum":
            return [_broadcast_back(g, x, axes, self.keepdims)]
        if self.kind == "mean":
            count = ew.cast(_count(x, axes), g.dtype)
            return [_broadcast_back(ew.true_div(g, count), x, axes, self.keepdims)]
        g = _restore_axes(g, x, axes, self.keepdims)
        if self.kind in ("max", "min"):
            hit = ew.eq(x, _restore_axes(out, x, axes, self.keepdims))
            return [ew.where(hit, g, 0)]
        return [ew.mul(g, _prod_grad(x, axes))]

    def __str__(self) -> str:
        return self.kind.capitalize() + _fmt_axis(self.axis, self.keepdims)


def _prod_grad(x, axes):
    """d prod(x, axes) / dx, shaped like ``x``: the product of the other elements of each
    slice, computed without dividing by zero.

    With no zero in a slice it is ``prod / x``; with one zero, the product of the non-zeros
    at the zero and 0 elsewhere; with more, 0 everywhere. The zero values are written as
    ``z`` (the sum of the slice's zeros) and ``z - x`` (the other zero) instead of constant
    zeros so that the graph's own gradient is also right at zeros (exact Hessians).
    """
    zero = ew.eq(x, 0)
    n_zeros = sum(zero, axes, keepdims=True)
    nonzero = ew.where(zero, 1, x)
    rest = prod(nonzero, axes, keepdims=True)
    z = sum(ew.where(zero, x, 0), axes, keepdims=True)
    one_zero = ew.where(zero, rest, ew.true_div(ew.mul(rest, z), nonzero))
    two_zeros = ew.where(zero, ew.mul(rest, ew.sub(z, x)), 0)
    many = ew.where(ew.eq(n_zeros, 2), two_zeros, 0)
    some = ew.where(ew.eq(n_zeros, 1), one_zero, many)
    return ew.where(ew.eq(n_zeros, 0), ew.true_div(rest, nonzero), some)


_AXIS_ARGS = """

    Args:
        x: the input tensor.
        axis: None (all axes), an int or a tuple of ints; negative counts from the end.
        keepdims: keep the reduced axes as length-1 dims.
    """


def _reduction(fn):
    """Give the public reduction ``fn`` the arguments' description they all share."""
    fn.__doc__ = fn.__doc__.rstrip() + _AXIS_ARGS
    return fn


def _reduce(kind, x, axis, keepdims):
    return Reduce(kind, axis_field(axis), keepdims)(x)


@_reduction
def sum(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Sum of elements over the given axes (bool and small ints accumulate in int64/uint64)."""
    return _reduce("sum", x, axis, keepdims)


@_reduction
def prod(x, axis=None, keepdims=False):
    """Product of elements over the given axes (bool and small ints give int64/uint64)."""
    return _reduce("prod", x, axis, keepdims)


@_reduction
def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over the given axes (float64 for int and bool inputs; nan if empty)."""
    return _reduce("mean", x, axis, keepdims)


@_reduction
def max(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Largest element over the given axes (NaN propagates; an empty reduction raises
    ValueError when run)."""
    return _reduce("max", x, axis, keepdims)


@_reduction
def min(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Smallest element over the given axes (NaN propagates; an empty reduction raises
    ValueError when run)."""
    return _reduce("min", x, axis, keepdims)


@_reduction
def all(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """True where every element over the given axes is nonzero (True if empty)."""
    return _reduce("all", x, axis, keepdims)


@_reduction
def any(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """True where some element over the given axes is nonzero (False if empty)."""
    return _reduce("any", x, axis, keepdims)


# --------------------------------------------------------------------------- var, std


def _count(x, axes):
    """The number of elements reduced over ``axes`` of ``x``, as a 0-d int64 variable."""
    dims = [x.type.shape[a] for a in axes]
    if None not in dims:
        return constant(math.prod(dims), "int64")
    count = constant(1, "int64")
    for a in axes:
        count = ew.mul(count, shape_i(x, a))
    return count


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance over the given axes: ``sum((x - mean)**2) / max(n - ddof, 0)`` as in NumPy
    (float64 for int and bool inputs; nan for an empty reduction).

    Args:
        x: the input tensor.
        axis: None (all axes), an int or a tuple of ints; negative counts from the end.
        keepdims: keep the reduced axes as length-1 dims.
        ddof: "delta degrees of freedom" subtracted from the count ``n`` (a number or a
            0-d variable).
    """
    return _var(x, axis, keepdims, ddof, "var")


def _var(x, axis, keepdims, ddof, name):
    x = as_tensor(x)
    axes = normalize_axis(axis, x, f"{name}{_fmt_axis(axis, keepdims)}")
    dtype = x.dtype if is_float(x.dtype) else "float64"
    xf = ew.cast(x, dtype)
    centered = ew.sub(xf, mean(xf, axes, keepdims=True))
    total = sum(ew.mul(centered, centered), axes, keepdims)
    # Divide as NumPy does: by an integer count (in float64), then cast back to ``dtype``.
    denom = ew.maximum(ew.sub(_count(x, axes), ddof), 0)
    return ew.cast(ew.true_div(total, denom), dtype)


def std(x, axis=None, keepdims=False, ddof=0):
    """Standard deviation over the given axes: ``sqrt(var(x, axis, keepdims, ddof))``.

    Args:
        x: the input tensor.
        axis: None (all axes), an int or a tuple of ints; negative counts from the end.
        keepdims: keep the reduced axes as length-1 dims.
        ddof: "delta degrees of freedom" subtracted from the count (see ``var``).
    """
    return ew.sqrt(_var(x, axis, keepdims, ddof, "std"))


# --------------------------------------------------------------------------- argmax, argmin


@dataclass(frozen=True)
class ArgReduce(Op):
    """Index (int64) of the largest (``kind="argmax"``) or smallest (``"argmin"``) element
    along ``axis``, or in the flattened input when ``axis`` is None; the first one on ties,
    the first NaN if there is one."""

    kind: str
    axis: int | None = None
    keepdims: bool = False

    def __post_init__(self):
        if self.kind not in ("argmax", "argmin"):
            raise ValueError(f"unknown arg-reduction {self.kind!r}; use argmax or argmin")
        if self.axis is not None:
            try:
                object.__setattr__(self, "axis", operator.index(self.axis))
            except TypeError:
                raise TypeError(
                    f"{self.kind}: axis must be None or an int, got {self.axis!r}"
                ) from None
        object.__setattr__(self, "keepdims", bool(self.keepdims))

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        if self.axis is None:
            shape = (1,) * x.ndim if self.keepdims else ()
        else:
            (axis,) = normalize_axis(self.axis, x, self)
            if axis != self.axis:
                return replace(self, axis=axis).make_node(x)
            shape = reduced_shape(x.type.shape, (axis,), self.keepdims)
        return Apply(self, [x], [TensorType("int64", shape)])

    def impl(self, x):
        fn = np.argmax if self.kind == "argmax" else np.argmin
        result = fn(x, axis=self.axis, keepdims=self.keepdims)
        return np.asarray(result).astype("int64", copy=False)

    def vjp(self, inputs, outputs, grads):
        """An index is piecewise constant and integer: no gradient flows."""
        return [None]

    def __str__(self) -> str:
        return self.kind.capitalize() + _fmt_axis(self.axis, self.keepdims)


def argmax(x, axis=None, keepdims=False):
    """Index of the largest element along ``axis`` (int64; the first on ties; raises
    ValueError when run on an empty reduction).

    Args:
        x: the input tensor.
        axis: None (index into the flattened input) or an int; negative counts from the end.
        keepdims: keep the reduced axis (all axes when ``axis`` is None) as length-1 dims.
    """
    return ArgReduce("argmax", axis, keepdims)(x)


def argmin(x, axis=None, keepdims=False):
    """Index of the smallest element along ``axis``; otherwise as ``argmax``."""
    return ArgReduce("argmin", axis, keepdims)(x)


# --------------------------------------------------------------------------- logsumexp


def stable_logsumexp(x: np.ndarray, axis: tuple) -> np.ndarray:
    """``log(sum(exp(x)))`` over ``axis`` with kept dims, shifted by the maximum so large
    values do not overflow. All -inf (or empty) gives -inf, any +inf gives +inf, NaN
    propagates. ``x`` must be a float array; the result has its dtype."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        top = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
        # An infinite maximum would give inf - inf = nan; shift by 0 instead.
        shift = np.where(np.isfinite(top), top, 0).astype(x.dtype, copy=False)
        total = np.sum(np.exp(x - shift), axis=axis, keepdims=True)
        return np.asarray(np.log(total) + shift)


@dataclass(frozen=True)
class LogSumExp(Op):
    """``log(sum(exp(x)))`` over ``axis``, computed stably (max-shifted) in the float dtype
    ``exp`` would give (float64 for int32/int64, float32 for small ints)."""

    axis: tuple | None = None
    keepdims: bool = False

    def __post_init__(self):
        object.__setattr__(self, "axis", axis_field(self.axis))
        object.__setattr__(self, "keepdims", bool(self.keepdims))

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        if (op := with_axes(self, x)) is not self:
            return op.make_node(x)
        shape = reduced_shape(x.type.shape, self.axis, self.keepdims)
        return Apply(self, [x], [TensorType(float_dtype(x.dtype), shape)])

    def impl(self, x):
        x = x.astype(float_dtype(x.dtype.name), copy=False)
        result = stable_logsumexp(x, self.axis)
        return result if self.keepdims else result.reshape(reduced_shape(x.shape, self.axis, False))

    def vjp(self, inputs, outputs, grads):
        """``g * exp(x - out)``: the softmax of ``x`` over the axes, stable since
        ``x - out <= 0``. A slice of only -inf (or one holding +inf) gives NaN."""
        (x,), (out,), (g,) = inputs, outputs, grads
        if not is_float(x.dtype):
            return [None]
        out = _restore_axes(out, x, self.axis, self.keepdims)
        weights = ew.exp(ew.sub(x, out))
        return [ew.mul(_restore_axes(g, x, self.axis, self.keepdims), weights)]

    def __str__(self) -> str:
        return "LogSumExp" + _fmt_axis(self.axis, self.keepdims)


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over the given axes, computed without overflow.

    All -inf (or an empty reduction) gives -inf, any +inf gives +inf, NaN propagates.

    Args:
        x: the input tensor (ints are computed in float, as ``exp`` would).
        axis: None (all axes), an int or a tuple of ints; negative counts from the end.
        keepdims: keep the reduced axes as length-1 dims.
    """
    return LogSumExp(axis_field(axis), keepdims)(x)


__all__ = [
    "sum",
    "prod",
    "mean",
    "max",
    "min",
    "all",
    "any",
    "var",
    "std",
    "argmax",
    "argmin",
    "logsumexp",
    "Reduce",
    "ArgReduce",
    "LogSumExp",
]
