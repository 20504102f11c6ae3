"""The logistic-sigmoid and scaling-targets examples: their numbers against closed forms and
hand-written NumPy."""

import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, capsys):
    """Load the example as a module (its ``main`` is not run on load), run ``main()`` and
    return its result and what it printed."""
    module = runpy.run_path(str(EXAMPLES / name), run_name="example")
    result = module["main"]()
    return module, result, capsys.readouterr().out


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_nll_terms(w, b, x, y):
    """Mean negative log-likelihood of logistic regression (stable form), its gradient and
    Hessian w.r.t. (w, b), written by hand."""
    z = w * x + b
    nll = np.mean(y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z))
    p = sigmoid(z)
    a = np.column_stack([x, np.ones_like(x)])
    grad = a.T @ (p - y) / len(x)
    hess = (a * (p * (1 - p))[:, None]).T @ a / len(x)
    return nll, grad, hess


def test_logistic_regression_learns_the_maximum_likelihood_sigmoid(capsys):
    module, r, out = run_example("logistic_sigmoid.py", capsys)
    x, y = r["x"], r["y"]
    assert set(np.unique(y)) == {0.0, 1.0}

    # Newton's method written by hand in NumPy finds the same maximum-likelihood point.
    theta = np.zeros(2)
    for _ in range(30):
        _, g, h = numpy_nll_terms(*theta, x, y)
        theta = theta - np.linalg.solve(h, g)
    nll, g, h = numpy_nll_terms(*theta, x, y)
    assert np.abs(g).max() < 1e-14
    np.testing.assert_allclose([r["w_ml"], r["b_ml"]], theta, rtol=0, atol=1e-12)
    assert r["nll_ml"] == pytest.approx(nll, rel=1e-13)
    np.testing.assert_allclose(r["grad_ml"], 0.0, atol=1e-14)
    np.testing.assert_allclose(r["hessian_ml"], h, rtol=1e-12, atol=0)

    # Gradient descent reached it: parameters, and the S-curves on a grid.
    assert abs(r["w_gd"] - theta[0]) < 1e-6 and abs(r["b_gd"] - theta[1]) < 1e-6
    grid = np.linspace(-4.0, 4.0, 801)
    gap = np.abs(sigmoid(r["w_gd"] * grid + r["b_gd"]) - sigmoid(theta[0] * grid + theta[1]))
    assert r["curve_gap"] == pytest.approx(gap.max(), rel=0.05, abs=1e-15)
    assert r["curve_gap"] < 1e-6
    # ... and the estimate is near the curve the labels were drawn from (400 points).
    assert abs(r["w_ml"] - module["TRUE_W"]) < 0.4 and abs(r["b_ml"] - module["TRUE_B"]) < 0.3

    # The cross-entropy of a sigmoid was rewritten into its softplus form.
    assert r["rewrites"].get("log_sigmoid_to_softplus", 0) >= 1
    assert "Newton (max. lik.)" in out and "max |sigmoid_gd - sigmoid_ml|" in out


def numpy_metrics(y, y_hat):
    e = y - y_hat
    return np.sqrt(np.mean(e**2)), np.mean(np.abs(e)), 100.0 * np.mean(np.abs(e) / np.abs(y))


def test_scaling_targets_scales_rmse_and_mae_but_not_mape(capsys):
    module, r, out = run_example("scaling_targets.py", capsys)
    price, pred_raw = r["price"], r["pred_raw"]

    # The raw fit is least squares: its residuals are orthogonal to the design.
    features, price_again = module["make_data"]()
    np.testing.assert_array_equal(price, price_again)
    design = np.column_stack([np.ones(len(price)), features])
    coef, *_ = np.linalg.lstsq(design, price, rcond=None)
    np.testing.assert_allclose(pred_raw, design @ coef, rtol=1e-12)

    # fusegraph's metrics equal the NumPy formulas in every unit; RMSE and MAE scale with
    # the unit, MAPE does not move.
    rmse1, mae1, mape1 = numpy_metrics(price, pred_raw)
    assert set(r["by_scale"]) == {1.0, 1e-3, 1e-6}
    for scale, got in r["by_scale"].items():
        np.testing.assert_allclose(got, numpy_metrics(price * scale, pred_raw * scale), rtol=1e-12)
        np.testing.assert_allclose(got, [rmse1 * scale, mae1 * scale, mape1], rtol=1e-12)

    # The fit on thousands of dollars, scaled back, is the fit on dollars.
    s = module["SCALE"]
    np.testing.assert_allclose(r["pred_back"], r["pred_k"] * s, rtol=1e-15)
    np.testing.assert_allclose(r["pred_k"], pred_raw / s, rtol=1e-10)
    assert r["pred_gap"] < 1e-6
    np.testing.assert_allclose(r["scaled_fit"], [rmse1 / s, mae1 / s, mape1], rtol=1e-9)
    np.testing.assert_allclose(r["scaled_back"], [rmse1, mae1, mape1], rtol=1e-9)
    np.testing.assert_allclose(r["scaled_back"], numpy_metrics(price, r["pred_back"]), rtol=1e-12)
    assert "fit on k$, back in $" in out
