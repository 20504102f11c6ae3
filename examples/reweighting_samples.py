"""Re-weighting samples: per-sample weights in the gradient, and weighted sampling.

Two ways to make some data points count more than others, on a small convex problem:
fitting a straight line ``theta[0] + theta[1] * x`` to points on a parabola, where each point
i has a weight c_i = exp(x_i) (points on the right count more). The weighted least-squares
loss

    L(theta) = sum_i p_i * 0.5 * (X_i . theta - y_i) ** 2,      p_i = c_i / sum(c)

has a closed-form optimum, the solution of (X^T P X) theta = X^T P y.

(a) Per-sample weights as seeds of backpropagation (PyTorch's ``loss.backward(weights)``):
    ``fg.grad(None, theta, known_grads={losses: weights})`` starts backpropagation at the
    vector of per-sample losses with the weights as its gradient, which is the gradient of
    ``(weights * losses).sum()``. Full-batch gradient descent with it finds the optimum.

(b) Weighted sampling: draw each minibatch with ``RandomStream.choice(N, size=BATCH, p=p)``
    inside the compiled step and take the *plain* mean loss of the drawn points. Its gradient
    is an unbiased estimate of the gradient of L, so SGD converges to the same optimum.
    Correcting each drawn point by the importance weight 1 / (N * p_i) instead estimates the
    gradient of the *unweighted* mean loss, so the same draws also find the ordinary
    least-squares optimum.

    python examples/reweighting_samples.py
"""

import numpy as np

import fusegraph as fg

N = 200  # data points
BATCH, STEPS = 32, 4000  # SGD: minibatch size and number of steps
GD_STEPS, GD_LR = 300, 0.3  # full-batch gradient descent
SEED = 0


def make_data(seed=SEED):
    """Points on a noisy parabola, the features [1, x] of a straight line, and the weights."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, N)
    X = np.stack([np.ones(N), x], axis=1)
    y = x**2 + 0.3 * rng.normal(size=N)
    c = np.exp(x)
    return X, y, c


def sgd_learning_rate(t):
    """A decaying step size; SGD reports the average of its iterates over the second half."""
    return 0.2 / (1 + t / 400)


def least_squares(X, y, c):
    """The optimum of sum_i c_i * (X_i . theta - y_i) ** 2, in closed form."""
    return np.linalg.solve(X.T @ (c[:, None] * X), X.T @ (c * y))


def main():
    X_data, y_data, c_data = make_data()
    probs = c_data / c_data.sum()
    theta_wls = least_squares(X_data, y_data, probs)  # the weighted optimum
    theta_ols = least_squares(X_data, y_data, np.ones(N))  # the unweighted one

    # ---- (a) per-sample weights as known_grads on the per-sample losses
    X, y = fg.matrix("X"), fg.vector("y")
    theta, weights = fg.vector("theta"), fg.vector("weights")
    losses = 0.5 * (X.dot(theta) - y) ** 2  # one loss per data point
    g_known = fg.grad(None, theta, known_grads={losses: weights})
    g_weighted = fg.grad((weights * losses).sum(), theta)
    gradients = fg.function([X, y, weights, theta], [g_known, g_weighted], name="gradients")

    theta0 = np.array([0.5, -1.0])
    a, b = gradients(X_data, y_data, probs, theta0)
    by_hand = X_data.T @ (probs * (X_data @ theta0 - y_data))
    gap_weighted = float(np.abs(a - b).max())
    gap_numpy = float(np.abs(a - by_hand).max())
    print("(a) gradient of the weighted loss at theta =", theta0)
    print(f"    known_grads={{losses: weights}}  {a}")
    print(f"    max |difference| to grad((weights * losses).sum()): {gap_weighted:.1e}")
    print(f"    max |difference| to X.T @ (weights * residuals):   {gap_numpy:.1e}")

    # Full-batch gradient descent on the weighted loss, with the compiled gradient.
    theta_gd = np.zeros(2)
    for _ in range(GD_STEPS):
        theta_gd = theta_gd - GD_LR * gradients(X_data, y_data, probs, theta_gd)[0]

    # ---- (b) SGD on minibatches drawn with probabilities p, inside the compiled step
    srng = fg.RandomStream(seed=SEED)
    Xs, ys = fg.shared(X_data, "X_data"), fg.shared(y_data, "y_data")
    idx = srng.choice(N, size=(BATCH,), p=probs)  # BATCH indices, with replacement
    Xb, yb = Xs[idx], ys[idx]
    lr = fg.scalar("lr")

    # Weighted sampling, plain mean: estimates the gradient of the weighted loss L.
    theta_s = fg.shared(np.zeros(2), "theta_sampled")
    g_s = fg.grad((0.5 * (Xb.dot(theta_s) - yb) ** 2).mean(), theta_s)

    # The same draws, importance-corrected by 1 / (N * p_i): the per-sample weights seed the
    # per-sample losses as in (a), and estimate the gradient of the unweighted mean loss.
    theta_c = fg.shared(np.zeros(2), "theta_corrected")
    losses_c = 0.5 * (Xb.dot(theta_c) - yb) ** 2
    importance = 1.0 / (N * fg.constant(probs)[idx])
    g_c = fg.grad(None, theta_c, known_grads={losses_c: importance / BATCH})

    step = fg.function(
        [lr], idx, updates={theta_s: theta_s - lr * g_s, theta_c: theta_c - lr * g_c}, name="sgd"
    )
    drawn, avg_s, avg_c = [], np.zeros(2), np.zeros(2)
    for t in range(STEPS):
        drawn.append(step(sgd_learning_rate(t)))
        if t >= STEPS // 2:  # average the iterates of the second half
            avg_s += theta_s.get_value() / (STEPS - STEPS // 2)
            avg_c += theta_c.get_value() / (STEPS - STEPS // 2)
    drawn = np.array(drawn)
    freq = np.bincount(drawn.ravel(), minlength=N) / drawn.size

    print(f"\n(b) {STEPS} SGD steps on minibatches of {BATCH} drawn with probabilities p")
    print(f"    max |frequency of a point - p_i| = {np.abs(freq - probs).max():.1e}")
    print("                                         intercept    slope")
    rows = [
        ("weighted optimum (closed form)", theta_wls),
        ("full-batch GD with (a)'s gradient", theta_gd),
        ("SGD, weighted sampling, plain mean", avg_s),
        ("unweighted optimum (closed form)", theta_ols),
        ("SGD, weighted sampling, 1/(N p_i)", avg_c),
    ]
    for label, value in rows:
        print(f"    {label:<36} {value[0]:>9.4f} {value[1]:>8.4f}")
    err_s = float(np.abs(avg_s - theta_wls).max())
    err_c = float(np.abs(avg_c - theta_ols).max())
    print(f"    max |SGD - optimum|: weighted {err_s:.3f}, importance-corrected {err_c:.3f}")
    print(f"    (the two optima differ by {np.abs(theta_wls - theta_ols).max():.3f})")
    return {
        "grad_gap_weighted": gap_weighted,
        "grad_gap_numpy": gap_numpy,
        "theta_wls": theta_wls,
        "theta_ols": theta_ols,
        "theta_gd": theta_gd,
        "theta_sgd_weighted": avg_s,
        "theta_sgd_corrected": avg_c,
        "indices": drawn,
    }


if __name__ == "__main__":
    main()
