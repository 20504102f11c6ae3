"""Reductions against NumPy: every axis form, keepdims, 0-size, int/bool/float inputs,
var/std with ddof, argmax/argmin, the stable logsumexp and its extremes, and error paths."""

import warnings

import numpy as np
import pytest
from harness import Case, check_case, rng

import fusegraph as fg
from fusegraph.ops.reduction import ArgReduce, LogSumExp, Reduce
from fusegraph.types import DTYPES

R = rng(2)
INF, NAN = np.inf, np.nan


def _data(shape, dtype="float64"):
    if dtype == "bool":
        return R.random(shape) < 0.5
    if dtype.startswith("uint"):
        return R.integers(0, 4, shape).astype(dtype)
    if dtype.startswith("int"):
        return R.integers(-3, 4, shape).astype(dtype)
    return R.normal(0, 2, shape).astype(dtype)


def _quiet(fn):
    """Run a NumPy reference without its warnings (empty means, ddof >= n, log(0))."""

    def ref(*xs):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            out = fn(*xs)
        return [np.asarray(o) for o in out] if isinstance(out, list) else np.asarray(out)

    return ref


def _rtol(dtype):
    return 1e-5 if dtype == "float32" else 1e-12


REDUCE_KINDS = ("sum", "prod", "mean", "max", "min", "all", "any")

# axis forms on a (2, 3, 4) input
AXES = {
    "none": None,
    "0": 0,
    "neg1": -1,
    "tuple": (0, 2),
    "tuple-neg-unsorted": (-1, 1),
    "all-axes": (0, 1, 2),
    "empty-tuple": (),
}


def _reduce_case(kind, label, x, axis, keepdims=False, raises=None, static=None):
    fn = getattr(fg, kind)
    ref = getattr(np, kind)
    return Case(
        f"{kind}-{label}",
        [kind],
        lambda v: fn(v, axis=axis, keepdims=keepdims),
        _quiet(lambda a: ref(a, axis=axis, keepdims=keepdims)),
        [x],
        static=static,
        rtol=_rtol(x.dtype.name),
        raises=raises,
    )


def _reduce_cases():
    cases = []
    for kind in REDUCE_KINDS:
        x = _data((2, 3, 4))
        for label, axis in AXES.items():
            cases.append(_reduce_case(kind, f"axis-{label}", x, axis))
            cases.append(_reduce_case(kind, f"axis-{label}-keepdims", x, axis, True))
        for dtype in ("float32", "int8", "int32", "int64", "uint8", "uint32", "bool"):
            cases.append(_reduce_case(kind, f"{dtype}-none", _data((3, 4), dtype), None))
            cases.append(_reduce_case(kind, f"{dtype}-axis1", _data((3, 4), dtype), 1))
        cases.append(_reduce_case(kind, "scalar", _data(()), None))
        cases.append(_reduce_case(kind, "scalar-empty-tuple", _data((), "int16"), ()))
        cases.append(_reduce_case(kind, "partly-known-shape", x, 1, static=[(None, 3, 4)]))
        # 0-size: sum 0, prod 1, mean nan, all True, any False; max/min raise when the
        # reduced extent is empty, but not when only the kept axes are.
        empty_raises = ValueError if kind in ("max", "min") else None
        cases.append(_reduce_case(kind, "empty-none", _data((0, 3)), None, raises=empty_raises))
        cases.append(_reduce_case(kind, "empty-axis0", _data((0, 3)), 0, raises=empty_raises))
        cases.append(_reduce_case(kind, "empty-axis1", _data((0, 3), "int32"), 1))
        cases.append(_reduce_case(kind, "empty-keepdims", _data((2, 0, 3)), (0, 2), True))
        cases.append(_reduce_case(kind, "empty-tuple-axis", _data((0, 3)), ()))
    return cases


NAN_DATA = np.array([[1.0, NAN, 3.0], [INF, -INF, 0.0]])

SPECIAL = [
    Case(
        "reductions-nan-inf",
        ["sum", "prod", "mean", "max", "min", "all", "any"],
        lambda x: [
            fg.sum(x, 1),
            fg.prod(x, 0),
            fg.mean(x, 1),
            fg.max(x, 1),
            fg.min(x, 0),
            fg.all(x, 1),
            fg.any(x, 0),
        ],
        _quiet(
            lambda x: [
                np.sum(x, 1),
                np.prod(x, 0),
                np.mean(x, 1),
                np.max(x, 1),
                np.min(x, 0),
                np.all(x, 1),
                np.any(x, 0),
            ]
        ),
        [NAN_DATA],
    ),
    Case(
        "reduction-methods",
        ["sum", "prod", "mean", "max", "min", "all", "any"],
        lambda x: [
            x.sum(),
            x.sum(0),
            x.prod(axis=1, keepdims=True),
            x.mean(-1),
            x.max(axis=(0, 1)),
            x.min(1),
            x.all(0),
            x.any(keepdims=True),
        ],
        lambda x: [
            x.sum(),
            x.sum(0),
            x.prod(axis=1, keepdims=True),
            x.mean(-1),
            x.max(axis=(0, 1)),
            x.min(1),
            x.all(0),
            x.any(keepdims=True),
        ],
        [_data((3, 4), "int16")],
    ),
    Case(
        "sum-of-expression",
        ["sum", "mean"],
        lambda x, y: [fg.sum(x * y, axis=1), fg.mean(x + y)],
        lambda x, y: [np.sum(x * y, axis=1), np.mean(x + y)],
        [_data((3, 4)), _data((4,), "float32")],
    ),
    Case(
        "int8-sum-no-overflow",
        ["sum"],
        lambda x: fg.sum(x),
        lambda x: np.sum(x),
        [np.full((50,), 100, dtype="int8")],
    ),
    Case(
        "uint8-prod-uint64",
        ["prod"],
        lambda x: fg.prod(x, 0),
        lambda x: np.prod(x, 0),
        [np.array([[200, 3], [200, 4]], dtype="uint8")],
    ),
]


# --------------------------------------------------------------------------- var, std


def _var_case(kind, label, x, axis=None, keepdims=False, ddof=0, static=None):
    fn, ref = getattr(fg, kind), getattr(np, kind)
    return Case(
        f"{kind}-{label}",
        [kind],
        lambda v: fn(v, axis=axis, keepdims=keepdims, ddof=ddof),
        _quiet(lambda a: ref(a, axis=axis, keepdims=keepdims, ddof=ddof)),
        [x],
        static=static,
        rtol=_rtol(x.dtype.name),
        atol=1e-6 if x.dtype.name == "float32" else 1e-14,
    )


def _var_cases():
    cases = []
    x = _data((2, 3, 4))
    for kind in ("var", "std"):
        for label, axis in AXES.items():
            cases.append(_var_case(kind, f"axis-{label}", x, axis))
        cases += [
            _var_case(kind, "keepdims", x, (0, 2), True),
            _var_case(kind, "ddof1", x, 1, ddof=1),
            _var_case(kind, "ddof-float", x, -1, ddof=0.5),
            _var_case(kind, "ddof-equals-n", x, 0, ddof=2),  # division by 0: inf
            _var_case(kind, "ddof-above-n", x, 0, ddof=5),  # count clamps at 0, as NumPy
            _var_case(kind, "partly-known", x, (1, 2), ddof=1, static=[(2, None, 4)]),
            _var_case(kind, "float32", _data((5, 6), "float32"), 1),
            _var_case(kind, "int32", _data((5, 6), "int32"), None, ddof=1),
            _var_case(kind, "uint8", _data((5, 6), "uint8"), 0),
            _var_case(kind, "bool", _data((5, 6), "bool"), 1),
            _var_case(kind, "scalar", _data(()), None),
            _var_case(kind, "empty", _data((0, 3)), None),
            _var_case(kind, "empty-axis0", _data((0, 3)), 0),
            _var_case(kind, "empty-axis1", _data((0, 3)), 1),
            _var_case(kind, "nan-inf", NAN_DATA, 1),
        ]
    for case in cases:
        # std = sqrt(var) has no derivative where the variance is 0 (one element reduced).
        if case.id in ("std-scalar", "std-axis-empty-tuple"):
            case.grad = False
    cases.append(
        Case(
            "var-std-methods",
            ["var", "std"],
            lambda v: [v.var(), v.var(0, ddof=1), v.std(1, keepdims=True)],
            lambda a: [a.var(), a.var(0, ddof=1), a.std(1, keepdims=True)],
            [_data((3, 4))],
        )
    )
    cases.append(
        Case(
            "var-symbolic-ddof",
            ["var"],
            lambda v, d: fg.var(v, 0, ddof=d),
            lambda a, d: np.var(a, 0, ddof=int(d)),
            [_data((4, 3)), np.array(1)],
        )
    )
    return cases


# --------------------------------------------------------------------------- argmax, argmin


def _arg_case(kind, label, x, axis=None, keepdims=False, raises=None):
    fn, ref = getattr(fg, kind), getattr(np, kind)
    return Case(
        f"{kind}-{label}",
        [kind],
        lambda v: fn(v, axis=axis, keepdims=keepdims),
        lambda a: np.asarray(ref(a, axis=axis, keepdims=keepdims)),
        [x],
        raises=raises,
    )


def _arg_cases():
    cases = []
    ties = np.array([[1.0, 3.0, 3.0, -2.0], [-2.0, -2.0, 0.0, 1.0], [5.0, NAN, 7.0, NAN]])
    for kind in ("argmax", "argmin"):
        x = _data((2, 3, 4))
        cases += [
            _arg_case(kind, "none", x),
            _arg_case(kind, "none-keepdims", x, None, True),
            _arg_case(kind, "axis0", x, 0),
            _arg_case(kind, "axis-neg1", x, -1),
            _arg_case(kind, "axis1-keepdims", x, 1, True),
            _arg_case(kind, "ties-nan", ties, 1),
            _arg_case(kind, "ties-nan-none", ties),
            _arg_case(kind, "float32", _data((3, 5), "float32"), 0),
            _arg_case(kind, "int8", _data((3, 5), "int8"), 1),
            _arg_case(kind, "uint16", _data((3, 5), "uint16"), None),
            _arg_case(kind, "bool", _data((3, 5), "bool"), 1),
            _arg_case(kind, "scalar", _data(())),
            _arg_case(kind, "empty-kept-axis", _data((0, 3)), 1),
            _arg_case(kind, "empty-axis", _data((0, 3)), 0, raises=ValueError),
            _arg_case(kind, "empty-none", _data((0, 3)), raises=ValueError),
        ]
    return cases


# --------------------------------------------------------------------------- logsumexp


def _lse_ref(axis=None, keepdims=False):
    """log(sum(exp(x))) computed directly in float64 (fine for moderate values), returned
    in the float dtype exp gives."""

    def ref(x):
        out = "float32" if x.dtype.itemsize <= 2 or x.dtype == np.float32 else "float64"
        with np.errstate(all="ignore"):
            value = np.log(np.sum(np.exp(x.astype("float64")), axis=axis, keepdims=keepdims))
        return np.asarray(value).astype(out)

    return ref


def _lse_case(label, x, axis=None, keepdims=False):
    return Case(
        f"logsumexp-{label}",
        ["logsumexp"],
        lambda v: fg.logsumexp(v, axis=axis, keepdims=keepdims),
        _lse_ref(axis, keepdims),
        [x],
        rtol=1e-5 if x.dtype.itemsize <= 4 else 1e-11,
    )


def _const(value, dtype="float64"):
    return lambda x: np.asarray(value, dtype=dtype)


def _lse_cases():
    x = _data((2, 3, 4))
    cases = [_lse_case(f"axis-{label}", x, axis) for label, axis in AXES.items()]
    cases += [
        _lse_case("keepdims", x, (0, 2), True),
        _lse_case("keepdims-none", x, None, True),
        _lse_case("float32", _data((3, 4), "float32"), 1),
        _lse_case("int32", _data((3, 4), "int32"), 0),
        _lse_case("int8", _data((3, 4), "int8"), None),
        _lse_case("bool", _data((3, 4), "bool"), -1),
        _lse_case("scalar", _data(())),
        _lse_case("empty-reduction", _data((3, 0)), 1),  # log(0) = -inf
        _lse_case("empty-none", _data((0, 3))),
        _lse_case("empty-kept", _data((0, 3)), 1),
    ]
    extremes = np.array(
        [
            [1000.0, 1000.0],
            [-1000.0, -1000.0],
            [-INF, -INF],
            [INF, 1.0],
            [INF, INF],
            [INF, -INF],
            [NAN, 1.0],
            [NAN, INF],
            [-INF, 0.0],
            [1e308, 1e308],
        ]
    )
    expected = [
        1000 + np.log(2),
        -1000 + np.log(2),
        -INF,
        INF,
        INF,
        INF,
        NAN,
        NAN,
        0.0,
        1e308 + np.log(2),
    ]
    cases += [
        Case(
            "logsumexp-extremes",
            ["logsumexp"],
            lambda v: fg.logsumexp(v, axis=1),
            _const(expected),
            [extremes],
        ),
        Case(
            "logsumexp-extremes-float32",
            ["logsumexp"],
            lambda v: fg.logsumexp(v, axis=0),
            _const([100 + np.log(3), -INF], "float32"),
            [np.array([[100, -INF], [100, -INF], [100, -INF]], dtype="float32")],
            rtol=1e-6,
        ),
        Case(
            "logsumexp-large-int",
            ["logsumexp"],
            lambda v: fg.logsumexp(v),
            _const(5000 + np.log(2)),
            [np.array([5000, 5000, -5000], dtype="int64")],
        ),
    ]
    return cases


CASES = _reduce_cases() + SPECIAL + _var_cases() + _arg_cases() + _lse_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_reduction(case):
    check_case(case)


# --------------------------------------------------------------------------- type rules


def test_dtype_rules_match_numpy():
    for dtype in DTYPES:
        x = fg.vector("x", dtype=dtype)
        a = np.ones(2, dtype)
        for kind in REDUCE_KINDS + ("var", "std", "argmax", "argmin"):
            assert getattr(fg, kind)(x).dtype == getattr(np, kind)(a).dtype.name, (kind, dtype)
    assert fg.logsumexp(fg.vector("i", dtype="int16")).dtype == "float32"
    assert fg.logsumexp(fg.vector("i", dtype="int32")).dtype == "float64"


def test_static_shapes_are_precise():
    x = fg.tensor("x", shape=(None, 3, 4))
    assert fg.sum(x, axis=0).type.shape == (3, 4)
    assert fg.mean(x, axis=(1, -1), keepdims=True).type.shape == (None, 1, 1)
    assert fg.max(x, axis=()).type.shape == (None, 3, 4)
    assert fg.argmax(x, axis=1).type.shape == (None, 4)
    assert fg.argmin(x, keepdims=True).type.shape == (1, 1, 1)
    assert fg.var(x, axis=2, ddof=1).type.shape == (None, 3)
    assert fg.std(x, keepdims=True).type.shape == (1, 1, 1)
    assert fg.logsumexp(x, axis=-2).type.shape == (None, 4)
    assert fg.sum(x).type.shape == ()


def test_equivalent_axes_give_equal_ops():
    x = fg.matrix("x")
    ops = {fg.sum(x).owner.op, fg.sum(x, (1, 0)).owner.op, fg.sum(x, axis=(-1, -2)).owner.op}
    assert ops == {Reduce("sum", (0, 1))}
    assert fg.max(x, -1).owner.op == Reduce("max", (1,))
    assert fg.argmax(x, -1).owner.op == ArgReduce("argmax", 1)
    assert fg.logsumexp(x, -2).owner.op == LogSumExp((0,))
    assert hash(Reduce("sum", [0])) == hash(Reduce("sum", (0,)))


# --------------------------------------------------------------------------- build-time errors


@pytest.mark.parametrize(
    "name", ["sum", "prod", "mean", "max", "min", "all", "any", "var", "std", "logsumexp"]
)
def test_axis_errors_at_build(name):
    fn = getattr(fg, name)
    x = fg.tensor("x", shape=(None, 3))
    with pytest.raises(
        np.exceptions.AxisError, match=rf"(?i){name}.*axis 2 is out of bounds.*\(\?, 3\)"
    ):
        fn(x, axis=2)
    with pytest.raises(IndexError, match=r"axis -3 is out of bounds"):
        fn(x, axis=(0, -3))
    with pytest.raises(ValueError, match=rf"(?i){name}.*duplicate value in axis"):
        fn(x, axis=(1, -1))
    with pytest.raises(TypeError, match="axis must be None, an int or a tuple of ints"):
        fn(x, axis=1.5)
    with pytest.raises(ValueError, match="out of bounds"):
        fn(fg.scalar("s"), axis=0)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_axis_errors_at_build(name):
    x = fg.matrix("x")
    with pytest.raises(TypeError, match=rf"{name}: axis must be None or an int"):
        getattr(fg, name)(x, axis=(0, 1))
    with pytest.raises(np.exceptions.AxisError, match=rf"(?i){name}.*axis -3 is out of bounds"):
        getattr(fg, name)(x, axis=-3)


def test_unknown_reduction_kind():
    with pytest.raises(ValueError, match="unknown reduction 'median'"):
        Reduce("median")
    with pytest.raises(ValueError, match="unknown arg-reduction"):
        ArgReduce("argsort")


# --------------------------------------------------------------------------- run-time errors


@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin"])
def test_empty_reduction_error_names_op_shapes_and_line(name):
    x = fg.matrix("x")
    y = getattr(fg, name)(x, axis=0)  # the line the error must point at
    f = fg.function([x], y, mode="py")
    with pytest.raises(ValueError) as info:
        f(np.zeros((0, 3)))
    message = str(info.value)
    op_class = "ArgReduce" if name.startswith("arg") else "Reduce"
    assert f"{name.capitalize()}{{axis=" in message and f"({op_class})" in message
    assert "empty" in message or "zero-size" in message
    assert "(0, 3) float64" in message
    assert "test_reduction.py" in message and "y = getattr(fg, name)(x, axis=0)" in message
