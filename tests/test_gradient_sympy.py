"""Gradients of randomly generated elementwise expressions against SymPy's ``diff``."""

import math

import numpy as np
import pytest
import sympy as sp

import fusegraph as fg

# (name, fusegraph builder, sympy builder); each maps any real input into its domain.
UNARY = [
    ("sin", fg.sin, sp.sin),
    ("cos", fg.cos, sp.cos),
    ("tanh", fg.tanh, sp.tanh),
    ("arctan", fg.arctan, sp.atan),
    ("neg", lambda a: -a, lambda a: -a),
    ("square", fg.square, lambda a: a**2),
    ("sigmoid", fg.sigmoid, lambda a: 1 / (1 + sp.exp(-a))),
    ("softplus", fg.softplus, lambda a: sp.log(1 + sp.exp(a))),
    ("erf", fg.erf, sp.erf),
    ("exp-bounded", lambda a: fg.exp(fg.tanh(a)), lambda a: sp.exp(sp.tanh(a))),
    ("log1p-square", lambda a: fg.log1p(a * a), lambda a: sp.log(1 + a**2)),
    ("sqrt-pos", lambda a: fg.sqrt(1 + a * a), lambda a: sp.sqrt(1 + a**2)),
    ("log-pos", lambda a: fg.log(2 + fg.sin(a)), lambda a: sp.log(2 + sp.sin(a))),
    ("expm1", lambda a: fg.expm1(fg.sin(a)), lambda a: sp.exp(sp.sin(a)) - 1),
    ("cosh", lambda a: fg.cosh(fg.tanh(a)), lambda a: sp.cosh(sp.tanh(a))),
    ("reciprocal", lambda a: fg.reciprocal(2 + fg.cos(a)), lambda a: 1 / (2 + sp.cos(a))),
    ("gammaln", lambda a: fg.gammaln(1.5 + fg.square(a)), lambda a: sp.loggamma(1.5 + a**2)),
]
BINARY = [
    ("add", lambda a, b: a + b, lambda a, b: a + b),
    ("sub", lambda a, b: a - b, lambda a, b: a - b),
    ("mul", lambda a, b: a * b, lambda a, b: a * b),
    ("div", lambda a, b: a / (1.5 + fg.cos(b)), lambda a, b: a / (sp.Rational(3, 2) + sp.cos(b))),
    ("pow", lambda a, b: (1 + a * a) ** fg.tanh(b), lambda a, b: (1 + a**2) ** sp.tanh(b)),
    ("arctan2", fg.arctan2, lambda a, b: sp.atan2(a, b)),
]


def random_expression(rng, symbols, depth):
    """A random (fusegraph, sympy) expression pair over the given leaves."""
    if depth == 0 or rng.random() < 0.2:
        k = int(rng.integers(len(symbols)))
        return symbols[k]
    if rng.random() < 0.5:
        _, f, s = UNARY[int(rng.integers(len(UNARY)))]
        a = random_expression(rng, symbols, depth - 1)
        return f(a[0]), s(a[1])
    _, f, s = BINARY[int(rng.integers(len(BINARY)))]
    a = random_expression(rng, symbols, depth - 1)
    b = random_expression(rng, symbols, depth - 1)
    return f(a[0], b[0]), s(a[1], b[1])


def _digamma(v):
    return float(sp.polygamma(0, v))


MODULES = [
    {
        "erf": np.vectorize(math.erf),
        "loggamma": np.vectorize(math.lgamma),
        "polygamma": lambda n, v: np.vectorize(_digamma)(v),
    },
    "numpy",
]


@pytest.mark.parametrize("seed", range(40))
def test_random_expression_gradient_matches_sympy(seed):
    rng = np.random.default_rng(seed)
    xs = [fg.vector(n) for n in "xyz"]
    ss = sp.symbols("x y z", real=True)
    expr, sexpr = random_expression(rng, list(zip(xs, ss)), depth=4)
    values = [rng.uniform(-1.5, 1.5, size=5) for _ in xs]
    grads = fg.grad(fg.sum(expr), xs, disconnected_inputs="ignore")
    got = fg.function(xs, grads, on_unused_input="ignore", mode="py")(*values)
    for sym, g in zip(ss, got):
        derivative = sp.diff(sexpr, sym)
        fn = sp.lambdify(ss, derivative, modules=MODULES)
        expected = np.broadcast_to(np.asarray(fn(*values), dtype="float64"), (5,))
        np.testing.assert_allclose(
            g, expected, rtol=1e-9, atol=1e-12, err_msg=f"d/d{sym} of {sexpr}"
        )
