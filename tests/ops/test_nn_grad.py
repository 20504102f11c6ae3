"""Gradients of the nn ops: softmax and log_softmax over every axis form, the cross-entropy
losses (class indices against one-hot targets), closed forms and second derivatives."""

import numpy as np
import pytest

import fusegraph as fg
from fusegraph.ops.nn import CrossentropyCategorical1Hot

R = np.random.default_rng(12)
SHAPE = (2, 3, 2)
AXES = [-1, 0, 1, (0, 2), (-1, -2), None, ()]


def run(inputs, outputs, *args):
    return fg.function(inputs, outputs, mode="py", on_unused_input="ignore")(*args)


def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _prob(shape, dtype="float64"):
    p = R.uniform(0.1, 1.0, shape)
    return (p / p.sum(-1, keepdims=True)).astype(dtype)


# --------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_grad_matches_finite_differences(fn, axis, dtype):
    xv = R.normal(0, 1.5, SHAPE).astype(dtype)
    fg.verify_grad(lambda x: getattr(fg, fn)(x, axis=axis), [xv], n_tests=1)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_grad_of_1d_input_and_large_values(fn):
    fg.verify_grad(lambda x: getattr(fg, fn)(x), [R.normal(size=4)])
    # Shifted by 1000: exp would overflow without the max shift; the gradient stays finite.
    fg.verify_grad(lambda x: getattr(fg, fn)(x), [R.normal(size=4) + 1000.0], eps=1e-4)


@pytest.mark.parametrize("axis", [-1, 0, (0, 1)])
def test_softmax_grad_closed_form(axis):
    x, w = fg.matrix("x"), fg.matrix("w")
    xv, wv = R.normal(size=(3, 4)), R.normal(size=(3, 4))
    gs, gl = (
        fg.grad(fg.sum(fg.softmax(x, axis) * w), x),
        fg.grad(fg.sum(fg.log_softmax(x, axis) * w), x),
    )
    out_s, out_l = run([x, w], [gs, gl], xv, wv)
    y = _np_softmax(xv, axis)
    np.testing.assert_allclose(out_s, y * (wv - (wv * y).sum(axis, keepdims=True)), rtol=1e-12)
    np.testing.assert_allclose(out_l, wv - y * wv.sum(axis, keepdims=True), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("static", [(3, 4), (None, None)])
def test_softmax_grads_keep_the_input_type(static):
    x = fg.tensor("x", "float32", static)
    for fn in (fg.softmax, fg.log_softmax):
        g = fg.grad(fg.sum(fn(x, axis=0) * 2.0), x)
        assert g.type == x.type
        assert run([x], g, R.normal(size=(3, 4)).astype("float32")).dtype == np.float32


def test_softmax_of_integers_passes_no_gradient():
    xi = fg.vector("xi", dtype="int64")
    g = fg.grad(fg.sum(fg.softmax(xi) + fg.log_softmax(xi)), xi)
    np.testing.assert_array_equal(run([xi], g, np.array([1, 2, 3])), np.zeros(3))


# --------------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "shape, classes",
    [((4,), 2), ((3, 4), [0, 3, 1]), ((2, 2, 3), [[2, 0], [1, 1]])],
    ids=["1d", "2d", "3d"],
)
def test_crossentropy_class_indices_grad_matches_finite_differences(shape, classes, dtype):
    t = fg.constant(np.array(classes, dtype="int32"))
    pv = _prob(shape, dtype)
    fg.verify_grad(lambda p: fg.categorical_crossentropy(p, t), [pv], n_tests=2)


def test_crossentropy_grad_closed_form_with_zero_probabilities():
    p, t = fg.matrix("p"), fg.vector("t", dtype="int64")
    g = fg.grad(fg.sum(fg.categorical_crossentropy(p, t) * [1.0, 3.0]), [p, t])
    pv = np.array([[0.5, 0.0, 0.5], [0.0, 0.25, 0.75]])
    gp, gt = run([p, t], g, pv, np.array([0, 1]))
    np.testing.assert_array_equal(gp, [[-2.0, 0.0, 0.0], [0.0, -12.0, 0.0]])
    np.testing.assert_array_equal(gt, np.zeros(2))
    # A zero probability at the true class: an infinite loss, and -inf as its gradient.
    gp = run([p, t], g[0], pv, np.array([1, 1]))
    np.testing.assert_array_equal(gp, [[0.0, -np.inf, 0.0], [0.0, -12.0, 0.0]])


def test_crossentropy_vjp_gives_none_for_the_class_indices():
    p, t = fg.matrix("p"), fg.vector("t", dtype="int32")
    node = CrossentropyCategorical1Hot().make_node(p, t)
    gp, gt = node.op.vjp(node.inputs, node.outputs, [fg.ones_like(node.outputs[0])])
    assert gt is None and gp.type == p.type


@pytest.mark.parametrize("through_softmax", [False, True])
def test_class_indices_and_one_hot_targets_give_the_same_gradient(through_softmax):
    x, t, onehot = fg.matrix("x"), fg.vector("t", dtype="int64"), fg.matrix("onehot")
    w = fg.vector("w")
    p = fg.softmax(x) if through_softmax else x
    g_index = fg.grad(fg.sum(fg.categorical_crossentropy(p, t) * w), x)
    g_onehot = fg.grad(fg.sum(fg.categorical_crossentropy(p, onehot) * w), x)
    tv = np.array([2, 0, 3])
    xv = R.normal(size=(3, 4)) if through_softmax else _prob((3, 4))
    wv = np.array([1.0, -0.5, 2.0])
    a, b = run([x, t, onehot, w], [g_index, g_onehot], xv, tv, np.eye(4)[tv], wv)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    if through_softmax:
        np.testing.assert_allclose(a, (_np_softmax(xv) - np.eye(4)[tv]) * wv[:, None], rtol=1e-12)


def test_binary_crossentropy_grad():
    out, target = R.uniform(0.1, 0.9, (3, 2)), R.uniform(0, 1, (3, 2))
    fg.verify_grad(fg.binary_crossentropy, [out, target])


# --------------------------------------------------------------------------- second order


def _hessian(build, xv):
    """The Hessian of ``build(x)`` (a 0-d cost) at the vector ``xv``, row by row via
    Hessian-vector products with unit vectors."""
    x = fg.vector("x", shape=xv.shape)
    cost = build(x)
    rows = [fg.hessian_vector_product(cost, x, fg.constant(e)) for e in np.eye(xv.size)]
    return np.array(run([x], rows, xv))


def test_softmax_crossentropy_hessian_closed_form():
    xv = np.array([0.2, -1.0, 1.5, 0.3])
    y = _np_softmax(xv)
    expected = np.diag(y) - np.outer(y, y)
    t = fg.constant(np.array(2))
    h = _hessian(lambda x: fg.categorical_crossentropy(fg.softmax(x), t), xv)
    np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-15)
    onehot = fg.constant(np.eye(4)[2])
    h = _hessian(lambda x: -fg.sum(fg.log_softmax(x) * onehot), xv)
    np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-15)


def test_crossentropy_second_derivative_in_the_probabilities():
    pv = np.array([0.1, 0.4, 0.5])
    h = _hessian(lambda p: fg.categorical_crossentropy(p, fg.constant(np.array(1))) * 2.0, pv)
    np.testing.assert_allclose(h, np.diag([0.0, 2 / 0.4**2, 0.0]), rtol=1e-14)


@pytest.mark.parametrize("fn, axis", [("softmax", -1), ("softmax", 0), ("log_softmax", (0, 1))])
def test_second_derivative_matches_finite_differences(fn, axis):
    w = fg.constant(R.normal(size=(2, 3)))

    def first(x):
        return fg.grad(fg.sum(fg.square(getattr(fg, fn)(x, axis=axis) * w)), x)

    fg.verify_grad(first, [R.normal(size=(2, 3))], n_tests=1)
