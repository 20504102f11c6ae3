"""Scalar operations: the per-element functions that ``Elemwise`` maps over tensors.

Each scalar op is one record, a ``ScalarOpDef``: its name, arity, NumPy reference, dtype
rule, gradient and infix symbol. The records sit side by side in ``_BUILTIN`` below; a
record is checked when it is made (a missing or inconsistent piece raises at import).
Everything else derives from them: ``Elemwise`` and the public constructors
(``fusegraph.add`` ...; ``ops/elemwise.py``), gradients, printing. The Numba code of each
op is rendered by ``backends/numba/scalar_code.RENDERINGS``, checked against ``OPS``.

Adding an elementwise op takes three edits: a record here, a rendering in scalar_code and
a row in the op table of ``tests/ops/test_elemwise.py``. At run time (a plugin, a test),
``register(record)`` and ``scalar_code.register_rendering(name, rule)`` do the first two.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fusegraph.types import as_dtype, is_float, upcast

# ----------------------------------------------------------------------------------------
# NumPy references and dtype rules


def float_dtype(*dtypes: str) -> str:
    """The float dtype a transcendental function returns for these inputs (NumPy's rule,
    with float32 where NumPy would give float16)."""
    dt = upcast(*dtypes)
    if is_float(dt):
        return dt
    return "float32" if np.dtype(dt).itemsize <= 2 else "float64"


def _ufunc_dtype(ufunc):
    def rule(*dtypes):
        resolved = ufunc.resolve_dtypes(tuple(np.dtype(d) for d in dtypes) + (None,))
        return as_dtype(resolved[-1])

    return rule


def _ufunc_impl(ufunc):
    def impl(*arrays):
        result = ufunc(*arrays)
        if np.asarray(result).dtype == np.float16:
            # NumPy computes small ints in float16; we compute (and return) float32.
            result = ufunc(*(np.asarray(a, dtype="float32") for a in arrays))
        return result

    return impl


def _float_impl(fn):
    """Wrap a float function so it computes in the dtype ``float_dtype`` gives."""

    def impl(*arrays):
        dtype = float_dtype(*(a.dtype.name for a in arrays))
        return fn(*(np.asarray(a, dtype=dtype) for a in arrays)).astype(dtype, copy=False)

    return impl


def _sigmoid(x):
    # Two branches so that neither exp overflows: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) else.
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _lgamma(v: float) -> float:
    try:
        return math.lgamma(v)
    except (ValueError, OverflowError):  # poles at 0, -1, -2, ...; |v| beyond ~2.5e305
        return math.inf


def _digamma(x):
    """The digamma function psi = d/dx log(gamma(x)), elementwise on a float64 array."""
    x = x0 = np.array(x, dtype="float64")
    out = np.zeros_like(x)
    # Reflection psi(x) = psi(1 - x) - pi / tan(pi x) brings x < 0.5 to x >= 0.5.
    low = x < 0.5
    out[low] = -np.pi / np.tan(np.pi * x[low])
    x = np.where(low, 1 - x, x)
    # Recurrence psi(x) = psi(x + 1) - 1/x until x >= 10, then the asymptotic series.
    for _ in range(10):
        small = x < 10
        out -= np.where(small, 1 / np.where(small, x, 1), 0)
        x = np.where(small, x + 1, x)
    inv2 = 1 / (x * x)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    out += np.log(x) - 0.5 / x - series
    # Poles at the negative integers (SciPy's NaN); at +-0 the reflection gives -+inf.
    out[(x0 < 0) & (np.floor(x0) == x0)] = np.nan
    return out


def _vectorize(fn):
    vec = np.vectorize(fn, otypes=["float64"])

    def impl(x):
        return vec(x) if x.size else np.empty(x.shape)

    return impl


def _same_dtype(*dtypes):
    return upcast(*dtypes)


def _where_dtype(cond, x, y):
    return upcast(x, y)


def _where(cond, x, y):
    return np.where(cond.astype(bool, copy=False), x, y)


def _clip(x, lo, hi):
    return np.clip(x, lo, hi, dtype=upcast(x.dtype.name, lo.dtype.name, hi.dtype.name))


def _same_impl(fn):
    def impl(*arrays):
        return np.asarray(fn(*arrays)).astype(upcast(*(a.dtype.name for a in arrays)), copy=False)

    return impl


def _reciprocal(x):
    dtype = float_dtype(x.dtype.name)
    return np.true_divide(1, x, dtype=dtype)


def _relu(x):
    return np.maximum(x, np.zeros((), x.dtype))


# ----------------------------------------------------------------------------------------
# Gradients: fn(T, z, g, *inputs) -> one gradient per input (a variable, or None where no
# gradient flows), for output ``z`` with incoming gradient ``g``. ``T`` is the
# ``fusegraph.ops`` namespace (passed in because this module sits below it).

_LN2, _LN10, _TWO_OVER_SQRT_PI = math.log(2.0), math.log(10.0), 2.0 / math.sqrt(math.pi)


def _zero_grad(T, z, g, *inputs):
    """The gradient of a piecewise-constant function: zero for every input."""
    return [T.zeros_like(x) for x in inputs]


def _pow_grad(T, z, g, x, y):
    # d/dy x**y = x**y log x, taken as 0 at x == 0 (where x**y is 0 or 1 for y >= 0).
    log_x = T.log(T.where(T.eq(x, 0), 1, x))
    return [g * y * x ** (y - 1), g * z * log_x]


def _maximum_grad(T, z, g, x, y):
    # Ties go to the first argument, so the two gradients always sum to g.
    return [T.where(x >= y, g, 0), T.where(x >= y, 0, g)]


def _minimum_grad(T, z, g, x, y):
    return [T.where(x <= y, g, 0), T.where(x <= y, 0, g)]


def _clip_grad(T, z, g, x, lo, hi):
    # clip is minimum(maximum(x, lo), hi) (also when lo > hi); ties as in those two.
    below_hi = T.maximum(x, lo) <= hi
    g_max = T.where(below_hi, g, 0)
    return [T.where(x >= lo, g_max, 0), T.where(x >= lo, 0, g_max), T.where(below_hi, 0, g)]


def _arctan2_grad(T, z, g, y, x):
    r2 = x * x + y * y
    return [g * x / r2, -g * y / r2]


# ----------------------------------------------------------------------------------------
# The record


@dataclass(frozen=True)
class NoGradient:
    """The ``grad`` of an op without a gradient, saying why (``NullGrad`` shows it)."""

    reason: str


#: The ``grad`` of the comparisons, logic and classification ops.
BOOLEAN_RESULT = NoGradient("its result is boolean")


@dataclass(frozen=True)
class ScalarOpDef:
    """Everything about one scalar op but its Numba code (``scalar_code.RENDERINGS``).

    Attributes:
        name: the op's name, also its public constructor's (``fusegraph.<name>``).
        nin: the number of inputs.
        impl: the NumPy reference: arrays in, an array of ``dtype_rule``'s dtype out.
        dtype_rule: the output's dtype name for the inputs' dtype names; raises TypeError
            for inputs the op does not support.
        grad: ``fn(T, z, g, *inputs)`` giving one gradient per input (see above), or a
            ``NoGradient`` saying why there is none.
        infix: ``(symbol, precedence)`` of the Python operator printing writes for a
            binary op (``("+", 10)``), or None to print a call.
    """

    name: str
    nin: int
    impl: Callable
    dtype_rule: Callable
    grad: Callable | NoGradient
    infix: tuple[str, int] | None = None

    def __post_init__(self):
        problems = [text for ok, text in self._checks() if not ok]
        if problems:
            raise ValueError(f"scalar op record {self.name!r}: {'; '.join(problems)}")

    def _checks(self):
        nin = self.nin
        yield self.name.isidentifier(), "its name must be a Python identifier"
        yield isinstance(nin, int) and nin >= 1, "nin must be an int >= 1"
        yield _takes(self.impl, nin), f"impl must take {nin} arrays"
        yield _takes(self.dtype_rule, nin), f"dtype_rule must take {nin} dtype names"
        if isinstance(self.grad, NoGradient):
            yield bool(self.grad.reason), "a NoGradient needs a reason"
        else:
            yield _takes(self.grad, nin + 3), f"grad must take (T, z, g) and {nin} inputs"
        if self.infix is not None:
            ok = isinstance(self.infix, tuple) and len(self.infix) == 2 and nin == 2
            ok = ok and isinstance(self.infix[0], str) and isinstance(self.infix[1], int)
            yield ok, "infix must be (symbol, precedence), and only a binary op has one"


def _takes(fn, count: int) -> bool:
    """Whether ``fn`` can be called with ``count`` positional arguments."""
    try:
        inspect.signature(fn).bind(*[None] * count)
    except (TypeError, ValueError):
        return False
    return True


def ufunc_op(name, ufunc, grad, infix=None) -> ScalarOpDef:
    """The record of an op that is NumPy's ``ufunc``: its arity, loop dtypes and values
    (in float32 where NumPy computes small ints in float16)."""
    return ScalarOpDef(name, ufunc.nin, _ufunc_impl(ufunc), _ufunc_dtype(ufunc), grad, infix)


def float_op(name, fn, grad) -> ScalarOpDef:
    """The record of a unary float function ``fn``, computed in ``float_dtype``'s dtype."""
    return ScalarOpDef(name, 1, _float_impl(fn), float_dtype, grad)


# ----------------------------------------------------------------------------------------
# The records. Gradients: (T, z, g, *inputs) -> input gradients; infix: (symbol, precedence).

_BUILTIN = (
    # arithmetic
    ufunc_op("add", np.add, lambda T, z, g, x, y: [g, g], ("+", 10)),
    ufunc_op("sub", np.subtract, lambda T, z, g, x, y: [g, -g], ("-", 10)),
    ufunc_op("mul", np.multiply, lambda T, z, g, x, y: [g * y, g * x], ("*", 20)),
    ufunc_op("true_div", np.true_divide, lambda T, z, g, x, y: [g / y, -g * z / y], ("/", 20)),
    ufunc_op("floor_div", np.floor_divide, _zero_grad, ("//", 20)),
    ufunc_op("mod", np.remainder, lambda T, z, g, x, y: [g, -g * T.floor_div(x, y)], ("%", 20)),
    ufunc_op("pow", np.power, _pow_grad, ("**", 40)),
    ufunc_op("neg", np.negative, lambda T, z, g, x: [-g]),
    ufunc_op("abs", np.absolute, lambda T, z, g, x: [g * T.sign(x)]),
    ufunc_op("sign", np.sign, _zero_grad),
    ufunc_op("square", np.square, lambda T, z, g, x: [2 * g * x]),
    ScalarOpDef("reciprocal", 1, _reciprocal, float_dtype, lambda T, z, g, x: [-g * z * z]),
    ufunc_op("maximum", np.maximum, _maximum_grad),
    ufunc_op("minimum", np.minimum, _minimum_grad),
    ufunc_op("floor", np.floor, _zero_grad),
    ufunc_op("ceil", np.ceil, _zero_grad),
    ScalarOpDef("round", 1, _same_impl(np.round), _same_dtype, _zero_grad),
    ScalarOpDef(
        "relu", 1, _same_impl(_relu), _same_dtype, lambda T, z, g, x: [T.where(x > 0, g, 0)]
    ),
    ScalarOpDef("clip", 3, _clip, _same_dtype, _clip_grad),
    ScalarOpDef(
        "where",
        3,
        _where,
        _where_dtype,
        lambda T, z, g, c, x, y: [None, T.where(c, g, 0), T.where(c, 0, g)],
    ),
    # transcendental
    ufunc_op("exp", np.exp, lambda T, z, g, x: [g * z]),
    ufunc_op("expm1", np.expm1, lambda T, z, g, x: [g * (z + 1)]),
    ufunc_op("log", np.log, lambda T, z, g, x: [g / x]),
    ufunc_op("log1p", np.log1p, lambda T, z, g, x: [g / (x + 1)]),
    ufunc_op("log2", np.log2, lambda T, z, g, x: [g / (x * _LN2)]),
    ufunc_op("log10", np.log10, lambda T, z, g, x: [g / (x * _LN10)]),
    ufunc_op("sqrt", np.sqrt, lambda T, z, g, x: [g / (2 * z)]),
    ufunc_op("sin", np.sin, lambda T, z, g, x: [g * T.cos(x)]),
    ufunc_op("cos", np.cos, lambda T, z, g, x: [-g * T.sin(x)]),
    ufunc_op("tan", np.tan, lambda T, z, g, x: [g * (1 + z * z)]),
    ufunc_op("arcsin", np.arcsin, lambda T, z, g, x: [g / T.sqrt(1 - x * x)]),
    ufunc_op("arccos", np.arccos, lambda T, z, g, x: [-g / T.sqrt(1 - x * x)]),
    ufunc_op("arctan", np.arctan, lambda T, z, g, x: [g / (1 + x * x)]),
    ufunc_op("arctan2", np.arctan2, _arctan2_grad),
    ufunc_op("sinh", np.sinh, lambda T, z, g, x: [g * T.cosh(x)]),
    ufunc_op("cosh", np.cosh, lambda T, z, g, x: [g * T.sinh(x)]),
    ufunc_op("tanh", np.tanh, lambda T, z, g, x: [g * (1 - z * z)]),
    float_op(
        "erf", _vectorize(math.erf), lambda T, z, g, x: [g * _TWO_OVER_SQRT_PI * T.exp(-x * x)]
    ),
    float_op(
        "erfc", _vectorize(math.erfc), lambda T, z, g, x: [-g * _TWO_OVER_SQRT_PI * T.exp(-x * x)]
    ),
    float_op("gammaln", _vectorize(_lgamma), lambda T, z, g, x: [g * T.psi(x)]),
    float_op("psi", _digamma, NoGradient("its derivative, trigamma, is not in the catalogue")),
    float_op("sigmoid", _sigmoid, lambda T, z, g, x: [g * z * (1 - z)]),
    float_op("softplus", _softplus, lambda T, z, g, x: [g * T.sigmoid(x)]),
    # comparisons and logic (bool results); & and | bind tighter than comparisons, as in Python
    ufunc_op("eq", np.equal, BOOLEAN_RESULT, ("==", 5)),
    ufunc_op("neq", np.not_equal, BOOLEAN_RESULT, ("!=", 5)),
    ufunc_op("lt", np.less, BOOLEAN_RESULT, ("<", 5)),
    ufunc_op("le", np.less_equal, BOOLEAN_RESULT, ("<=", 5)),
    ufunc_op("gt", np.greater, BOOLEAN_RESULT, (">", 5)),
    ufunc_op("ge", np.greater_equal, BOOLEAN_RESULT, (">=", 5)),
    ufunc_op("logical_and", np.logical_and, BOOLEAN_RESULT, ("&", 7)),
    ufunc_op("logical_or", np.logical_or, BOOLEAN_RESULT, ("|", 6)),
    ufunc_op("logical_not", np.logical_not, BOOLEAN_RESULT),
    ufunc_op("isnan", np.isnan, BOOLEAN_RESULT),
    ufunc_op("isinf", np.isinf, BOOLEAN_RESULT),
    ufunc_op("isfinite", np.isfinite, BOOLEAN_RESULT),
)

# ----------------------------------------------------------------------------------------
# The registry

#: name -> record, for every scalar op but ``Cast`` (a class of its own: it has a parameter).
OPS: dict[str, ScalarOpDef] = {}


def _add(record: ScalarOpDef) -> None:
    if not isinstance(record, ScalarOpDef):
        raise TypeError(f"expected a ScalarOpDef, got {record!r}")
    if record.name in OPS or record.name == "cast":
        raise ValueError(f"there is a scalar op named {record.name!r} already")
    OPS[record.name] = record
    _output_dtype.cache_clear()


def register(record: ScalarOpDef) -> ScalarOpDef:
    """Add a scalar op at run time and publish its constructor as ``fusegraph.<name>``,
    ``fusegraph.ops.<name>`` and ``fusegraph.ops.elemwise.<name>`` (``unregister`` undoes
    it). The Numba backend needs a rendering too (``scalar_code.register_rendering``)."""
    elemwise = importlib.import_module("fusegraph.ops.elemwise")  # the constructors' module
    _add(record)
    try:
        elemwise.publish(record.name)
    except Exception:
        del OPS[record.name]
        raise
    return record


def unregister(name: str) -> None:
    """Remove the scalar op ``name`` (one ``register`` added) and its public constructor.
    A backend's rendering of it is the backend's to remove
    (``scalar_code.unregister_rendering``)."""
    if name not in OPS or any(record.name == name for record in _BUILTIN):
        raise ValueError(f"unregister: {name!r} is not a scalar op registered at run time")
    importlib.import_module("fusegraph.ops.elemwise").unpublish(name)
    del OPS[name]
    _output_dtype.cache_clear()


# ----------------------------------------------------------------------------------------
# The op in a graph


@dataclass(frozen=True)
class ScalarOp:
    """A per-element function, identified by ``name`` (a key of ``OPS``, its record)."""

    name: str

    def __post_init__(self):
        if self.name not in OPS and type(self) is ScalarOp:
            raise ValueError(f"unknown scalar op {self.name!r}")

    @property
    def record(self) -> ScalarOpDef:
        return OPS[self.name]

    @property
    def nin(self) -> int:
        return self.record.nin

    @property
    def grad(self) -> Callable | NoGradient:
        """``fn(T, z, g, *inputs)`` giving the input gradients, or a ``NoGradient``."""
        return self.record.grad

    def output_dtype(self, *dtypes: str) -> str:
        """The result dtype for inputs of these dtypes (raises TypeError if unsupported)."""
        return _output_dtype(self, tuple(dtypes))

    def impl(self, *arrays):
        """The NumPy reference, on arrays; returns an array of ``output_dtype``."""
        return self.record.impl(*arrays)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Cast(ScalarOp):
    """Convert to ``dtype`` (C-style truncation of floats to ints, as ``astype``)."""

    name: str = "cast"
    dtype: str = "float64"

    def __post_init__(self):
        object.__setattr__(self, "dtype", as_dtype(self.dtype))

    @property
    def nin(self) -> int:
        return 1

    @property
    def grad(self) -> Callable:
        return _cast_grad

    def impl(self, x):
        if x.dtype.kind == "f" and np.dtype(self.dtype).kind in "iu":
            return float_to_int(x, self.dtype)
        return x.astype(self.dtype)

    def __str__(self) -> str:
        return f"cast{{{self.dtype}}}"


def _cast_grad(T, z, g, x):
    return [T.cast(g, x.dtype)] if is_float(x.dtype) else [None]


def float_to_int(x, dtype):
    """Convert a float array to the integer ``dtype`` as x86-64's conversions do, defined for
    every input (NumPy's ``astype`` leaves NaN, inf and out-of-range values undefined):
    truncation toward zero; int8, int16, int32, uint8 and uint16 go through int32, int64
    and uint32 through int64, where NaN and out-of-range values give that type's minimum,
    then wrap to the target width; uint64 converts [2**63, 2**64) exactly and the rest
    through int64. Both backends do this."""
    x = np.asarray(x, dtype=np.float64)
    dtype = np.dtype(dtype)
    if dtype == np.uint64:
        big = x >= 2.0**63
        wide = float_to_int(np.where(big, x - 2.0**63, x), np.int64).astype(np.uint64)
        return np.where(big, wide ^ np.uint64(2**63), wide)
    lo, hi = (
        (-(2.0**63), 2.0**63)
        if dtype.itemsize == 8 or dtype == np.uint32
        else (-(2.0**31), 2.0**31)
    )
    ok = (x >= lo) & (x < hi)  # NaN fails both: replaced by lo, like out-of-range values
    return np.where(ok, np.trunc(np.where(ok, x, 0.0)), lo).astype(np.int64).astype(dtype)


@lru_cache(maxsize=4096)
def _output_dtype(op: ScalarOp, dtypes: tuple) -> str:
    if isinstance(op, Cast):
        return op.dtype
    try:
        return op.record.dtype_rule(*dtypes)
    except TypeError as exc:
        raise TypeError(
            f"{op.name} does not support inputs of dtype {', '.join(dtypes)}: {exc}"
        ) from None


for _record in _BUILTIN:
    _add(_record)
