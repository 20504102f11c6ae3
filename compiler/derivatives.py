"""Derivatives built on ``grad``: ``jacobian``, ``hessian``, ``hessian_vector_product``, and
``verify_grad``, which checks a gradient against finite differences."""

from __future__ import annotations

import math

import numpy as np

from fusegraph import ops
from fusegraph.constructors import tensor
from fusegraph.errors import GradientError
from fusegraph.function import function
from fusegraph.gradient import grad
from fusegraph.graph import as_tensor
from fusegraph.types import fmt_shape, is_float


def jacobian(expr, wrt, consider_constant=None, disconnected_inputs="raise"):
    """The Jacobian of ``expr`` w.r.t. ``wrt``: shape ``expr.shape + wrt.shape``.

    The size of ``expr`` must be known when the graph is built (give inputs static
    shapes, e.g. ``fg.vector("x", shape=(3,))``): one gradient graph is built per element
    of ``expr``, as JAX's ``jacrev`` does with static shapes. ``wrt`` may be a list; the
    result is then a list.
    """

    expr = as_tensor(expr)
    single = not isinstance(wrt, (list, tuple))
    ws = [wrt] if single else list(wrt)
    kwargs = dict(consider_constant=consider_constant, disconnected_inputs=disconnected_inputs)
    if expr.ndim == 0:
        result = grad(expr, ws, **kwargs)
        return result[0] if single else result
    if None in expr.type.shape:
        raise ValueError(
            f"jacobian: the shape of {expr} is {fmt_shape(expr.type.shape)}; its size must be "
            "known when building (give the inputs static shapes)"
        )
    flat = ops.flatten(expr)
    rows = [grad(flat[i], ws, **kwargs) for i in range(math.prod(expr.type.shape))]
    result = []
    for j, w in enumerate(ws):
        stacked = ops.stack([row[j] for row in rows])
        result.append(ops.reshape(stacked, expr.type.shape + tuple(_dims(w))))
    return result[0] if single else result


def _dims(w):

    return [d if d is not None else ops.shape_i(w, i) for i, d in enumerate(w.type.shape)]


def hessian(cost, wrt, consider_constant=None, disconnected_inputs="raise"):
    """The Hessian of the 0-d ``cost`` w.r.t. ``wrt`` (shape ``wrt.shape * 2``); for a list
    of ``wrt``, the list of their diagonal blocks (as Theano). ``wrt`` sizes must be
    static."""
    single = not isinstance(wrt, (list, tuple))
    ws = [wrt] if single else list(wrt)
    result = [
        jacobian(
            grad(
                cost,
                w,
                consider_constant=consider_constant,
                disconnected_inputs=disconnected_inputs,
            ),
            w,
            consider_constant=consider_constant,
            disconnected_inputs=disconnected_inputs,
        )
        for w in ws
    ]
    return result[0] if single else result


def hessian_vector_product(cost, wrt, p):
    """The Hessian of ``cost`` times ``p`` (shaped like ``wrt``), without forming the
    Hessian: the gradient of ``<grad(cost, wrt), p>``. ``wrt``/``p`` may be lists."""

    single = not isinstance(wrt, (list, tuple))
    ws = [wrt] if single else list(wrt)
    ps = [p] if single else list(p)
    if len(ws) != len(ps):
        raise ValueError(f"hessian_vector_product: {len(ws)} wrt but {len(ps)} vectors")
    gs = grad(cost, ws)
    inner = ops.sum(gs[0] * as_tensor(ps[0]))
    for g, v in zip(gs[1:], ps[1:]):
        inner = inner + ops.sum(g * as_tensor(v))
    result = grad(inner, ws, disconnected_inputs="ignore")
    return result[0] if single else result


_DEFAULTS = {  # dtype -> (finite-difference step, absolute tolerance, relative tolerance)
    "float64": (1e-6, 1e-6, 1e-5),
    "float32": (1e-3, 1e-2, 1e-2),
}


def verify_grad(fun, pt, n_tests=2, rng=None, eps=None, abs_tol=None, rel_tol=None, mode="py"):
    """Check the gradient of ``fun`` at ``pt`` against central finite differences.

    ``fun`` takes symbolic inputs shaped like the arrays in ``pt`` and returns a float
    variable of any shape; each test projects it on a random tensor (so every output
    element counts) and compares the analytic gradient of that scalar with the numeric one.

    Args:
        fun: a Python function building the graph from symbolic inputs.
        pt: list of float arrays, the point to check at.
        n_tests: number of random projections to try.
        rng: a ``numpy.random.Generator`` (default: seeded with 0).
        eps: finite-difference step (default 1e-6 for float64, 1e-3 if any input is
            float32).
        abs_tol, rel_tol: an element fails when both its absolute and its relative error
            exceed these (defaults 1e-6 and 1e-5 for float64, 1e-2 and 1e-2 for float32).
        mode: the backend to compile with.

    Raises:
        GradientError: naming the input, the element and its analytic and numeric values.
    """

    rng = rng if rng is not None else np.random.default_rng(0)
    pt = [np.asarray(p) for p in pt]
    for i, p in enumerate(pt):
        if p.dtype.kind != "f":
            raise TypeError(f"verify_grad: pt[{i}] has dtype {p.dtype}; gradients need floats")
    dtype = "float32" if any(p.dtype == np.float32 for p in pt) else "float64"
    step, a_tol, r_tol = _DEFAULTS[dtype]
    eps = step if eps is None else eps
    abs_tol = a_tol if abs_tol is None else abs_tol
    rel_tol = r_tol if rel_tol is None else rel_tol

    inputs = [tensor(f"pt{i}", p.dtype.name, p.shape) for i, p in enumerate(pt)]
    out = as_tensor(fun(*inputs))
    if not is_float(out.dtype):
        raise TypeError(f"verify_grad: fun returned {out.type}; it must return floats")
    out_shape = function(inputs, out, mode=mode, on_unused_input="ignore")(*pt).shape
    projection = tensor("projection", out.dtype, out_shape)
    cost = ops.sum(out * projection)
    f_cost = function(inputs + [projection], cost, mode=mode, on_unused_input="ignore")
    f_grad = function(
        inputs + [projection],
        grad(cost, inputs, disconnected_inputs="ignore"),
        mode=mode,
        on_unused_input="ignore",
    )
    for test in range(n_tests):
        proj = rng.normal(size=out_shape).astype(out.dtype)
        analytic = f_grad(*pt, proj)
        for i in range(len(pt)):
            numeric = _numeric_grad(f_cost, pt, i, proj, eps)
            _compare(i, test, analytic[i], numeric, abs_tol, rel_tol)


def _numeric_grad(f_cost, pt, i, proj, eps):
    """Central differences of the projected cost w.r.t. every element of ``pt[i]``."""
    result = np.zeros(pt[i].shape)
    args = list(pt)
    for index in np.ndindex(pt[i].shape):
        values = []
        for sign in (1, -1):
            shifted = pt[i].copy()
            shifted[index] += sign * eps
            args[i] = shifted
            values.append(float(f_cost(*args, proj)))
        result[index] = (values[0] - values[1]) / (2 * eps)
    return result


def _compare(i, test, analytic, numeric, abs_tol, rel_tol):
    analytic = np.asarray(analytic, dtype="float64")
    with np.errstate(invalid="ignore"):
        abs_err = np.abs(analytic - numeric)
        rel_err = abs_err / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-300)
        badness = np.minimum(abs_err / abs_tol, rel_err / rel_tol)
    # Where the function itself is NaN both sides are NaN: nothing to compare there.
    both_nan = np.isnan(analytic) & np.isnan(numeric)
    badness = np.where(both_nan, 0.0, np.where(np.isnan(badness), np.inf, badness))
    if badness.size == 0 or badness.max() <= 1:
        return
    flat = int(np.argmax(badness))
    index = np.unravel_index(flat, badness.shape) if badness.ndim else ()
    raise GradientError(
        f"verify_grad: the gradient w.r.t. input {i} disagrees with finite differences at "
        f"index {tuple(int(k) for k in index)}: analytic {analytic[index]!r}, numeric "
        f"{numeric[index]!r} (absolute error {abs_err[index]:.3g}, relative error "
        f"{rel_err[index]:.3g}; tolerances {abs_tol:g} absolute, {rel_tol:g} relative; "
        f"random projection {test})"
    )


__all__ = ["hessian", "hessian_vector_product", "jacobian", "verify_grad"]
