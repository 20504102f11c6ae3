"""Shape ops: the symbolic shape of a tensor, reshaping, dim shuffling (transpose,
expand_dims, squeeze), broadcasting and joining. Constructors of new tensors (zeros,
arange, eye ...) live in ``fusegraph.ops.creation``."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from fusegraph.graph import (
    Apply,
    Op,
    Variable,
    as_tensor,
    constant,
    static_int_tuple,
    static_value,
)
from fusegraph.ops.elemwise import cast, mul
from fusegraph.types import TensorType, check_size, fmt_shape, is_int, upcast

AxisError = np.exceptions.AxisError


@dataclass(frozen=True)
class Shape(Op):
    """The shape of a tensor as an int64 vector of length ``ndim``."""

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        return Apply(self, [x], [TensorType("int64", (x.ndim,))])

    def impl(self, x):
        return np.array(x.shape, dtype="int64")

    def static_entries(self, node) -> tuple:
        """The static shape of the input (None where unknown)."""
        return node.inputs[0].type.shape

    def static_value(self, node):
        dims = self.static_entries(node)
        return None if None in dims else np.array(dims, dtype="int64")


@dataclass(frozen=True)
class ShapeI(Op):
    """The length of dimension ``i`` of a tensor, as a 0-d int64."""

    i: int

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        if not -x.ndim <= self.i < x.ndim:
            raise IndexError(f"{self}: axis {self.i} is out of range for a {x.ndim}-d input")
        return Apply(self, [x], [TensorType("int64", ())])

    def impl(self, x):
        return np.array(x.shape[self.i], dtype="int64")

    def static_value(self, node):
        dim = node.inputs[0].type.shape[self.i]
        return None if dim is None else np.array(dim, dtype="int64")


def shape(x):
    """The symbolic shape of ``x``: an int64 vector (``x.shape`` is the same)."""
    return Shape()(x)


def shape_i(x, i: int):
    """The length of axis ``i`` of ``x`` as a 0-d int64 variable."""
    return ShapeI(int(i))(x)


# --------------------------------------------------------------------------- shape vectors


@dataclass(frozen=True)
class MakeVector(Op):
    """A vector of ``dtype`` made of 0-d inputs (``stack`` of scalars; symbolic shapes)."""

    dtype: str = "int64"

    def make_node(self, *scalars) -> Apply:
        scalars = [as_tensor(s) for s in scalars]
        for i, s in enumerate(scalars):
            if s.ndim != 0:
                raise TypeError(f"{self}: input {i} must be 0-d, got {s.type}")
        return Apply(self, scalars, [TensorType(self.dtype, (len(scalars),))])

    def impl(self, *scalars):
        return np.array(scalars, dtype=self.dtype).reshape(len(scalars))

    def vjp(self, inputs, outputs, grads):
        from fusegraph.ops.indexing import getitem

        return [getitem(grads[0], i) for i in range(len(inputs))]

    def static_entries(self, node) -> tuple:
        """Per input, its value if known when building, else None."""
        values = (static_value(s) for s in node.inputs)
        return tuple(None if v is None else np.asarray(v, self.dtype).item() for v in values)

    def static_value(self, node):
        entries = self.static_entries(node)
        return None if None in entries else np.array(entries, dtype=self.dtype)


def _index(value, what: str) -> int:
    """``value`` as a Python int (ints and NumPy ints only)."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{what} must be an integer, got {type(value).__name__} {value!r}"
        ) from None


def _int_scalar(value, what: str) -> Variable:
    """A 0-d int64 variable for a size argument: an int or a 0-d int variable."""
    if not isinstance(value, Variable):
        return constant(_index(value, what), "int64")
    if value.ndim != 0 or not is_int(value.dtype):
        raise TypeError(f"{what} must be a 0-d integer, got {value.type}")
    known = static_value(value)
    return constant(int(known), "int64") if known is not None else cast(value, "int64")


def as_shape_vector(shape, what: str = "shape") -> Variable:
    """Convert a shape argument to an int64 vector variable.

    Args:
        shape: an int, a tuple/list of ints and/or 0-d int variables, or an int vector
            variable. Entries known when building become constants (so the result's
            ``static_int_tuple`` is as precise as possible).
        what: the function name used in error messages.
    """
    if isinstance(shape, Variable):
        if not is_int(shape.dtype):
            raise TypeError(f"{what}: a shape must have an integer dtype, got {shape.type}")
        if shape.ndim == 0:
            shape = (shape,)
        elif shape.ndim != 1:
            raise ValueError(f"{what}: a shape must be a vector, got {shape.type}")
        else:
            known = static_value(shape)
            if known is not None:
                return constant(np.asarray(known), "int64")
            return cast(shape, "int64")
    if not isinstance(shape, (tuple, list)):
        shape = (shape,) if np.ndim(shape) == 0 else list(shape)
    entries = [_int_scalar(e, f"{what}: shape entry {i}") for i, e in enumerate(shape)]
    if all(static_value(e) is not None for e in entries):
        return constant(np.array([int(static_value(e)) for e in entries], dtype="int64"))
    return MakeVector("int64")(*entries)


def _int_vector(op, shape) -> Variable:
    shape = as_tensor(shape)
    if shape.ndim != 1 or not is_int(shape.dtype):
        raise TypeError(f"{op}: the shape must be an integer vector, got {shape.type}")
    return shape


def _target_entries(op, shape: Variable) -> tuple:
    """Static entries of a shape vector whose length must be known (it fixes the ndim)."""
    if shape.type.shape[0] is None:
        raise ValueError(
            f"{op}: the length of the shape vector {shape} must be known when building "
            "(it is the ndim of the result)"
        )
    entries = static_int_tuple(shape)
    if any(e is not None and e < 0 for e in entries):
        raise ValueError(f"{op}: negative dimensions are not allowed, got {fmt_shape(entries)}")
    return entries


def broadcast_shape_to(op, shape: tuple, entries: tuple) -> tuple:
    """The static shape of broadcasting a ``shape`` to the target ``entries`` (NumPy's
    ``broadcast_to`` rule); raises ValueError when they are statically incompatible."""
    lead = len(entries) - len(shape)
    if lead < 0:
        raise ValueError(
            f"{op}: cannot broadcast an input of shape {fmt_shape(shape)} to a shape with "
            f"fewer dims {fmt_shape(entries)}"
        )
    out = []
    for axis, target in enumerate(entries):
        dim = shape[axis - lead] if axis >= lead else 1
        if target is not None and dim not in (None, 1) and dim != target:
            raise ValueError(
                f"{op}: cannot broadcast an input of shape {fmt_shape(shape)} to "
                f"{fmt_shape(entries)} (axis {axis}: {dim} vs {target})"
            )
        out.append(target if target is not None else (dim if dim not in (None, 1) else None))
    return tuple(out)


# --------------------------------------------------------------------------- reshape


@dataclass(frozen=True)
class Reshape(Op):
    """``np.reshape(x, shape)`` with a shape vector of length ``ndim`` (one entry may be -1)."""

    ndim: int

    def make_node(self, x, shape) -> Apply:
        x, shape = as_tensor(x), _int_vector(self, shape)
        length = shape.type.shape[0]
        if length is not None and length != self.ndim:
            raise ValueError(f"{self}: the shape vector has {length} entries, expected {self.ndim}")
        entries = static_int_tuple(shape) if length is not None else (None,) * self.ndim
        out = self._static_shape(x, entries)
        check_size(self, tuple(e if e is None or e >= 0 else None for e in entries), x.dtype)
        return Apply(self, [x, shape], [TensorType(x.dtype, out)])

    def _static_shape(self, x, entries) -> tuple:
        if any(e is not None and e < -1 for e in entries) or entries.count(-1) > 1:
            raise ValueError(f"{self}: invalid shape {fmt_shape(entries)} (only one -1 allowed)")
        in_shape = x.type.shape
        out = [e if e is not None and e >= 0 else None for e in entries]
        free = [i for i, e in enumerate(entries) if e is None or e == -1]
        known = math.prod(e for e in entries if e is not None and e >= 0)
        size = 0 if 0 in in_shape else None if None in in_shape else math.prod(in_shape)
        has_minus_one = -1 in entries
        if known == 0 and has_minus_one:
            bad = True  # NumPy cannot resolve -1 when the other entries multiply to 0
        elif size is None:
            bad = False
        elif not free:
            bad = known != size
        else:
            bad = size % known != 0 if known else size != 0
        if bad:
            raise ValueError(
                f"{self}: cannot reshape an input of shape {fmt_shape(in_shape)} into shape "
                f"{fmt_shape(entries)}"
            )
        if size is not None and known and len(free) == 1:
            # The one free entry is -1 or must equal size // known (else run time fails).
            out[free[0]] = size // known
        return tuple(out)

    def impl(self, x, shape):
        if len(shape) != self.ndim:
            raise ValueError(f"the shape vector has {len(shape)} entries, expected {self.ndim}")
        return np.reshape(x, tuple(int(s) for s in shape))

    def vjp(self, inputs, outputs, grads):
        x = inputs[0]
        return [reshape(grads[0], shape(x), ndim=x.ndim), None]

    def static_value(self, node):
        x, shape = (static_value(v) for v in node.inputs)
        return None if x is None or shape is None else self.impl(x, shape)


def reshape(x, shape, ndim=None):
    """Give ``x`` a new shape with the same number of elements (``np.reshape``).

    Args:
        x: the tensor.
        shape: an int, a tuple/list of ints and/or 0-d int variables, or an int vector
            variable; one entry may be -1 (inferred from the size).
        ndim: the length of ``shape``; needed only when ``shape`` is a vector variable of
            statically unknown length.
    """
    x = as_tensor(x)
    vec = as_shape_vector(shape, "reshape")
    length = vec.type.shape[0]
    if length is None and ndim is None:
        raise ValueError(
            f"reshape: the length of the shape vector {vec} is not known when building; pass ndim="
        )
    if length is not None and ndim is not None and ndim != length:
        raise ValueError(f"reshape: ndim={ndim} but the shape vector has {length} entries")
    return Reshape(length if length is not None else int(ndim))(x, vec)


def flatten(x, ndim=1):
    """Keep the first ``ndim - 1`` dims of ``x`` and collapse the rest into one (Theano).

    Args:
        x: the tensor.
        ndim: the number of dims of the result (1 gives a vector).
    """
    x = as_tensor(x)
    ndim = _index(ndim, "flatten: ndim")
    if not 1 <= ndim <= max(x.ndim, 1):
        raise ValueError(f"flatten: ndim must be in [1, {max(x.ndim, 1)}] for {x.type}, got {ndim}")
    lead = [shape_i(x, i) for i in range(ndim - 1)]
    tail = range(ndim - 1, x.ndim)
    last = constant(math.prod(x.type.shape[i] for i in tail if x.type.shape[i] is not None))
    for i in tail:
        if x.type.shape[i] is None:
            last = mul(last, shape_i(x, i))
    return reshape(x, [*lead, last])


# --------------------------------------------------------------------------- dimshuffle


@dataclass(frozen=True)
class DimShuffle(Op):
    """Theano's DimShuffle: reorder the input's axes as ``new_order``, where ``'x'`` adds a
    length-1 axis; input axes left out are dropped and must have length 1."""

    input_ndim: int
    new_order: tuple

    def __post_init__(self):
        order = tuple("x" if a == "x" else a for a in self.new_order)
        axes = [a for a in order if a != "x"]
        for a in axes:
            if isinstance(a, (str, bool)) or not isinstance(a, (int, np.integer)):
                raise ValueError(f"DimShuffle: pattern entries are axes or 'x', got {a!r}")
            if not 0 <= a < self.input_ndim:
                raise AxisError(f"DimShuffle: axis {a} is out of range for {self.input_ndim} dims")
        if len(set(axes)) != len(axes):
            raise ValueError(f"DimShuffle: repeated axis in pattern {order}")
        object.__setattr__(self, "new_order", tuple(a if a == "x" else int(a) for a in order))

    @property
    def dropped(self) -> tuple:
        """The input axes that are not in ``new_order`` (each must have length 1)."""
        return tuple(a for a in range(self.input_ndim) if a not in self.new_order)

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        if x.ndim != self.input_ndim:
            raise TypeError(f"{self}: expected a {self.input_ndim}-d input, got {x.type}")
        for a in self.dropped:
            if x.type.shape[a] not in (None, 1):
                raise ValueError(
                    f"{self}: cannot drop axis {a} of an input of shape "
                    f"{fmt_shape(x.type.shape)}: its length is {x.type.shape[a]}, not 1"
                )
        out = tuple(1 if a == "x" else x.type.shape[a] for a in self.new_order)
        return Apply(self, [x], [TensorType(x.dtype, out)])

    def impl(self, x):
        for a in self.dropped:
            if x.shape[a] != 1:
                raise ValueError(
                    f"cannot drop axis {a} of an input of shape {x.shape}: its length is "
                    f"{x.shape[a]}, not 1"
                )
        kept = [a for a in self.new_order if a != "x"]
        y = np.transpose(x, kept + list(self.dropped))
        if self.dropped:
            y = y[(Ellipsis,) + (0,) * len(self.dropped)]
        new = tuple(i for i, a in enumerate(self.new_order) if a == "x")
        return np.expand_dims(y, new) if new else y

    def vjp(self, inputs, outputs, grads):
        """The inverse shuffle: drop the added axes, undo the permutation, and put the
        dropped (length-1) axes back."""
        kept = [a for a in self.new_order if a != "x"]
        g = dimshuffle(grads[0], tuple(i for i, a in enumerate(self.new_order) if a != "x"))
        pattern = tuple("x" if a in self.dropped else kept.index(a) for a in range(self.input_ndim))
        return [dimshuffle(g, pattern)]

    def static_value(self, node):
        x = static_value(node.inputs[0])
        return None if x is None else self.impl(x)

    def static_entries(self, node) -> tuple:
        """For a 0-d input made a vector: its value if known."""
        if self.input_ndim == 0 and self.new_order == ("x",):
            value = static_value(node.inputs[0])
            return (None if value is None else value.item(),)
        length = node.outputs[0].type.shape[0]
        if length is None:
            raise ValueError(f"the length of shape vector {node.outputs[0]} must be known")
        return (None,) * length


def normalize_axes(axes, ndim: int, what: str, shape: tuple | None = None) -> tuple:
    """The axes ``axes`` (an int or a sequence of ints; a negative one counts from the end)
    of an ``ndim``-d input as non-negative ints, in their order.

    Raises ``numpy.exceptions.AxisError`` (a ValueError and an IndexError) for an axis out
    of range and ValueError for a repeated one, naming ``what`` (and the input's static
    ``shape`` when given). A 0-d input has no axes (NumPy also accepts 0 and -1 there).
    """
    items = (axes,) if np.ndim(axes) == 0 else tuple(axes)
    out = []
    for a in items:
        a = _index(a, f"{what}: axis")
        if not -ndim <= a < ndim:
            where = "" if shape is None else f" (an input of shape {fmt_shape(shape)})"
            raise AxisError(f"{what}: axis {a} is out of bounds for {ndim} dims{where}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated axis, a duplicate value in axis {axes!r}")
    return tuple(out)


def _norm_axis(axis, ndim: int, what: str) -> int:
    return normalize_axes(_index(axis, f"{what}: axis"), ndim, what)[0]


def dimshuffle(x, pattern):
    """Reorder, add and drop axes of ``x`` with Theano's pattern (``x.dimshuffle(1, 'x', 0)``).

    Args:
        x: the tensor.
        pattern: input axes (ints >= 0) and ``'x'`` for new length-1 axes. Axes left out
            are dropped; their length must be 1 (checked at run time if not known).
    """
    x = as_tensor(x)
    if isinstance(pattern, (str, int, np.integer)):
        pattern = (pattern,)
    op = DimShuffle(x.ndim, tuple(pattern))
    if op.new_order == tuple(range(x.ndim)):
        return x
    return op(x)


def transpose(x, axes=None):
    """Permute the axes of ``x`` (reverse them by default), as ``np.transpose``.

    Args:
        x: the tensor.
        axes: a permutation of ``range(x.ndim)`` (negative axes allowed), or None.
    """
    x = as_tensor(x)
    if axes is None:
        return dimshuffle(x, tuple(reversed(range(x.ndim))))
    axes = normalize_axes(axes, x.ndim, "transpose")
    if len(axes) != x.ndim:
        raise ValueError(f"transpose: axes {axes} don't match an input with {x.ndim} dims")
    return dimshuffle(x, axes)


def expand_dims(x, axis):
    """Insert length-1 axes at the positions ``axis`` of the result (``np.expand_dims``).

    Args:
        x: the tensor.
        axis: an int or a tuple of ints, positions in the result (negative allowed).
    """
    x = as_tensor(x)
    n_new = 1 if np.ndim(axis) == 0 else len(tuple(axis))
    axes = normalize_axes(axis, x.ndim + n_new, "expand_dims")
    old = iter(range(x.ndim))
    return dimshuffle(x, tuple("x" if i in axes else next(old) for i in range(x.ndim + n_new)))


def squeeze(x, axis=None):
    """Remove length-1 axes of ``x`` (``np.squeeze``).

    With ``axis=None`` only the axes whose length is statically known to be 1 are removed:
    NumPy decides at run time, which would make the result's ndim unknown when building.

    Args:
        x: the tensor.
        axis: None, an int or a tuple of ints; an explicit axis must have length 1
            (checked when building if known, else at run time).
    """
    x = as_tensor(x)
    if axis is None:
        drop = tuple(a for a, d in enumerate(x.type.shape) if d == 1)
    else:
        drop = normalize_axes(axis, x.ndim, "squeeze")
        for a in drop:
            if x.type.shape[a] not in (None, 1):
                raise ValueError(
                    f"squeeze: cannot squeeze axis {a} of an input of shape "
                    f"{fmt_shape(x.type.shape)}: its length is not 1"
                )
    return dimshuffle(x, tuple(a for a in range(x.ndim) if a not in drop))


# --------------------------------------------------------------------------- broadcast_to


def broadcast_node(op, x, shape) -> Apply:
    """The node of ``op`` (``BroadcastTo``, ``Alloc``) taking ``x`` to the int vector
    ``shape`` by NumPy's broadcasting rules; its output has ``x``'s dtype."""
    x, shape = as_tensor(x), _int_vector(op, shape)
    out = broadcast_shape_to(op, x.type.shape, _target_entries(op, shape))
    check_size(op, out, x.dtype)
    return Apply(op, [x, shape], [TensorType(x.dtype, out)])


@dataclass(frozen=True)
class BroadcastTo(Op):
    """``np.broadcast_to(x, shape)``: a read-only broadcast view of ``x``."""

    def make_node(self, x, shape) -> Apply:
        return broadcast_node(self, x, shape)

    def impl(self, x, shape):
        return np.broadcast_to(x, tuple(int(s) for s in shape))

    def vjp(self, inputs, outputs, grads):
        from fusegraph.ops.grad_ops import sum_to

        return [sum_to(grads[0], inputs[0]), None]


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` with NumPy's rules (``np.broadcast_to``).

    Args:
        x: the tensor.
        shape: an int, a tuple/list of ints and/or 0-d int variables, or an int vector
            variable of statically known length.
    """
    return BroadcastTo()(as_tensor(x), as_shape_vector(shape, "broadcast_to"))


# --------------------------------------------------------------------------- join / stack


@dataclass(frozen=True)
class Join(Op):
    """``np.concatenate(inputs, axis)``; the dtype is NumPy's promotion of the inputs'."""

    axis: int

    def make_node(self, *inputs) -> Apply:
        inputs = [as_tensor(t) for t in inputs]
        if not inputs:
            raise ValueError(f"{self}: need at least one tensor to concatenate")
        shapes = [t.type.shape for t in inputs]
        ndim = inputs[0].ndim
        if ndim == 0:
            raise ValueError(f"{self}: 0-d tensors cannot be concatenated")
        if any(t.ndim != ndim for t in inputs):
            raise ValueError(
                f"{self}: all inputs must have the same number of dims, got shapes "
                f"{', '.join(map(fmt_shape, shapes))}"
            )
        if not 0 <= self.axis < ndim:
            raise AxisError(f"{self}: axis {self.axis} is out of bounds for {ndim} dims")
        out = []
        for axis, dims in enumerate(zip(*shapes, strict=True)):
            if axis == self.axis:
                out.append(None if None in dims else sum(dims))
                continue
            known = {d for d in dims if d is not None}
            if len(known) > 1:
                raise ValueError(
                    f"{self}: input shapes {', '.join(map(fmt_shape, shapes))} differ on axis "
                    f"{axis} ({' vs '.join(map(str, sorted(known)))})"
                )
            out.append(known.pop() if known else None)
        dtype = upcast(*(t.dtype for t in inputs))
        return Apply(self, inputs, [TensorType(dtype, tuple(out))])

    def impl(self, *arrays):
        return np.concatenate(arrays, axis=self.axis)

    def vjp(self, inputs, outputs, grads):
        """Each input gets its slice of ``g`` along the joined axis."""
        from fusegraph.ops.indexing import getitem

        result, start = [], 0
        for x in inputs:
            size = x.type.shape[self.axis]
            stop = start + (size if size is not None else shape_i(x, self.axis))
            result.append(getitem(grads[0], (slice(None),) * self.axis + (slice(start, stop),)))
            start = stop
        return result

    def static_value(self, node):
        values = [static_value(v) for v in node.inputs]
        return None if any(v is None for v in values) else self.impl(*values)

    def static_entries(self, node) -> tuple:
        """The concatenated static entries of vector inputs."""
        return sum((static_int_tuple(v) for v in node.inputs), ())


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis (``np.concatenate``).

    Args:
        tensors: a sequence of tensors with the same ndim; their shapes must agree except
            along ``axis``.
        axis: the axis to join along (negative allowed), or None to flatten them first.
    """
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: need at least one tensor to concatenate")
    if axis is None:
        tensors, axis = [flatten(t) for t in tensors], 0
    if tensors[0].ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated")
    return Join(_norm_axis(axis, tensors[0].ndim, "concatenate"))(*tensors)


def join(axis, *tensors):
    """Theano's ``join(axis, *tensors)``: ``concatenate(tensors, axis)``.

    Args:
        axis: the axis to join along.
        *tensors: the tensors to join.
    """
    return concatenate(tensors, axis)


def stack(tensors, axis=0):
    """Join tensors of the same shape along a new axis (``np.stack``).

    Stacking 0-d tensors builds a vector whose statically known entries stay known
    (``static_int_tuple``), so ``fg.zeros(fg.stack([n, 3]))`` knows its second dim.

    Args:
        tensors: a sequence of tensors with the same shape.
        axis: the position of the new axis in the result (negative allowed).
    """
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: need at least one tensor to stack")
    shapes = [t.type.shape for t in tensors]
    ndim = tensors[0].ndim
    same_ndim = all(len(s) == ndim for s in shapes)
    if not same_ndim or any(
        len({d for d in dims if d is not None}) > 1 for dims in zip(*shapes, strict=True)
    ):
        raise ValueError(
            f"stack: all inputs must have the same shape, got {', '.join(map(fmt_shape, shapes))}"
        )
    axis = _norm_axis(axis, ndim + 1, "stack")
    if ndim == 0:
        return MakeVector(upcast(*(t.dtype for t in tensors)))(*tensors)
    return Join(axis)(*(expand_dims(t, axis) for t in tensors))


__all__ = [
    "Shape",
    "ShapeI",
    "MakeVector",
    "Reshape",
    "DimShuffle",
    "BroadcastTo",
    "Join",
    "shape",
    "shape_i",
    "reshape",
    "flatten",
    "dimshuffle",
    "transpose",
    "expand_dims",
    "squeeze",
    "broadcast_to",
    "concatenate",
    "join",
    "stack",
]
