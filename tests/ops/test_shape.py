"""Shape ops against NumPy: reshape, dimshuffle family, broadcast_to, concatenate/stack and
the constructors (zeros, full, arange, eye ...), with their static shapes and errors."""

import re

import numpy as np
import pytest
from harness import Case, check_case, rng

import fusegraph as fg
from fusegraph.graph import static_int_tuple, static_value

R = rng(7)


def _f(shape, dtype="float64"):
    return R.normal(0, 2, shape).astype(dtype)


def _i(shape, dtype="int64"):
    return R.integers(-5 if dtype[0] == "i" else 0, 6, shape).astype(dtype)


def _b(shape):
    return R.random(shape) < 0.5


def _n(value, dtype="int64"):
    """A 0-d integer input (a symbolic size)."""
    return np.array(value, dtype=dtype)


def _flatten_ref(x, ndim=1):
    return x.reshape(x.shape[: ndim - 1] + (int(np.prod(x.shape[ndim - 1 :])),))


def _const(value):
    """A reference for a build function that takes no inputs."""
    return lambda: value


# fmt: off
# One row per case; the tables stay compact (the formatter would triple their length).
RESHAPE = [
    Case("shape", ["shape", "shape_i"],
         lambda x: [fg.shape(x), x.shape[1], fg.shape_i(x, -1), x.shape[:2]],
         lambda x: [np.array(x.shape), np.array(x.shape[1]), np.array(x.shape[-1]),
                    np.array(x.shape[:2])],
         [_f((2, 3, 0))]),
    Case("reshape-minus-one", ["reshape"], lambda x: fg.reshape(x, (4, -1)),
         lambda x: x.reshape(4, -1), [_f((2, 3, 4))]),
    Case("reshape-int-int", ["reshape"], lambda x: fg.reshape(x, 6), lambda x: x.reshape(6),
         [_i((2, 3))]),
    Case("reshape-f32-list", ["reshape"], lambda x: fg.reshape(x, [3, 1, 2]),
         lambda x: x.reshape(3, 1, 2), [_f((6,), "float32")]),
    Case("reshape-bool", ["reshape"], lambda x: fg.reshape(x, (2, 2)), lambda x: x.reshape(2, 2),
         [_b((4,))]),
    Case("reshape-symbolic-entry", ["reshape"], lambda x, n: fg.reshape(x, (n, -1)),
         lambda x, n: x.reshape(n, -1), [_f((2, 3, 4)), _n(3, "int32")]),
    Case("reshape-shape-i", ["reshape", "shape_i"],
         lambda x: fg.reshape(x, (fg.shape_i(x, 1), -1)), lambda x: x.reshape(x.shape[1], -1),
         [_i((2, 3, 4), "uint8")]),
    Case("reshape-vector-input", ["reshape"], lambda x, s: fg.reshape(x, s, ndim=2),
         lambda x, s: x.reshape(s), [_f((2, 6)), np.array([3, 4])]),
    Case("reshape-vector-int32", ["reshape"], lambda x, s: fg.reshape(x, s),
         lambda x, s: x.reshape(s), [_i((12,)), np.array([4, -1, 3], "int32")],
         static=[None, (3,)]),
    Case("reshape-empty", ["reshape"], lambda x: [fg.reshape(x, (3, 0)), fg.reshape(x, (-1, 3))],
         lambda x: [x.reshape(3, 0), x.reshape(-1, 3)], [_f((0, 3))]),
    Case("reshape-to-0d", ["reshape"], lambda x: fg.reshape(x, ()), lambda x: x.reshape(()),
         [_f((1, 1))]),
    Case("reshape-from-0d", ["reshape"], lambda x: fg.reshape(x, (1, 1)),
         lambda x: x.reshape(1, 1), [_i(())]),
    Case("reshape-method", ["reshape"], lambda x: [x.reshape(2, -1), x.reshape((3, 4))],
         lambda x: [x.reshape(2, -1), x.reshape(3, 4)], [_f((4, 3))]),
    Case("reshape-run-size-mismatch", ["reshape"], lambda x: fg.reshape(x, (4,)), None,
         [_f((6,))], raises=ValueError, check_static_known=False),
    Case("reshape-run-negative", ["reshape"], lambda x, s: fg.reshape(x, s, ndim=2), None,
         [_f((6,)), np.array([-2, -3])], raises=ValueError),
    Case("reshape-run-wrong-length", ["reshape"], lambda x, s: fg.reshape(x, s, ndim=2), None,
         [_f((6,)), np.array([1, 2, 3])], raises=ValueError, check_static_known=False),
    Case("flatten-1", ["flatten"], fg.flatten, _flatten_ref, [_f((2, 3, 4))]),
    Case("flatten-2-int", ["flatten"], lambda x: fg.flatten(x, 2), lambda x: _flatten_ref(x, 2),
         [_i((2, 3, 4))]),
    Case("flatten-3-f32", ["flatten"], lambda x: fg.flatten(x, 3), lambda x: _flatten_ref(x, 3),
         [_f((2, 3, 4), "float32")]),
    Case("flatten-empty", ["flatten"], lambda x: [fg.flatten(x, 2), fg.flatten(x)],
         lambda x: [_flatten_ref(x, 2), _flatten_ref(x)], [_f((0, 0, 3))]),
    Case("flatten-partly-known", ["flatten"], lambda x: x.flatten(2),
         lambda x: _flatten_ref(x, 2), [_f((2, 3, 4))], static=[(None, 3, None)]),
    Case("flatten-0d", ["flatten"], fg.flatten, lambda x: x.reshape(1), [_f(())]),
]

DIMSHUFFLE = [
    Case("dimshuffle-x", ["dimshuffle"], lambda x: fg.dimshuffle(x, (1, "x", 0)),
         lambda x: np.expand_dims(x.T, 1), [_f((2, 3))]),
    Case("dimshuffle-drop", ["dimshuffle"], lambda x: fg.dimshuffle(x, (2, 0)),
         lambda x: x[:, 0, :].T, [_i((2, 1, 3))]),
    Case("dimshuffle-drop-known", ["dimshuffle"], lambda x: x.dimshuffle(2, "x", 0),
         lambda x: x[:, 0, :].T[:, None, :], [_f((2, 1, 3), "float32")], static=[(None, 1, None)]),
    Case("dimshuffle-0d", ["dimshuffle"], lambda x: x.dimshuffle("x", "x"),
         lambda x: x.reshape(1, 1), [_b(())]),
    Case("dimshuffle-to-0d", ["dimshuffle"], lambda x: x.dimshuffle(), lambda x: x.reshape(()),
         [_f((1, 1))]),
    Case("dimshuffle-empty", ["dimshuffle"], lambda x: x.dimshuffle([1, 0, "x"]),
         lambda x: x.T[..., None], [_f((0, 3))]),
    Case("dimshuffle-run-drop-not-1", ["dimshuffle"], lambda x: x.dimshuffle(0), None,
         [_f((2, 3))], raises=ValueError, check_static_known=False),
    Case("transpose-default", ["transpose"], fg.transpose, np.transpose, [_f((2, 3, 4))]),
    Case("transpose-axes", ["transpose"], lambda x: fg.transpose(x, (-1, 0, 1)),
         lambda x: np.transpose(x, (-1, 0, 1)), [_i((2, 3, 4), "int16")]),
    Case("transpose-T-method", ["transpose"], lambda x: [x.T, x.transpose(1, 0), x.transpose()],
         lambda x: [x.T, x.T, x.T], [_f((3, 4), "float32")]),
    Case("transpose-empty", ["transpose"], fg.transpose, np.transpose, [_f((0, 2, 3))]),
    Case("transpose-1d-0d", ["transpose"], lambda x, y: [fg.transpose(x), fg.transpose(y)],
         lambda x, y: [x, y], [_f((3,)), _f(())]),
    Case("expand-dims-0", ["expand_dims"], lambda x: fg.expand_dims(x, 0),
         lambda x: np.expand_dims(x, 0), [_f((2, 3))]),
    Case("expand-dims-neg", ["expand_dims"], lambda x: fg.expand_dims(x, -1),
         lambda x: np.expand_dims(x, -1), [_i((2, 3), "int32")]),
    Case("expand-dims-tuple", ["expand_dims"], lambda x: fg.expand_dims(x, (0, 2, -1)),
         lambda x: np.expand_dims(x, (0, 2, -1)), [_f((2, 3), "float32")]),
    Case("expand-dims-0d-empty", ["expand_dims"],
         lambda x, y: [fg.expand_dims(x, 0), fg.expand_dims(y, 1)],
         lambda x, y: [np.expand_dims(x, 0), np.expand_dims(y, 1)], [_f(()), _f((0,))]),
    Case("squeeze-none", ["squeeze"], fg.squeeze, np.squeeze, [_f((1, 3, 1))],
         static=[(1, None, 1)]),
    Case("squeeze-axis-unknown", ["squeeze"], lambda x: fg.squeeze(x, 1),
         lambda x: np.squeeze(x, 1), [_i((2, 1, 3))]),
    Case("squeeze-axes", ["squeeze"], lambda x: x.squeeze((0, -1)),
         lambda x: np.squeeze(x, (0, -1)), [_f((1, 0, 1), "float32")]),
    Case("squeeze-run-not-1", ["squeeze"], lambda x: fg.squeeze(x, 0), None,
         [_f((2, 3))], raises=ValueError, check_static_known=False),
]

BROADCAST_JOIN = [
    Case("broadcast-to", ["broadcast_to"], lambda x: fg.broadcast_to(x, (2, 3, 4)),
         lambda x: np.broadcast_to(x, (2, 3, 4)), [_f((3, 1))]),
    Case("broadcast-to-int-scalar", ["broadcast_to"], lambda x: fg.broadcast_to(x, (2, 2)),
         lambda x: np.broadcast_to(x, (2, 2)), [_i((), "int8")]),
    Case("broadcast-to-empty", ["broadcast_to"], lambda x: fg.broadcast_to(x, (0, 3)),
         lambda x: np.broadcast_to(x, (0, 3)), [_f((1, 3), "float32")]),
    Case("broadcast-to-symbolic", ["broadcast_to"], lambda x, n: fg.broadcast_to(x, (n, 3)),
         lambda x, n: np.broadcast_to(x, (n, 3)), [_f((3,)), _n(4, "int16")]),
    Case("broadcast-to-vector", ["broadcast_to"], lambda x, s: fg.broadcast_to(x, s),
         lambda x, s: np.broadcast_to(x, s), [_b((1, 3)), np.array([2, 2, 3])],
         static=[None, (3,)]),
    Case("broadcast-to-run-bad", ["broadcast_to"], lambda x: fg.broadcast_to(x, (4,)), None,
         [_f((3,))], raises=ValueError, check_static_known=False),
    Case("broadcast-to-run-negative", ["broadcast_to"], lambda x, n: fg.broadcast_to(x, (n,)),
         None, [_f((1,)), _n(-1)], raises=ValueError),
    Case("concatenate-0", ["concatenate"], lambda x, y: fg.concatenate([x, y]),
         lambda x, y: np.concatenate([x, y]), [_f((2, 3)), _f((1, 3))]),
    Case("concatenate-promote", ["concatenate"], lambda x, y: fg.concatenate([x, y], axis=1),
         lambda x, y: np.concatenate([x, y], axis=1), [_i((2, 1), "int32"), _f((2, 3), "float32")]),
    Case("concatenate-small-ints", ["concatenate"], lambda *xs: fg.concatenate(xs, axis=-1),
         lambda *xs: np.concatenate(xs, axis=-1),
         [_i((2, 2), "uint8"), _i((2, 1), "int8"), _b((2, 3))]),
    Case("concatenate-empty", ["concatenate"], lambda x, y: fg.concatenate((x, y)),
         lambda x, y: np.concatenate((x, y)), [_f((0, 3)), _f((0, 3))]),
    Case("concatenate-axis-none", ["concatenate"], lambda x, y: fg.concatenate([x, y], None),
         lambda x, y: np.concatenate([x, y], None), [_f((2, 3)), _i((4,))]),
    Case("join", ["join"], lambda x, y: fg.join(1, x, y),
         lambda x, y: np.concatenate([x, y], 1), [_f((2, 1, 2)), _f((2, 3, 2))]),
    Case("concatenate-run-mismatch", ["concatenate"], lambda x, y: fg.concatenate([x, y]), None,
         [_f((2, 3)), _f((2, 4))], raises=ValueError, check_static_known=False),
    Case("stack-0", ["stack"], lambda x, y: fg.stack([x, y]), lambda x, y: np.stack([x, y]),
         [_f((3,)), _f((3,))]),
    Case("stack-1", ["stack"], lambda x, y: fg.stack([x, y], axis=1),
         lambda x, y: np.stack([x, y], axis=1), [_i((2, 3), "int16"), _f((2, 3), "float32")]),
    Case("stack-neg", ["stack"], lambda *xs: fg.stack(xs, axis=-1),
         lambda *xs: np.stack(xs, axis=-1), [_f((2, 3)), _f((2, 3)), _f((2, 3))]),
    Case("stack-empty", ["stack"], lambda x, y: fg.stack([x, y], 1),
         lambda x, y: np.stack([x, y], 1), [_f((0, 2)), _f((0, 2))]),
    Case("stack-scalars", ["stack"], lambda x, y, z: fg.stack([x, y, z]),
         lambda x, y, z: np.stack([x, y, z]), [_i((), "int32"), _f((), "float32"), _b(())]),
    Case("stack-scalars-python", ["stack"], lambda x: fg.stack([x, 3]),
         lambda x: np.stack([x, 3]), [_i((), "int32")]),
    Case("as-tensor-list", ["stack"], lambda x: fg.as_tensor([[x, 1], [2, x]]),
         lambda x: np.array([[x, 1], [2, x]]), [_i(())]),
    Case("stack-run-mismatch", ["stack"], lambda x, y: fg.stack([x, y]), None,
         [_f((2,)), _f((3,))], raises=ValueError, check_static_known=False),
]

CONSTRUCTORS = [
    Case("zeros", ["zeros"], lambda: fg.zeros((2, 3)), _const(np.zeros((2, 3))), []),
    Case("zeros-int-0size", ["zeros"], lambda: fg.zeros(0, "int32"),
         _const(np.zeros(0, "int32")), []),
    Case("zeros-symbolic", ["zeros"], lambda n: fg.zeros((n, 3), dtype="int8"),
         lambda n: np.zeros((n, 3), "int8"), [_n(4, "int32")]),
    Case("zeros-shape-vector", ["zeros"], lambda s: fg.zeros(s, "float32"),
         lambda s: np.zeros(s, "float32"), [np.array([2, 0, 3])], static=[(3,)]),
    Case("zeros-scalar", ["zeros"], lambda: fg.zeros(()), _const(np.zeros(())), []),
    Case("ones", ["ones"], lambda n: fg.ones([2, n]), lambda n: np.ones([2, n]), [_n(3)]),
    Case("ones-bool", ["ones"], lambda: fg.ones(2, bool), _const(np.ones(2, bool)), []),
    Case("ones-f32-empty", ["ones"], lambda n: fg.ones((n, 0, 2), "float32"),
         lambda n: np.ones((n, 0, 2), "float32"), [_n(3, "uint8")]),
    Case("full-float", ["full"], lambda: fg.full((2, 3), 2.5), _const(np.full((2, 3), 2.5)), []),
    Case("full-int", ["full"], lambda: fg.full((2,), 7), _const(np.full((2,), 7)), []),
    Case("full-bool", ["full"], lambda: fg.full(3, True), _const(np.full(3, True)), []),
    Case("full-dtype", ["full"], lambda: fg.full((2, 2), 2.7, dtype="int16"),
         _const(np.full((2, 2), 2.7, dtype="int16")), []),
    Case("full-symbolic-value", ["full"], lambda v, n: fg.full((n, 3), v),
         lambda v, n: np.full((n, 3), v), [_f((3,), "float32"), _n(2)]),
    Case("full-symbolic-value-dtype", ["full"], lambda v: fg.full((2, 0), v, "int32"),
         lambda v: np.full((2, 0), v, "int32"), [_f(())]),
    Case("full-numpy-value", ["full"], lambda: fg.full(2, np.float32(1.5)),
         _const(np.full(2, np.float32(1.5))), []),
    Case("alloc", ["alloc"], lambda v, n: fg.alloc(v, n, 2), lambda v, n: np.full((n, 2), v),
         [_i((), "uint16"), _n(3)]),
    Case("full-run-not-broadcastable", ["full"], lambda v: fg.full((2, 3), v), None,
         [_f((4,))], raises=ValueError, check_static_known=False),
    Case("zeros-run-negative", ["zeros"], lambda n: fg.zeros((n, 2)), None, [_n(-1)],
         raises=ValueError),
    Case("zeros-like", ["zeros_like"], fg.zeros_like, np.zeros_like, [_f((2, 3), "float32")]),
    Case("zeros-like-dtype", ["zeros_like"], lambda x: fg.zeros_like(x, "float64"),
         lambda x: np.zeros_like(x, "float64"), [_i((0, 3))]),
    Case("ones-like", ["ones_like"], fg.ones_like, np.ones_like, [_i((3, 1), "uint8")]),
    Case("ones-like-0d-dtype", ["ones_like"], lambda x: fg.ones_like(x, dtype="float32"),
         lambda x: np.ones_like(x, dtype="float32"), [_f(())]),
    Case("arange-stop", ["arange"], lambda: fg.arange(5), _const(np.arange(5)), []),
    Case("arange-step", ["arange"], lambda: [fg.arange(2, 10, 3), fg.arange(5, 0, -2)],
         _const([np.arange(2, 10, 3), np.arange(5, 0, -2)]), []),
    Case("arange-float", ["arange"], lambda: fg.arange(0, 1, 0.1), _const(np.arange(0, 1, 0.1)),
         []),
    Case("arange-empty", ["arange"], lambda: [fg.arange(5, 0), fg.arange(0.0)],
         _const([np.arange(5, 0), np.arange(0.0)]), []),
    Case("arange-dtype", ["arange"], lambda: fg.arange(1, 5, dtype="float32"),
         _const(np.arange(1, 5, dtype="float32")), []),
    Case("arange-symbolic-int", ["arange"], lambda n: fg.arange(n), lambda n: np.arange(n),
         [_n(4, "int32")]),
    Case("arange-symbolic-all", ["arange"], fg.arange,
         lambda a, b, c: np.arange(a[()], b[()], c[()]),
         [np.array(-1.5, "float32"), np.array(2.0), np.array(0.25, "float32")],
         grad=False),  # moving stop changes the length; tested in test_gradient instead
    Case("arange-symbolic-int8", ["arange"], fg.arange,
         lambda a, b, c: np.arange(a[()], b[()], c[()]),
         [np.array(9, "int8"), np.array(-3, "int8"), np.array(-4, "int8")]),
    Case("arange-run-zero-step", ["arange"], lambda s: fg.arange(0, 5, s), None, [_n(0)],
         raises=ZeroDivisionError),
    Case("eye", ["eye"], lambda: fg.eye(3), _const(np.eye(3)), []),
    Case("eye-rect", ["eye"], lambda: [fg.eye(3, 4, 1, dtype="int32"), fg.eye(2, 5, -1)],
         _const([np.eye(3, 4, 1, dtype="int32"), np.eye(2, 5, -1)]), []),
    Case("eye-empty", ["eye"], lambda: [fg.eye(0), fg.eye(2, k=5, dtype="float32")],
         _const([np.eye(0), np.eye(2, k=5, dtype="float32")]), []),
    Case("eye-symbolic", ["eye"], lambda n, m, k: fg.eye(n, m, k, dtype=bool),
         lambda n, m, k: np.eye(n, m, k, dtype=bool), [_n(3), _n(2, "int32"), _n(-1, "int8")]),
    Case("eye-symbolic-n", ["eye"], lambda n: fg.eye(n), lambda n: np.eye(n), [_n(2)]),
    Case("eye-run-negative", ["eye"], lambda n: fg.eye(n), None, [_n(-2)], raises=ValueError),
]
# fmt: on

CASES = RESHAPE + DIMSHUFFLE + BROADCAST_JOIN + CONSTRUCTORS


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_shape_ops(case):
    check_case(case)


def test_every_public_function_is_covered():
    covered = {name for case in CASES for name in case.covers}
    public = (
        "reshape flatten dimshuffle transpose expand_dims squeeze broadcast_to concatenate join "
        "stack zeros ones full alloc zeros_like ones_like arange eye"
    )
    missing = set(public.split()) - covered
    assert not missing


# --------------------------------------------------------------------------- run-time errors


@pytest.mark.parametrize(
    "build, inputs, kind, op",
    [
        (lambda x: fg.reshape(x, (4,)), [_f((6,))], ValueError, "Reshape"),
        (lambda x: x.dimshuffle(1), [_f((2, 3))], ValueError, "DimShuffle"),
        (lambda x: fg.squeeze(x, 0), [_f((2, 3))], ValueError, "DimShuffle"),
        (lambda x: fg.broadcast_to(x, (2, 4)), [_f((3,))], ValueError, "BroadcastTo"),
        (lambda x, y: fg.concatenate([x, y]), [_f((2, 3)), _f((2, 4))], ValueError, "Join"),
        (lambda x, y: fg.stack([x, y]), [_f((2,)), _f((3,))], ValueError, "Join"),
        (lambda n: fg.zeros((n, 2)), [_n(-1)], ValueError, "Alloc"),
        (lambda v: fg.full((2, 3), v), [_f((4,))], ValueError, "Alloc"),
        (lambda s: fg.arange(0, 5, s), [_n(0)], ZeroDivisionError, "ARange"),
        (lambda n: fg.eye(n), [_n(-2)], ValueError, "Eye"),
    ],
)
def test_run_time_error_names_op_shapes_and_line(build, inputs, kind, op):
    syms = [fg.tensor(f"x{i}", a.dtype.name, (None,) * a.ndim) for i, a in enumerate(inputs)]
    f = fg.function(syms, build(*syms), mode="py")
    with pytest.raises(kind) as info:
        f(*inputs)
    message = str(info.value)
    assert op in message
    assert str(inputs[0].shape) in message
    assert "test_shape.py" in message


def test_dimshuffle_run_time_message_says_length_not_1():
    x = fg.matrix("x")
    f = fg.function([x], x.dimshuffle(1), mode="py")
    with pytest.raises(ValueError, match="cannot drop axis 0 .* its length is 2, not 1"):
        f(np.zeros((2, 3)))


# --------------------------------------------------------------------------- build-time errors


def _raises(kind, pattern):
    return pytest.raises(kind, match=pattern)


def test_reshape_build_errors():
    x = fg.tensor("x", shape=(2, 3))
    with _raises(
        ValueError, r"Reshape.*cannot reshape an input of shape \(2, 3\) into shape \(4,\)"
    ):
        fg.reshape(x, 4)
    with _raises(ValueError, r"cannot reshape .* \(4, -1\)"):
        fg.reshape(x, (4, -1))
    with _raises(ValueError, "only one -1"):
        fg.reshape(x, (-1, -1))
    with _raises(ValueError, "only one -1"):
        fg.reshape(x, (-2, -3))
    with _raises(ValueError, r"cannot reshape .* \(0, -1\)"):
        fg.reshape(fg.vector("v"), (0, -1))
    with _raises(ValueError, r"cannot reshape"):
        fg.reshape(fg.tensor("e", shape=(None, 0)), (2, 3))
    with _raises(ValueError, r"cannot reshape"):
        fg.reshape(x, (fg.scalar("n", "int64"), 4))
    with _raises(TypeError, "shape entry 1 must be an integer"):
        fg.reshape(x, (2, 3.0))
    with _raises(TypeError, "integer dtype"):
        fg.reshape(x, fg.vector("s"))
    with _raises(TypeError, "0-d integer"):
        fg.reshape(x, (fg.scalar("f"), 2))
    with _raises(ValueError, "pass ndim="):
        fg.reshape(x, fg.vector("s", "int64"))
    with _raises(ValueError, "ndim=3 but the shape vector has 2"):
        fg.reshape(x, (3, 2), ndim=3)
    with _raises(ValueError, "must be a vector"):
        fg.reshape(x, fg.matrix("m", "int64"))
    with _raises(ValueError, "Reshape.*2 entries, expected 3"):
        fg.Reshape(3)(x, fg.constant(np.array([3, 2])))


def test_flatten_build_errors():
    with _raises(ValueError, r"flatten: ndim must be in \[1, 2\]"):
        fg.flatten(fg.matrix("x"), 3)
    with _raises(ValueError, "flatten: ndim"):
        fg.flatten(fg.matrix("x"), 0)


def test_dimshuffle_build_errors():
    x = fg.tensor("x", shape=(2, 1, 3))
    with _raises(ValueError, r"cannot drop axis 0 of an input of shape \(2, 1, 3\)"):
        x.dimshuffle(1, 2)
    with _raises(ValueError, "repeated axis"):
        x.dimshuffle(0, 0, 1, 2)
    with _raises(np.exceptions.AxisError, "axis 3 is out of range"):
        x.dimshuffle(0, 1, 2, 3)
    with _raises(IndexError, "out of range"):
        x.dimshuffle(0, 1, -1)
    with _raises(ValueError, "axes or 'x'"):
        x.dimshuffle(0, "y", 1, 2)
    with _raises(TypeError, "expected a 2-d input"):
        fg.DimShuffle(2, (1, 0))(x)


def test_transpose_expand_squeeze_build_errors():
    x = fg.tensor("x", shape=(2, 1, 3))
    with _raises(ValueError, "don't match an input with 3 dims"):
        fg.transpose(x, (1, 0))
    with _raises(ValueError, "transpose: repeated axis"):
        fg.transpose(x, (0, 0, 1))
    with _raises(np.exceptions.AxisError, "transpose: axis 3 is out of bounds"):
        fg.transpose(x, (0, 1, 3))
    with _raises(ValueError, "expand_dims: repeated axis"):
        fg.expand_dims(x, (0, -5))
    with _raises(np.exceptions.AxisError, "expand_dims: axis 4 is out of bounds for 4 dims"):
        fg.expand_dims(x, 4)
    with _raises(ValueError, r"squeeze: cannot squeeze axis 2 of an input of shape \(2, 1, 3\)"):
        fg.squeeze(x, 2)
    with _raises(np.exceptions.AxisError, "squeeze: axis 3"):
        fg.squeeze(x, 3)
    with _raises(TypeError, "must be an integer"):
        fg.squeeze(x, 1.0)


def test_broadcast_to_build_errors():
    x = fg.tensor("x", shape=(3, 1))
    with _raises(ValueError, r"BroadcastTo.*\(3, 1\) to \(4, 2\) \(axis 0: 3 vs 4\)"):
        fg.broadcast_to(x, (4, 2))
    with _raises(ValueError, "fewer dims"):
        fg.broadcast_to(x, (3,))
    with _raises(ValueError, "negative dimensions"):
        fg.broadcast_to(x, (-1, 3, 1))
    with _raises(ValueError, "length of the shape vector .* must be known"):
        fg.broadcast_to(x, fg.vector("s", "int64"))


def test_concatenate_and_stack_build_errors():
    x, y = fg.tensor("x", shape=(2, 3)), fg.tensor("y", shape=(2, 4))
    with _raises(ValueError, "need at least one tensor"):
        fg.concatenate([])
    with _raises(ValueError, "0-d tensors cannot be concatenated"):
        fg.concatenate([fg.scalar("a"), fg.scalar("b")])
    with _raises(ValueError, "same number of dims"):
        fg.concatenate([x, fg.vector("v")])
    with _raises(ValueError, r"Join\{axis=0\}.*\(2, 3\), \(2, 4\) differ on axis 1 \(3 vs 4\)"):
        fg.concatenate([x, y])
    with _raises(np.exceptions.AxisError, "concatenate: axis 2"):
        fg.concatenate([x, x], axis=2)
    with _raises(np.exceptions.AxisError, "Join"):
        fg.Join(2)(x, x)
    with _raises(ValueError, "need at least one tensor to stack"):
        fg.stack([])
    with _raises(ValueError, r"stack: all inputs must have the same shape, got \(2, 3\), \(2, 4\)"):
        fg.stack([x, y])
    with _raises(ValueError, "stack: all inputs must have the same shape"):
        fg.stack([x, fg.vector("v")])
    with _raises(np.exceptions.AxisError, "stack: axis 3"):
        fg.stack([x, x], axis=3)
    with _raises(TypeError, "cannot be iterated"):
        fg.stack(x)


def test_constructor_build_errors():
    with _raises(ValueError, r"Alloc: negative dimensions are not allowed, got \(2, -1\)"):
        fg.zeros((2, -1))
    with _raises(TypeError, "zeros: shape entry 0 must be an integer, got float"):
        fg.zeros((2.0, 3))
    with _raises(TypeError, "zeros: shape entry 0 must be a 0-d integer"):
        fg.zeros((fg.vector("v", "int64"),))
    with _raises(TypeError, "ones: a shape must have an integer dtype"):
        fg.ones(fg.vector("v"))
    with _raises(ValueError, "length of the shape vector .* must be known"):
        fg.ones(fg.vector("v", "int64"))
    with _raises(OverflowError, "300 out of bounds for int8"):
        fg.full(3, 300, dtype="int8")
    with _raises(ValueError, r"Alloc: cannot broadcast an input of shape \(4,\) to \(2, 3\)"):
        fg.full((2, 3), fg.tensor("v", shape=(4,)))
    with _raises(ValueError, "fewer dims"):
        fg.full((3,), fg.matrix("m"))
    with _raises(TypeError, "zeros_like"):
        fg.zeros_like(fg.matrix("m"), dtype="complex128")
    with _raises(ZeroDivisionError, "ARange.*step must not be zero"):
        fg.arange(0, 5, 0)
    with _raises(ValueError, "cannot compute the length"):
        fg.arange(0, np.nan)
    with _raises(TypeError, "stop must be a 0-d number"):
        fg.arange(fg.vector("v"))
    with _raises(ValueError, "Eye.*negative dimensions"):
        fg.eye(-1)
    with _raises(TypeError, "eye: n must be a 0-d integer"):
        fg.eye(fg.scalar("f"))
    with _raises(TypeError, "eye: m must be an integer"):
        fg.eye(2, 2.5)


# --------------------------------------------------------------------------- static shapes


def test_reshape_static_shapes():
    n = fg.scalar("n", "int64")
    assert fg.reshape(fg.tensor("x", shape=(2, 3, 4)), (4, -1)).type.shape == (4, 6)
    assert fg.reshape(fg.tensor("x", shape=(6,)), (n, 2)).type.shape == (3, 2)
    assert fg.reshape(fg.tensor("x", shape=(6,)), (n, -1)).type.shape == (None, None)
    assert fg.reshape(fg.tensor("x", shape=(None, 3)), (-1,)).type.shape == (None,)
    assert fg.reshape(fg.tensor("x", shape=(None, 0)), (n, 0)).type.shape == (None, 0)
    assert fg.reshape(fg.tensor("x", shape=(None, 0)), (-1, 5)).type.shape == (0, 5)
    assert fg.reshape(fg.vector("x"), (n, 3), ndim=2).type.shape == (None, 3)
    assert fg.reshape(fg.vector("x"), fg.vector("s", "int32"), ndim=3).type.shape == (None,) * 3
    x = fg.tensor("x", shape=(None, 3, 4))
    assert fg.flatten(x, 2).type.shape == (None, 12)
    assert fg.flatten(fg.tensor("x", shape=(2, None, 4)), 2).type.shape == (2, None)
    assert fg.flatten(fg.tensor("x", shape=(2, 0, None))).type.shape == (0,)


def test_dimshuffle_static_shapes_and_identity():
    x = fg.tensor("x", shape=(2, None, 1))
    assert x.dimshuffle(1, "x", 0).type.shape == (None, 1, 2)
    assert x.dimshuffle(0, 1).type.shape == (2, None)
    assert fg.transpose(x).type.shape == (1, None, 2)
    assert fg.expand_dims(x, (0, -1)).type.shape == (1, 2, None, 1, 1)
    assert fg.squeeze(x).type.shape == (2, None)
    assert fg.squeeze(x, 1).type.shape == (2, 1)
    assert fg.transpose(x, (0, 1, 2)) is x
    assert fg.expand_dims(x, ()) is x
    assert fg.transpose(fg.vector("v")).ndim == 1


def test_squeeze_none_keeps_unknown_dims():
    # NumPy would drop a run-time length-1 dim; we cannot (the ndim must be static).
    x = fg.tensor("x", shape=(None, 1))
    f = fg.function([x], fg.squeeze(x), mode="py")
    assert f(np.zeros((1, 1))).shape == (1,)


def test_broadcast_join_static_shapes():
    n = fg.scalar("n", "int64")
    v3 = fg.tensor("v", shape=(3,))
    u = fg.vector("u")
    assert fg.broadcast_to(v3, (n, 3)).type.shape == (None, 3)
    assert fg.broadcast_to(u, (2, 3)).type.shape == (2, 3)
    assert fg.broadcast_to(u, (2, n)).type.shape == (2, None)
    assert fg.broadcast_to(fg.tensor("v", shape=(4,)), (2, n)).type.shape == (2, 4)
    x, y = fg.tensor("x", shape=(2, None)), fg.tensor("y", shape=(None, 5))
    assert fg.concatenate([x, y]).type.shape == (None, 5)
    assert fg.concatenate([x, y], axis=1).type.shape == (2, None)
    z = fg.tensor("z", shape=(1, 5))
    assert fg.concatenate([z, z, fg.tensor("w", shape=(3, 5))]).type.shape == (5, 5)
    assert fg.stack([x, y], 1).type.shape == (2, 2, 5)
    assert fg.stack([n, 3]).type.shape == (2,)


def test_static_entries_of_symbolic_shapes():
    n = fg.scalar("n", "int32")
    x = fg.tensor("x", shape=(5, None))
    vec = fg.as_tensor([n, 3])
    assert vec.dtype == "int64" and static_int_tuple(vec) == (None, 3)
    assert static_int_tuple(fg.stack([fg.shape_i(x, 0), n])) == (5, None)
    assert static_value(fg.stack([fg.shape_i(x, 0), 2])).tolist() == [5, 2]
    assert fg.zeros(vec).type.shape == (None, 3)
    assert fg.zeros((fg.shape_i(x, 0), fg.shape_i(x, 1))).type.shape == (5, None)
    assert fg.ones(fg.shape(x)).type.shape == (5, None)
    assert fg.zeros_like(x).type.shape == (5, None)
    cat = fg.concatenate([fg.shape(x), [4], fg.expand_dims(n, 0)])
    assert static_int_tuple(cat) == (5, None, 4, None)
    assert fg.full(cat, 1.0).type.shape == (5, None, 4, None)
    assert static_int_tuple(fg.concatenate([fg.shape(fg.tensor("t", shape=(2, 3))), [4]])) == (
        2,
        3,
        4,
    )
    assert static_value(fg.reshape(fg.shape(fg.tensor("t", shape=(2, 3))), (2, 1))).shape == (2, 1)
    assert static_value(fg.transpose(fg.constant(np.eye(2, 3)))).shape == (3, 2)
    assert fg.reshape(
        fg.tensor("y", shape=(2, 3)), fg.stack([fg.shape_i(x, 1), -1])
    ).type.shape == (
        None,
        None,
    )


def test_constructor_static_shapes():
    n = fg.scalar("n", "int64")
    x = fg.tensor("x", shape=(4, None))
    assert fg.arange(5).type.shape == (5,)
    assert fg.arange(0, 1, 0.1).type.shape == (10,)
    assert fg.arange(5, 0).type.shape == (0,)
    assert fg.arange(n).type.shape == (None,)
    assert fg.arange(fg.shape_i(x, 0)).type.shape == (4,)
    assert fg.arange(fg.shape_i(x, 1)).type.shape == (None,)
    assert fg.eye(3, 4).type.shape == (3, 4)
    assert fg.eye(n).type.shape == (None, None)
    assert fg.eye(fg.shape_i(x, 0), n).type.shape == (4, None)
    assert fg.full((n, 3), fg.tensor("v", shape=(3,))).type.shape == (None, 3)
    assert fg.full((2, n), fg.tensor("v", shape=(3,))).type.shape == (2, 3)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((5,), {}),
        ((np.int32(5),), {}),
        ((2, 10, 3), {}),
        ((0, 1, 0.25), {}),
        ((np.float32(0), np.float32(1)), {}),
        ((np.uint64(5),), {}),
        ((True,), {}),
        ((3,), {"dtype": "int8"}),
    ],
)
def test_arange_dtype_follows_numpy(args, kwargs):
    assert fg.arange(*args, **kwargs).dtype == np.arange(*args, **kwargs).dtype.name


@pytest.mark.parametrize(
    "fill, dtype",
    [
        (1, None),
        (1.5, None),
        (True, None),
        (np.int8(3), None),
        (np.float32(2), None),
        (2.7, "int32"),
        (np.array(300), "int8"),
        (-1.0, "uint8"),
        (1, "bool"),
    ],
)
def test_full_dtype_and_value_follow_numpy(fill, dtype):
    f = fg.function([], fg.full((2,), fill, dtype), mode="py")
    with np.errstate(invalid="ignore"):
        expected = np.full((2,), fill, dtype)
    result = f()
    assert result.dtype == expected.dtype
    np.testing.assert_array_equal(result, expected)


def test_ops_are_hashable_and_compare_by_parameters():
    assert fg.DimShuffle(2, [1, 0]) == fg.DimShuffle(2, (1, 0))
    assert hash(fg.Join(1)) == hash(fg.Join(1))
    assert fg.Reshape(2) != fg.Reshape(3)
    assert fg.MakeVector("int64") == fg.MakeVector()
    assert re.search("DimShuffle", str(fg.DimShuffle(2, ("x", 1, 0))))


@pytest.mark.parametrize("mode", ["numba", "py"])
def test_reshape_run_time_errors_of_a_symbolic_shape(mode):
    x, s = fg.vector("x"), fg.vector("s", "int64")
    f = fg.function([x, s], fg.reshape(x, s, ndim=3), mode=mode)
    a = np.arange(12.0)
    np.testing.assert_array_equal(f(a, np.array([2, -1, 3])), a.reshape(2, -1, 3))
    with pytest.raises(ValueError, match="one unknown dimension"):
        f(a, np.array([-1, 2, -1]))
    with pytest.raises(ValueError, match="cannot reshape"):
        f(a, np.array([5, -1, 2]))
    with pytest.raises(ValueError, match="cannot reshape"):
        f(a, np.array([2, 2, 2]))
