"""Logistic regression learns its sigmoid.

We draw 0/1 labels from a known S-curve, P(y = 1 | x) = sigmoid(w x + b), and fit w and b
by gradient descent on the negative log-likelihood (the mean binary cross-entropy) with a
compiled fusegraph training step. Then we find the exact maximum-likelihood answer a
second way, with Newton's method, using the gradient and the Hessian that fusegraph
derives symbolically (fg.grad, fg.hessian). Both routes land on the same parameters, so the
S-curve gradient descent learned is the maximum-likelihood one.

    python examples/logistic_sigmoid.py
"""

import numpy as np

import fusegraph as fg

TRUE_W, TRUE_B = 1.5, -0.5  # the S-curve the labels are drawn from
N_POINTS = 400
LEARNING_RATE = 1.0
GD_STEPS = 200
NEWTON_STEPS = 8


def make_data(seed=0, n=N_POINTS):
    """Inputs spread over [-3, 3]; each label is a coin flip with P(1) = sigmoid(w x + b)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, n)
    p_true = 1.0 / (1.0 + np.exp(-(TRUE_W * x + TRUE_B)))
    y = (rng.random(n) < p_true).astype("float64")
    return x, y


def main():
    x_data, y_data = make_data()

    # 1. The model and its loss. binary_crossentropy(sigmoid(z), y) as written computes
    #    log(sigmoid(z)) and log(1 - sigmoid(z)), which are -inf once sigmoid rounds to
    #    0 or 1 (|z| > ~37). fusegraph's "stabilize" rewrites turn it into the logits form
    #    y * softplus(-z) + (1 - y) * softplus(z), which is finite for every z; its gradient
    #    loses the divisions by sigmoid(z) as well.
    x, y = fg.vector("x"), fg.vector("y")
    w = fg.shared(0.0, "w")
    b = fg.shared(0.0, "b")
    nll = fg.binary_crossentropy(fg.sigmoid(w * x + b), y).mean()

    # 2. One compiled gradient-descent step: it returns the loss at the current (w, b) and
    #    replaces both parameters by their updated values.
    gw, gb = fg.grad(nll, [w, b])
    step = fg.function(
        [x, y], nll, updates={w: w - LEARNING_RATE * gw, b: b - LEARNING_RATE * gb}, name="gd"
    )
    fired = step.rewrite_stats["rewrites"]
    print(
        "stabilizing rewrites applied to the step:",
        {k: v for k, v in fired.items() if "sigmoid" in k},
    )

    print(f"\n{'step':>5} {'NLL':>12} {'w':>10} {'b':>10}")
    for i in range(GD_STEPS):
        loss = step(x_data, y_data)
        if i % 25 == 0 or i == GD_STEPS - 1:
            print(f"{i:>5} {float(loss):>12.8f} {w.get_value():>10.6f} {b.get_value():>10.6f}")
    w_gd, b_gd = float(w.get_value()), float(b.get_value())

    # 3. The maximum-likelihood solution by Newton's method. Put both parameters in one
    #    vector theta (static size 2, which fg.hessian needs) and let fusegraph derive the
    #    gradient and the 2x2 Hessian of the same loss. Newton's step theta -= H^-1 g
    #    converges quadratically: a handful of steps reach machine precision.
    theta = fg.tensor("theta", shape=(2,))
    nll_theta = fg.binary_crossentropy(fg.sigmoid(theta[0] * x + theta[1]), y).mean()
    newton_terms = fg.function(
        [theta, x, y],
        [nll_theta, fg.grad(nll_theta, theta), fg.hessian(nll_theta, theta)],
        name="newton_terms",
    )
    theta_ml = np.zeros(2)
    print(f"\n{'Newton':>6} {'NLL':>12} {'|gradient|':>11}")
    for k in range(NEWTON_STEPS):
        value, g, h = newton_terms(theta_ml, x_data, y_data)
        print(f"{k:>6} {float(value):>12.8f} {np.abs(g).max():>11.2e}")
        theta_ml = theta_ml - np.linalg.solve(h, g)
    w_ml, b_ml = theta_ml
    nll_ml, g_ml, h_ml = newton_terms(theta_ml, x_data, y_data)

    # 4. Compare the two fits: parameters, and the fitted S-curves on a grid.
    grid = np.linspace(-4.0, 4.0, 801)
    curve_gd = 1.0 / (1.0 + np.exp(-(w_gd * grid + b_gd)))
    curve_ml = 1.0 / (1.0 + np.exp(-(w_ml * grid + b_ml)))
    curve_gap = float(np.abs(curve_gd - curve_ml).max())
    print(f"\n{'':>20} {'w':>12} {'b':>12}")
    print(f"{'true curve':>20} {TRUE_W:>12.8f} {TRUE_B:>12.8f}")
    print(f"{'gradient descent':>20} {w_gd:>12.8f} {b_gd:>12.8f}")
    print(f"{'Newton (max. lik.)':>20} {w_ml:>12.8f} {b_ml:>12.8f}")
    print(f"{'difference':>20} {abs(w_gd - w_ml):>12.2e} {abs(b_gd - b_ml):>12.2e}")
    print(f"max |sigmoid_gd - sigmoid_ml| on [-4, 4]: {curve_gap:.2e}")

    return {
        "x": x_data,
        "y": y_data,
        "w_gd": w_gd,
        "b_gd": b_gd,
        "w_ml": float(w_ml),
        "b_ml": float(b_ml),
        "nll_ml": float(nll_ml),
        "grad_ml": np.asarray(g_ml),
        "hessian_ml": np.asarray(h_ml),
        "curve_gap": curve_gap,
        "rewrites": dict(fired),
    }


if __name__ == "__main__":
    main()
