"""Scalar operations: the per-element functions that ``Elemwise`` maps over tensors.

Each scalar op is a row of one table: its name, arity, NumPy reference and dtype rule.
``Elemwise`` (and later fusion and code generation) sees a graph of these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fusegraph.types import as_dtype, is_float, upcast


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


def _ufunc_row(nin, ufunc):
    return nin, _ufunc_impl(ufunc), _ufunc_dtype(ufunc)


def _float_row(nin, fn):
    return nin, _float_impl(fn), float_dtype


_TABLE = {
    # arithmetic
    "add": _ufunc_row(2, np.add),
    "sub": _ufunc_row(2, np.subtract),
    "mul": _ufunc_row(2, np.multiply),
    "true_div": _ufunc_row(2, np.true_divide),
    "floor_div": _ufunc_row(2, np.floor_divide),
    "mod": _ufunc_row(2, np.remainder),
    "pow": _ufunc_row(2, np.power),
    "neg": _ufunc_row(1, np.negative),
    "abs": _ufunc_row(1, np.absolute),
    "sign": _ufunc_row(1, np.sign),
    "square": _ufunc_row(1, np.square),
    "reciprocal": (1, _reciprocal, float_dtype),
    "maximum": _ufunc_row(2, np.maximum),
    "minimum": _ufunc_row(2, np.minimum),
    "floor": _ufunc_row(1, np.floor),
    "ceil": _ufunc_row(1, np.ceil),
    "round": (1, _same_impl(np.round), _same_dtype),
    "relu": (1, _same_impl(lambda x: np.maximum(x, np.zeros((), x.dtype))), _same_dtype),
    "clip": (3, _clip, _same_dtype),
    "where": (3, _where, _where_dtype),
    # transcendental
    "exp": _ufunc_row(1, np.exp),
    "expm1": _ufunc_row(1, np.expm1),
    "log": _ufunc_row(1, np.log),
    "log1p": _ufunc_row(1, np.log1p),
    "log2": _ufunc_row(1, np.log2),
    "log10": _ufunc_row(1, np.log10),
    "sqrt": _ufunc_row(1, np.sqrt),
    "sin": _ufunc_row(1, np.sin),
    "cos": _ufunc_row(1, np.cos),
    "tan": _ufunc_row(1, np.tan),
    "arcsin": _ufunc_row(1, np.arcsin),
    "arccos": _ufunc_row(1, np.arccos),
    "arctan": _ufunc_row(1, np.arctan),
    "arctan2": _ufunc_row(2, np.arctan2),
    "sinh": _ufunc_row(1, np.sinh),
    "cosh": _ufunc_row(1, np.cosh),
    "tanh": _ufunc_row(1, np.tanh),
    "erf": _float_row(1, _vectorize(math.erf)),
    "erfc": _float_row(1, _vectorize(math.erfc)),
    "gammaln": _float_row(1, _vectorize(_lgamma)),
    "psi": _float_row(1, _digamma),
    "sigmoid": _float_row(1, _sigmoid),
    "softplus": _float_row(1, _softplus),
    # comparisons and logic (bool results)
    "eq": _ufunc_row(2, np.equal),
    "neq": _ufunc_row(2, np.not_equal),
    "lt": _ufunc_row(2, np.less),
    "le": _ufunc_row(2, np.less_equal),
    "gt": _ufunc_row(2, np.greater),
    "ge": _ufunc_row(2, np.greater_equal),
    "logical_and": _ufunc_row(2, np.logical_and),
    "logical_or": _ufunc_row(2, np.logical_or),
    "logical_not": _ufunc_row(1, np.logical_not),
    "isnan": _ufunc_row(1, np.isnan),
    "isinf": _ufunc_row(1, np.isinf),
    "isfinite": _ufunc_row(1, np.isfinite),
}

# Gradients, next to the table above: name -> fn(T, inputs, output, g) returning one
# gradient per input (a variable, or None where no gradient flows). ``T`` is the
# ``fusegraph.ops`` namespace (passed in because this module sits below it).
_LN2, _LN10, _TWO_OVER_SQRT_PI = math.log(2.0), math.log(10.0), 2.0 / math.sqrt(math.pi)


def _zero(T, inputs, out, g):
    return [T.zeros_like(x) for x in inputs]


def _pow_grad(T, xs, out, g):
    x, y = xs
    # d/dy x**y = x**y log x, taken as 0 at x == 0 (where x**y is 0 or 1 for y >= 0).
    log_x = T.log(T.where(T.eq(x, 0), 1, x))
    return [g * y * x ** (y - 1), g * out * log_x]


def _maximum_grad(T, xs, out, g):
    x, y = xs
    # Ties go to the first argument, so the two gradients always sum to g.
    return [T.where(x >= y, g, 0), T.where(x >= y, 0, g)]


def _minimum_grad(T, xs, out, g):
    x, y = xs
    return [T.where(x <= y, g, 0), T.where(x <= y, 0, g)]


def _clip_grad(T, xs, out, g):
    # clip is minimum(maximum(x, lo), hi) (also when lo > hi); ties as in those two.
    x, lo, hi = xs
    below_hi = T.maximum(x, lo) <= hi
    g_max = T.where(below_hi, g, 0)
    return [T.where(x >= lo, g_max, 0), T.where(x >= lo, 0, g_max), T.where(below_hi, 0, g)]


def _atan2_grad(T, xs, out, g):
    y, x = xs
    r2 = x * x + y * y
    return [g * x / r2, -g * y / r2]


def _cast_grad(T, xs, out, g):
    return [T.cast(g, xs[0].dtype)] if is_float(xs[0].dtype) else [None]


GRADS = {
    "add": lambda T, xs, z, g: [g, g],
    "sub": lambda T, xs, z, g: [g, -g],
    "mul": lambda T, xs, z, g: [g * xs[1], g * xs[0]],
    "true_div": lambda T, xs, z, g: [g / xs[1], -g * z / xs[1]],
    "floor_div": _zero,
    "mod": lambda T, xs, z, g: [g, -g * T.floor_div(xs[0], xs[1])],
    "pow": _pow_grad,
    "neg": lambda T, xs, z, g: [-g],
    "abs": lambda T, xs, z, g: [g * T.sign(xs[0])],
    "sign": _zero,
    "square": lambda T, xs, z, g: [2 * g * xs[0]],
    "reciprocal": lambda T, xs, z, g: [-g * z * z],
    "maximum": _maximum_grad,
    "minimum": _minimum_grad,
    "floor": _zero,
    "ceil": _zero,
    "round": _zero,
    "relu": lambda T, xs, z, g: [T.where(xs[0] > 0, g, 0)],
    "clip": _clip_grad,
    "where": lambda T, xs, z, g: [None, T.where(xs[0], g, 0), T.where(xs[0], 0, g)],
    "exp": lambda T, xs, z, g: [g * z],
    "expm1": lambda T, xs, z, g: [g * (z + 1)],
    "log": lambda T, xs, z, g: [g / xs[0]],
    "log1p": lambda T, xs, z, g: [g / (xs[0] + 1)],
    "log2": lambda T, xs, z, g: [g / (xs[0] * _LN2)],
    "log10": lambda T, xs, z, g: [g / (xs[0] * _LN10)],
    "sqrt": lambda T, xs, z, g: [g / (2 * z)],
    "sin": lambda T, xs, z, g: [g * T.cos(xs[0])],
    "cos": lambda T, xs, z, g: [-g * T.sin(xs[0])],
    "tan": lambda T, xs, z, g: [g * (1 + z * z)],
    "arcsin": lambda T, xs, z, g: [g / T.sqrt(1 - xs[0] * xs[0])],
    "arccos": lambda T, xs, z, g: [-g / T.sqrt(1 - xs[0] * xs[0])],
    "arctan": lambda T, xs, z, g: [g / (1 + xs[0] * xs[0])],
    "arctan2": _atan2_grad,
    "sinh": lambda T, xs, z, g: [g * T.cosh(xs[0])],
    "cosh": lambda T, xs, z, g: [g * T.sinh(xs[0])],
    "tanh": lambda T, xs, z, g: [g * (1 - z * z)],
    "erf": lambda T, xs, z, g: [g * _TWO_OVER_SQRT_PI * T.exp(-xs[0] * xs[0])],
    "erfc": lambda T, xs, z, g: [-g * _TWO_OVER_SQRT_PI * T.exp(-xs[0] * xs[0])],
    "gammaln": lambda T, xs, z, g: [g * T.psi(xs[0])],
    "sigmoid": lambda T, xs, z, g: [g * z * (1 - z)],
    "softplus": lambda T, xs, z, g: [g * T.sigmoid(xs[0])],
    "cast": _cast_grad,
}
#: The scalar ops without a gradient: those with boolean results (comparisons, logic,
#: isnan ...) pass none, and psi's derivative (trigamma) is not in the catalogue.
NO_GRADIENT = frozenset(
    ["eq", "neq", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not"]
    + ["isnan", "isinf", "isfinite", "psi"]
)

#: Infix symbols used by printing: name -> (symbol, precedence).
INFIX = {
    "add": ("+", 10),
    "sub": ("-", 10),
    "mul": ("*", 20),
    "true_div": ("/", 20),
    "floor_div": ("//", 20),
    "mod": ("%", 20),
    "pow": ("**", 40),
    "eq": ("==", 5),
    "neq": ("!=", 5),
    "lt": ("<", 5),
    "le": ("<=", 5),
    "gt": (">", 5),
    "ge": (">=", 5),
    "logical_and": ("&", 7),  # as in Python, & and | bind tighter than comparisons
    "logical_or": ("|", 6),
}


@dataclass(frozen=True)
class ScalarOp:
    """A per-element function, identified by ``name`` (a key of the scalar-op table)."""

    name: str

    def __post_init__(self):
        if self.name not in _TABLE and type(self) is ScalarOp:
            raise ValueError(f"unknown scalar op {self.name!r}")

    @property
    def nin(self) -> int:
        return _TABLE[self.name][0]

    def output_dtype(self, *dtypes: str) -> str:
        """The result dtype for inputs of these dtypes (raises TypeError if unsupported)."""
        return _output_dtype(self, tuple(dtypes))

    def impl(self, *arrays):
        """The NumPy reference, on arrays; returns an array of ``output_dtype``."""
        return _TABLE[self.name][1](*arrays)

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

    def impl(self, x):
        if x.dtype.kind == "f" and np.dtype(self.dtype).kind in "iu":
            return float_to_int(x, self.dtype)
        return x.astype(self.dtype)

    def __str__(self) -> str:
        return f"cast{{{self.dtype}}}"


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
        return _TABLE[op.name][2](*dtypes)
    except TypeError as exc:
        raise TypeError(
            f"{op.name} does not support inputs of dtype {', '.join(dtypes)}: {exc}"
        ) from None


SCALAR_OP_NAMES = tuple(_TABLE)


def _check_tables() -> None:
    """Fail at import when the tables disagree: a gradient, an infix symbol or a
    ``NO_GRADIENT`` entry for an op that does not exist (a typo would otherwise leave its op
    without a gradient, silently), or an op with neither a gradient nor that entry."""
    names = set(_TABLE) | {"cast"}
    for label, table in (("GRADS", GRADS), ("INFIX", INFIX), ("NO_GRADIENT", NO_GRADIENT)):
        unknown = sorted(set(table) - names)
        if unknown:
            raise RuntimeError(f"ops/scalar.py: {label} names unknown scalar ops {unknown}")
    missing = sorted(names - set(GRADS) - NO_GRADIENT)
    if missing or set(GRADS) & NO_GRADIENT:
        raise RuntimeError(
            f"ops/scalar.py: every scalar op needs exactly one of a GRADS rule or a NO_GRADIENT "
            f"entry; wrong for {missing or sorted(set(GRADS) & NO_GRADIENT)}"
        )


_check_tables()
