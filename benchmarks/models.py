"""The graphs of the compile-scaling benchmark (``benchmarks/compile_scaling.py``): real
models as a Theano user writes them, each with its arguments and the same function written
for JAX (``jax_fn(np_module)``) so that both compile the same computation.

Every builder returns a :class:`Model`: the fusegraph functions to compile (in order, in one
process, as the user's program would), their arguments, and the JAX function of the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import fusegraph as fg


@dataclass
class Model:
    """``functions`` maps a label to ``(inputs, outputs, updates)``; ``args`` are the
    inputs' values (shared variables hold their own); ``jax`` builds the first function in
    JAX from ``(jax, jnp)`` and returns ``(fn, jax_args)``."""

    functions: dict
    args: tuple
    jax: object = None
    notes: dict = field(default_factory=dict)


def _rng():
    return np.random.default_rng(0)


# ----------------------------------------------------------------------- tanh RNN, unrolled


def rnn(steps: int, batch=8, n_in=16, n_hidden=32) -> Model:
    """A tanh RNN ``h_t = tanh(x_t W + h_{t-1} U + b)`` unrolled over ``steps``, with a
    squared loss on the last state; the gradient with respect to W, U and b."""
    rng = _rng()
    W = fg.shared(rng.normal(size=(n_in, n_hidden)) * 0.1, "W")
    U = fg.shared(rng.normal(size=(n_hidden, n_hidden)) * 0.1, "U")
    b = fg.shared(np.zeros(n_hidden), "b")
    x = fg.tensor3("x")
    target = fg.matrix("target")
    h = fg.zeros((x.shape[1], n_hidden))
    for t in range(steps):
        h = fg.tanh(fg.dot(x[t], W) + fg.dot(h, U) + b)
    cost = ((h - target) ** 2).sum()
    grads = fg.grad(cost, [W, U, b])
    args = (rng.normal(size=(steps, batch, n_in)), rng.normal(size=(batch, n_hidden)))

    def jax(jax, jnp):
        params = [W.get_value(), U.get_value(), b.get_value()]

        def loss(params, x, target):
            W_, U_, b_ = params
            h = jnp.zeros((x.shape[1], n_hidden))
            for t in range(steps):
                h = jnp.tanh(x[t] @ W_ + h @ U_ + b_)
            return ((h - target) ** 2).sum()

        return jax.jit(jax.grad(loss)), (params, *args)

    return Model({"f_grad": ([x, target], grads, None)}, args, jax)


# ----------------------------------------------------------------------- LSTM (lstm.py)


def lstm(steps=6, n_words=100, dim=32, n_classes=2, batch=5) -> Model:
    """The deeplearning.net ``lstm.py`` sentiment model unrolled over ``steps``: embedding
    lookup, one LSTM layer with masks, mean pooling, softmax, the negative log-likelihood;
    ``f_grad`` (the gradients) and ``f_grad_shared`` (the cost, storing the gradients and
    their running squares in shared variables, as adadelta's does), built in one process."""
    rng = _rng()

    def param(shape, name):
        return fg.shared(0.01 * rng.normal(size=shape), name)

    params = [
        param((n_words, dim), "Wemb"),
        param((dim, 4 * dim), "lstm_W"),
        param((dim, 4 * dim), "lstm_U"),
        fg.shared(np.zeros(4 * dim), "lstm_b"),
        param((dim, n_classes), "U"),
        fg.shared(np.zeros(n_classes), "b"),
    ]
    Wemb, W, U, lb, Uc, bc = params
    x = fg.matrix("x", dtype="int64")
    mask = fg.matrix("mask")
    y = fg.vector("y", dtype="int64")
    n_samples = x.shape[1]
    emb = Wemb[x.flatten()].reshape((steps, n_samples, dim))
    state_below = fg.dot(emb, W) + lb

    def _slice(m, k):
        return m[:, k * dim : (k + 1) * dim]

    h = fg.zeros((n_samples, dim))
    c = fg.zeros((n_samples, dim))
    hs = []
    for t in range(steps):
        m_ = mask[t].dimshuffle(0, "x")
        preact = fg.dot(h, U) + state_below[t]
        i = fg.sigmoid(_slice(preact, 0))
        f = fg.sigmoid(_slice(preact, 1))
        o = fg.sigmoid(_slice(preact, 2))
        c_new = f * c + i * fg.tanh(_slice(preact, 3))
        c = m_ * c_new + (1.0 - m_) * c
        h_new = o * fg.tanh(c)
        h = m_ * h_new + (1.0 - m_) * h
        hs.append(h)
    proj = sum(hs[t] * mask[t].dimshuffle(0, "x") for t in range(steps))
    proj = proj / mask.sum(axis=0).dimshuffle(0, "x")
    pred = fg.softmax(fg.dot(proj, Uc) + bc)
    cost = -fg.log(pred[fg.arange(n_samples), y] + 1e-8).mean()
    grads = fg.grad(cost, params)
    gshared = [fg.shared(p.get_value() * 0.0, f"{p.name}_grad") for p in params]
    rg2 = [fg.shared(p.get_value() * 0.0, f"{p.name}_rgrad2") for p in params]
    updates = [(gs, g) for gs, g in zip(gshared, grads)]
    updates += [(r, 0.95 * r + 0.05 * (g**2)) for r, g in zip(rg2, grads)]
    args = (
        rng.integers(0, n_words, size=(steps, batch)),
        (rng.random((steps, batch)) < 0.8).astype("float64"),
        rng.integers(0, n_classes, size=batch),
    )
    args[1][0] = 1.0

    def jax(jax, jnp):
        values = [p.get_value() for p in params]

        def loss(values, x, mask, y):
            Wemb, W, U, lb, Uc, bc = values
            n = x.shape[1]
            emb = Wemb[x.flatten()].reshape((steps, n, dim))
            below = emb @ W + lb
            h = jnp.zeros((n, dim))
            c = jnp.zeros((n, dim))
            hs = []
            for t in range(steps):
                m_ = mask[t][:, None]
                pre = h @ U + below[t]
                i, f, o = (jax.nn.sigmoid(pre[:, k * dim : (k + 1) * dim]) for k in range(3))
                c_new = f * c + i * jnp.tanh(pre[:, 3 * dim :])
                c = m_ * c_new + (1.0 - m_) * c
                h = m_ * (o * jnp.tanh(c)) + (1.0 - m_) * h
                hs.append(h)
            proj = sum(hs[t] * mask[t][:, None] for t in range(steps))
            proj = proj / mask.sum(axis=0)[:, None]
            pred = jax.nn.softmax(proj @ Uc + bc)
            return -jnp.log(pred[jnp.arange(n), y] + 1e-8).mean()

        return jax.jit(jax.grad(loss)), (values, *args)

    return Model(
        {
            "f_grad": ([x, mask, y], grads, None),
            "f_grad_shared": ([x, mask, y], cost, updates),
        },
        args,
        jax,
    )


# ----------------------------------------------------------------------- LeNet, im2col


def _im2col_indices(size, k):
    """Row and column indices (k, k, out, out) of every k x k patch of a size x size image."""
    out = size - k + 1
    di, dj, oi, oj = np.meshgrid(
        np.arange(k), np.arange(k), np.arange(out), np.arange(out), indexing="ij"
    )
    return di + oi, dj + oj


def lenet(batch=4, image=28, filters=(4, 6), k=5, hidden=32, classes=10) -> Model:
    """The deeplearning.net LeNet (two conv + max-pool layers, a tanh hidden layer, softmax
    regression) with convolution written as im2col through integer indexing
    (``x[:, :, I, J]``), the flipped filter ``W[:, :, ::-1, ::-1]`` and ``dot``, and 2x2
    pooling as ``reshape(...).max(axis=(3, 5))``; the gradient of the NLL w.r.t. every
    parameter."""
    rng = _rng()
    x = fg.tensor4("x")
    y = fg.vector("y", dtype="int64")
    params = []

    def conv_pool(inp, channels, n_filters, size):
        W = fg.shared(rng.normal(size=(n_filters, channels, k, k)) * 0.1, f"W{len(params)}")
        b = fg.shared(np.zeros(n_filters), f"b{len(params)}")
        params.extend([W, b])
        I, J = _im2col_indices(size, k)
        out = size - k + 1
        patches = inp[:, :, fg.constant(I), fg.constant(J)]  # (B, C, k, k, out, out)
        cols = patches.reshape((inp.shape[0], channels * k * k, out * out))
        flipped = W[:, :, ::-1, ::-1].reshape((n_filters, channels * k * k))
        conv = fg.dot(cols.dimshuffle(0, 2, 1), flipped.T)  # (B, out*out, F)
        conv = conv.dimshuffle(0, 2, 1).reshape((inp.shape[0], n_filters, out, out))
        pooled = conv.reshape((inp.shape[0], n_filters, out // 2, 2, out // 2, 2))
        pooled = pooled.max(axis=(3, 5))
        return fg.tanh(pooled + b.dimshuffle("x", 0, "x", "x")), (out // 2)

    h1, s1 = conv_pool(x, 1, filters[0], image)
    h2, s2 = conv_pool(h1, filters[0], filters[1], s1)
    flat = h2.flatten(2)
    W3 = fg.shared(rng.normal(size=(filters[1] * s2 * s2, hidden)) * 0.1, "W3")
    b3 = fg.shared(np.zeros(hidden), "b3")
    W4 = fg.shared(rng.normal(size=(hidden, classes)) * 0.1, "W4")
    b4 = fg.shared(np.zeros(classes), "b4")
    params += [W3, b3, W4, b4]
    hid = fg.tanh(fg.dot(flat, W3) + b3)
    p = fg.softmax(fg.dot(hid, W4) + b4)
    cost = -fg.log(p[fg.arange(x.shape[0]), y]).mean()
    grads = fg.grad(cost, params)
    args = (rng.normal(size=(batch, 1, image, image)), rng.integers(0, classes, size=batch))

    def jax(jax, jnp):
        values = [p_.get_value() for p_ in params]

        def loss(values, x, y):
            W0, b0, W1, b1, W3, b3, W4, b4 = values

            def cp(inp, W, b, size):
                I, J = _im2col_indices(size, k)
                out = size - k + 1
                n, c = inp.shape[0], inp.shape[1]
                cols = inp[:, :, I, J].reshape((n, c * k * k, out * out))
                flipped = W[:, :, ::-1, ::-1].reshape((W.shape[0], c * k * k))
                conv = jnp.matmul(cols.transpose(0, 2, 1), flipped.T)
                conv = conv.transpose(0, 2, 1).reshape((n, W.shape[0], out, out))
                pooled = conv.reshape((n, W.shape[0], out // 2, 2, out // 2, 2)).max(axis=(3, 5))
                return jnp.tanh(pooled + b[None, :, None, None]), out // 2

            h1, s1 = cp(x, W0, b0, image)
            h2, _ = cp(h1, W1, b1, s1)
            hid = jnp.tanh(h2.reshape((h2.shape[0], -1)) @ W3 + b3)
            p = jax.nn.softmax(hid @ W4 + b4)
            return -jnp.log(p[jnp.arange(x.shape[0]), y]).mean()

        return jax.jit(jax.grad(loss)), (values, *args)

    return Model({"f_grad": ([x, y], grads, None)}, args, jax)


# ----------------------------------------------------------------------- small families


def column_slices(k=16, rows=50) -> Model:
    """The gradient of ``sum_j sum(sin(X[:, j]) * (j + 1))`` over ``k`` column slices: each
    slice's gradient is an ``IncSubtensor`` into zeros."""
    X = fg.matrix("X")
    cost = sum((fg.sin(X[:, j]) * (j + 1.0)).sum() for j in range(k))
    args = (_rng().normal(size=(rows, k + 2)),)

    def jax(jax, jnp):
        def loss(X):
            return sum((jnp.sin(X[:, j]) * (j + 1.0)).sum() for j in range(k))

        return jax.jit(jax.grad(loss)), args

    return Model({"f_grad": ([X], fg.grad(cost, X), None)}, args, jax)


_TERMS = [
    lambda m, x: m.exp(x),
    lambda m, x: m.sin(x),
    lambda m, x: m.cos(x),
    lambda m, x: m.tanh(x),
    lambda m, x: m.log1p(x * x),
    lambda m, x: m.arctan(x),
    lambda m, x: m.sqrt(x * x + 1.0),
    lambda m, x: m.expm1(-x * x),
    lambda m, x: m.sinh(x / 4),
    lambda m, x: m.cosh(x / 4),
    lambda m, x: m.log(x * x + 2.0),
    lambda m, x: m.exp(-x) * m.sin(2 * x),
    lambda m, x: m.tan(x / 8),
    lambda m, x: m.arcsin(x / 10),
    lambda m, x: m.arccos(x / 10),
    lambda m, x: m.log10(x * x + 3.0),
]


def transcendental(n_terms=16) -> Model:
    """One fused node: the sum of ``n_terms`` different transcendental terms of x."""
    x = fg.vector("x")
    out = sum(term(fg, x) for term in _TERMS[:n_terms])
    args = (_rng().uniform(-1, 1, size=1000),)

    def jax(jax, jnp):
        return jax.jit(lambda x: sum(term(jnp, x) for term in _TERMS[:n_terms])), args

    return Model({"f": ([x], out, None)}, args, jax)


def hessian(n=10) -> Model:
    """``fg.hessian`` of ``sum(tanh(A x)**2) + sum(exp(x / n)) + (x @ x)**2`` for a vector of
    static length ``n``."""
    x = fg.tensor("x", shape=(n,))
    A = fg.constant(_rng().normal(size=(n, n)))
    cost = (fg.tanh(fg.dot(A, x)) ** 2).sum() + fg.exp(x / n).sum() + fg.dot(x, x) ** 2
    args = (_rng().normal(size=n),)
    A_value = A.data

    def jax(jax, jnp):
        def f(x):
            return (jnp.tanh(A_value @ x) ** 2).sum() + jnp.exp(x / n).sum() + (x @ x) ** 2

        return jax.jit(jax.hessian(f)), args

    return Model({"f": ([x], fg.hessian(cost, x), None)}, args, jax)


#: The benchmark's workloads: label -> builder.
WORKLOADS = {
    "RNN gradient, 5 steps": lambda: rnn(5),
    "RNN gradient, 20 steps": lambda: rnn(20),
    "RNN gradient, 50 steps": lambda: rnn(50),
    "LSTM f_grad + f_grad_shared, 6 steps": lstm,
    "LeNet im2col gradient": lenet,
    "16 column slices, gradient": column_slices,
    "16 fused transcendental terms": transcendental,
    "10x10 Hessian": hessian,
}
