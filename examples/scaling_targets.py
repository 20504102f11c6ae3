"""Scaling regression targets.

House prices are in the hundreds of thousands of dollars. It is common to fit a model on
scaled targets instead (prices in thousands of dollars, say) so that losses and gradients
are of order one. What does that do to the error metrics?

- RMSE and MAE carry the target's unit: measured in thousands of dollars they are 1000
  times smaller, and nothing else changes.
- MAPE (mean absolute percentage error) is a ratio: it does not change at all.
- A linear least-squares fit is equivariant: fit on prices / 1000, multiply the
  predictions by 1000, and you get the fit on the raw prices back, with the same errors.

The three metrics are one compiled fusegraph function; the scaled fit is gradient descent
with a compiled fusegraph step; the raw fit is NumPy's least squares.

    python examples/scaling_targets.py
"""

import numpy as np

import fusegraph as fg

SCALE = 1000.0  # dollars -> thousands of dollars
LEARNING_RATE = 0.25
GD_STEPS = 100


def make_data(seed=0, n=300):
    """Floor area (m^2), number of rooms and age (years) of n houses, and their prices ($)."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(40.0, 200.0, n)
    rooms = rng.integers(1, 7, n).astype("float64")
    age = rng.uniform(0.0, 60.0, n)
    noise = rng.normal(0.0, 25_000.0, n)
    price = 50_000.0 + 2_500.0 * area + 8_000.0 * rooms - 900.0 * age + noise
    return np.column_stack([area, rooms, age]), price


def main():
    features, price = make_data()

    # 1. The metrics as one graph: y are the true targets, y_hat the predictions.
    y, y_hat = fg.vector("y"), fg.vector("y_hat")
    err = y - y_hat
    rmse = fg.sqrt((err**2).mean())
    mae = fg.abs(err).mean()
    mape = 100.0 * (fg.abs(err) / fg.abs(y)).mean()
    metrics = fg.function([y, y_hat], [rmse, mae, mape], name="metrics")

    # 2. The reference fit: least squares on the raw prices, with an intercept column.
    design = np.column_stack([np.ones(len(price)), features])
    coef_raw, *_ = np.linalg.lstsq(design, price, rcond=None)
    pred_raw = design @ coef_raw

    # 3. The same predictions measured in other units: every error metric but MAPE
    #    scales with the unit.
    print(f"{'fit on $, measured in':<26} {'RMSE':>12} {'MAE':>12} {'MAPE %':>9}")
    by_scale = {}
    for unit, scale in [("dollars", 1.0), ("thousands", 1e-3), ("millions", 1e-6)]:
        r, a, m = (float(v) for v in metrics(price * scale, pred_raw * scale))
        by_scale[scale] = (r, a, m)
        print(f"{unit:<26} {r:>12.7g} {a:>12.7g} {m:>9.4f}")

    # 4. Now fit on scaled targets (thousands of dollars) by gradient descent on the mean
    #    squared error, with standardized features so that a fixed learning rate converges
    #    fast. The compiled step updates the shared weights in place.
    mu, sd = features.mean(axis=0), features.std(axis=0)
    X_std = (features - mu) / sd
    X, t = fg.matrix("X"), fg.vector("t")
    w = fg.shared(np.zeros(X_std.shape[1]), "w")
    b = fg.shared(0.0, "b")
    mse = ((X.dot(w) + b - t) ** 2).mean()
    gw, gb = fg.grad(mse, [w, b])
    step = fg.function(
        [X, t], mse, updates={w: w - LEARNING_RATE * gw, b: b - LEARNING_RATE * gb}, name="gd"
    )
    price_k = price / SCALE
    for _ in range(GD_STEPS):
        mse_k = step(X_std, price_k)
    pred_k = X_std @ w.get_value() + b.get_value()  # predictions in thousands of dollars
    pred_back = pred_k * SCALE  # ... and scaled back to dollars

    scaled = [float(v) for v in metrics(price_k, pred_k)]
    back = [float(v) for v in metrics(price, pred_back)]
    raw = list(by_scale[1.0])
    print(f"\n{'':<26} {'RMSE':>12} {'MAE':>12} {'MAPE %':>9}")
    for label, (r, a, m) in [
        ("fit on $ (least squares)", raw),
        ("fit on k$, in k$ (GD)", scaled),
        ("fit on k$, back in $", back),
    ]:
        print(f"{label:<26} {r:>12.7g} {a:>12.7g} {m:>9.4f}")
    pred_gap = float(np.abs(pred_back - pred_raw).max())
    print(
        f"\nthe loss gradient descent minimised: MSE = {float(mse_k):.2f} k$^2 "
        f"(in raw dollars it would be {float(mse_k) * SCALE**2:.3g} $^2)"
    )
    print(f"max |scaled-back prediction - least-squares prediction| = ${pred_gap:.2e}")

    return {
        "price": price,
        "pred_raw": pred_raw,
        "pred_k": pred_k,
        "pred_back": pred_back,
        "by_scale": by_scale,
        "scaled_fit": tuple(scaled),
        "scaled_back": tuple(back),
        "pred_gap": pred_gap,
    }


if __name__ == "__main__":
    main()
