"""Constructors of new tensors: ``zeros``, ``ones``, ``full`` (the ``Alloc`` op), their
``_like`` variants, ``arange`` and ``eye``. Sizes may be symbolic 0-d ints."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fusegraph.graph import Apply, Op, Variable, as_tensor, constant, static_value
from fusegraph.ops.elemwise import cast
from fusegraph.ops.shape_ops import (
    _int_scalar,
    as_shape_vector,
    broadcast_node,
    shape,
    shape_i,
)
from fusegraph.types import TensorType, as_dtype, is_float, is_int, upcast


@dataclass(frozen=True)
class Alloc(Op):
    """A new tensor of a given shape filled with ``value`` broadcast to it (``np.full``)."""

    def make_node(self, value, shape) -> Apply:
        return broadcast_node(self, value, shape)

    def impl(self, value, shape):
        out = np.empty(tuple(int(s) for s in shape), dtype=value.dtype)
        out[...] = value
        return out

    def vjp(self, inputs, outputs, grads):
        from fusegraph.ops.grad_ops import sum_to

        return [sum_to(grads[0], inputs[0]), None]


def _fill_value(value, dtype, what) -> Variable:
    """``value`` as a variable of ``dtype`` (its own dtype when None), as ``np.full`` casts."""
    if dtype is not None:
        try:
            dtype = as_dtype(dtype)
        except TypeError as exc:
            raise TypeError(f"{what}: {exc}") from None
    if isinstance(value, Variable):
        return value if dtype is None else cast(value, dtype)
    if dtype is None:
        return as_tensor(value)
    if type(value) in (bool, int):
        # NumPy 2: a Python int that does not fit raises OverflowError instead of wrapping.
        return constant(np.asarray(value, dtype=dtype))
    with np.errstate(all="ignore"):  # other values are cast unsafely, as np.full does
        return constant(np.asarray(value).astype(dtype))


def full(shape, fill_value, dtype=None):
    """A new tensor of ``shape`` filled with ``fill_value`` (``np.full``).

    Args:
        shape: an int, a tuple/list of ints and/or 0-d int variables, or an int vector
            variable of statically known length.
        fill_value: a scalar or tensor broadcastable to ``shape`` (may be symbolic).
        dtype: the result's dtype; by default the fill value's (int64 for a Python int,
            float64 for a Python float, as NumPy).
    """
    return _full(shape, fill_value, dtype, "full")


def _full(shape, fill_value, dtype, what):
    return Alloc()(_fill_value(fill_value, dtype, what), as_shape_vector(shape, what))


def alloc(value, *shape):
    """Theano's ``alloc(value, *shape)``: ``full(shape, value)``.

    Args:
        value: the fill value (its dtype is the result's).
        *shape: the sizes, ints or 0-d int variables.
    """
    return _full(shape, value, None, "alloc")


def zeros(shape, dtype="float64"):
    """A new tensor of ``shape`` filled with zeros (``np.zeros``).

    Args:
        shape: an int, a tuple/list of ints and/or 0-d int variables, or an int vector
            variable of statically known length.
        dtype: the result's dtype (float64 by default).
    """
    return _full(shape, 0, dtype or "float64", "zeros")


def ones(shape, dtype="float64"):
    """A new tensor of ``shape`` filled with ones (``np.ones``); the arguments are those of
    ``zeros``."""
    return _full(shape, 1, dtype or "float64", "ones")


def zeros_like(x, dtype=None):
    """Zeros with the shape of ``x`` and its dtype unless ``dtype`` is given.

    Args:
        x: the tensor whose (symbolic) shape is used.
        dtype: the result's dtype (``x.dtype`` by default).
    """
    x = as_tensor(x)
    return _full(shape(x), 0, dtype or x.dtype, "zeros_like")


def ones_like(x, dtype=None):
    """Ones with the shape of ``x``; the arguments are those of ``zeros_like``."""
    x = as_tensor(x)
    return _full(shape(x), 1, dtype or x.dtype, "ones_like")


# --------------------------------------------------------------------------- arange


@dataclass(frozen=True)
class ARange(Op):
    """``np.arange(start, stop, step, dtype)`` of three 0-d inputs."""

    dtype: str

    def make_node(self, start, stop, step) -> Apply:
        args = [as_tensor(a) for a in (start, stop, step)]
        for name, a in zip(("start", "stop", "step"), args, strict=True):
            if a.ndim != 0 or not (is_int(a.dtype) or is_float(a.dtype) or a.dtype == "bool"):
                raise TypeError(f"{self}: {name} must be a 0-d number, got {a.type}")
        values = [static_value(a) for a in args]
        length = None if any(v is None for v in values) else self._length(*values)
        return Apply(self, args, [TensorType(self.dtype, (length,))])

    def _length(self, start, stop, step) -> int:
        # NumPy computes the length from the Python numbers: ceil((stop - start) / step).
        start, stop, step = (np.asarray(v).item() for v in (start, stop, step))
        if step == 0:
            raise ZeroDivisionError(f"{self}: step must not be zero")
        try:
            length = max(0, math.ceil((stop - start) / step))
        except (ValueError, OverflowError):
            raise ValueError(
                f"{self}: cannot compute the length of arange({start}, {stop}, {step})"
            ) from None
        if length > np.iinfo(np.intp).max:
            raise ValueError(f"{self}: arange({start}, {stop}, {step}) is too long")
        return length

    def impl(self, start, stop, step):
        return np.arange(start.item(), stop.item(), step.item(), dtype=self.dtype)

    def vjp(self, inputs, outputs, grads):
        """``out[i] = start + i * step``; the length (from ``stop``) is not differentiable."""
        from fusegraph.ops import sum, zeros_like

        g = grads[0]
        index = ARange(g.dtype)(0, shape_i(outputs[0], 0), 1)
        return [sum(g), zeros_like(inputs[1]), sum(g * index)]


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values in ``[start, stop)`` (``np.arange``); arguments may be symbolic.

    The length is static when all three arguments are known when building.

    Args:
        start: the first value, or the stop when ``stop`` is None.
        stop: the end (excluded).
        step: the spacing (not zero).
        dtype: the result's dtype; by default NumPy's: int64 for integer arguments,
            float64 if any is a float.
    """
    if stop is None:
        start, stop = 0, start
    args = [as_tensor(a) for a in (start, stop, step)]
    if dtype is None:
        dtype = upcast("int64", *(a.dtype for a in args))
    return ARange(as_dtype(dtype))(*args)


# --------------------------------------------------------------------------- eye


@dataclass(frozen=True)
class Eye(Op):
    """``np.eye(n, m, k, dtype)``: ones on the ``k``-th diagonal of an ``n`` by ``m`` matrix."""

    dtype: str

    def make_node(self, n, m, k) -> Apply:
        args = [as_tensor(a) for a in (n, m, k)]
        for name, a in zip("nmk", args, strict=True):
            if a.ndim != 0 or not is_int(a.dtype):
                raise TypeError(f"{self}: {name} must be a 0-d integer, got {a.type}")
        dims = [static_value(a) for a in args[:2]]
        dims = tuple(None if d is None else int(d) for d in dims)
        if any(d is not None and d < 0 for d in dims):
            raise ValueError(f"{self}: negative dimensions are not allowed, got {dims}")
        return Apply(self, args, [TensorType(self.dtype, dims)])

    def impl(self, n, m, k):
        return np.eye(int(n), int(m), int(k), dtype=self.dtype)

    def vjp(self, inputs, outputs, grads):
        return [None, None, None]


def eye(n, m=None, k=0, dtype="float64"):
    """A 2-d tensor with ones on the ``k``-th diagonal and zeros elsewhere (``np.eye``).

    Args:
        n: the number of rows (int or 0-d int variable).
        m: the number of columns (``n`` when None).
        k: the diagonal: 0 the main one, > 0 above it, < 0 below it.
        dtype: the result's dtype (float64 by default).
    """
    n = _int_scalar(n, "eye: n")
    m = n if m is None else _int_scalar(m, "eye: m")
    return Eye(as_dtype(dtype or "float64"))(n, m, _int_scalar(k, "eye: k"))


__all__ = [
    "Alloc",
    "ARange",
    "Eye",
    "full",
    "alloc",
    "zeros",
    "ones",
    "zeros_like",
    "ones_like",
    "arange",
    "eye",
]
