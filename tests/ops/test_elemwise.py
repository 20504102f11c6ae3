"""Elementwise ops against NumPy: broadcasting, 0-size, non-contiguous, int and float inputs."""

import math

import mpmath
import numpy as np
import pytest
from harness import Case, check_case, rng

import fusegraph as fg
from fusegraph.ops.scalar import OPS, NoGradient

R = rng(1)


def _pos(shape, dtype="float64"):
    return (R.uniform(0.1, 3.0, shape)).astype(dtype)


def _any(shape, dtype="float64"):
    if np.dtype(dtype).kind in "iu":
        return R.integers(-5 if dtype[0] == "i" else 0, 6, shape).astype(dtype)
    if dtype == "bool":
        return R.random(shape) < 0.5
    return R.normal(0, 2, shape).astype(dtype)


def _unit(shape, dtype="float64"):
    return R.uniform(-0.95, 0.95, shape).astype(dtype)


def _nonzero_int(shape, dtype="int64"):
    v = R.integers(1, 6, shape) * R.choice([-1, 1], shape)
    return v.astype(dtype)


_vec_erf = np.vectorize(math.erf, otypes=["float64"])
_vec_erfc = np.vectorize(math.erfc, otypes=["float64"])
_vec_lgamma = np.vectorize(math.lgamma, otypes=["float64"])


# mpmath (shipped with SymPy) is an independent oracle for the digamma function.
def _digamma(v):
    try:
        return float(mpmath.digamma(v))
    except ValueError:  # a pole (0, -1, -2, ...): we return NaN there
        return math.nan


_vec_digamma = np.vectorize(_digamma, otypes=["float64"])


def _flt(fn):
    """NumPy reference for our float functions: computed in float64, returned in the
    float dtype our rule gives (float32 for float32 and small ints)."""

    def ref(x):
        out = (
            "float32"
            if x.dtype in (np.float32, np.int8, np.uint8, np.int16, np.uint16, np.bool_)
            else "float64"
        )
        return fn(x.astype("float64")).astype(out) if x.size else np.empty(x.shape, out)

    return ref


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


# name -> (NumPy reference, input generator, tolerance)
UNARY = {
    "neg": (np.negative, _any, 0),
    "abs": (np.abs, _any, 0),
    "sign": (np.sign, _any, 0),
    "square": (np.square, _any, 0),
    "exp": (np.exp, _any, 1e-12),
    "expm1": (np.expm1, _any, 1e-12),
    "log": (np.log, _pos, 1e-12),
    "log1p": (np.log1p, _pos, 1e-12),
    "log2": (np.log2, _pos, 1e-12),
    "log10": (np.log10, _pos, 1e-12),
    "sqrt": (np.sqrt, _pos, 1e-12),
    "sin": (np.sin, _any, 1e-12),
    "cos": (np.cos, _any, 1e-12),
    "tan": (np.tan, _unit, 1e-12),
    "arcsin": (np.arcsin, _unit, 1e-12),
    "arccos": (np.arccos, _unit, 1e-12),
    "arctan": (np.arctan, _any, 1e-12),
    "sinh": (np.sinh, _any, 1e-12),
    "cosh": (np.cosh, _any, 1e-12),
    "tanh": (np.tanh, _any, 1e-12),
    "floor": (np.floor, _any, 0),
    "ceil": (np.ceil, _any, 0),
    "round": (np.round, _any, 0),
    "isnan": (np.isnan, _any, 0),
    "isinf": (np.isinf, _any, 0),
    "isfinite": (np.isfinite, _any, 0),
    "logical_not": (np.logical_not, _any, 0),
    "relu": (lambda x: np.maximum(x, np.zeros((), x.dtype)), _any, 0),
    "reciprocal": (_flt(lambda x: 1 / x), _pos, 1e-7),
    "sigmoid": (_flt(_sigmoid), _any, 1e-6),
    "softplus": (_flt(_softplus), _any, 1e-6),
    "erf": (_flt(_vec_erf), _any, 1e-6),
    "erfc": (_flt(_vec_erfc), _any, 1e-6),
    "gammaln": (_flt(_vec_lgamma), _pos, 1e-6),
    "psi": (_flt(_vec_digamma), _any, 1e-6),
}

BINARY = {
    "add": (np.add, _any, 0),
    "sub": (np.subtract, _any, 0),
    "mul": (np.multiply, _any, 0),
    "true_div": (np.true_divide, _nonzero_int, 1e-12),
    "floor_div": (np.floor_divide, _nonzero_int, 0),
    "mod": (np.remainder, _nonzero_int, 1e-12),
    "pow": (np.power, _pos, 1e-12),
    "maximum": (np.maximum, _any, 0),
    "minimum": (np.minimum, _any, 0),
    "arctan2": (np.arctan2, _any, 1e-12),
    "eq": (np.equal, _any, 0),
    "neq": (np.not_equal, _any, 0),
    "lt": (np.less, _any, 0),
    "le": (np.less_equal, _any, 0),
    "gt": (np.greater, _any, 0),
    "ge": (np.greater_equal, _any, 0),
    "logical_and": (np.logical_and, _any, 0),
    "logical_or": (np.logical_or, _any, 0),
}

INT_OK = {
    "neg",
    "abs",
    "sign",
    "square",
    "floor",
    "ceil",
    "round",
    "relu",
    "isnan",
    "isinf",
    "isfinite",
    "logical_not",
    "add",
    "sub",
    "mul",
    "floor_div",
    "mod",
    "maximum",
    "minimum",
    "eq",
    "neq",
    "lt",
    "le",
    "gt",
    "ge",
    "logical_and",
    "logical_or",
}


def _no_float16(ref):
    """fusegraph has no float16: where NumPy computes small ints in float16, the expected
    result is NumPy's computed in float32."""

    def wrapped(*xs):
        out = ref(*xs)
        if out.dtype == np.float16:
            out = ref(*(x.astype("float32") for x in xs))
        return out

    return wrapped


# Piecewise-constant (or jumping) functions: finite differences across a jump are
# meaningless, so their gradients are checked in closed form below instead.
NONSMOOTH = {"floor_div", "mod", "floor", "ceil", "round", "sign"}
# Ops whose record says they have no gradient (psi: trigamma is not in the catalogue).
NO_GRADIENT = {name for name, record in OPS.items() if isinstance(record.grad, NoGradient)}


#: Functions of a restricted domain: no integer rows (ints would leave it).
FLOAT_DOMAIN = {"log", "log1p", "log2", "log10", "sqrt", "gammaln", "reciprocal", "arcsin"}
FLOAT_DOMAIN |= {"arccos", "tan"}


def unary_cases(name, ref, gen, tol):
    """The cases of one ``UNARY`` row: float64 inputs (a matrix, an empty one, a 0-d one),
    float32 and, outside ``FLOAT_DOMAIN``, int64 and int8; gradients checked unless the
    function is in ``NONSMOOTH`` or ``NO_GRADIENT``."""
    fn = getattr(fg, name)
    shapes = {"matrix": (3, 4), "empty": (0, 3), "scalar": ()}
    cases = [
        Case(f"{name}-{label}-f64", [name], fn, ref, [gen(shape)], rtol=tol or 1e-12)
        for label, shape in shapes.items()
    ]
    cases.append(Case(f"{name}-f32", [name], fn, ref, [gen((5,), "float32")], rtol=max(tol, 1e-6)))
    if name in INT_OK or name not in FLOAT_DOMAIN:
        int64 = [_any((2, 3), "int64")]
        cases.append(Case(f"{name}-int64", [name], fn, ref, int64, rtol=max(tol, 1e-12)))
        int8 = [_any((4,), "int8")]
        cases.append(Case(f"{name}-int8", [name], fn, _no_float16(ref), int8, rtol=max(tol, 1e-6)))
    for case in cases:
        case.grad = name not in NONSMOOTH | NO_GRADIENT
    return cases


def _cases():
    cases = [case for name, row in UNARY.items() for case in unary_cases(name, *row)]
    for name, (ref, gen, tol) in BINARY.items():
        fn = getattr(fg, name)
        rows = {
            "broadcast-f64": [gen((3, 1)), gen((4,))],
            "broadcast-f32": [gen((2, 1, 3), "float32"), gen((4, 1), "float32")],
            "empty": [gen((0, 3)), gen((1, 3))],
            "scalar": [gen(()), gen((2,))],
            "int-float": [_nonzero_int((3,), "int32"), gen((2, 1))],
        }
        if name in INT_OK or name == "true_div":
            rows["int64"] = [_nonzero_int((3, 2)), _nonzero_int((3, 2))]
            rows["int8-int16"] = [_nonzero_int((3,), "int8"), _nonzero_int((2, 1), "int16")]
        for label, args in rows.items():
            cases.append(Case(f"{name}-{label}", [name], fn, ref, args, rtol=max(tol, 1e-6)))
    for case in cases:
        case.grad = not (NONSMOOTH | NO_GRADIENT).intersection(case.covers)
    return cases


def _where_ref(c, x, y):
    return np.where(c, x, y)


EXTRA = [
    Case(
        "where-broadcast",
        ["where"],
        fg.where,
        _where_ref,
        [R.random((3, 1)) < 0.5, _any((4,)), _any((3, 4))],
    ),
    Case(
        "where-int-float",
        ["where"],
        fg.where,
        _where_ref,
        [R.random((2, 3)) < 0.5, _any((2, 3), "int32"), _any((3,), "float32")],
    ),
    Case(
        "where-empty", ["where"], fg.where, _where_ref, [np.zeros((0,), bool), _any((0,)), _any(())]
    ),
    Case(
        "switch-int-cond",
        ["switch"],
        fg.switch,
        _where_ref,
        [_any((3,), "int64"), _any((3,)), _any((3,))],
    ),
    Case("clip", ["clip"], fg.clip, np.clip, [_any((3, 4)), _any((4,)) - 1, _any((3, 1)) + 1]),
    Case("clip-int", ["clip"], fg.clip, np.clip, [_any((5,), "int64"), np.array(-1), np.array(2)]),
    Case(
        "clip-scalar-bounds",
        ["clip"],
        lambda x: fg.clip(x, 0, 1),
        lambda x: np.clip(x, 0, 1).astype(x.dtype),
        [_any((2, 3), "float32")],
        rtol=0,
    ),
    Case(
        "cast-f64-int32",
        ["cast"],
        lambda x: fg.cast(x, "int32"),
        lambda x: x.astype("int32"),
        [_any((3, 4)) * 10],
    ),
    Case(
        "cast-int-f32",
        ["cast"],
        lambda x: x.astype("float32"),
        lambda x: x.astype("float32"),
        [_any((0, 2), "int64")],
    ),
    Case(
        "cast-bool", ["cast"], lambda x: fg.cast(x, "bool"), lambda x: x.astype(bool), [_any((5,))]
    ),
    Case(
        "python-scalar-keeps-f32",
        ["add", "mul"],
        lambda x: 2 * x + 1,
        lambda x: 2 * x + np.float32(1),
        [_any((3,), "float32")],
        rtol=0,
    ),
    Case("python-float-int", ["mul"], lambda x: x * 0.5, lambda x: x * 0.5, [_any((3,), "int16")]),
    Case(
        "operators",
        ["add", "sub", "mul", "true_div", "floor_div", "mod", "pow", "neg"],
        lambda x, y: [x + y, x - y, x * y, x / y, x // y, x % y, abs(x) ** y, -x, abs(-x)],
        lambda x, y: [x + y, x - y, x * y, x / y, x // y, x % y, np.abs(x) ** y, -x, np.abs(-x)],
        [_pos((2, 3)), _pos((3,))],
    ),
    Case(
        "comparison-operators",
        ["lt", "le", "gt", "ge", "logical_and", "logical_or"],
        lambda x, y: [x < y, x <= y, x > y, x >= y, (x < y) & (x > 0), (x < y) | ~(x > 0)],
        lambda x, y: [x < y, x <= y, x > y, x >= y, (x < y) & (x > 0), (x < y) | ~(x > 0)],
        [_any((2, 3)), _any((3,))],
    ),
    Case(
        "reflected-operators",
        ["add", "sub", "true_div", "pow"],
        lambda x: [1 - x, 2 / x, 2.0**x, np.float64(3) + x],
        lambda x: [1 - x, 2 / x, 2.0**x, 3 + x],
        [_pos((4,))],
    ),
    Case(
        "int-div-by-zero",
        ["floor_div", "mod"],
        lambda x, y: [x // y, x % y],
        lambda x, y: [np.floor_divide(x, y), np.remainder(x, y)],
        [np.array([1, -3, 0, 7]), np.array([0, 0, 0, 2])],
    ),
    Case(
        "nan-inf-propagate",
        ["log", "true_div", "maximum"],
        lambda x: [fg.log(x), x / 0.0, fg.maximum(x, 0)],
        lambda x: [np.log(x), x / 0.0, np.maximum(x, 0)],
        [np.array([0.0, -1.0, np.inf, np.nan, 1.0])],
    ),
    Case(
        "sigmoid-softplus-extremes",
        ["sigmoid", "softplus"],
        lambda x: [fg.sigmoid(x), fg.softplus(x)],
        lambda x: [
            np.where(x > 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x))),
            np.logaddexp(0, x),
        ],
        [np.array([-800.0, -40.0, 0.0, 40.0, 800.0, np.inf, -np.inf])],
        rtol=1e-12,
    ),
]

CASES = _cases() + EXTRA
for _case in EXTRA:
    _case.grad = not NONSMOOTH.intersection(_case.covers)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_elemwise(case):
    with np.errstate(all="ignore"):
        check_case(case)


def test_build_time_broadcast_error_names_op_and_shapes():
    x = fg.tensor("x", shape=(3, 4))
    y = fg.tensor("y", shape=(5,))
    with pytest.raises(ValueError, match=r"add.*\(3, 4\).*\(5,\)"):
        x + y


def test_unsupported_dtype_errors_at_build():
    b = fg.vector("b", dtype="bool")
    with pytest.raises(TypeError, match="sub does not support inputs of dtype bool"):
        b - b
    with pytest.raises(TypeError, match="neg"):
        fg.neg(b)


def test_python_int_overflow_for_small_dtype():
    x = fg.vector("x", dtype="int8")
    with pytest.raises(OverflowError, match="300 out of bounds for int8"):
        x + 300


def test_symbolic_variable_has_no_truth_value_or_len():
    x = fg.vector("x")
    with pytest.raises(TypeError, match="truth value"):
        bool(x > 0)
    with pytest.raises(TypeError, match="len"):
        len(x)
    with pytest.raises(TypeError, match="iterated"):
        list(x)


def test_piecewise_constant_ops_have_zero_gradient():
    x, y = fg.vector("x"), fg.vector("y")
    outs = [fg.floor(x), fg.ceil(x), fg.round(x), fg.sign(x), x // y]
    grads = [fg.grad(o.sum(), x) for o in outs]
    grads.append(fg.grad((x % y).sum(), y))
    f = fg.function([x, y], grads, mode="py")
    xv, yv = np.array([0.3, -1.7, 2.5]), np.array([0.7, 0.4, -1.1])
    results = f(xv, yv)
    for g in results[:-1]:
        np.testing.assert_array_equal(g, np.zeros(3))
    np.testing.assert_allclose(results[-1], -np.floor_divide(xv, yv))


def test_scalar_op_records_are_checked():
    """A record with a missing or inconsistent piece fails when it is made (at import for
    the catalogue's own), instead of leaving an op without a gradient, say."""
    from fusegraph.ops.scalar import ScalarOpDef, register, unregister

    def record(**changes):
        fields = dict(name="twice", nin=1, impl=lambda x: 2 * x, dtype_rule=lambda d: d)
        fields["grad"] = lambda T, z, g, x: [2 * g]
        return ScalarOpDef(**(fields | changes))

    record()  # complete
    with pytest.raises(TypeError, match="grad"):
        ScalarOpDef("twice", 1, lambda x: 2 * x, lambda d: d)
    with pytest.raises(ValueError, match=r"'twice': grad must take \(T, z, g\) and 1 inputs"):
        record(grad=None)
    with pytest.raises(ValueError, match="grad must take"):
        record(grad=lambda T, z, g, x, y: [g, g])
    with pytest.raises(ValueError, match="a NoGradient needs a reason"):
        record(grad=NoGradient(""))
    with pytest.raises(ValueError, match="impl must take 2 arrays; dtype_rule must take 2"):
        record(nin=2, grad=lambda T, z, g, x, y: [g, g])
    with pytest.raises(ValueError, match="only a binary op has one"):
        record(infix=("*", 20))
    with pytest.raises(ValueError, match="there is a scalar op named 'exp' already"):
        register(record(name="exp"))
    with pytest.raises(ValueError, match="'sum' would replace fusegraph.ops.sum, fusegraph.sum"):
        register(record(name="sum"))
    assert not hasattr(fg, "twice")
    with pytest.raises(ValueError, match="'exp' is not a scalar op registered at run time"):
        unregister("exp")
