"""The main job until the benchmark suite lands: build a model, differentiate it, compile
training steps, run them, and check every number against hand-written NumPy.

    python examples/demo.py
"""

import time

import numpy as np

import fusegraph as fg


def make_data(rng, n=500, d=8):
    X = rng.normal(size=(n, d))
    true_w = rng.normal(size=d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ true_w - 0.3)))).astype("float64")
    return X, y


def numpy_step(X, y, w, b, lr, l2):
    """The same training step written by hand: loss, gradients, update."""
    z = X @ w + b
    p = 1 / (1 + np.exp(-z))
    loss = np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))) + l2 * np.sum(w * w)
    g = (p - y) / len(y)
    return loss, w - lr * (X.T @ g + 2 * l2 * w), b - lr * g.sum()


def main():
    rng = np.random.default_rng(0)
    X_data, y_data = make_data(rng)
    lr, l2 = 0.5, 1e-3

    # 1. Build the model symbolically.
    X, y = fg.matrix("X"), fg.vector("y")
    w = fg.shared(np.zeros(X_data.shape[1]), "w")
    b = fg.shared(0.0, "b")
    p = fg.sigmoid(X.dot(w) + b)
    loss = fg.binary_crossentropy(p, y).mean() + l2 * (w * w).sum()
    loss.name = "loss"

    # 2. Differentiate it and 3. compile one SGD step (forward, backward, update).
    gw, gb = fg.grad(loss, [w, b])
    step = fg.function([X, y], loss, updates={w: w - lr * gw, b: b - lr * gb}, name="sgd_step")
    print("loss =", fg.pprint(loss))
    print(f"compiled step: {len(step.graph.toposort())} nodes (mode {step.mode.backend!r})\n")

    # 4. Train, checking every step against the hand-written NumPy version.
    w_ref, b_ref = np.zeros(X_data.shape[1]), 0.0
    print(f"{'step':>5} {'fusegraph loss':>15} {'numpy loss':>12} {'max |w - w_np|':>15}")
    t_fg = t_np = 0.0
    for i in range(201):
        t0 = time.perf_counter()
        value = step(X_data, y_data)
        t1 = time.perf_counter()
        ref, w_ref, b_ref = numpy_step(X_data, y_data, w_ref, b_ref, lr, l2)
        t2 = time.perf_counter()
        t_fg, t_np = t_fg + t1 - t0, t_np + t2 - t1
        err = np.abs(w.get_value() - w_ref).max()
        if i % 40 == 0:
            print(f"{i:>5} {float(value):>15.10f} {ref:>12.10f} {err:>15.2e}")
        assert abs(value - ref) < 1e-10 and err < 1e-10, "fusegraph and NumPy disagree"
    accuracy = np.mean((X_data @ w_ref + b_ref > 0) == (y_data > 0.5))
    print(
        f"\ntraining accuracy {accuracy:.3f}; per step: fusegraph {t_fg / 201 * 1e6:.0f} us, "
        f"hand-written NumPy {t_np / 201 * 1e6:.0f} us"
    )

    # 5. Substitute a gradient: per-sample weights seeded at the per-sample losses through
    #    known_grads equal the gradient of the weighted loss.
    weights = fg.vector("weights")
    losses = fg.binary_crossentropy(p, y)
    g_known = fg.grad(None, w, known_grads={losses: weights})
    g_weighted = fg.grad((weights * losses).sum(), w)
    check = fg.function([X, y, weights], [g_known, g_weighted])
    a, b_ = check(X_data, y_data, rng.uniform(0, 2, len(y_data)))
    gap = np.abs(a - b_).max()
    print(f"known_grads per-sample weights vs weighted loss: max difference {gap:.1e}")
    assert np.allclose(a, b_, rtol=1e-12, atol=1e-12)
    print("all checks passed")


if __name__ == "__main__":
    main()
