"""Gradients of the reductions: finite differences for every axis/keepdims form and float
dtype, closed forms for max/min ties and for prod at zeros, unknown static shapes,
non-float reductions, and second derivatives."""

import numpy as np
import pytest

import fusegraph as fg
from fusegraph.ops.reduction import ArgReduce, LogSumExp, Reduce

R = np.random.default_rng(11)
SHAPE = (2, 3, 2)

# (axis, keepdims) forms on a 3-d input
AXES = [
    (None, False),
    (None, True),
    (0, False),
    (1, True),
    (-1, False),
    (-2, True),
    ((0, 2), False),
    ((2, 0), True),
    ((-1, -3), False),
    ((), False),
    ((0, 1, 2), True),
]
AXIS_IDS = [f"{a}-{'kd' if k else 'nokd'}".replace(" ", "") for a, k in AXES]


def run(inputs, outputs, *args):
    return fg.function(inputs, outputs, mode="py", on_unused_input="ignore")(*args)


def _point(kind, shape, dtype):
    """A point where ``kind`` is differentiable: distinct values (no ties) for max/min,
    no value near zero for prod."""
    size = int(np.prod(shape))
    if kind in ("max", "min"):
        values = R.permutation(size) * 0.37 - 2.0 + R.uniform(-0.05, 0.05, size)
    elif kind == "prod":
        values = R.choice([-1.0, 1.0], size) * R.uniform(0.6, 1.4, size)
    else:
        values = R.normal(0, 1.5, size)
    return values.reshape(shape).astype(dtype)


def _build(kind, axis, keepdims):
    if kind == "logsumexp":
        return lambda x: fg.logsumexp(x, axis=axis, keepdims=keepdims)
    return lambda x: getattr(fg, kind)(x, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("axis, keepdims", AXES, ids=AXIS_IDS)
@pytest.mark.parametrize("kind", ["sum", "mean", "prod", "max", "min", "logsumexp"])
def test_reduction_grad_matches_finite_differences(kind, axis, keepdims, dtype):
    fg.verify_grad(_build(kind, axis, keepdims), [_point(kind, SHAPE, dtype)], n_tests=1)


@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, True), ((0, 2), False)])
@pytest.mark.parametrize("fn", ["var", "std"])
def test_var_std_grad_matches_finite_differences(fn, axis, keepdims):
    build = lambda x: getattr(fg, fn)(x, axis=axis, keepdims=keepdims, ddof=1)  # noqa: E731
    fg.verify_grad(build, [_point(fn, SHAPE, "float64")], n_tests=1)


@pytest.mark.parametrize("kind", ["sum", "mean", "prod", "max", "min", "logsumexp"])
def test_reduction_grad_of_0d_and_1d_inputs(kind):
    fg.verify_grad(_build(kind, None, False), [_point(kind, (), "float64")])
    fg.verify_grad(_build(kind, 0, True), [_point(kind, (4,), "float64")])


@pytest.mark.parametrize("axis, keepdims", AXES, ids=AXIS_IDS)
@pytest.mark.parametrize("kind", ["sum", "mean", "prod", "max", "logsumexp"])
def test_grad_has_the_input_type_with_unknown_and_known_shapes(kind, axis, keepdims):
    for static in (SHAPE, (None, 3, None)):
        x = fg.tensor("x", "float32", static)
        g = fg.grad(fg.sum(_build(kind, axis, keepdims)(x)), x)
        assert g.type == x.type
        assert run([x], g, _point(kind, SHAPE, "float32")).dtype == np.float32


def test_sum_and_mean_grad_closed_form_with_symbolic_counts():
    x = fg.tensor("x", shape=(None, None, None))
    w = fg.tensor("w", shape=(None, None))
    xv, wv = R.normal(size=(3, 4, 5)), R.normal(size=(3, 5))
    gs, gm = fg.grad(fg.sum(fg.sum(x, axis=1) * w), x), fg.grad(fg.sum(fg.mean(x, 1) * w), x)
    out_s, out_m = run([x, w], [gs, gm], xv, wv)
    np.testing.assert_allclose(out_s, np.broadcast_to(wv[:, None, :], xv.shape))
    np.testing.assert_allclose(out_m, np.broadcast_to(wv[:, None, :] / 4, xv.shape))
    g_all = fg.grad(fg.mean(x), x)
    np.testing.assert_allclose(run([x], g_all, xv), np.full(xv.shape, 1 / 60))


def test_sum_grad_of_float32_stays_float32():
    x = fg.matrix("x", dtype="float32")
    g = fg.grad(fg.mean(x, axis=0).sum() * 2, x)
    out = run([x], g, np.ones((2, 4), "float32"))
    assert g.dtype == "float32" and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.ones((2, 4), "float32"))


# --------------------------------------------------------------------------- max/min ties


@pytest.mark.parametrize("kind", ["max", "min"])
def test_max_min_grad_goes_to_every_tie(kind):
    x = fg.matrix("x")
    sign = 1.0 if kind == "max" else -1.0
    xv = sign * np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [5.0, -1.0, 4.0]])
    w = np.array([10.0, 20.0, 30.0])
    g_rows = fg.grad(fg.sum(getattr(fg, kind)(x, axis=1) * w), x)
    expected = np.array([[0, 10, 10], [20, 20, 0], [30, 0, 0]], dtype=float)
    np.testing.assert_array_equal(run([x], g_rows, xv), expected)
    g_all = fg.grad(getattr(fg, kind)(x), x)
    expected = np.zeros((3, 3))
    expected[2, 0] = 1.0
    np.testing.assert_array_equal(run([x], g_all, xv), expected)
    ties = np.full((2, 2), 7.0)
    np.testing.assert_array_equal(run([x], g_all, ties), np.ones((2, 2)))


def test_max_grad_with_keepdims_and_nan():
    x = fg.matrix("x")
    g = fg.grad(fg.sum(fg.max(x, axis=0, keepdims=True) * [[1.0, 2.0]]), x)
    np.testing.assert_array_equal(run([x], g, np.array([[1.0, 9.0], [4.0, 3.0]])), [[0, 2], [1, 0]])
    # A NaN maximum equals nothing: no element gets the gradient.
    out = run([x], g, np.array([[np.nan, 9.0], [4.0, 3.0]]))
    np.testing.assert_array_equal(out, [[0, 2], [0, 0]])


# --------------------------------------------------------------------------- prod at zeros


def _others(v, skip):
    return np.prod(np.delete(v, skip))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_prod_grad_with_zeros_closed_form(dtype):
    x = fg.matrix("x", dtype=dtype)
    xv = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 4.0], [0.0, 0.0, 0.0]], dtype)
    g = run([x], fg.grad(fg.sum(fg.prod(x, axis=1)), x), xv)
    expected = [[0, 6, 0], [0, 0, 0], [8, 4, 2], [0, 0, 0]]
    assert g.dtype == dtype and np.isfinite(g).all()
    np.testing.assert_array_equal(g, expected)
    g_cols = run([x], fg.grad(fg.sum(fg.prod(x, axis=0, keepdims=True)), x), xv[:3])
    np.testing.assert_array_equal(g_cols, [[0, 0, 20], [2, 0, 12], [0, 0, 15]])


def test_prod_grad_with_one_and_two_zeros_over_all_axes():
    x = fg.matrix("x")
    g = fg.grad(fg.prod(x), x)
    one = np.array([[2.0, -1.5], [0.0, 4.0]])
    np.testing.assert_array_equal(run([x], g, one), [[0, 0], [-12, 0]])
    two = np.array([[2.0, 0.0], [0.0, 4.0]])
    np.testing.assert_array_equal(run([x], g, two), np.zeros((2, 2)))
    none = np.array([[2.0, -1.5], [0.5, 4.0]])
    expected = [[-3.0, 4.0], [-12.0, -1.5]]
    np.testing.assert_allclose(run([x], g, none), expected, rtol=1e-15)


@pytest.mark.parametrize(
    "xv",
    [[2.0, -1.0, 3.0, 0.5], [2.0, 0.0, 3.0, 5.0], [2.0, 0.0, 0.0, 5.0], [0.0, 0.0, 0.0, 5.0]],
    ids=["no-zero", "one-zero", "two-zeros", "three-zeros"],
)
def test_prod_hessian_is_exact_even_at_zeros(xv):
    xv = np.array(xv)
    expected = np.array(
        [[0 if i == j else _others(xv, [i, j]) for j in range(4)] for i in range(4)]
    )
    np.testing.assert_allclose(_hessian(fg.prod, xv), expected, rtol=1e-14)


# --------------------------------------------------------------------------- no gradient


@pytest.mark.parametrize(
    "op", [Reduce("all"), Reduce("any", (1,), True), ArgReduce("argmax"), ArgReduce("argmin", 0)]
)
def test_non_float_reductions_pass_no_gradient(op):
    x = fg.matrix("x")
    node = op.make_node(x)
    assert node.op.vjp(node.inputs, node.outputs, [fg.zeros_like(node.outputs[0], "float64")]) == [
        None
    ]


def test_paths_through_argmax_and_any_carry_no_gradient():
    x = fg.matrix("x")
    mask = fg.any(x > 0, axis=1, keepdims=True)
    cost = fg.sum(fg.where(mask, x, 0)) + fg.sum(fg.argmax(x, axis=1).astype("float64"))
    xv = np.array([[1.0, -2.0], [-1.0, -3.0]])
    np.testing.assert_array_equal(run([x], fg.grad(cost, x), xv), [[1, 1], [0, 0]])


def test_integer_inputs_get_no_gradient():
    xi = fg.matrix("xi", dtype="int64")
    x = fg.matrix("x")
    cost = fg.sum(fg.mean(xi, axis=0) * fg.sum(x, axis=0)) + fg.logsumexp(xi) + fg.max(x)
    gi, gx = fg.grad(cost, [xi, x])
    xiv, xv = np.array([[1, 2], [3, 4]]), np.array([[0.5, 1.0], [2.0, 0.0]])
    gi_val, gx_val = run([xi, x], [gi, gx], xiv, xv)
    np.testing.assert_array_equal(gi_val, np.zeros((2, 2)))
    np.testing.assert_array_equal(gx_val, [[2, 3], [3, 3]])
    assert LogSumExp().make_node(xi).op.vjp([xi], [cost], [cost]) == [None]


# --------------------------------------------------------------------------- second order


def _hessian(build, xv):
    """The Hessian of ``build(x)`` (a 0-d cost) at the vector ``xv``, row by row via
    Hessian-vector products with unit vectors."""
    x = fg.vector("x", shape=xv.shape)
    cost = build(x)
    rows = [fg.hessian_vector_product(cost, x, fg.constant(e)) for e in np.eye(xv.size)]
    return np.array(run([x], rows, xv))


@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_hessian_closed_form(keepdims):
    xv = np.array([0.3, -1.2, 2.0, 0.1])
    s = np.exp(xv) / np.exp(xv).sum()
    h = _hessian(lambda x: fg.sum(fg.logsumexp(x, keepdims=keepdims)), xv)
    np.testing.assert_allclose(h, np.diag(s) - np.outer(s, s), rtol=1e-12, atol=1e-15)


def test_logsumexp_rows_hessian_vector_product():
    x, p = fg.matrix("x"), fg.matrix("p")
    hvp = fg.hessian_vector_product(fg.sum(fg.logsumexp(x, axis=1) * [1.0, -2.0, 0.5]), x, p)
    xv, pv = R.normal(size=(3, 4)), R.normal(size=(3, 4))
    s = np.exp(xv) / np.exp(xv).sum(1, keepdims=True)
    expected = (s * pv - s * (s * pv).sum(1, keepdims=True)) * np.array([[1.0], [-2.0], [0.5]])
    np.testing.assert_allclose(run([x, p], hvp, xv, pv), expected, rtol=1e-12, atol=1e-15)


def test_mean_of_cube_second_derivative():
    xv = np.array([0.5, -1.0, 2.0])
    h = _hessian(lambda x: fg.mean(x**3), xv)
    np.testing.assert_allclose(h, np.diag(6 * xv / 3), rtol=1e-14)
    x = fg.tensor("x", shape=(None, None))
    g2 = fg.grad(fg.sum(fg.grad(fg.mean(x**3, axis=0).sum(), x)), x)
    xm = R.normal(size=(4, 3))
    np.testing.assert_allclose(run([x], g2, xm), 6 * xm / 4, rtol=1e-14)


def test_square_of_sum_and_mean_hessians():
    xv = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(_hessian(lambda x: fg.sum(x) ** 2, xv), np.full((3, 3), 2.0))
    np.testing.assert_allclose(
        _hessian(lambda x: fg.mean(x, keepdims=True).sum() ** 2, xv), np.full((3, 3), 2 / 9)
    )


def test_max_hessian_is_zero():
    xv = np.array([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(_hessian(lambda x: fg.max(x) * 3.0, xv), np.zeros((3, 3)))


@pytest.mark.parametrize(
    "kind, axis, keepdims",
    [("logsumexp", 1, False), ("logsumexp", None, True), ("prod", (0, 1), False)]
    + [("mean", -1, False), ("max", 0, True), ("sum", None, False)],
)
def test_second_derivative_matches_finite_differences(kind, axis, keepdims):
    def first(x):
        out = _build(kind, axis, keepdims)(x)
        return fg.grad(fg.sum(out * out + fg.sin(out)), x)

    fg.verify_grad(first, [_point(kind, (2, 3), "float64")], n_tests=1)
