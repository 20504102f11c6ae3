"""Tensor types: a dtype plus a static shape whose dims are ints (known) or None (unknown).

Also the dtype rules every op shares: the supported dtypes, NumPy promotion, and the
static-shape broadcasting rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The dtypes fusegraph computes in. There is no float16 or complex: Numba cannot compute
#: in float16, so where NumPy would produce float16 (``exp`` of an int8) we produce float32.
DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
)
FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = tuple(d for d in DTYPES if d.startswith(("int", "uint")))


def as_dtype(dtype) -> str:
    """Return the canonical name of a supported dtype, or raise a ``TypeError``."""
    name = np.dtype(dtype).name
    if name == "float16":
        name = "float32"
    if name not in DTYPES:
        raise TypeError(f"dtype {name!r} is not supported; use one of {', '.join(DTYPES)}")
    return name


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    """True for signed and unsigned integer dtypes (not bool)."""
    return dtype in INT_DTYPES


def upcast(*dtypes: str) -> str:
    """NumPy's promotion of several dtypes (``np.result_type``), as a supported dtype name."""
    return as_dtype(np.result_type(*dtypes))


def lossless(value, dtype: str) -> bool:
    """True if ``value`` may be converted to ``dtype``: NumPy's "safe" casting for arrays
    and NumPy scalars; for Python scalars and lists, an exact conversion (Python floats may
    become float32, as in Theano)."""
    arr = np.asarray(value)
    if np.can_cast(arr.dtype, dtype, "safe"):
        return True
    if isinstance(value, (np.ndarray, np.generic)):
        return False
    if arr.dtype.kind == "f" and np.dtype(dtype).kind == "f":
        return True
    try:
        with np.errstate(all="ignore"):
            return bool(np.array_equal(arr.astype(dtype), arr))
    except (OverflowError, ValueError):
        return False


def shapes_agree(a: tuple, b: tuple) -> bool:
    """True if static shapes ``a`` and ``b`` have the same length and no two known dims
    differ (so one value can have both)."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def broadcast_static(shapes, op_name: str = "broadcast") -> tuple:
    """Broadcast static shapes as NumPy would; None dims stay unknown.

    Raises ValueError naming ``op_name`` when two known dims can never broadcast. A None
    dim never broadcasts at run time (``check_no_runtime_broadcast``): it takes the length of
    the other non-1 dims on its axis.
    """
    ndim = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for axis in range(ndim):
        dims = [s[axis] for s in padded]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(
                f"{op_name}: shapes {' and '.join(fmt_shape(s) for s in shapes)} cannot be "
                f"broadcast together (axis {axis - ndim}: {' vs '.join(map(str, sorted(known)))})"
            )
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def check_no_runtime_broadcast(static_shapes, shapes) -> None:
    """The run-time half of the broadcasting rule of elementwise ops: only dims whose
    static length is 1 broadcast. A dim of unknown static length must have the same run-time
    length as every other such dim on its axis (as in Theano, PyTensor and JAX), so that the
    graph's shapes are decided by its types and gradients need no run-time sums.

    ``static_shapes`` are the inputs' static shapes and ``shapes`` their run-time shapes;
    raises ValueError naming the inputs and the axis otherwise (the caller adds the op).
    """
    shapes = [tuple(s) for s in shapes]
    ndim = max((len(s) for s in shapes), default=0)
    for axis in range(1, ndim + 1):
        length, first = None, None
        for i, (static, shape) in enumerate(zip(static_shapes, shapes)):
            if len(shape) < axis or static[-axis] == 1:
                continue
            if length is None:
                length, first = shape[-axis], i
            elif shape[-axis] != length:
                shown = " and ".join(fmt_shape(s) for s in shapes)
                hint = ""
                if 1 in (shape[-axis], length):
                    one = i if shape[-axis] == 1 else first
                    hint = (
                        f"; input {one} has length 1 there but its static shape "
                        f"{fmt_shape(static_shapes[one])} does not say so, and only dims of "
                        "static length 1 broadcast: declare it with shape=(..., 1, ...) "
                        "(fg.tensor) or make the length-1 axis explicit (dimshuffle, reshape)"
                    )
                raise ValueError(
                    f"operands could not be broadcast together with shapes {shown}"
                    f" (axis {-axis}: length {length} in input {first}, {shape[-axis]} in "
                    f"input {i}){hint}"
                )


def fmt_shape(shape) -> str:
    """Format a static shape for messages: ``(?, 3)`` with ``?`` for unknown dims."""
    dims = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


_KIND_NAMES = {0: "scalar", 1: "vector", 2: "matrix", 3: "tensor3", 4: "tensor4"}


def size_error(shape: tuple, dtype: str) -> str | None:
    """Why no array of ``dtype`` with these (static, None for unknown) dims can exist, or
    None: NumPy's rule, the product of the nonzero dims times the item size must fit in
    int64 bytes."""
    nbytes = np.dtype(dtype).itemsize
    for d in shape:
        nbytes *= d or 1
    if nbytes <= 2**63 - 1:
        return None
    return (
        f"an array of shape {fmt_shape(shape)} and dtype {dtype} would be larger than the "
        "maximum possible size (2**63 - 1 bytes)"
    )


def check_size(op, shape: tuple, dtype: str) -> None:
    """ValueError naming ``op`` when its result of ``shape`` and ``dtype`` is too big."""
    problem = size_error(shape, dtype)
    if problem:
        raise ValueError(f"{op}: {problem}")


@dataclass(frozen=True, slots=True)
class TensorType:
    """The type of a tensor variable: ``dtype`` and a static ``shape`` (int or None per dim)."""

    dtype: str
    shape: tuple

    def __post_init__(self):
        object.__setattr__(self, "dtype", as_dtype(self.dtype))
        shape = tuple(None if d is None else int(d) for d in self.shape)
        if any(d is not None and d < 0 for d in shape):
            raise ValueError(f"static dims must be >= 0 or None, got {shape}")
        object.__setattr__(self, "shape", shape)
        problem = size_error(shape, self.dtype)
        if problem:
            raise ValueError(problem)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def broadcastable(self) -> tuple:
        """Per dim, True where the static length is 1 (Theano's broadcastable pattern)."""
        return tuple(d == 1 for d in self.shape)

    def convert(self, value, where: str) -> np.ndarray:
        """``value`` as an array of this type: in native byte order, converted to its dtype
        only where that loses nothing (``lossless``). Raises TypeError for a lossy
        conversion and ValueError for another ndim or a contradicted static dim, each
        message starting with ``where`` (an argument, a shared variable). The result may be
        ``value`` itself."""
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        if not arr.dtype.isnative:  # big-endian data on a little-endian machine
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if arr.dtype.name != self.dtype:
            if not lossless(value, self.dtype):
                raise TypeError(
                    f"{where} expects {self.dtype}, got {arr.dtype.name}: the conversion "
                    f"would lose information; convert it with .astype({self.dtype!r})"
                )
            arr = arr.astype(self.dtype)
        if arr.ndim != self.ndim:
            raise ValueError(
                f"{where} expects a {self.ndim}-d array ({self}), got shape {arr.shape}"
            )
        for axis, (want, got) in enumerate(zip(self.shape, arr.shape)):
            if want is not None and want != got:
                raise ValueError(
                    f"{where} expects shape {fmt_shape(self.shape)}, got {arr.shape} (axis {axis})"
                )
        return arr

    def accepts(self, value: np.ndarray) -> str | None:
        """Return None if the array ``value`` fits this type, else a description of why not."""
        if value.dtype.name != self.dtype:
            return f"dtype {value.dtype.name}, expected {self.dtype}"
        if value.ndim != self.ndim:
            return f"ndim {value.ndim}, expected {self.ndim}"
        for axis, (want, got) in enumerate(zip(self.shape, value.shape)):
            if want is not None and want != got:
                return f"shape {value.shape}, expected {fmt_shape(self.shape)} (axis {axis})"
        return None

    def __str__(self) -> str:
        kind = _KIND_NAMES.get(self.ndim, f"tensor{self.ndim}")
        if self.ndim and any(d is not None for d in self.shape):
            return f"{self.dtype} {kind} {fmt_shape(self.shape)}"
        return f"{self.dtype} {kind}"
