"""nn ops against NumPy: softmax/log_softmax over every axis form with extreme values,
binary and categorical cross-entropy (distributions and class indices), and error paths."""

import numpy as np
import pytest
from harness import Case, check_case, rng

import fusegraph as fg
from fusegraph.ops.nn import (
    CrossentropyCategorical1Hot,
    CrossentropySoftmax1HotDx,
    LogSoftmax,
    Softmax,
)

R = rng(3)
INF, NAN = np.inf, np.nan


def _data(shape, dtype="float64"):
    if dtype == "bool":
        return R.random(shape) < 0.5
    if dtype.startswith(("int", "uint")):
        return R.integers(0, 5, shape).astype(dtype)
    return R.normal(0, 2, shape).astype(dtype)


def _prob(shape, dtype="float64"):
    return R.uniform(0.05, 0.95, shape).astype(dtype)


def _out_dtype(dtype):
    """The float dtype exp gives (float32 instead of NumPy's float16 for small ints)."""
    return "float32" if np.dtype(dtype).itemsize <= 2 or dtype == "float32" else "float64"


def _softmax_ref(axis):
    def ref(x):
        x64 = x.astype("float64")
        e = np.exp(x64)
        return (e / np.sum(e, axis=axis, keepdims=True)).astype(_out_dtype(x.dtype))

    return ref


def _log_softmax_ref(axis):
    def ref(x):
        x64 = x.astype("float64")
        return (x64 - np.log(np.sum(np.exp(x64), axis=axis, keepdims=True))).astype(
            _out_dtype(x.dtype)
        )

    return ref


def _rtol(dtype):
    return 1e-5 if _out_dtype(dtype) == "float32" else 1e-12


AXES = {"default": "default", "0": 0, "1": 1, "neg2": -2, "tuple": (0, 2), "none": None}


def _sm_cases():
    cases = []
    for name, fn, ref in (
        ("softmax", fg.softmax, _softmax_ref),
        ("log_softmax", fg.log_softmax, _log_softmax_ref),
    ):
        x = _data((2, 3, 4))
        for label, axis in AXES.items():
            build = fn if axis == "default" else (lambda v, fn=fn, a=axis: fn(v, axis=a))
            expected = ref(-1 if axis == "default" else axis)
            cases.append(Case(f"{name}-axis-{label}", [name], build, expected, [x]))
        for dtype in ("float32", "int8", "int32", "int64", "uint16", "bool"):
            x = _data((3, 4), dtype)
            cases.append(Case(f"{name}-{dtype}", [name], fn, ref(-1), [x], rtol=_rtol(dtype)))
        cases += [
            Case(f"{name}-vector", [name], fn, ref(-1), [_data((5,))]),
            Case(
                f"{name}-scalar-axis-none",
                [name],
                lambda v, fn=fn: fn(v, axis=None),
                ref(None),
                [_data(())],
            ),
            Case(f"{name}-empty-rows", [name], fn, ref(-1), [_data((0, 3))]),
            Case(f"{name}-empty-axis", [name], fn, ref(-1), [_data((3, 0))]),
            Case(
                f"{name}-empty-tuple-axis",
                [name],
                lambda v, fn=fn: fn(v, axis=()),
                ref(()),
                [_data((2, 3))],
                atol=1e-15,
            ),
        ]
    # Rows where the naive formula overflows or meets infinities.
    rows = np.array(
        [
            [1000.0, 1000.0, 1000.0],
            [-1000.0, 0.0, -1000.0],
            [1e308, 1e308, 0.0],
            [-INF, 0.0, 1.0],
            [-INF, -INF, 2.0],
            [INF, 1.0, 0.0],  # +inf: nan (as scipy.special.softmax)
            [-INF, -INF, -INF],  # no finite entry: nan
            [NAN, 1.0, 0.0],
        ]
    )
    e1 = np.exp([-1.0, 0.0])
    sm = [
        [1 / 3] * 3,
        [0.0, 1.0, 0.0],
        [0.5, 0.5, 0.0],
        [0.0, e1[0] / e1.sum(), e1[1] / e1.sum()],
        [0.0, 0.0, 1.0],
        [NAN] * 3,
        [NAN] * 3,
        [NAN] * 3,
    ]
    lse01 = np.log(1 + np.e)
    lsm = [
        [-np.log(3)] * 3,
        [-1000.0, 0.0, -1000.0],
        [-np.log(2), -np.log(2), -1e308],
        [-INF, -lse01, 1 - lse01],
        [-INF, -INF, 0.0],
        [NAN] * 3,
        [NAN] * 3,
        [NAN] * 3,
    ]
    f32 = np.array([[100.0, 100.0], [-200.0, 0.0], [-INF, 3.0]], dtype="float32")
    cases += [
        Case("softmax-extremes", ["softmax"], fg.softmax, lambda x: np.array(sm), [rows]),
        Case(
            "log_softmax-extremes", ["log_softmax"], fg.log_softmax, lambda x: np.array(lsm), [rows]
        ),
        Case(
            "softmax-extremes-columns",
            ["softmax"],
            lambda v: fg.softmax(v, axis=0),
            lambda x: np.array(sm).T,
            [rows.T.copy()],
        ),
        Case(
            "softmax-extremes-float32",
            ["softmax"],
            fg.softmax,
            lambda x: np.array([[0.5, 0.5], [0.0, 1.0], [0.0, 1.0]], dtype="float32"),
            [f32],
            rtol=1e-6,
        ),
        Case(
            "log_softmax-extremes-float32",
            ["log_softmax"],
            fg.log_softmax,
            lambda x: np.array([[-np.log(2)] * 2, [-200.0, 0.0], [-INF, 0.0]], "float32"),
            [f32],
            rtol=1e-6,
        ),
        Case(
            "logsoftmax-alias", ["logsoftmax"], fg.logsoftmax, _log_softmax_ref(-1), [_data((2, 3))]
        ),
        Case(
            "softmax-of-expression",
            ["softmax"],
            lambda x, y: fg.softmax(x * y, axis=0),
            lambda x, y: _softmax_ref(0)(x * y),
            [_data((3, 4)), _data((4,))],
        ),
    ]
    return cases


# --------------------------------------------------------------------------- cross-entropy


def _bce_ref(o, t):
    return -(t * np.log(o) + (1 - t) * np.log(1 - o))


def _bce_cases():
    return [
        Case(
            "bce-broadcast",
            ["binary_crossentropy"],
            fg.binary_crossentropy,
            _bce_ref,
            [_prob((3, 1)), _prob((4,))],
        ),
        Case(
            "bce-binary-targets",
            ["binary_crossentropy"],
            fg.binary_crossentropy,
            _bce_ref,
            [_prob((2, 5)), (R.random((2, 5)) < 0.5).astype("float64")],
        ),
        Case(
            "bce-float32",
            ["binary_crossentropy"],
            fg.binary_crossentropy,
            _bce_ref,
            [_prob((4,), "float32"), _prob((4,), "float32")],
            rtol=1e-6,
        ),
        Case(
            "bce-int-targets",
            ["binary_crossentropy"],
            fg.binary_crossentropy,
            _bce_ref,
            [_prob((2, 3), "float32"), R.integers(0, 2, (2, 3))],
        ),
        Case(
            "bce-int8-targets",
            ["binary_crossentropy"],
            fg.binary_crossentropy,
            _bce_ref,
            [_prob((2, 3), "float32"), R.integers(0, 2, (3,)).astype("int8")],
            rtol=1e-6,
        ),
        Case(
            "bce-empty",
            ["binary_crossentropy"],
            fg.binary_crossentropy,
            _bce_ref,
            [_prob((0, 3)), _prob((1, 3))],
        ),
        Case(
            "bce-python-target",
            ["binary_crossentropy"],
            lambda o: fg.binary_crossentropy(o, 1),
            lambda o: _bce_ref(o, 1),
            [_prob((3,), "float32")],
            rtol=1e-6,
        ),
        # The plain formula (as Theano): 0 * log(0) is nan, so saturated outputs give nan.
        Case(
            "bce-edges",
            ["binary_crossentropy"],
            fg.binary_crossentropy,
            lambda o, t: np.array([INF, NAN, NAN, INF]),
            [np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0, 0.0])],
            grad=False,  # log(0): the gradient is infinite there
        ),
    ]


def _onehot(labels, k, dtype="float64"):
    return np.eye(k, dtype=dtype)[labels]


def _cce_dist_ref(p, t):
    return -np.sum(t * np.log(p), axis=-1)


def _cce_index_ref(p, t):
    return -np.log(np.take_along_axis(p, t[..., None].astype(np.intp), axis=-1)[..., 0])


def _cce_cases():
    cce = fg.categorical_crossentropy
    labels = R.integers(0, 4, 5)
    cases = [
        Case(
            "cce-onehot",
            ["categorical_crossentropy"],
            cce,
            _cce_dist_ref,
            [_prob((5, 4)), _onehot(labels, 4)],
        ),
        Case(
            "cce-probabilities",
            ["categorical_crossentropy"],
            cce,
            _cce_dist_ref,
            [_prob((3, 4)), _prob((3, 4))],
        ),
        Case(
            "cce-dist-broadcast",
            ["categorical_crossentropy"],
            cce,
            _cce_dist_ref,
            [_prob((3, 4)), _prob((1, 4))],
        ),
        Case(
            "cce-onehot-int",
            ["categorical_crossentropy"],
            cce,
            _cce_dist_ref,
            [_prob((5, 4), "float32"), _onehot(labels, 4, "int64")],
        ),
        Case(
            "cce-dist-float32",
            ["categorical_crossentropy"],
            cce,
            _cce_dist_ref,
            [_prob((5, 4), "float32"), _onehot(labels, 4, "float32")],
            rtol=1e-6,
        ),
        Case(
            "cce-dist-3d",
            ["categorical_crossentropy"],
            cce,
            _cce_dist_ref,
            [_prob((2, 3, 4)), _prob((2, 3, 4))],
        ),
        Case(
            "cce-dist-empty",
            ["categorical_crossentropy"],
            cce,
            _cce_dist_ref,
            [_prob((0, 4)), _prob((0, 4))],
        ),
    ]
    for dtype in ("int64", "int32", "uint8"):
        cases.append(
            Case(
                f"cce-index-{dtype}",
                ["categorical_crossentropy"],
                cce,
                _cce_index_ref,
                [_prob((5, 4)), labels.astype(dtype)],
            )
        )
    p3 = _prob((2, 3, 4))
    cases += [
        Case(
            "cce-index-float32",
            ["categorical_crossentropy"],
            cce,
            _cce_index_ref,
            [_prob((5, 4), "float32"), labels],
            rtol=1e-6,
        ),
        Case(
            "cce-index-int-coding",
            ["categorical_crossentropy"],
            cce,
            _cce_index_ref,
            [R.integers(1, 4, (5, 4)), labels],
        ),
        Case(
            "cce-index-3d",
            ["categorical_crossentropy"],
            cce,
            _cce_index_ref,
            [p3, R.integers(0, 4, (2, 3))],
        ),
        Case(
            "cce-index-vector",
            ["categorical_crossentropy"],
            cce,
            _cce_index_ref,
            [_prob((4,)), np.array(2)],
        ),
        Case(
            "cce-index-empty",
            ["categorical_crossentropy"],
            cce,
            _cce_index_ref,
            [_prob((0, 4)), np.zeros((0,), "int64")],
        ),
        Case(
            "cce-index-empty-classes",
            ["categorical_crossentropy"],
            cce,
            _cce_index_ref,
            [_prob((0, 0)), np.zeros((0,), "int64")],
        ),
        Case(
            "cce-index-zero-prob",
            ["categorical_crossentropy"],
            cce,
            lambda p, t: np.array([INF, np.log(2)]),
            [np.array([[0.0, 1.0], [0.5, 0.5]]), np.array([0, 1])],
            grad=False,  # -log(0): the gradient is infinite there
        ),
        Case(
            "crossentropy_categorical_1hot",
            ["crossentropy_categorical_1hot"],
            fg.crossentropy_categorical_1hot,
            _cce_index_ref,
            [_prob((5, 4)), labels],
        ),
        Case(
            "cce-index-too-large",
            ["categorical_crossentropy"],
            cce,
            None,
            [_prob((3, 4)), np.array([0, 4, 1])],
            raises=IndexError,
        ),
        Case(
            "cce-index-negative",
            ["categorical_crossentropy"],
            cce,
            None,
            [_prob((3, 4)), np.array([0, -1, 1])],
            raises=IndexError,
        ),
        Case(
            "cce-index-no-classes",
            ["categorical_crossentropy"],
            cce,
            None,
            [_prob((2, 0)), np.array([0, 0])],
            raises=IndexError,
        ),
        # With unknown static shapes the row-count mismatch is found when run (known
        # shapes raise when building, tested below).
        Case(
            "cce-index-row-mismatch",
            ["categorical_crossentropy"],
            cce,
            None,
            [_prob((3, 4)), np.array([0, 1])],
            raises=ValueError,
            check_static_known=False,
        ),
    ]
    return cases


def _dx_ref(dy, sm, t):
    dtype = np.result_type(dy, sm)
    hot = np.arange(sm.shape[-1]) == t[..., None]
    return (np.asarray(dy, dtype)[..., None] * (sm.astype(dtype) - hot)).astype(dtype)


def _dx_cases():
    """``CrossentropySoftmax1HotDx``, the specialised softmax cross-entropy gradient (no
    public function: the specialize rule builds it)."""
    dx = CrossentropySoftmax1HotDx()
    labels = R.integers(0, 4, 5)

    def case(id, inputs, **kw):
        return Case(f"softmax-xent-dx-{id}", [], dx, _dx_ref, inputs, **kw)

    return [
        case("float64", [_data((5,)), _prob((5, 4)), labels]),
        case(
            "float32-int32",
            [_data((5,), "float32"), _prob((5, 4), "float32"), labels.astype("int32")],
            rtol=1e-6,
        ),  # fmt: skip
        case("mixed-uint8", [_data((5,)), _prob((5, 4), "float32"), labels.astype("uint8")]),
        case("scalar-dy", [np.array(0.25), _prob((5, 4)), labels]),
        case("broadcast-dy", [np.array([1.5]), _prob((5, 4)), labels]),
        case("3d", [_data((2, 3)), _prob((2, 3, 4)), R.integers(0, 4, (2, 3))]),
        case("empty", [_data((0,)), _prob((0, 4)), np.zeros((0,), "int64")]),
        case("too-large", [_data((3,)), _prob((3, 4)), np.array([0, 4, 1])], raises=IndexError),
        case("negative", [_data((3,)), _prob((3, 4)), np.array([0, -1, 1])], raises=IndexError),
        case(
            "row-mismatch",
            [_data((3,)), _prob((3, 4)), np.array([0, 1])],
            raises=ValueError,
            check_static_known=False,
        ),
    ]


CASES = _sm_cases() + _bce_cases() + _cce_cases() + _dx_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_nn(case):
    with np.errstate(all="ignore"):
        check_case(case)


# --------------------------------------------------------------------------- type rules


def test_types_and_ops():
    x = fg.tensor("x", shape=(None, 3), dtype="int16")
    assert fg.softmax(x).type == fg.TensorType("float32", (None, 3))
    assert fg.log_softmax(fg.matrix("m", dtype="int32")).dtype == "float64"
    assert fg.softmax(x).owner.op == Softmax((1,)) == fg.softmax(x, axis=(1,)).owner.op
    assert fg.log_softmax(x, None).owner.op == LogSoftmax((0, 1))
    p = fg.tensor("p", shape=(None, 4))
    t = fg.tensor("t", shape=(5,), dtype="int32")
    out = fg.categorical_crossentropy(p, t)
    assert isinstance(out.owner.op, CrossentropyCategorical1Hot)
    assert out.type == fg.TensorType("float64", (5,))
    assert fg.categorical_crossentropy(p, fg.matrix("d")).type.shape == (None,)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("fn", [fg.softmax, fg.log_softmax])
def test_softmax_axis_errors(fn):
    x = fg.tensor("x", shape=(None, 3))
    with pytest.raises(
        np.exceptions.AxisError, match=r"Softmax\{axis=\(2,\)\}.*out of bounds.*\(\?, 3\)"
    ):
        fn(x, axis=2)
    with pytest.raises(ValueError, match="Softmax.*duplicate value in axis"):
        fn(x, axis=(0, -2))
    with pytest.raises(TypeError, match="axis must be None, an int or a tuple of ints"):
        fn(x, axis="rows")
    with pytest.raises(IndexError, match="out of bounds"):
        fn(fg.scalar("s"))


def test_categorical_crossentropy_build_errors():
    p = fg.matrix("p")
    with pytest.raises(TypeError, match=r"categorical_crossentropy.*\(\?, \?\).*2 dims.*or 1"):
        fg.categorical_crossentropy(p, fg.scalar("t", dtype="int64"))
    with pytest.raises(TypeError, match="categorical_crossentropy.*at least 1 dim"):
        fg.categorical_crossentropy(fg.scalar("s"), fg.scalar("t"))
    with pytest.raises(TypeError, match="CrossentropyCategorical1Hot.*integer class indices"):
        fg.categorical_crossentropy(p, fg.vector("t"))
    with pytest.raises(TypeError, match="CrossentropyCategorical1Hot.*one dim less"):
        fg.crossentropy_categorical_1hot(p, fg.matrix("t", dtype="int64"))
    known = fg.tensor("k", shape=(3, 4))
    with pytest.raises(ValueError, match=r"CrossentropyCategorical1Hot.*\(3, 4\).*\(2,\).*3 vs 2"):
        fg.categorical_crossentropy(known, fg.tensor("t", dtype="int64", shape=(2,)))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        fg.categorical_crossentropy(known, fg.tensor("d", shape=(3, 5)))


def test_class_index_error_names_op_shapes_and_line():
    p = fg.matrix("p")
    t = fg.vector("t", dtype="int64")
    loss = fg.categorical_crossentropy(p, t)  # the line the error must point at
    f = fg.function([p, t], loss, mode="py")
    with pytest.raises(IndexError) as info:
        f(np.full((2, 3), 1 / 3), np.array([1, -1]))
    message = str(info.value)
    assert "CrossentropyCategorical1Hot" in message
    assert "class index -1 is out of range for 3 classes" in message
    assert "(2, 3) float64, (2,) int64" in message
    assert "test_nn.py" in message and "loss = fg.categorical_crossentropy(p, t)" in message
    with pytest.raises(ValueError, match=r"true_dist of shape \(2,\), got \(3,\)"):
        f(np.full((2, 3), 1 / 3), np.array([0, 1, 2]))
