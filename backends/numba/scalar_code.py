"""How each scalar op is written in generated Numba code: ``scalar_expr`` renders one step of
a fused scalar graph as a Python expression (NumPy's exact dtype and value semantics), calling
the njit helpers of ``HELPERS`` and the vectorisable functions of ``vecmath``."""

# Generated modules start with ``IMPORTS`` (or run in ``namespace()``), which binds ``math``,
# ``np``, ``vecmath`` and every helper below by its name.
#
# Method: every argument is first cast to the dtype NumPy's loop computes in (the op's output
# dtype for arithmetic, the resolved loop dtype for comparisons), then the operation is
# applied, then the result is wrapped in ``np.<out_dtype>(...)``. The wrap matters because
# Numba types scalar arithmetic on small ints as int64 (``int8 + int8`` is int64) and mixes
# in float64 literals; truncating the wide result back gives NumPy's wrap-around, since
# +, -, * and the integer power loop commute with reduction modulo 2**bits.
#
# Decisions where NumPy has no defined answer (the py backend does the same; tested equal):
# - Casting NaN, +-inf or a float beyond the target range to an integer is undefined in C and
#   NumPy; here it is what x86-64's conversions give (``ops.scalar.float_to_int``): int8,
#   int16, int32, uint8 and uint16 convert through int32, int64 and uint32 through int64,
#   NaN and out-of-range values giving that type's minimum, then wrap to the target width;
#   uint64 converts [2**63, 2**64) exactly and the rest through int64. This is NumPy's result
#   on x86-64 except for uint32 beyond its range, where NumPy's varies with the SIMD
#   instructions of the CPU.
# - Integer floor_div/mod by zero give 0 and ``MIN // -1`` gives MIN, as NumPy (which also
#   warns; compiled code does not).

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numba
import numpy as np

from fusegraph.backends.numba import vecmath
from fusegraph.ops.fused import ScalarConstant
from fusegraph.ops.scalar import Cast, ScalarOp
from fusegraph.types import as_dtype, is_float

_jit = numba.njit(inline="always", error_model="numpy")

#: Changes whenever this file does. Numba's cache does not track inlined callees, so kernel
#: source should embed it (next to vecmath.SOURCE_HASH) to keep cached code from going stale.
SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

HELPERS: dict = {}


def _helper(fn):
    """Compile ``fn`` as an inlined njit helper and register it in ``HELPERS``."""
    jitted = _jit(fn)
    HELPERS[fn.__name__] = jitted
    return jitted


# ----------------------------------------------------------------------------------------
# Integer helpers. The signed ones compute in int64 and the unsigned ones in uint64 (the
# caller wraps the result back to the output dtype), so that Numba never unifies a literal
# int with uint64 (which would give float64).


@_helper
def _floordiv_int(a, b):
    """NumPy's signed floor_divide: 0 for b == 0, MIN for MIN // -1 (wrapping)."""
    a = np.int64(a)
    b = np.int64(b)
    ok = (b != 0) & (b != -1)
    q = a // (b if ok else np.int64(1))
    q = q if b != -1 else -a
    return q if b != 0 else np.int64(0)


@_helper
def _floordiv_uint(a, b):
    """NumPy's unsigned floor_divide: 0 for b == 0."""
    a = np.uint64(a)
    b = np.uint64(b)
    q = a // (b if b != 0 else np.uint64(1))
    return q if b != 0 else np.uint64(0)


@_helper
def _mod_int(a, b):
    """NumPy's signed remainder (sign of the divisor): 0 for b == 0 and for b == -1."""
    a = np.int64(a)
    b = np.int64(b)
    ok = (b != 0) & (b != -1)
    r = a % (b if ok else np.int64(1))
    return r if ok else np.int64(0)


@_helper
def _mod_uint(a, b):
    """NumPy's unsigned remainder: 0 for b == 0."""
    a = np.uint64(a)
    b = np.uint64(b)
    r = a % (b if b != 0 else np.uint64(1))
    return r if b != 0 else np.uint64(0)


@_helper
def _pow_int(a, b):
    """NumPy's signed integer power loop (square and multiply, wrapping); a negative
    exponent raises ValueError, as in NumPy."""
    a = np.int64(a)
    b = np.int64(b)
    if b < 0:
        raise ValueError("Integers to negative integer powers are not allowed.")
    out = a if (b & 1) != 0 else np.int64(1)
    b >>= 1
    while b > 0:
        a *= a
        if (b & 1) != 0:
            out *= a
        b >>= 1
    return out


@_helper
def _pow_uint(a, b):
    """NumPy's unsigned integer power loop (square and multiply, wrapping)."""
    a = np.uint64(a)
    b = np.uint64(b)
    one = np.uint64(1)
    out = a if (b & one) != 0 else one
    b >>= one
    while b > 0:
        a *= a
        if (b & one) != 0:
            out *= a
        b >>= one
    return out


@_helper
def _eq_su(a, b):
    """a == b for signed ``a`` and unsigned ``b`` (NumPy compares int64 with uint64 exactly)."""
    return (a >= 0) & (np.uint64(a) == b)


@_helper
def _lt_su(a, b):
    """a < b for signed ``a`` and unsigned ``b``."""
    return (a < 0) | (np.uint64(a) < b)


@_helper
def _lt_us(a, b):
    """a < b for unsigned ``a`` and signed ``b``."""
    return (b >= 0) & (a < np.uint64(b))


@_helper
def _f_to_i32(x):
    """Float to int32 as x86-64 converts it: NaN and values out of range give INT32_MIN."""
    x = np.float64(x)
    ok = (x > -2147483649.0) & (x < 2147483648.0)
    return np.int32(x) if ok else np.int32(-2147483648)


@_helper
def _f_to_i64(x):
    """Float to int64 as x86-64 converts it: NaN and values out of range give INT64_MIN."""
    x = np.float64(x)
    ok = (x >= -9223372036854775808.0) & (x < 9223372036854775808.0)
    return np.int64(x) if ok else np.int64(-9223372036854775808)


@_helper
def _f_to_u64(x):
    """Float to uint64 as a C compiler does it on x86-64: [2**63, 2**64) exactly, the rest
    through int64 (two's-complement wrap for negative values)."""
    x = np.float64(x)
    if x >= 9223372036854775808.0:
        return np.uint64(_f_to_i64(x - 9223372036854775808.0)) ^ np.uint64(9223372036854775808)
    return np.uint64(_f_to_i64(x))


# ----------------------------------------------------------------------------------------
# Helpers generic over the argument type (ints, bools and floats alike)


@_helper
def _maximum(a, b):
    """np.maximum: NaN if either is NaN, else the larger (the second one on ties, so that
    maximum(-0.0, 0.0) is 0.0 as in NumPy)."""
    return a if (a > b) | (a != a) else b


@_helper
def _minimum(a, b):
    """np.minimum: NaN if either is NaN, else the smaller (the second one on ties)."""
    return a if (a < b) | (a != a) else b


@_helper
def _clip(x, lo, hi):
    """np.clip's loop: min(max(x, lo), hi) where each step keeps a NaN first argument and
    otherwise takes the second one unless the first is strictly beyond it."""
    m = x if (x != x) | (x > lo) else lo
    return m if (m != m) | (m < hi) else hi


# ----------------------------------------------------------------------------------------
# Float helpers, one per float dtype so that every constant has the argument's type (a
# float64 literal would silently promote float32 arithmetic).


def _float_helpers(ftype, suffix):
    one = ftype(1.0)
    zero = ftype(0.0)
    half = ftype(0.5)

    def _divmod(a, b):
        # npy_divmod (NumPy's npy_math): fmod, then Python's sign convention, then the
        # quotient snapped to the nearest integer.
        mod = np.fmod(a, b)
        div = (a - mod) / b
        if mod != 0:
            if (b < zero) != (mod < zero):
                mod = mod + b
                div = div - one
        else:
            mod = math.copysign(zero, b)
        if div != 0:
            floordiv = np.floor(div)
            if div - floordiv > half:
                floordiv = floordiv + one
        else:
            floordiv = math.copysign(zero, a / b)
        return floordiv, mod

    def floordiv(a, b):
        """np.floor_divide for floats (npy_floor_divide): a / b when b == 0."""
        if b == 0:
            return a / b
        return _divmod_j(a, b)[0]

    def mod(a, b):
        """np.remainder for floats (npy_remainder): fmod(a, b), i.e. NaN, when b == 0."""
        if b == 0:
            return np.fmod(a, b)
        return _divmod_j(a, b)[1]

    def sign(x):
        """np.sign for floats: +-1, 0.0 for +-0.0, NaN for NaN."""
        return one if x > zero else (-one if x < zero else x - x)

    _divmod_j = _jit(_divmod)
    for name, fn in (("_floordiv", floordiv), ("_mod", mod), ("_sign", sign)):
        fn.__name__ = fn.__qualname__ = f"{name}_{suffix}"
        globals()[fn.__name__] = _helper(fn)


_float_helpers(np.float32, "f32")
_float_helpers(np.float64, "f64")


@_helper
def _psi(x):
    """Digamma of a float64, the same operations as the NumPy reference of ops/scalar.py."""
    out = 0.0
    x0 = x
    low = x < 0.5
    if low:
        out = -np.pi / np.tan(np.pi * x)
        x = 1.0 - x
    for _ in range(10):
        if x < 10.0:
            out -= 1.0 / x
            x = x + 1.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (
        1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (1.0 / 240 - inv2 / 132)))
    )
    out += np.log(x) - 0.5 / x - series
    if x0 < 0.0 and np.floor(x0) == x0:
        out = np.nan
    return out


# ----------------------------------------------------------------------------------------
# Rendering

#: The import lines a generated module needs for the expressions of ``scalar_expr``.
IMPORTS = (
    "import math\n"
    "import numpy as np\n"
    "from fusegraph.backends.numba import vecmath\n"
    f"from fusegraph.backends.numba.scalar_code import {', '.join(sorted(HELPERS))}\n"
)


def namespace() -> dict:
    """The globals ``IMPORTS`` binds, for code run with ``exec``."""
    return {"math": math, "np": np, "vecmath": vecmath, **HELPERS}


_VECMATH = frozenset(vecmath.NAMES)
_TRIG = frozenset({"sin", "cos", "tan"})
# float ufuncs that Numba lowers to libm on scalars (float32 ones to the f-suffixed libm).
_NP_FLOAT = {
    "sqrt": "np.sqrt",
    "arcsin": "np.arcsin",
    "arccos": "np.arccos",
    "arctan2": "np.arctan2",
    "sinh": "np.sinh",
    "cosh": "np.cosh",
}
# ops the reference computes in float64 (Python's math) and rounds once to float32
_MATH64 = {"erfc": "math.erfc", "gammaln": "math.lgamma", "psi": "_psi"}
_COMPARE = {
    "eq": (np.equal, "=="),
    "neq": (np.not_equal, "!="),
    "lt": (np.less, "<"),
    "le": (np.less_equal, "<="),
    "gt": (np.greater, ">"),
    "ge": (np.greater_equal, ">="),
}


def trig_ops() -> frozenset:
    """The op names whose float code (vecmath) is NaN for ``|x| >= vecmath.TRIG_LIMIT``, so
    the kernel must redo such elements with ``slow_path_expr`` (see vecmath's header)."""
    return _TRIG


def _signed(dtype: str) -> bool:
    return dtype.startswith("int")


def _unsigned(dtype: str) -> bool:
    return dtype.startswith("uint")


def _suffix(dtype: str) -> str:
    return "f32" if dtype == "float32" else "f64"


def cast_expr(arg: str, src: str, dst: str) -> str:
    """The expression converting ``arg`` of dtype ``src`` to dtype ``dst`` as ``astype``."""
    if src == dst:
        return arg
    if dst == "bool":
        return f"({arg} != 0)"
    if is_float(src) and not is_float(dst):  # x86-64's conversions (see the header)
        if dst in ("int64", "uint64"):
            return f"_f_to_{'i' if dst == 'int64' else 'u'}64({arg})"
        return f"np.{dst}(_f_to_i{64 if dst == 'uint32' else 32}({arg}))"
    return f"np.{dst}({arg})"


def np_dtype(dtype: str) -> str:
    """The expression naming NumPy's scalar type ``dtype`` in generated code (``np.bool_``
    for bool)."""
    return "np.bool_" if dtype == "bool" else f"np.{dtype}"


def constant_expr(value, dtype: str) -> str:
    """A literal of ``dtype`` with exactly ``value`` (NaN, +-inf, -0.0 and int limits too)."""
    dtype = as_dtype(dtype)
    value = np.asarray(value, dtype=dtype)[()]
    if dtype == "bool":
        return f"np.bool_({bool(value)})"  # a plain bool, not Numba's Literal[bool]
    if not is_float(dtype):
        return f"np.{dtype}({int(value)})"
    v = float(value)
    if math.isnan(v):
        text = "np.nan"
    elif math.isinf(v):
        text = "np.inf" if v > 0 else "-np.inf"
    else:
        text = repr(v)  # round-trips; "-0.0" is folded to a negative-zero constant
    return f"np.{dtype}({text})"


def _truth(arg: str, dtype: str) -> str:
    return arg if dtype == "bool" else f"({arg} != 0)"


def _wrap(expr: str, dtype: str) -> str:
    return expr if dtype == "bool" else f"np.{dtype}({expr})"


def _loop_dtypes(ufunc, in_dtypes) -> tuple:
    resolved = ufunc.resolve_dtypes(tuple(np.dtype(d) for d in in_dtypes) + (None,))
    return tuple(as_dtype(d) for d in resolved[:-1])


def scalar_expr(op: ScalarOp, in_dtypes: tuple, out_dtype: str, args: list) -> str:
    """The Numba expression of ``op`` on scalar arguments, with NumPy's semantics.

    Args:
        op: a ``ScalarOp`` of ops/scalar.py's table, a ``Cast`` or a ``ScalarConstant``.
        in_dtypes: the dtype names of the arguments.
        out_dtype: the op's output dtype for them (``op.output_dtype(*in_dtypes)``).
        args: the source text of each argument (names or parenthesised expressions).

    Returns:
        Source text evaluating to a scalar of exactly ``out_dtype`` in njit code whose
        globals are those of ``IMPORTS``. For ``trig_ops()`` on floats it is NaN where
        ``slow_path_condition`` holds.
    """
    in_dtypes = tuple(as_dtype(d) for d in in_dtypes)
    out = as_dtype(out_dtype)
    if isinstance(op, ScalarConstant):
        return constant_expr(op.value, op.dtype)
    if len(args) != op.nin or len(in_dtypes) != op.nin:
        raise TypeError(f"scalar_expr: {op} takes {op.nin} args, got {args} / {in_dtypes}")
    expected = op.output_dtype(*in_dtypes)
    if expected != out:
        raise TypeError(f"scalar_expr: {op} of {in_dtypes} gives {expected}, not {out}")
    if isinstance(op, Cast):
        return cast_expr(args[0], in_dtypes[0], out)
    name = op.name
    if name in _COMPARE:
        return _compare(name, in_dtypes, args)
    if name in ("logical_and", "logical_or", "logical_not"):
        t = [_truth(a, d) for a, d in zip(args, in_dtypes)]
        if name == "logical_not":
            return f"(not {t[0]})"
        return f"({t[0]} {'&' if name == 'logical_and' else '|'} {t[1]})"
    if name in ("isnan", "isinf", "isfinite"):
        return _classify(name, in_dtypes[0], args[0])
    if name == "where":
        x, y = (cast_expr(a, d, out) for a, d in zip(args[1:], in_dtypes[1:]))
        return f"({x} if {_truth(args[0], in_dtypes[0])} else {y})"
    # Everything else computes in its output dtype, as NumPy's loops do.
    c = [cast_expr(a, d, out) for a, d in zip(args, in_dtypes)]
    if is_float(out):
        return _float_expr(name, out, c)
    return _int_expr(name, out, c)


def _compare(name: str, in_dtypes: tuple, args: list) -> str:
    ufunc, symbol = _COMPARE[name]
    la, lb = _loop_dtypes(ufunc, in_dtypes)
    a, b = cast_expr(args[0], in_dtypes[0], la), cast_expr(args[1], in_dtypes[1], lb)
    if la == lb:
        return f"({a} {symbol} {b})"
    # NumPy's exact int64-with-uint64 loops; Numba would compare in float64.
    lt = "_lt_su" if _signed(la) else "_lt_us"
    gt = "_lt_us" if _signed(la) else "_lt_su"
    if name in ("eq", "neq"):
        eq = f"_eq_su({a}, {b})" if _signed(la) else f"_eq_su({b}, {a})"
        return eq if name == "eq" else f"(not {eq})"
    return {
        "lt": f"{lt}({a}, {b})",
        "gt": f"{gt}({b}, {a})",
        "le": f"(not {gt}({b}, {a}))",
        "ge": f"(not {lt}({a}, {b}))",
    }[name]


def _classify(name: str, dtype: str, arg: str) -> str:
    if not is_float(dtype):
        # Written with the argument so that the result is a plain (not literal) bool.
        return f"({arg} == {arg})" if name == "isfinite" else f"({arg} != {arg})"
    if name == "isnan":
        return f"({arg} != {arg})"
    return f"(abs({arg}) == np.inf)" if name == "isinf" else f"(abs({arg}) < np.inf)"


def _float_expr(name: str, out: str, c: list) -> str:
    s = _suffix(out)
    binary = {"add": "+", "sub": "-", "mul": "*", "true_div": "/", "pow": "**"}
    if name in binary:
        return _wrap(f"{c[0]} {binary[name]} {c[1]}", out)
    if name in ("floor_div", "mod", "sign"):
        return f"_{name.replace('_div', 'div')}_{s}({', '.join(c)})"
    if name in ("maximum", "minimum", "clip"):
        return f"_{name}({', '.join(c)})"
    if name == "relu":
        return f"_maximum({c[0]}, np.{out}(0.0))"
    simple = {
        "neg": f"-{c[0]}",
        "abs": f"abs({c[0]})",
        "square": f"{c[0]} * {c[0]}",
        "reciprocal": f"np.{out}(1.0) / {c[0]}",
        "floor": f"np.floor({c[0]})",
        "ceil": f"np.ceil({c[0]})",
        "round": f"np.rint({c[0]})",
    }
    if name in simple:
        return _wrap(simple[name], out)
    if name in _VECMATH:
        return f"vecmath.{name}_{s}({c[0]})"
    if name in _NP_FLOAT:
        return _wrap(f"{_NP_FLOAT[name]}({', '.join(c)})", out)
    if name in _MATH64:
        fn = _MATH64[name]
        return _wrap(f"{fn}({c[0]})" if out == "float64" else f"{fn}(np.float64({c[0]}))", out)
    raise NotImplementedError(f"scalar_expr: no float code for {name!r}")


def _int_expr(name: str, out: str, c: list) -> str:
    if out == "bool":
        logic = {
            "add": "|",
            "mul": "&",
            "maximum": "|",
            "minimum": "&",
        }
        if name in logic:
            return f"({c[0]} {logic[name]} {c[1]})"
        if name in ("abs", "floor", "ceil", "round", "relu"):
            return c[0]
        if name == "clip":
            return f"_clip({', '.join(c)})"
        raise NotImplementedError(f"scalar_expr: no bool code for {name!r}")
    kind = "int" if _signed(out) else "uint"
    zero = f"np.{out}(0)"
    if name in ("add", "sub", "mul"):
        return _wrap(f"{c[0]} {dict(add='+', sub='-', mul='*')[name]} {c[1]}", out)
    if name in ("floor_div", "mod", "pow"):
        fn = name.replace("_div", "div")
        return _wrap(f"_{fn}_{kind}({c[0]}, {c[1]})", out)
    if name in ("maximum", "minimum", "clip"):
        return f"_{name}({', '.join(c)})"
    if name in ("floor", "ceil", "round"):
        return c[0]
    if name == "relu":
        return c[0] if kind == "uint" else f"_maximum({c[0]}, {zero})"
    if name == "neg":
        # Numba types -uint64 oddly; 0 - a wraps in uint64 and truncates to any width.
        return _wrap(f"-{c[0]}" if kind == "int" else f"np.uint64(0) - {c[0]}", out)
    if name == "abs":
        return c[0] if kind == "uint" else _wrap(f"abs({c[0]})", out)
    if name == "sign":
        if kind == "uint":
            return _wrap(f"{c[0]} != 0", out)
        return _wrap(f"np.int64({c[0]} > 0) - np.int64({c[0]} < 0)", out)
    if name == "square":
        return _wrap(f"{c[0]} * {c[0]}", out)
    raise NotImplementedError(f"scalar_expr: no integer code for {name!r}")


def slow_path_condition(op: ScalarOp, in_dtypes: tuple, args: list) -> str:
    """For an op of ``trig_ops()`` on float inputs, the bool expression telling that the
    vectorised ``scalar_expr`` is NaN for this element and ``slow_path_expr`` must be used."""
    dt = op.output_dtype(*in_dtypes)
    return f"vecmath.trig_needs_slow_path({cast_expr(args[0], as_dtype(in_dtypes[0]), dt)})"


def slow_path_expr(op: ScalarOp, in_dtypes: tuple, out_dtype: str, args: list) -> str:
    """For an op of ``trig_ops()``, the scalar (libm) expression valid for every argument."""
    if op.name not in _TRIG:
        raise ValueError(f"slow_path_expr: {op} has no slow path")
    c = cast_expr(args[0], as_dtype(in_dtypes[0]), out_dtype)
    return _wrap(f"np.{op.name}({c})", out_dtype)


__all__ = [
    "HELPERS",
    "IMPORTS",
    "SOURCE_HASH",
    "cast_expr",
    "constant_expr",
    "namespace",
    "np_dtype",
    "scalar_expr",
    "slow_path_condition",
    "slow_path_expr",
    "trig_ops",
]
