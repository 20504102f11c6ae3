"""Learning curves vs minibatch size.

We train one small classifier -- softmax regression on three overlapping Gaussian blobs --
with minibatches of 8, 32, 128 and 512 samples (512 is the whole training set: full-batch
gradient descent), each for the same number of epochs, and record the training loss on the
whole set after every epoch.

The learning rate follows the *linear scaling rule*: lr = BASE_LR * batch / 32. An epoch
then moves the parameters by about the same total amount whatever the batch size (a batch 4
times larger takes 4 times fewer steps, each 4 times longer). What it shows:

- with the rule, the four curves nearly coincide: 960 steps of 8 samples and 15 full-batch
  steps reach about the same loss after 15 epochs (the full batch is even slightly ahead);
- with one fixed lr for all batch sizes (the last line), small batches win by far per
  epoch, simply because they take more steps;
- the rule holds only while the large lr stays stable. Set BASE_LR = 0.3: the full batch's
  lr of 4.8 is too large for this problem and its curve falls behind (0.63 after 15 epochs
  against 0.37 for the other three).

One compiled step serves every run: the batch size is just the length of the arrays passed
in (the graph's batch dimension is unknown until run time), and the learning rate is an
input scalar rather than a constant baked into the graph.

    python examples/batch_size_curves.py
"""

from pathlib import Path

import numpy as np

import fusegraph as fg

N, D, K = 512, 4, 3  # samples, features, classes
BATCH_SIZES = (8, 32, 128, N)
BASE_LR = 0.1  # the learning rate at batch size 32
EPOCHS = 15
SEED = 0  # the data and, separately, the shuffling order of every run
PLOT = Path(__file__).with_name("batch_size_curves.png")


def make_data(seed=SEED):
    """Three Gaussian blobs in D dimensions whose centres are close enough to overlap."""
    rng = np.random.default_rng(seed)
    centres = 1.5 * rng.normal(size=(K, D))
    y = rng.integers(0, K, size=N)
    X = centres[y] + rng.normal(size=(N, D))
    return X, y


def learning_rate(batch):
    return BASE_LR * batch / 32


def epoch_batches(rng, batch):
    """The minibatches of one epoch: a fresh random permutation, cut into slices."""
    order = rng.permutation(N)
    return [order[i : i + batch] for i in range(0, N, batch)]


def main(plot=True):
    X_data, y_data = make_data()

    # The model: class scores X W + b, softmax, mean cross-entropy against integer labels.
    X = fg.matrix("X")
    y = fg.vector("y", dtype="int64")
    lr = fg.scalar("lr")
    W = fg.shared(np.zeros((D, K)), "W")
    b = fg.shared(np.zeros(K), "b")
    loss = fg.categorical_crossentropy(fg.softmax(X.dot(W) + b), y).mean()

    # One SGD step: returns the loss on the batch given, before the update. With lr = 0 it
    # changes nothing (W - 0 * g == W), so step(X_all, y_all, 0.0) is also our evaluation of
    # the full training loss -- no second function to compile.
    gW, gb = fg.grad(loss, [W, b])
    step = fg.function([X, y, lr], loss, updates={W: W - lr * gW, b: b - lr * gb}, name="sgd")

    def train(batch, lr_value):
        """One run: zero parameters, EPOCHS epochs; the full training loss after each."""
        W.set_value(np.zeros((D, K)))  # every run starts from the same zero parameters
        b.set_value(np.zeros(K))
        rng = np.random.default_rng(SEED)  # ... and sees the same sequence of shuffles
        curve = [float(step(X_data, y_data, 0.0))]
        for _ in range(EPOCHS):
            for idx in epoch_batches(rng, batch):
                step(X_data[idx], y_data[idx], lr_value)
            curve.append(float(step(X_data, y_data, 0.0)))
        return curve, (W.get_value(), b.get_value())

    curves, finals = {}, {}
    for batch in BATCH_SIZES:
        curves[batch], finals[batch] = train(batch, learning_rate(batch))

    # The table: one column per batch size, one row per epoch (epoch 0 = before training;
    # every run starts at log(3) = 1.0986, the loss of uniform guessing).
    heads = "".join(f"{f'batch {bs}':>12}" for bs in BATCH_SIZES)
    print(f"training loss per epoch (lr = {BASE_LR} * batch / 32)\n{'epoch':>5}{heads}")
    print(f"{'lr':>5}" + "".join(f"{learning_rate(bs):>12.3f}" for bs in BATCH_SIZES))
    for e in range(EPOCHS + 1):
        print(f"{e:>5}" + "".join(f"{curves[bs][e]:>12.5f}" for bs in BATCH_SIZES))
    steps = {bs: EPOCHS * N // bs for bs in BATCH_SIZES}
    print("steps", "".join(f"{steps[bs]:>12}" for bs in BATCH_SIZES))

    # For contrast, the same runs with one learning rate for every batch size: now a small
    # batch takes many more steps of the same length per epoch, and the large ones lag far
    # behind after the same number of epochs.
    fixed = {bs: train(bs, BASE_LR)[0][-1] for bs in BATCH_SIZES}
    print(f"final loss with lr = {BASE_LR} for every batch size:")
    print(f"{'':>5}" + "".join(f"{fixed[bs]:>12.5f}" for bs in BATCH_SIZES))

    if plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("(matplotlib is not installed: no plot)")
        else:
            fig, ax = plt.subplots(figsize=(6, 4))
            for bs in BATCH_SIZES:
                ax.plot(range(EPOCHS + 1), curves[bs], marker=".", label=f"batch {bs}")
            ax.set(xlabel="epoch", ylabel="training loss", yscale="log")
            ax.set_title(f"softmax regression, lr = {BASE_LR} x batch / 32")
            ax.legend()
            fig.tight_layout()
            fig.savefig(PLOT, dpi=120)
            print(f"plot saved to {PLOT}")
    return {"curves": curves, "finals": finals, "steps": steps, "fixed_lr_final": fixed}


if __name__ == "__main__":
    main()
