"""Extending fusegraph with your own op: the row norms of a matrix, ``y[i] = |x[i, :]|``.

It shows the whole op contract (see ``fg.Op``):
- ``make_node``: the type rule (a float matrix in, a vector of its dtype out);
- ``impl``: the NumPy reference the ``py`` backend runs;
- ``vjp``: the gradient, ``x * (g / y)[:, None]``, so ``fg.grad`` goes through it;
- ``jvp``: the forward rule, ``sum(x * t, axis=1) / y``, which ``fg.Rop`` uses;
- ``infer_shape``: ``y.shape`` is ``(x.shape[0],)`` without running the op;
- a Numba kernel registered with ``fusegraph.backends.numba.register_kernel``. Without it
  the op would still run in the Numba backend, through an object-mode call, with a warning.

Then the same computation as a plain Python function with ``fg.as_op``. Every result is
checked against NumPy and finite differences, in both backends.

Run: ``python examples/custom_op.py``.
"""

from dataclasses import dataclass

import numpy as np

import fusegraph as fg
from fusegraph.backends.numba import DECORATOR, register_kernel


@dataclass(frozen=True)
class RowNorm(fg.Op):
    """``y[i] = sqrt(sum_j x[i, j]**2)`` for a float matrix ``x``."""

    def make_node(self, x):
        x = fg.as_tensor(x)
        if x.ndim != 2 or not x.dtype.startswith("float"):
            raise TypeError(f"RowNorm: x must be a float matrix, got {x.type}")
        return fg.Apply(self, [x], [fg.TensorType(x.dtype, (x.type.shape[0],))])

    def impl(self, x):
        return np.sqrt((x * x).sum(axis=1))

    def vjp(self, inputs, outputs, grads):
        (x,), (y,), (g,) = inputs, outputs, grads
        return [x * fg.expand_dims(g / y, 1)]

    def jvp(self, inputs, outputs, tangents):
        (x,), (y,), (t,) = inputs, outputs, tangents
        return [fg.sum(x * t, axis=1) / y]

    def infer_shape(self, fgraph, node, input_shapes):
        return [(input_shapes[0][0],)]


@register_kernel(RowNorm)
def _row_norm_kernel(op, in_types, out_types, name):
    """The kernel's source: one njit function of the node's input arrays (``i0``)."""
    return f"""{DECORATOR}
def {name}(i0):
    out = np.empty(i0.shape[0], dtype=i0.dtype)
    for i in range(i0.shape[0]):
        acc = 0.0
        for j in range(i0.shape[1]):
            acc += i0[i, j] * i0[i, j]
        out[i] = np.sqrt(acc)
    return out
"""


def row_norm(x):
    return RowNorm()(x)


MATRIX = fg.TensorType("float64", (None, None))
VECTOR = fg.TensorType("float64", (None,))


def _row_norm_grad(inputs, output_grads):
    """Theano's ``Op.grad``: one gradient per input, from the inputs and outputs' gradients."""
    (x,), (g,) = inputs, output_grads
    return [x * fg.expand_dims(g / row_norm(x), 1)]


@fg.as_op([MATRIX], [VECTOR], grad=_row_norm_grad)
def row_norm_py(x):
    """The same op as a Python function (Theano's ``as_op``)."""
    return np.linalg.norm(x, axis=1)


def numeric_grad(fn, x, eps=1e-6):
    """Central differences of the scalar ``fn`` at ``x``."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = eps
        g[idx] = (fn(x + step) - fn(x - step)) / (2 * eps)
    return g


def main():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 3))
    t = rng.normal(size=(5, 3))

    def cost_np(w):
        return np.sum(np.log1p(np.sqrt((w * w).sum(axis=1))))

    want_cost, want_grad = cost_np(W), numeric_grad(cost_np, W)
    want_jvp = np.sum(W * t, axis=1) / np.sqrt((W * W).sum(axis=1))

    x, v = fg.matrix("x"), fg.matrix("v")
    for label, op in (("RowNorm", row_norm), ("as_op", row_norm_py)):
        cost = fg.sum(fg.log1p(op(x)))
        outputs = [cost, fg.grad(cost, x), op(x).shape[0]]
        if op is row_norm:
            outputs.append(fg.Rop(op(x), x, v))
        for mode in ("py", "numba"):
            f = fg.function([x, v], outputs, mode=mode, on_unused_input="ignore")
            got = f(W, t)
            np.testing.assert_allclose(got[0], want_cost, rtol=1e-12)
            np.testing.assert_allclose(got[1], want_grad, rtol=1e-6, atol=1e-9)
            assert got[2] == W.shape[0]
            if op is row_norm:
                np.testing.assert_allclose(got[3], want_jvp, rtol=1e-12)
            print(f"{label} in {mode}: cost {got[0]:.6f}, gradient and row count match")
    print("all checks passed")


if __name__ == "__main__":
    main()
