"""How each scalar op is written in generated Numba code: ``scalar_expr`` renders one step of
a fused scalar graph as a Python expression (NumPy's exact dtype and value semantics), calling
the njit helpers of ``HELPERS`` and the vectorisable functions of ``vecmath``.

``RENDERINGS`` holds one rule per scalar op record of ``ops.scalar.OPS`` (``Cast`` and
constants are rendered by ``cast_expr`` and ``constant_expr``); ``check_renderings`` fails
at import when a record has no rule or a rule no record. A new op needs one entry there,
or ``register_rendering`` at run time."""

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
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

from fusegraph.backends.numba import vecmath
from fusegraph.ops.fused import ScalarConstant
from fusegraph.ops.scalar import OPS, Cast, ScalarOp
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


_TRIG = frozenset({"sin", "cos", "tan"})


def trig_ops() -> frozenset:
    """The op names whose float code (vecmath) is NaN for ``|x| >= vecmath.TRIG_LIMIT``, so
    the kernel must redo such elements with ``slow_path_expr`` (see vecmath's header)."""
    return _TRIG


def _signed(dtype: str) -> bool:
    return dtype.startswith("int")


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


# ----------------------------------------------------------------------------------------
# Rendering rules. A rule renders one scalar op: ``rule(in_dtypes, out_dtype, args)`` gets
# the dtype names of the arguments, the op's output dtype for them and the source text of
# each argument, and returns the source text of the result, of exactly ``out_dtype`` and
# using only the globals of ``IMPORTS`` -- or None for dtypes it has no code for. The
# factories below make the rules of the common families.

Rule = Callable[[tuple, str, list], "str | None"]


def _kind(dtype: str) -> str:
    """The family of ``dtype``'s code: float, bool, int (signed) or uint."""
    if is_float(dtype):
        return "float"
    if dtype == "bool":
        return "bool"
    return "int" if _signed(dtype) else "uint"


def _text(template: str):
    """A template as code: ``{0}``, ``{1}`` ... are the arguments, ``{out}`` the output
    dtype, ``{s}`` its vecmath/helper suffix (f32, f64), ``{kind}`` "int" or "uint"."""

    def code(out: str, args: list) -> str:
        return template.format(*args, out=out, s=_suffix(out), kind=_kind(out))

    return code


def _np(template: str):
    """A template whose result is truncated to the output dtype, ``np.<out>(...)``: Numba
    types small-int arithmetic as int64 and mixes in float64 literals (see the header)."""
    text = _text(template)
    return lambda out, args: _wrap(text(out, args), out)


def _in_output_dtype(*, numbers=None, floats=None, ints=None, uints=None, bools=None) -> Rule:
    """The rule of an op NumPy computes in its output dtype: every argument is cast to it,
    then rendered by the code of the output's kind. Each code is a template (see ``_text``),
    ``_np(template)`` or a function (out, args) -> text; ``numbers`` is the default of
    ``floats`` and ``ints``, ``ints`` of ``uints``."""
    floats = floats or numbers
    ints = ints or numbers
    codes = {"float": floats, "int": ints, "uint": uints or ints, "bool": bools}
    codes = {k: _text(c) if isinstance(c, str) else c for k, c in codes.items() if c}

    def rule(in_dtypes, out, args):
        code = codes.get(_kind(out))
        return code and code(out, [cast_expr(a, d, out) for a, d in zip(args, in_dtypes)])

    return rule


def _vecmath(name: str) -> Rule:
    """A float function of ``vecmath`` (vectorisable; NumPy's SIMD accuracy)."""
    if name not in vecmath.NAMES:
        raise RuntimeError(f"scalar_code: vecmath has no function {name!r}")
    return _in_output_dtype(floats=f"vecmath.{name}_{{s}}({{0}})")


def _in_float64(fn: str) -> Rule:
    """A function the NumPy reference computes in float64 (Python's ``math``), rounding a
    float32 result once."""

    def code(out, args):
        arg = args[0] if out == "float64" else f"np.float64({args[0]})"
        return _wrap(f"{fn}({arg})", out)

    return _in_output_dtype(floats=code)


def _comparison(ufunc, symbol: str) -> Rule:
    """A comparison in NumPy's loop dtypes, exact for int64 with uint64 (where Numba would
    compare in float64)."""

    def rule(in_dtypes, out, args):
        resolved = ufunc.resolve_dtypes(tuple(np.dtype(d) for d in in_dtypes) + (None,))
        la, lb = (as_dtype(d) for d in resolved[:-1])
        a, b = cast_expr(args[0], in_dtypes[0], la), cast_expr(args[1], in_dtypes[1], lb)
        if la == lb:
            return f"({a} {symbol} {b})"
        lt = "_lt_su" if _signed(la) else "_lt_us"
        gt = "_lt_us" if _signed(la) else "_lt_su"
        if symbol in ("==", "!="):
            eq = f"_eq_su({a}, {b})" if _signed(la) else f"_eq_su({b}, {a})"
            return eq if symbol == "==" else f"(not {eq})"
        return {
            "<": f"{lt}({a}, {b})",
            ">": f"{gt}({b}, {a})",
            "<=": f"(not {gt}({b}, {a}))",
            ">=": f"(not {lt}({a}, {b}))",
        }[symbol]

    return rule


def _logical(symbol: str) -> Rule:
    """``&`` or ``|`` of the arguments' truth values."""

    def rule(in_dtypes, out, args):
        a, b = (_truth(a, d) for a, d in zip(args, in_dtypes))
        return f"({a} {symbol} {b})"

    return rule


def _logical_not(in_dtypes, out, args):
    return f"(not {_truth(args[0], in_dtypes[0])})"


def _classify(floats: str, others: str) -> Rule:
    """A float test (isnan ...) of the argument as it is; ``others`` for int and bool
    arguments, written with the argument so that the result is a plain (not literal) bool."""

    def rule(in_dtypes, out, args):
        return (floats if is_float(in_dtypes[0]) else others).format(args[0])

    return rule


def _where(in_dtypes, out, args):
    x, y = (cast_expr(a, d, out) for a, d in zip(args[1:], in_dtypes[1:]))
    return f"({x} if {_truth(args[0], in_dtypes[0])} else {y})"


#: name -> rule, one per record of ``ops.scalar.OPS`` (``check_renderings``).
RENDERINGS: dict[str, Rule] = {
    # arithmetic
    "add": _in_output_dtype(numbers=_np("{0} + {1}"), bools="({0} | {1})"),
    "sub": _in_output_dtype(numbers=_np("{0} - {1}")),
    "mul": _in_output_dtype(numbers=_np("{0} * {1}"), bools="({0} & {1})"),
    "true_div": _in_output_dtype(floats=_np("{0} / {1}")),
    "floor_div": _in_output_dtype(
        floats="_floordiv_{s}({0}, {1})", ints=_np("_floordiv_{kind}({0}, {1})")
    ),
    "mod": _in_output_dtype(floats="_mod_{s}({0}, {1})", ints=_np("_mod_{kind}({0}, {1})")),
    "pow": _in_output_dtype(floats=_np("{0} ** {1}"), ints=_np("_pow_{kind}({0}, {1})")),
    # Numba types -uint64 oddly; 0 - a wraps in uint64 and truncates to any width.
    "neg": _in_output_dtype(numbers=_np("-{0}"), uints=_np("np.uint64(0) - {0}")),
    "abs": _in_output_dtype(numbers=_np("abs({0})"), uints="{0}", bools="{0}"),
    "sign": _in_output_dtype(
        floats="_sign_{s}({0})",
        ints=_np("np.int64({0} > 0) - np.int64({0} < 0)"),
        uints=_np("{0} != 0"),
    ),
    "square": _in_output_dtype(numbers=_np("{0} * {0}")),
    "reciprocal": _in_output_dtype(floats=_np("np.{out}(1.0) / {0}")),
    "maximum": _in_output_dtype(numbers="_maximum({0}, {1})", bools="({0} | {1})"),
    "minimum": _in_output_dtype(numbers="_minimum({0}, {1})", bools="({0} & {1})"),
    "floor": _in_output_dtype(floats=_np("np.floor({0})"), ints="{0}", bools="{0}"),
    "ceil": _in_output_dtype(floats=_np("np.ceil({0})"), ints="{0}", bools="{0}"),
    "round": _in_output_dtype(floats=_np("np.rint({0})"), ints="{0}", bools="{0}"),
    "relu": _in_output_dtype(
        floats="_maximum({0}, np.{out}(0.0))",
        ints="_maximum({0}, np.{out}(0))",
        uints="{0}",
        bools="{0}",
    ),
    "clip": _in_output_dtype(numbers="_clip({0}, {1}, {2})", bools="_clip({0}, {1}, {2})"),
    "where": _where,
    # transcendental: vecmath, else the float ufuncs Numba lowers to libm (f-suffixed for
    # float32), else computed in float64 as the reference does
    "exp": _vecmath("exp"),
    "expm1": _vecmath("expm1"),
    "log": _vecmath("log"),
    "log1p": _vecmath("log1p"),
    "log2": _vecmath("log2"),
    "log10": _vecmath("log10"),
    "sqrt": _in_output_dtype(floats=_np("np.sqrt({0})")),
    "sin": _vecmath("sin"),
    "cos": _vecmath("cos"),
    "tan": _vecmath("tan"),
    "arcsin": _in_output_dtype(floats=_np("np.arcsin({0})")),
    "arccos": _in_output_dtype(floats=_np("np.arccos({0})")),
    "arctan": _vecmath("arctan"),
    "arctan2": _in_output_dtype(floats=_np("np.arctan2({0}, {1})")),
    "sinh": _in_output_dtype(floats=_np("np.sinh({0})")),
    "cosh": _in_output_dtype(floats=_np("np.cosh({0})")),
    "tanh": _vecmath("tanh"),
    "erf": _vecmath("erf"),
    "erfc": _in_float64("math.erfc"),
    "gammaln": _in_float64("math.lgamma"),
    "psi": _in_float64("_psi"),
    "sigmoid": _vecmath("sigmoid"),
    "softplus": _vecmath("softplus"),
    # comparisons and logic
    "eq": _comparison(np.equal, "=="),
    "neq": _comparison(np.not_equal, "!="),
    "lt": _comparison(np.less, "<"),
    "le": _comparison(np.less_equal, "<="),
    "gt": _comparison(np.greater, ">"),
    "ge": _comparison(np.greater_equal, ">="),
    "logical_and": _logical("&"),
    "logical_or": _logical("|"),
    "logical_not": _logical_not,
    "isnan": _classify("({0} != {0})", "({0} != {0})"),
    "isinf": _classify("(abs({0}) == np.inf)", "({0} != {0})"),
    "isfinite": _classify("(abs({0}) < np.inf)", "({0} == {0})"),
}


def check_renderings() -> None:
    """Raise RuntimeError unless every scalar op record (``ops.scalar.OPS``) has a rendering
    and every rendering a record. Run at import; ``scalar_expr`` checks the op it renders."""
    problems = []
    if missing := sorted(set(OPS) - set(RENDERINGS)):
        problems.append(f"no rendering for the ops {missing}")
    if unknown := sorted(set(RENDERINGS) - set(OPS)):
        problems.append(f"renderings of unknown ops {unknown}")
    if problems:
        raise RuntimeError(f"scalar_code.RENDERINGS and ops.scalar.OPS: {'; '.join(problems)}")


def register_rendering(name: str, rule: Rule) -> Rule:
    """Add the rendering of a scalar op registered at run time (``ops.scalar.register``).
    ``rule`` may use only the globals of ``IMPORTS``; ``ops.scalar.unregister`` removes it."""
    if name not in OPS:
        raise ValueError(f"register_rendering: there is no scalar op {name!r}")
    if name in RENDERINGS:
        raise ValueError(f"register_rendering: {name!r} has a rendering already")
    if not callable(rule):
        raise TypeError(f"register_rendering: the rule of {name!r} is not callable")
    RENDERINGS[name] = rule
    return rule


def unregister_rendering(name: str) -> None:
    """Remove the rendering of ``name``, if any."""
    RENDERINGS.pop(name, None)


check_renderings()


def scalar_expr(op: ScalarOp, in_dtypes: tuple, out_dtype: str, args: list) -> str:
    """The Numba expression of ``op`` on scalar arguments, with NumPy's semantics.

    Args:
        op: a ``ScalarOp`` of ``ops.scalar.OPS``, a ``Cast`` or a ``ScalarConstant``.
        in_dtypes: the dtype names of the arguments.
        out_dtype: the op's output dtype for them (``op.output_dtype(*in_dtypes)``).
        args: the source text of each argument (names or parenthesised expressions).

    Returns:
        Source text evaluating to a scalar of exactly ``out_dtype`` in njit code whose
        globals are those of ``IMPORTS`` (the op's rule of ``RENDERINGS``). For
        ``trig_ops()`` on floats it is NaN where ``slow_path_condition`` holds.
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
    rule = RENDERINGS.get(op.name)
    if rule is None:
        raise NotImplementedError(
            f"scalar_expr: the scalar op {op.name!r} has no Numba rendering "
            "(add one with scalar_code.register_rendering)"
        )
    expr = rule(in_dtypes, out, list(args))
    if expr is None:
        raise NotImplementedError(f"scalar_expr: no {_kind(out)} code for {op.name!r}")
    return expr


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
    "RENDERINGS",
    "SOURCE_HASH",
    "cast_expr",
    "check_renderings",
    "constant_expr",
    "namespace",
    "np_dtype",
    "register_rendering",
    "scalar_expr",
    "slow_path_condition",
    "slow_path_expr",
    "trig_ops",
    "unregister_rendering",
]
