"""Substituting a gradient inside a compiled training step (Theano's ``known_grads``).

Backpropagation normally runs from the loss all the way to the parameters. Sometimes you
want to stop at an intermediate result -- here the logits of a logistic regression --,
replace the gradient there by something of your own, and let the compiler finish the job.
Typical reasons: a sampled or compressed gradient, a gradient estimator for a
non-differentiable step, or pooling gradients from several sources.

This script trains a logistic regression with minibatch SGD. In each step the gradient of
the loss w.r.t. the logits (one number per data point) is replaced by an unbiased *sampled*
gradient: each data point keeps its gradient with probability KEEP, and the kept ones are
divided by KEEP so that the expectation is unchanged. The Bernoulli draws happen inside the
compiled step (``fg.RandomStream``); ``fg.grad(None, params, known_grads={logits: sampled})``
carries the sampled gradient on to the weights and the bias. We check, step by step, that
the update fusegraph applied is exactly the hand-derived one:

    w_new = w - LR * X.T @ sampled        b_new = b - LR * sampled.sum()

    python examples/substituting_gradients.py
"""

import numpy as np

import fusegraph as fg

N, D = 512, 5  # data points, features
BATCH, EPOCHS = 32, 8
KEEP = 0.7  # probability that a data point keeps its gradient in a step
LR = 1.0  # large-ish because the loss is a mean over the batch
SEED = 0


def make_data(seed=SEED):
    """Synthetic, not quite separable binary classification data."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    true_w = np.array([2.0, -1.0, 0.5, 0.0, 1.5])
    y = (rng.random(N) < 1 / (1 + np.exp(-(X @ true_w + 0.5)))).astype("float64")
    return X, y


def batch_order(seed=SEED):
    """The minibatches, as index arrays: a fresh shuffle of the data in every epoch."""
    rng = np.random.default_rng(seed + 1)
    batches = []
    for _ in range(EPOCHS):
        perm = rng.permutation(N)
        batches += [perm[i : i + BATCH] for i in range(0, N, BATCH)]
    return batches


def full_loss_and_accuracy(X, y, w, b):
    """Mean cross-entropy and accuracy on all the data, in NumPy."""
    z = X @ w + b
    loss = np.mean(np.logaddexp(0, z) - y * z)  # cross-entropy of sigmoid(z), stably
    return loss, np.mean((z > 0) == (y > 0.5))


def main():
    X_data, y_data = make_data()

    # 1. The model and its loss on a minibatch, as usual.
    X, y = fg.matrix("X"), fg.vector("y")
    w = fg.shared(np.zeros(D), "w")
    b = fg.shared(0.0, "b")
    logits = X.dot(w) + b  # the intermediate node whose gradient we replace
    loss = fg.binary_crossentropy(fg.sigmoid(logits), y).mean()

    # 2. The true gradient at the logits, (sigmoid(logits) - y) / BATCH, and a sampled version
    #    of it: a per-data-point Bernoulli keep-mask, drawn inside the compiled function and
    #    divided by KEEP so that E[sampled] = g_logits.
    g_logits = fg.grad(loss, logits)
    srng = fg.RandomStream(seed=SEED)
    keep = srng.bernoulli(KEEP, size=(X.shape[0],))  # int64 zeros and ones
    sampled = g_logits * keep / KEEP

    # 3. Finish backpropagation from the substituted gradient to the parameters. known_grads
    #    says "the total gradient of `logits` is `sampled`"; the cost is None because the seeds
    #    come from known_grads alone.
    gw, gb = fg.grad(None, [w, b], known_grads={logits: sampled})

    # 4. One compiled step: forward, sampling, backward and the SGD update. It also returns
    #    the sampled gradient and the mask, so that we can check the update by hand.
    step = fg.function(
        [X, y], [loss, sampled, keep], updates={w: w - LR * gw, b: b - LR * gb}, name="step"
    )

    # 5. Train, checking every update against the hand-derived one.
    loss0, acc0 = full_loss_and_accuracy(X_data, y_data, w.get_value(), b.get_value())
    print(f"{'epoch':>5} {'full loss':>10} {'accuracy':>9} {'kept':>6} {'max |update error|':>19}")
    print(f"{0:>5} {loss0:>10.4f} {acc0:>9.3f} {'':>6} {'':>19}")
    batches, masks, errors = batch_order(), [], []
    steps_per_epoch = len(batches) // EPOCHS
    for i, idx in enumerate(batches):
        Xb, yb = X_data[idx], y_data[idx]
        w_old, b_old = w.get_value(), float(b.get_value())
        _, g, mask = step(Xb, yb)
        masks.append(mask)
        # the sampled gradient is what we said it is ...
        p = 1 / (1 + np.exp(-(Xb @ w_old + b_old)))
        expected = (p - yb) / BATCH * mask / KEEP
        # ... and the update fusegraph applied is -LR times its backpropagation
        errors.append(
            max(
                np.abs(g - expected).max(),
                np.abs((w.get_value() - w_old) - (-LR * Xb.T @ g)).max(),
                abs((float(b.get_value()) - b_old) - (-LR * g.sum())),
            )
        )
        if (i + 1) % steps_per_epoch == 0:
            epoch = (i + 1) // steps_per_epoch
            loss_all, acc = full_loss_and_accuracy(X_data, y_data, w.get_value(), b.get_value())
            kept = np.mean(masks[-steps_per_epoch:])
            print(f"{epoch:>5} {loss_all:>10.4f} {acc:>9.3f} {kept:>6.3f} {max(errors):>19.1e}")

    max_error = max(errors)
    kept_fraction = float(np.mean(masks))
    print(f"\nkept fraction over all steps: {kept_fraction:.4f} (KEEP = {KEEP})")
    print(f"max |applied update - hand-derived update| over {len(batches)} steps: {max_error:.1e}")
    assert max_error < 1e-12, "the applied update is not -LR * X.T @ sampled"
    return {
        "max_update_error": max_error,
        "initial_loss": loss0,
        "final_loss": loss_all,
        "initial_accuracy": acc0,
        "final_accuracy": acc,
        "kept_fraction": kept_fraction,
        "w": w.get_value(),
        "b": float(b.get_value()),
        "batches": batches,
        "masks": np.array(masks),
    }


if __name__ == "__main__":
    main()
