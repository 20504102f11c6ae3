"""Indexing ops: NumPy basic indexing (``Subtensor``), integer-array and boolean-mask indexing
(``AdvancedSubtensor``), and Theano's ``set_subtensor``/``inc_subtensor`` (``IncSubtensor``)."""

from __future__ import annotations

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
from fusegraph.types import TensorType, broadcast_static, fmt_shape, is_int, lossless

#: In an index entry, a field whose value is the node's next index input (a 0-d integer).
SYMBOLIC = "?"

# An op's ``idx`` is a tuple with one entry per indexing item:
#   ("int", k)                    an integer; k is an int or SYMBOLIC
#   ("slice", start, stop, step)  each field None, an int or SYMBOLIC
#   ("newaxis",)                  None / np.newaxis
#   ("ellipsis",)                 ... (kept: even when it spans no dims, it separates
#                                 advanced indices in NumPy's adjacency rule)
#   ("array",)                    the next index input, an integer array (advanced)
#   ("mask",)                     the next index input, a boolean array of ndim k that
#                                 consumes k dims (advanced)
# Dims left over after the last entry are taken whole, as in NumPy.
_ADVANCED = ("array", "mask")
_BASIC_1 = ("newaxis", "ellipsis")
_NAMES = {"newaxis": "None", "ellipsis": "...", "array": "int array", "mask": "bool mask"}


def _check_idx(op, idx, advanced_ok: bool):
    if not isinstance(idx, tuple):
        raise TypeError(f"{type(op).__name__}: idx must be a tuple of entries, got {idx!r}")
    for e in idx:
        ok = isinstance(e, tuple) and e and e[0] in ("int", "slice", *_BASIC_1, *_ADVANCED)
        if ok and e[0] == "int":
            ok = len(e) == 2 and (e[1] == SYMBOLIC or isinstance(e[1], int))
        elif ok and e[0] == "slice":
            ok = len(e) == 4 and all(
                f is None or f == SYMBOLIC or isinstance(f, int) for f in e[1:]
            )
        elif ok:
            ok = len(e) == 1 and (advanced_ok or e[0] in _BASIC_1)
        if not ok:
            raise TypeError(f"{type(op).__name__}: invalid index entry {e!r}")
    if sum(e == ("ellipsis",) for e in idx) > 1:
        raise IndexError(f"{type(op).__name__}: an index can only have a single ellipsis ('...')")


def _n_inputs(idx) -> int:
    """How many index inputs (after ``x``, and ``y``) a node with this ``idx`` takes."""
    return sum(f == SYMBOLIC for e in idx for f in e[1:]) + sum(e[0] in _ADVANCED for e in idx)


def _group_inputs(idx, inputs) -> list:
    """Pair each entry of ``idx`` with the list of index inputs it takes."""
    pos, grouped = 0, []
    for e in idx:
        n = sum(f == SYMBOLIC for f in e[1:]) + (e[0] in _ADVANCED)
        grouped.append((e, list(inputs[pos : pos + n])))
        pos += n
    return grouped


def _consumed(entry, inputs) -> int:
    """How many dims of the indexed tensor an entry consumes (a mask: its ndim; ``...``
    is counted apart)."""
    if entry[0] in _BASIC_1:
        return 0
    return inputs[0].ndim if entry[0] == "mask" else 1


def _fmt_idx(idx) -> str:
    parts = []
    for e in idx:
        if e[0] == "int":
            parts.append(str(e[1]))
        elif e[0] == "slice":
            start, stop, step = ("" if f is None else str(f) for f in e[1:])
            parts.append(f"{start}:{stop}" + (f":{step}" if step else ""))
        else:
            parts.append(_NAMES[e[0]])
    return ", ".join(parts)


def _to_int(value) -> int:
    return operator.index(np.asarray(value)[()])


def build_key(idx, index_values) -> tuple:
    """The NumPy key for ``idx`` given the run-time values of the index inputs."""
    values = iter(index_values)

    def field(f):
        return _to_int(next(values)) if f == SYMBOLIC else f

    key = []
    for e in idx:
        if e[0] == "int":
            key.append(field(e[1]))
        elif e[0] == "slice":
            key.append(slice(*[field(f) for f in e[1:]]))
        elif e[0] == "newaxis":
            key.append(None)
        elif e[0] == "ellipsis":
            key.append(Ellipsis)
        else:
            key.append(np.asarray(next(values)))
    return tuple(key)


# --------------------------------------------------------------------------- static shape


def _slice_len(op, fields, dim):
    """Static length of a slice of a dim of static length ``dim`` (None when unknown)."""
    start, stop, step = fields
    if step == 0:
        raise ValueError(f"{op}: slice step cannot be zero")
    if dim == 0:
        return 0
    if SYMBOLIC in (start, stop, step):
        return None
    if dim is not None:
        return len(range(*slice(start, stop, step).indices(dim)))
    # Clipping to an unknown length keeps the order of two same-sign bounds.
    step = 1 if step is None else step
    if start is not None and stop is not None and (start >= 0) == (stop >= 0):
        if (step > 0 and stop <= start) or (step < 0 and start <= stop):
            return 0
    return None


def _check_scalar_input(op, var, what):
    if var.ndim != 0 or not is_int(var.dtype):
        raise TypeError(f"{op}: {what} must be a 0-d integer, got {var.type}")


def _check_bounds(op, values, axis, dim):
    """IndexError if an integer index known when building is out of range for ``dim``."""
    values = np.asarray(values)
    if dim is None or values.size == 0:
        return
    lo, hi = int(values.min()), int(values.max())
    for v in (lo, hi):
        if not -dim <= v < dim:
            raise IndexError(f"{op}: index {v} is out of bounds for axis {axis} with size {dim}")


def index_shape(op, idx, x: Variable, index_inputs) -> tuple:
    """The static shape of ``x[idx]`` by NumPy's rules, raising the errors knowable now.

    Advanced indices (integer arrays, boolean masks and, when there is one of those, also
    integers) broadcast together; their dims replace the first advanced entry's position
    if all advanced entries are adjacent, and go first otherwise.
    """
    if len(index_inputs) != _n_inputs(idx):
        raise TypeError(f"{op}: takes {_n_inputs(idx)} index inputs, got {len(index_inputs)}")
    grouped = _group_inputs(idx, index_inputs)
    consumed = sum(_consumed(e, ins) for e, ins in grouped)
    if consumed > x.ndim:
        raise IndexError(
            f"{op}: too many indices for an input of shape {fmt_shape(x.type.shape)}: "
            f"it is {x.ndim}-dimensional, but {consumed} were indexed"
        )
    advanced = any(e[0] in _ADVANCED for e in idx)
    shape, axis = x.type.shape, 0
    array_bounds = []  # (value, axis, dim) of index arrays known when building
    pieces = []  # ("dims", basic output dims) or ("adv", an advanced index's shape)
    for e, ins in grouped:
        kind = e[0]
        if kind == "newaxis":
            pieces.append(("dims", (1,)))
        elif kind == "ellipsis":
            width = x.ndim - consumed
            pieces.append(("dims", shape[axis : axis + width]))
            axis += width
        elif kind == "int":
            if ins:
                _check_scalar_input(op, ins[0], "an integer index")
            else:
                _check_bounds(op, e[1], axis, shape[axis])
            if advanced:
                pieces.append(("adv", ()))
            axis += 1
        elif kind == "slice":
            for var in ins:
                _check_scalar_input(op, var, "a slice bound")
            pieces.append(("dims", (_slice_len(op, e[1:], shape[axis]),)))
            axis += 1
        elif kind == "array":
            var = ins[0]
            if not is_int(var.dtype):
                raise TypeError(f"{op}: an index array must have an integer dtype, got {var.type}")
            value = static_value(var)
            if value is not None:
                array_bounds.append((value, axis, shape[axis]))
            pieces.append(("adv", var.type.shape))
            axis += 1
        else:
            pieces.append(("adv", (_mask_count(op, ins[0], shape, axis),)))
            axis += ins[0].ndim
    pieces.append(("dims", shape[axis:]))
    adv_at = [i for i, (kind, _) in enumerate(pieces) if kind == "adv"]
    if not adv_at:
        return sum((dims for _, dims in pieces), ())
    try:
        adv_shape = broadcast_static([s for kind, s in pieces if kind == "adv"], str(op))
    except ValueError as exc:
        raise IndexError(f"{exc} (shape mismatch of the index arrays)") from None
    # NumPy checks index arrays only when their broadcast shape is not empty.
    if all(d is not None and d > 0 for d in adv_shape):
        for value, axis, dim in array_bounds:
            _check_bounds(op, value, axis, dim)
    before = sum((dims for kind, dims in pieces[: adv_at[0]] if kind == "dims"), ())
    after = sum((dims for kind, dims in pieces[adv_at[0] :] if kind == "dims"), ())
    if adv_at[-1] - adv_at[0] + 1 == len(adv_at):
        return before + adv_shape + after
    return adv_shape + before + after


def _mask_count(op, mask, shape, axis):
    """Check a boolean mask against the dims it indexes; return its static count of Trues."""
    if mask.dtype != "bool":
        raise TypeError(f"{op}: a mask must have dtype bool, got {mask.type}")
    dims = shape[axis : axis + mask.ndim]
    # NumPy lets an empty mask index dims of any length.
    nonempty = all(d is not None and d > 0 for d in mask.type.shape)
    for j, (got, want) in enumerate(zip(mask.type.shape, dims, strict=True)):
        if nonempty and want is not None and got != want:
            raise IndexError(
                f"{op}: boolean index of shape {fmt_shape(mask.type.shape)} does not match "
                f"the indexed dims {fmt_shape(dims)} of the input of shape {fmt_shape(shape)} "
                f"(axis {axis + j}: {want} vs {got})"
            )
    value = static_value(mask)
    if value is not None:
        return int(np.count_nonzero(value))
    return 0 if 0 in mask.type.shape else None


# --------------------------------------------------------------------------- ops


class _IndexOp(Op):
    """What ``Subtensor`` and ``AdvancedSubtensor`` share: the type rule, ``impl`` and the
    hooks that make entries of ``x.shape`` visible to ``static_value``/``static_int_tuple``."""

    def make_node(self, x, *index_inputs) -> Apply:
        x = as_tensor(x)
        index_inputs = [as_tensor(v) for v in index_inputs]
        shape = index_shape(self, self.idx, x, index_inputs)
        return Apply(self, [x, *index_inputs], [TensorType(x.dtype, shape)])

    def impl(self, x, *index_values):
        return np.asarray(x[build_key(self.idx, index_values)])

    def vjp(self, inputs, outputs, grads):
        """Scatter ``g`` into zeros shaped like ``x`` (adding at duplicate positions)."""
        from fusegraph.ops import zeros_like

        x, *index_inputs = inputs
        advanced = isinstance(self, AdvancedSubtensor)
        gx = IncSubtensor(self.idx, False, advanced)(zeros_like(x), grads[0], *index_inputs)
        return [gx] + [None] * len(index_inputs)

    def _static_items(self, node):
        """``x[idx]`` as an object array of ints and Nones when ``x`` is an integer vector
        (such as ``y.shape``) with entries known when building; else None."""
        x, *index_inputs = node.inputs
        if x.ndim != 1 or not is_int(x.dtype) or node.outputs[0].ndim > 1:
            return None
        values = [static_value(v) for v in index_inputs]
        if any(v is None for v in values):
            return None
        try:
            entries = static_int_tuple(x)
            items = np.empty(len(entries), dtype=object)
            items[:] = entries
            return np.array(items[build_key(self.idx, values)], dtype=object)
        except (ValueError, IndexError, TypeError):
            return None

    def static_value(self, node):
        """The value of the output if known when building: all inputs known, or known
        entries of ``y.shape`` (so ``y.shape[0]`` is static when that dim is)."""
        values = [static_value(v) for v in node.inputs]
        if all(v is not None for v in values):
            try:
                return self.impl(*values)
            except (ValueError, IndexError, TypeError):
                return None
        items = self._static_items(node)
        if items is None or any(v is None for v in items.flat):
            return None
        return np.array(items.tolist(), dtype=node.outputs[0].dtype)

    def static_entries(self, node) -> tuple:
        """Per entry of a vector output, its value if known when building (``y.shape[1:]``)."""
        out = node.outputs[0]
        items = self._static_items(node)
        if items is not None and items.ndim == 1:
            return tuple(None if v is None else int(v) for v in items)
        if out.ndim == 1 and out.type.shape[0] is not None:
            return (None,) * out.type.shape[0]
        raise ValueError(f"the length of shape vector {out} must be known when building")

    def __str__(self) -> str:
        return f"{type(self).__name__}{{{_fmt_idx(self.idx)}}}"


@dataclass(frozen=True)
class Subtensor(_IndexOp):
    """Basic indexing ``x[idx]``: integers, slices and new axes (a view in NumPy).

    Inputs are ``x`` then one 0-d integer per ``SYMBOLIC`` field of ``idx``.
    """

    idx: tuple

    def __post_init__(self):
        _check_idx(self, self.idx, advanced_ok=False)


@dataclass(frozen=True)
class AdvancedSubtensor(_IndexOp):
    """Advanced indexing ``x[idx]``: integer arrays and boolean masks, mixed with integers,
    slices and new axes by NumPy's rules (a copy).

    Inputs are ``x`` then, in the order of ``idx``, one 0-d integer per ``SYMBOLIC`` field
    and one array per ``"array"`` or ``"mask"`` entry.
    """

    idx: tuple

    def __post_init__(self):
        _check_idx(self, self.idx, advanced_ok=True)


@dataclass(frozen=True)
class IncSubtensor(Op):
    """A copy of ``x`` with ``x[idx]`` set to (or incremented by) ``y``, broadcast.

    Inputs are ``x``, ``y``, then the index inputs as for ``Subtensor``/``AdvancedSubtensor``.
    With ``advanced`` indices an increment accumulates over duplicate positions (as
    ``np.add.at``); a set with duplicates keeps the last write (as NumPy's assignment).
    """

    idx: tuple
    set_instead_of_inc: bool = False
    advanced: bool = False

    def __post_init__(self):
        _check_idx(self, self.idx, advanced_ok=True)
        if not self.advanced and any(e[0] in _ADVANCED for e in self.idx):
            raise TypeError(f"{type(self).__name__}: idx has advanced entries; pass advanced=True")

    def make_node(self, x, y, *index_inputs) -> Apply:
        x = as_tensor(x)
        y = self._as_y(x, y)
        index_inputs = [as_tensor(v) for v in index_inputs]
        target = index_shape(self, self.idx, x, index_inputs)
        ys = y.type.shape
        bad = len(ys) > len(target) or any(
            a is not None and b is not None and a not in (1, b)
            for a, b in zip(reversed(ys), reversed(target), strict=False)
        )
        if bad:
            raise ValueError(
                f"{self}: y of shape {fmt_shape(ys)} cannot be broadcast to the shape "
                f"{fmt_shape(target)} of x[idx] (x has shape {fmt_shape(x.type.shape)})"
            )
        return Apply(self, [x, y, *index_inputs], [TensorType(x.dtype, x.type.shape)])

    def _as_y(self, x, y) -> Variable:
        if isinstance(y, Variable):
            if not np.can_cast(y.dtype, x.dtype, "safe"):
                raise TypeError(
                    f"{self}: y of dtype {y.dtype} cannot be cast to x's dtype {x.dtype} "
                    f"without loss; cast it first with .astype({x.dtype!r})"
                )
            return y
        if not lossless(y, x.dtype):
            what = type(y).__name__
            if isinstance(y, (np.ndarray, np.generic)):
                what = f"{what} of dtype {y.dtype}"
            raise TypeError(
                f"{self}: y = {y!r} ({what}) cannot be converted to x's dtype {x.dtype} "
                "without loss"
            )
        return constant(y, x.dtype)

    def impl(self, x, y, *index_values):
        out = x.copy()
        key = build_key(self.idx, index_values)
        y = np.asarray(y).astype(out.dtype, copy=False)
        if self.set_instead_of_inc:
            out[key] = y
        elif self.advanced:
            np.add.at(out, key, y)
        else:
            out[key] += y
        return out

    def vjp(self, inputs, outputs, grads):
        """``x`` gets ``g`` (with the overwritten positions zeroed for a set); ``y`` gets
        ``g[idx]`` summed back over the dims it was broadcast along."""
        from fusegraph.ops.grad_ops import sum_to

        x, y, *index_inputs = inputs
        (g,) = grads
        from fusegraph.ops import where

        gx = g
        index_op = AdvancedSubtensor(self.idx) if self.advanced else Subtensor(self.idx)
        gy = index_op(g, *index_inputs)
        if self.set_instead_of_inc:
            gx = IncSubtensor(self.idx, True, self.advanced)(g, 0, *index_inputs)
            if self.advanced:
                gy = where(self._last_writes(x, index_inputs, index_op, gy), gy, 0)
        return [gx, sum_to(gy, y)] + [None] * len(index_inputs)

    def _last_writes(self, x, index_inputs, index_op, target):
        """A boolean tensor shaped like ``x[idx]``: True where that element's write is the
        one that lands (with duplicate indices only the last write does, as in NumPy).
        Found by writing each element's position number and reading back the winners."""
        from fusegraph.ops import arange, eq, full, prod, reshape, shape

        positions = reshape(arange(prod(shape(target))), shape(target), ndim=target.ndim)
        ids = IncSubtensor(self.idx, True, True)(
            full(shape(x), -1, "int64"), positions, *index_inputs
        )
        return eq(index_op(ids, *index_inputs), positions)

    def __str__(self) -> str:
        name = ("Advanced" if self.advanced else "") + (
            "SetSubtensor" if self.set_instead_of_inc else "IncSubtensor"
        )
        return f"{name}{{{_fmt_idx(self.idx)}}}"


# --------------------------------------------------------------------------- parsing keys


def _bad_index(item):
    return TypeError(
        f"Subtensor: index {item!r} ({type(item).__name__}) is not valid; use integers, "
        "slices, None, ..., or integer or boolean arrays"
    )


def _slice_field(item, part):
    """A slice bound: None, an int, or a 0-d integer variable (folded when static)."""
    if part is None:
        return None, []
    if isinstance(part, Variable):
        if part.ndim != 0 or not is_int(part.dtype):
            raise TypeError(f"Subtensor: slice bounds must be integers or None, got {part.type}")
        value = static_value(part)
        return (SYMBOLIC, [part]) if value is None else (int(value), [])
    try:
        return operator.index(part), []
    except TypeError:
        raise TypeError(f"Subtensor: slice bounds must be integers or None, got {item!r}") from None


def _array_index(item):
    """An index array as a variable: lists and arrays become constants."""
    if isinstance(item, Variable):
        var = item
    else:
        try:
            var = as_tensor(item)
        except TypeError:
            raise _bad_index(item) from None
        if not isinstance(item, np.ndarray) and var.dtype == "float64" and var.data.size == 0:
            var = constant(np.zeros(np.shape(item), dtype="int64"))  # NumPy: [] indexes as ints
    if var.dtype != "bool" and not is_int(var.dtype):
        raise TypeError(
            f"Subtensor: an index must be an integer or boolean array, got {var.type} ({item!r})"
        )
    return var


def _parse_item(item):
    """One item of a key as ``(entry, index_inputs)``."""
    if item is None:
        return ("newaxis",), []
    if isinstance(item, slice):
        fields, inputs = [], []
        for part in (item.start, item.stop, item.step):
            f, ins = _slice_field(item, part)
            fields.append(f)
            inputs += ins
        return ("slice", *fields), inputs
    if isinstance(item, (bool, np.bool_)):
        return ("mask",), [constant(np.bool_(item))]
    if isinstance(item, (int, np.integer)):
        return ("int", int(item)), []
    if isinstance(item, (Variable, list, tuple, np.ndarray)):
        var = _array_index(item)
        if var.dtype == "bool":
            return ("mask",), [var]
        if var.ndim == 0:
            value = static_value(var)
            return (("int", SYMBOLIC), [var]) if value is None else (("int", int(value)), [])
        return ("array",), [var]
    raise _bad_index(item)


def parse_key(key) -> tuple[tuple, list]:
    """Turn a NumPy key into ``(idx, index_inputs)``."""
    items = key if isinstance(key, tuple) else (key,)
    parsed = [(("ellipsis",), []) if item is Ellipsis else _parse_item(item) for item in items]
    if sum(item is Ellipsis for item in items) > 1:
        raise IndexError("Subtensor: an index can only have a single ellipsis ('...')")
    idx = tuple(e for e, _ in parsed)
    return idx, [v for _, ins in parsed for v in ins]


# --------------------------------------------------------------------------- public API


def getitem(x, key):
    """Index ``x`` as NumPy does (``x[key]``); ``Variable.__getitem__`` calls this.

    Basic indexing (integers, slices, ``None``, ``...``) builds a ``Subtensor``; integer
    arrays and boolean masks build an ``AdvancedSubtensor``, mixed with the other kinds by
    NumPy's rules. A boolean mask's selected length is known only at run time (unless the
    mask is a constant).

    Args:
        x: the tensor to index.
        key: an index item or a tuple of them: Python or NumPy integers and 0-d integer
            variables; slices whose bounds are those or None; ``None``/``np.newaxis``;
            ``Ellipsis``; integer or boolean arrays (variables, lists or NumPy arrays).

    Raises:
        IndexError: at build time, for too many indices or an integer known to be out of
            range; at run time, for an index out of range (raised by NumPy).
        TypeError: for a float or otherwise invalid index.
    """
    x = as_tensor(x)
    idx, index_inputs = parse_key(key)
    if any(e[0] in _ADVANCED for e in idx):
        return AdvancedSubtensor(idx)(x, *index_inputs)
    return Subtensor(idx)(x, *index_inputs)


def _inc_or_set(fname, x, y, set_instead_of_inc):
    node = x.owner if isinstance(x, Variable) else None
    if node is None or not isinstance(node.op, (Subtensor, AdvancedSubtensor)):
        what = f"{x!r} ({x.type})" if isinstance(x, Variable) else f"a {type(x).__name__}"
        raise TypeError(
            f"{fname}: the first argument must be the result of indexing a tensor, such as "
            f"x[1:3] or x[idx]; got {what}"
        )
    advanced = isinstance(node.op, AdvancedSubtensor)
    op = IncSubtensor(node.op.idx, set_instead_of_inc, advanced)
    return op(node.inputs[0], y, *node.inputs[1:])


def set_subtensor(x, y):
    """A copy of the tensor indexed by ``x`` with the indexed positions set to ``y``.

    ``set_subtensor(a[2:], 0)`` is ``a`` with ``a[2:] = 0`` applied to a copy (Theano's
    ``set_subtensor``); ``a`` itself is never modified. With duplicate advanced indices the
    last write wins, as in NumPy.

    Args:
        x: the result of indexing a tensor, ``a[idx]`` (any kind of index).
        y: the new values; broadcast to the shape of ``x``. Its dtype must cast to ``a``'s
            without loss (Python scalars only need an exact conversion).

    Raises:
        TypeError: if ``x`` is not the result of indexing, or ``y``'s dtype is lossy.
        ValueError: if ``y``'s static shape cannot broadcast to ``x``'s.
    """
    return _inc_or_set("set_subtensor", x, y, True)


def inc_subtensor(x, y, set_instead_of_inc=False):
    """A copy of the tensor indexed by ``x`` with ``y`` added at the indexed positions.

    ``inc_subtensor(a[idx], y)`` is ``a`` with ``a[idx] += y`` applied to a copy (Theano's
    ``inc_subtensor``). With advanced indices, duplicate positions accumulate every
    contribution (``np.add.at`` semantics, as Theano and PyTensor), unlike NumPy's
    ``a[idx] += y`` which keeps only one.

    Args:
        x: the result of indexing a tensor, ``a[idx]`` (any kind of index).
        y: the increment; broadcast to the shape of ``x``. Its dtype must cast to ``a``'s
            without loss (Python scalars only need an exact conversion).
        set_instead_of_inc: if True, behave as ``set_subtensor`` (Theano's flag).

    Raises:
        TypeError: if ``x`` is not the result of indexing, or ``y``'s dtype is lossy.
        ValueError: if ``y``'s static shape cannot broadcast to ``x``'s.
    """
    fname = "set_subtensor" if set_instead_of_inc else "inc_subtensor"
    return _inc_or_set(fname, x, y, bool(set_instead_of_inc))


__all__ = [
    "Subtensor",
    "AdvancedSubtensor",
    "IncSubtensor",
    "getitem",
    "set_subtensor",
    "inc_subtensor",
]
