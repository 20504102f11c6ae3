"""The worked examples ``substituting_gradients.py`` and ``reweighting_samples.py``: their
numbers against closed forms and against hand-written NumPy replays of the same draws."""

import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(name):
    module = runpy.run_path(str(EXAMPLES / name), run_name="example")
    return module, module["main"]()


@pytest.fixture(scope="module")
def substituting():
    return _run("substituting_gradients.py")


@pytest.fixture(scope="module")
def reweighting():
    return _run("reweighting_samples.py")


# ------------------------------------------------------------ substituting_gradients.py


def test_substituted_gradient_gives_the_hand_derived_update(substituting):
    m, r = substituting
    assert r["max_update_error"] < 1e-12
    # Replay the whole training in NumPy with the example's minibatches and drawn masks: the
    # update is -LR * X.T @ g with g = (sigmoid(logits) - y) / BATCH * mask / KEEP.
    X, y = m["make_data"]()
    w, b = np.zeros(m["D"]), 0.0
    for idx, mask in zip(r["batches"], r["masks"], strict=True):
        z = X[idx] @ w + b
        g = (1 / (1 + np.exp(-z)) - y[idx]) / m["BATCH"] * mask / m["KEEP"]
        w, b = w - m["LR"] * X[idx].T @ g, b - m["LR"] * g.sum()
    np.testing.assert_allclose(r["w"], w, rtol=0, atol=1e-10)
    assert abs(r["b"] - b) < 1e-10


def test_substituting_masks_and_training(substituting):
    m, r = substituting
    masks, keep = r["masks"], m["KEEP"]
    assert masks.shape == (len(r["batches"]), m["BATCH"])
    assert set(np.unique(masks)) == {0, 1}
    assert len({tuple(row) for row in masks}) == len(masks)  # fresh draws in every step
    sd = np.sqrt(keep * (1 - keep) / masks.size)
    assert abs(r["kept_fraction"] - keep) < 5 * sd
    # at w = 0, b = 0 every prediction is 1/2: loss log 2, and "z > 0" predicts class 0
    X, y = m["make_data"]()
    assert abs(r["initial_loss"] - np.log(2)) < 1e-15
    assert r["initial_accuracy"] == np.mean(y == 0)
    # Training gets close to the best full-batch loss (Newton's method in NumPy).
    A = np.hstack([X, np.ones((len(y), 1))])
    theta = np.zeros(A.shape[1])
    for _ in range(25):
        p = 1 / (1 + np.exp(-A @ theta))
        theta -= np.linalg.solve(A.T @ (A * (p * (1 - p))[:, None]), A.T @ (p - y))
    z = A @ theta
    best = np.mean(np.logaddexp(0, z) - y * z)
    assert best <= r["final_loss"] < best + 0.02
    assert r["final_accuracy"] > 0.8


# ------------------------------------------------------------ reweighting_samples.py


def test_known_grads_weights_equal_weighted_loss_gradient(reweighting):
    m, r = reweighting
    assert r["grad_gap_weighted"] < 1e-12
    assert r["grad_gap_numpy"] < 1e-12
    # the closed forms, checked independently: a weighted polyfit minimises
    # sum (w_i * residual_i)^2, so w_i = sqrt(c_i)
    X, y, c = m["make_data"]()
    x = X[:, 1]
    np.testing.assert_allclose(r["theta_wls"], np.polyfit(x, y, 1, w=np.sqrt(c))[::-1], 1e-10)
    np.testing.assert_allclose(r["theta_ols"], np.polyfit(x, y, 1)[::-1], 1e-10)
    # full-batch gradient descent with the compiled gradient finds the weighted optimum
    np.testing.assert_allclose(r["theta_gd"], r["theta_wls"], rtol=0, atol=1e-8)


def test_weighted_sampling_sgd_finds_the_optima(reweighting):
    m, r = reweighting
    wls, ols = r["theta_wls"], r["theta_ols"]
    assert np.abs(wls - ols).max() > 1.0  # the two optima are far apart ...
    assert np.abs(r["theta_sgd_weighted"] - wls).max() < 0.1  # ... and SGD finds each
    assert np.abs(r["theta_sgd_corrected"] - ols).max() < 0.1


def test_weighted_sampling_draws_and_replay(reweighting):
    m, r = reweighting
    X, y, c = m["make_data"]()
    n, batch, steps = m["N"], m["BATCH"], m["STEPS"]
    probs = c / c.sum()
    idx = r["indices"]
    assert idx.shape == (steps, batch) and idx.min() >= 0 and idx.max() < n
    freq = np.bincount(idx.ravel(), minlength=n) / idx.size
    np.testing.assert_array_less(np.abs(freq - probs), 5 * np.sqrt(probs * (1 - probs) / idx.size))
    # Replay SGD in NumPy on the drawn minibatches: plain mean, and importance-corrected.
    ts, tc = np.zeros(2), np.zeros(2)
    avg_s, avg_c = np.zeros(2), np.zeros(2)
    for t, i in enumerate(idx):
        lr, Xb, yb = m["sgd_learning_rate"](t), X[i], y[i]
        ts = ts - lr * Xb.T @ (Xb @ ts - yb) / batch
        tc = tc - lr * Xb.T @ ((Xb @ tc - yb) / (n * probs[i])) / batch
        if t >= steps // 2:
            avg_s, avg_c = avg_s + ts, avg_c + tc
    half = steps - steps // 2
    np.testing.assert_allclose(r["theta_sgd_weighted"], avg_s / half, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r["theta_sgd_corrected"], avg_c / half, rtol=0, atol=1e-10)
