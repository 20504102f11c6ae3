"""The numbers of examples/grad_vs_accumulation.py and examples/batch_size_curves.py, checked
against closed forms and hand-written NumPy (the examples' own helpers are not used for the
reference values, only their data and constants)."""

import math
import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    """The example's globals, without running its ``__main__`` block."""
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")


def logistic_grad(X, y, w, b, n):
    """d/d(w, b) of sum_i -[y_i log p_i + (1 - y_i) log(1 - p_i)] / n, p = sigmoid(X w + b)."""
    p = 0.5 * (1 + np.tanh(0.5 * (X @ w + b)))  # sigmoid, written differently on purpose
    return X.T @ (p - y) / n, np.sum(p - y) / n


@pytest.fixture(scope="module")
def accumulation():
    g = load("grad_vs_accumulation")
    return g, g["main"]()


@pytest.fixture(scope="module")
def curves():
    g = load("batch_size_curves")
    return g, g["main"](plot=False)


def test_grad_is_functional(accumulation):
    g, out = accumulation
    assert out["same_graph"] and out["repeat_equal"] and out["params_unchanged"]
    X, y, w0 = g["make_data"]()
    B = g["BATCH"]
    ref_w, ref_b = logistic_grad(X[:B], y[:B], w0, 0.1, B)
    np.testing.assert_allclose(out["grad_batch0"][0], ref_w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out["grad_batch0"][1], ref_b, rtol=1e-12, atol=1e-14)


def test_accumulated_minibatches_equal_full_batch_step(accumulation):
    g, out = accumulation
    X, y, w0 = g["make_data"]()
    ref_w, ref_b = logistic_grad(X, y, w0, 0.1, len(y))
    np.testing.assert_allclose(out["acc_w"], ref_w, rtol=1e-12, atol=1e-14)
    assert out["acc_b"] == pytest.approx(ref_b, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(out["w_after"], w0 - g["LR"] * ref_w, rtol=1e-13, atol=1e-15)
    assert out["b_after"] == pytest.approx(0.1 - g["LR"] * ref_b, rel=1e-13)
    acc_w, acc_b, calls = out["acc_after"]
    assert not acc_w.any() and acc_b == 0.0 and calls == 0


def test_threads_get_their_own_gradients_and_locked_accumulation_is_exact(accumulation):
    g, out = accumulation
    X, y, _ = g["make_data"]()
    B, threads, calls = g["BATCH"], g["THREADS"], g["CALLS"]
    w, b = out["w_after"], out["b_after"]
    refs = [
        logistic_grad(X[t * B : (t + 1) * B], y[t * B : (t + 1) * B], w, b, B)
        for t in range(threads)
    ]
    assert threads == 4 and len(out["thread_grads"]) == threads
    for (gw, gb), (ref_w, ref_b) in zip(out["thread_grads"], refs):
        assert gw.shape == (calls, len(w)) and gb.shape == (calls,)
        np.testing.assert_allclose(gw, np.broadcast_to(ref_w, gw.shape), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gb, ref_b, rtol=1e-12, atol=1e-14)

    acc_w, acc_b, counted = out["locked"]
    assert counted == threads * calls  # not one update lost
    np.testing.assert_allclose(acc_w, calls * sum(r[0] for r in refs), rtol=1e-12, atol=1e-12)
    assert acc_b == pytest.approx(calls * sum(r[1] for r in refs), rel=1e-12, abs=1e-12)
    # the unlocked hand-written version's losses vary from run to run: only sanity-checked
    assert 0 <= out["racy_lost"] < threads * calls


def numpy_sgd(X, y, k, batch, lr, epochs, seed):
    """Softmax regression by hand: the SGD steps of one run, same shuffles, losses per epoch."""
    n, d = X.shape
    W, b = np.zeros((d, k)), np.zeros(k)
    onehot = np.eye(k)[y]

    def loss_and_grads(idx):
        z = X[idx] @ W + b
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(len(idx)), y[idx]]))
        r = (p - onehot[idx]) / len(idx)
        return loss, X[idx].T @ r, r.sum(axis=0)

    rng = np.random.default_rng(seed)
    losses = [loss_and_grads(np.arange(n))[0]]
    for _ in range(epochs):
        order = rng.permutation(n)
        for i in range(0, n, batch):
            _, gW, gb = loss_and_grads(order[i : i + batch])
            W, b = W - lr * gW, b - lr * gb
        losses.append(loss_and_grads(np.arange(n))[0])
    return W, b, losses


def test_curves_start_at_log3_and_decrease(curves):
    g, out = curves
    assert set(out["curves"]) == set(g["BATCH_SIZES"])
    for curve in out["curves"].values():
        assert len(curve) == g["EPOCHS"] + 1
        assert curve[0] == pytest.approx(math.log(g["K"]), rel=1e-14)  # zero weights: uniform
        assert curve[-1] < curve[0]
        assert np.all(np.diff(curve) < 0)  # every epoch lowers the full training loss
    # the contrast line: with one lr for all, the smallest batch ends lowest, full batch highest
    fixed = out["fixed_lr_final"]
    assert fixed[8] < fixed[32] < fixed[128] < fixed[g["N"]]
    assert fixed[32] == out["curves"][32][-1]  # lr 0.1 is the scaled lr of batch 32 too


@pytest.mark.parametrize("batch", [32, 512])
def test_training_run_equals_numpy_replay(curves, batch):
    g, out = curves
    X, y = g["make_data"]()
    lr = g["BASE_LR"] * batch / 32
    W, b, losses = numpy_sgd(X, y, g["K"], batch, lr, g["EPOCHS"], g["SEED"])
    W_fg, b_fg = out["finals"][batch]
    np.testing.assert_allclose(W_fg, W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b_fg, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["curves"][batch], losses, rtol=1e-11)
    assert out["steps"][batch] == g["EPOCHS"] * len(y) // batch
