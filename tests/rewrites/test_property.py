"""Property test of the whole rewrite pipeline: random expression graphs give the same
values (and dtypes and shapes) with every rewrite on as with every rewrite off.

A failure names the rewrites whose exclusion alone makes the results agree again.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rewrite_harness import NO_REWRITES

import fusegraph as fg
from fusegraph.graph import ancestors
from fusegraph.rewrites.passes import known_names

#: The concrete shape of each input; static shapes are unknown except for B's.
SHAPES = {"x": (4,), "y": (4,), "k": (4,), "A": (3, 4), "B": (4, 3)}
CONSTANTS = (0, 1, -1, 0.5, 2)
FLOATS = ("float64", "float32")


def make_inputs():
    return {
        "x": fg.vector("x"),
        "y": fg.vector("y", dtype="float32"),
        "k": fg.vector("k", dtype="int64"),
        "A": fg.matrix("A"),
        "B": fg.tensor("B", dtype="float32", shape=(4, 3)),
    }


def broadcast(*shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        return None


class Builder:
    """Draws a random expression; each expression is a ``(variable, concrete shape)``
    pair. Earlier expressions are reused sometimes, so that graphs share subgraphs."""

    def __init__(self, draw, inputs):
        self.draw = draw
        self.inputs = inputs
        self.pool = []

    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def expr(self, depth, top=False):
        if depth <= 0:
            kind = "leaf"
        else:
            kind = self.pick(OPERATIONS if top else KINDS)  # an output is never a bare leaf
        if kind == "reuse" and not self.pool:
            kind = "leaf"
        var, shape = getattr(self, kind)(depth - 1)
        self.pool.append((var, shape))
        return var, shape

    # ----------------------------------------------------------------- leaves

    def leaf(self, depth):
        if self.pick(["input", "input", "constant"]) == "input":
            name = self.pick(sorted(SHAPES))
            return self.inputs[name], SHAPES[name]
        value = self.pick(CONSTANTS)
        dtype = self.pick(["float64", "float32", "int64"])
        if dtype == "int64" and value != int(value):
            dtype = "float64"
        shape = self.pick([(), (), (1,), (4,), (3, 1), (1, 4)])
        return fg.constant(np.full(shape, value, dtype=dtype)), shape

    def reuse(self, depth):
        return self.pick(self.pool)

    def operand(self, depth):
        """An expression, or a Python scalar (which takes the other operand's dtype)."""
        if self.pick(["expr", "expr", "scalar"]) == "scalar":
            return self.pick(CONSTANTS), ()
        return self.expr(depth)

    # ----------------------------------------------------------------- safe domains

    def bounded(self, depth):
        """An expression with values in about [-4, 4] (for exp and friends)."""
        a, shape = self.expr(depth)
        if self.pick(["tanh", "clip"]) == "tanh":
            return fg.tanh(a) * 3, shape
        return fg.clip(a, -4, 4), shape

    def positive(self, depth):
        """An expression with values above 0 (for log, division, negative powers)."""
        a, shape = self.expr(depth)
        form = self.pick(["square+1", "abs+half", "exp", "sigmoid"])
        if form == "square+1":
            return fg.square(a) + 1, shape
        if form == "abs+half":
            return abs(a) + 0.5, shape
        b, shape = self.bounded(depth)
        return (fg.exp(b) if form == "exp" else fg.sigmoid(b)), shape

    # ----------------------------------------------------------------- operations

    def unary(self, depth):
        name = self.pick(["neg", "abs", "tanh", "sigmoid", "softplus", "square", "sign"])
        a, shape = self.expr(depth)
        return getattr(fg, name)(a), shape

    def transcendental(self, depth):
        name = self.pick(["exp", "expm1", "log", "log1p", "sqrt"])
        if name in ("exp", "expm1"):
            a, shape = self.bounded(depth)
            return getattr(fg, name)(a), shape
        if name == "log":
            a, shape = self.positive(depth)
            return fg.log(a), shape
        a, shape = self.expr(depth)
        return getattr(fg, name)(abs(a)), shape

    def stable(self, depth):
        """Expressions that the stabilize rules are written for (on bounded values, where
        the stable forms agree with the naive ones to rounding)."""
        form = self.pick(list(ELEMENTWISE_FORMS) + ["log_softmax", "lse", "softmax", "xent"])
        a, shape = self.bounded(depth)
        if form in ELEMENTWISE_FORMS:
            return ELEMENTWISE_FORMS[form](a), shape
        if len(shape) == 0:
            a, shape = a.dimshuffle("x"), (1,)
        if form == "log_softmax":
            return fg.log(fg.softmax(a, axis=-1)), shape
        if form == "lse":
            keepdims = self.pick([False, True])
            out = fg.log(fg.exp(a).sum(axis=-1, keepdims=keepdims))
            return out, shape[:-1] + ((1,) if keepdims else ())
        if form == "softmax":
            return fg.exp(a) / fg.exp(a).sum(axis=-1, keepdims=True), shape
        # Cross-entropy of a softmax against class indices in range.
        classes = fg.constant(np.arange(int(np.prod(shape[:-1]))).reshape(shape[:-1]) % shape[-1])
        return fg.categorical_crossentropy(fg.softmax(a, axis=-1), classes), shape[:-1]

    def binary(self, depth):
        name = self.pick(["add", "sub", "mul", "maximum", "minimum"])
        a, sa = self.operand(depth)
        b, sb = self.operand(depth)
        shape = broadcast(sa, sb)
        if shape is None:
            b, shape = fg.as_tensor(b).sum(), sa
        if not isinstance(a, fg.Variable) and not isinstance(b, fg.Variable):
            a = fg.constant(a)
        return getattr(fg, name)(a, b), shape

    def algebra(self, depth):
        """An expression next to one of the constants the algebraic rules look for."""
        a, shape = self.expr(depth)
        value = self.pick(CONSTANTS)
        c = value
        if self.pick(["scalar", "constant"]) == "constant":
            dtype = self.pick(["float64", "float32", "int64"] if value == int(value) else FLOATS)
            c_shape = self.pick([(), (1,), shape])
            c = fg.constant(np.full(c_shape, value, dtype=dtype))
            shape = broadcast(shape, c_shape)
        name = self.pick(["add", "sub", "mul", "true_div", "pow", "maximum", "minimum"])
        if name == "pow":  # as the exponent only; NumPy refuses negative int powers of ints
            return (a ** float(value) if value < 0 else a**c), shape
        return getattr(fg, name)(*((a, c) if self.pick([True, False]) else (c, a))), shape

    def same(self, depth):
        """An operation on one variable twice (``a - a``, ``a / a`` ...), which merge and
        the algebraic rules simplify."""
        a, shape = self.expr(depth)
        name = self.pick(["sub", "true_div", "add", "mul", "maximum", "eq", "ge", "neq"])
        if name == "true_div" and self.pick([True, False]):
            a, shape = self.positive(depth)
        out = getattr(fg, name)(a, a)
        if out.dtype == "bool":  # keep expressions numeric (NumPy refuses -bool)
            out = out.astype(self.pick(["int64", "float64"]))
        return out, shape

    def div(self, depth):
        a, sa = self.operand(depth)
        form = self.pick(["constant", "positive", "same"])
        if form == "constant":
            b, sb = self.pick([2, -1, 0.5, 1]), ()
        elif form == "positive":
            b, sb = self.positive(depth)
        else:  # a / a, a nonzero
            a, sa = self.positive(depth)
            b, sb = a, sa
        if broadcast(sa, sb) is None:
            b, sb = b.sum(), ()
        if not isinstance(a, fg.Variable) and not isinstance(b, fg.Variable):
            a = fg.constant(a)
        return a / b, broadcast(sa, sb)

    def power(self, depth):
        exponent = self.pick([2, 1, 0, 3, 0.5, -1, -2])
        if exponent == 0.5:
            a, shape = self.expr(depth)
            return abs(a) ** 0.5, shape
        if exponent < 0:
            a, shape = self.positive(depth)
            return a ** float(exponent), shape  # NumPy refuses negative int powers of ints
        a, shape = self.expr(depth)
        return a**exponent, shape

    def where(self, depth):
        a, sa = self.expr(depth)
        b, sb = self.operand(depth)
        if broadcast(sa, sb) is None:
            b, sb = fg.as_tensor(b).sum(), ()
        cond = self.pick([fg.gt, fg.lt, fg.ge, fg.eq])(a, b)
        c, sc = self.operand(depth)
        d, sd = self.operand(depth)
        shape = broadcast(sa, sb, sc, sd)
        if shape is None:
            return fg.where(cond.any(), fg.as_tensor(c).sum(), fg.as_tensor(d).sum()), ()
        return fg.where(cond, c, d), shape

    def cast(self, depth):
        a, shape = self.expr(depth)
        return a.astype(self.pick(FLOATS)), shape

    def reduce(self, depth):
        a, shape = self.expr(depth)
        name = self.pick(["sum", "mean", "max", "min", "neg_sum_neg"])
        axis = self.pick([None, 0, -1, "all"]) if shape else None
        axis = tuple(range(len(shape))) if axis == "all" else axis
        keepdims = self.pick([False, True])
        if name == "neg_sum_neg":
            out = -fg.sum(-a, axis=axis, keepdims=keepdims)
        else:
            out = getattr(fg, name)(a, axis=axis, keepdims=keepdims)
        axes = range(len(shape)) if axis is None else np.atleast_1d(axis) % len(shape)
        new = tuple((1 if keepdims else None) if i in set(axes) else n for i, n in enumerate(shape))
        return out, tuple(n for n in new if n is not None)

    def shuffle(self, depth):
        a, shape = self.expr(depth)
        ndim = len(shape)
        if ndim == 0:
            return a.dimshuffle("x"), (1,)
        form = self.pick(["transpose", "expand", "drop"])
        if form == "drop" and 1 in a.type.shape:  # drop a dim of static length 1
            axis = a.type.shape.index(1)
            keep = [i for i in range(ndim) if i != axis]
            return a.dimshuffle(*keep), tuple(shape[i] for i in keep)
        if form == "expand" or ndim == 1:
            axis = self.pick(range(ndim + 1))
            order = list(range(ndim))
            order.insert(axis, "x")
            return a.dimshuffle(*order), shape[:axis] + (1,) + shape[axis:]
        if self.pick([True, False]):
            return a.T, shape[::-1]
        return a.dimshuffle(*reversed(range(ndim))), shape[::-1]

    def dot(self, depth):
        a, sa = self.expr(depth)
        if len(sa) == 0 or len(sa) > 2:
            return a, sa
        # A right operand whose first dim matches a's last.
        right = [(n, s) for n, s in SHAPES.items() if s[0] == sa[-1]]
        right += [(f"{n}.T", s[::-1]) for n, s in SHAPES.items() if len(s) == 2 and s[1] == sa[-1]]
        if not right:
            return a, sa
        name, sb = self.pick(right)
        b = self.inputs[name[0]]
        b = b.T if name.endswith(".T") else b
        if self.pick([True, False]):
            b = fg.tanh(b)
        return fg.dot(a, b), sa[:-1] + sb[1:]

    def linalg(self, depth):
        form = self.pick(["matmul", "tensordot", "outer", "scalar_dot"])
        x, y, big = self.inputs["x"], self.inputs["y"], self.inputs["A"]
        a, sa = self.expr(depth)
        if form == "outer" and len(sa) == 1:
            return fg.outer(a, self.pick([x, y])), sa + (4,)
        if form == "scalar_dot" and len(sa) == 0:
            b = self.pick([x, big])
            return fg.dot(a, b), SHAPES[b.name]
        if sa and sa[-1] == 4 and len(sa) <= 2:
            b, sb = self.pick([(x, (4,)), (big.T, (4, 3)), (self.inputs["B"], (4, 3))])
            if form == "matmul":
                return fg.matmul(a, b), sa[:-1] + sb[1:]
            return fg.tensordot(a, b, axes=1), sa[:-1] + sb[1:]
        return a, sa

    def reshape(self, depth):
        a, shape = self.expr(depth)
        size = int(np.prod(shape))
        targets = {1: [(1,), (1, 1), ()], 3: [(3,), (3, 1), (1, 3)], 4: [(4,), (2, 2), (1, 4)]}
        targets[12] = [(12,), (3, 4), (4, 3), (2, 6), (6, 2), (12, 1)]
        if self.pick(["reshape", "flatten"]) == "flatten" and len(shape) > 0:
            return a.flatten(), (size,)
        new = self.pick(targets.get(size, [shape]))
        return a.reshape(new), new

    def broadcast(self, depth):
        a, shape = self.expr(depth)
        form = self.pick(["broadcast_to", "zeros_like", "ones_like", "full", "squeeze"])
        if form == "broadcast_to":
            target = broadcast(shape, self.pick([(3, 4), (4,), (3, 1), (2, 1, 1)]))
            return (fg.broadcast_to(a, target), target) if target else (a, shape)
        if form == "zeros_like":
            return a * 0 + fg.zeros_like(a), shape
        if form == "ones_like":
            return a * fg.ones_like(a), shape
        if form == "full":
            return a + fg.full(shape, self.pick(CONSTANTS), dtype=a.dtype), shape
        ones = [i for i, n in enumerate(a.type.shape) if n == 1]
        if not ones:
            return a, shape
        axis = self.pick(ones)
        return fg.squeeze(a, axis), shape[:axis] + shape[axis + 1 :]

    def shape(self, depth):
        """Arithmetic with entries of a shape (which rules may turn into constants)."""
        a, shape = self.expr(depth)
        if not shape:
            return a, shape
        axis = self.pick(range(len(shape)))
        n = a.shape[axis]
        other = self.pick([self.inputs["x"], self.inputs["A"], self.inputs["B"]])
        return a * n + other.shape[0] - other.shape[-1], shape

    def softmax(self, depth):
        a, shape = self.expr(depth)
        if len(shape) == 0:
            return a, shape
        return self.pick([fg.softmax, fg.log_softmax])(a, axis=-1), shape


#: Naive forms of functions with stable replacements, applied to a bounded ``a``.
ELEMENTWISE_FORMS = {
    "log_sigmoid": lambda a: fg.log(fg.sigmoid(a)),
    "log1m_sigmoid": lambda a: fg.log(1 - fg.sigmoid(a)),
    "1m_sigmoid": lambda a: 1 - fg.sigmoid(a),
    "log1p_exp": lambda a: fg.log1p(fg.exp(a)),
    "log_1p_exp": lambda a: fg.log(1 + fg.exp(a)),
    "log_1p": lambda a: fg.log(1 + abs(a)),
    "expm1": lambda a: fg.exp(a) - 1,
    "expm1_neg": lambda a: -1 + fg.exp(a),
    "1m_exp": lambda a: 1 - fg.exp(a),
    "log1mexp": lambda a: fg.log(1 - fg.exp(-abs(a) - 0.1)),
    "log_exp": lambda a: fg.log(fg.exp(a)),
    "exp_log": lambda a: fg.exp(fg.log(abs(a) + 0.5)),
    "sigmoid_def": lambda a: 1 / (1 + fg.exp(-a)),
    "sigmoid_ratio": lambda a: fg.exp(a) / (1 + fg.exp(a)),
    "mul_div": lambda a: (fg.sigmoid(a) + 1) * (a / (fg.sigmoid(a) + 1)),
}

KINDS = [
    "leaf",
    "reuse",
    "unary",
    "transcendental",
    "stable",
    "binary",
    "binary",
    "algebra",
    "algebra",
    "algebra",
    "same",
    "div",
    "power",
    "where",
    "cast",
    "reduce",
    "shuffle",
    "dot",
    "softmax",
    "linalg",
    "reshape",
    "broadcast",
    "shape",
]
OPERATIONS = [k for k in KINDS if k not in ("leaf", "reuse")]


def input_values(seed, nonfinite=False):
    """Values in [-3, 3], with some exact 0, 1 and -1 where algebraic rules have edges
    (and, if ``nonfinite``, some inf, -inf and nan: rewrites must propagate them)."""
    rng = np.random.default_rng(seed)
    edges = [0.0, 1.0, -1.0] + ([np.inf, -np.inf, np.nan] if nonfinite else [])
    values = []
    for name, shape in SHAPES.items():
        v = rng.uniform(-3, 3, size=shape)
        special = rng.random(shape) < 0.2
        v[special] = rng.choice(edges, size=int(special.sum()))
        if name == "k":
            v = np.round(np.nan_to_num(v, posinf=3, neginf=-3)).astype("int64")
        values.append(v.astype({"y": "float32", "B": "float32"}.get(name, v.dtype)))
    return values


def tolerance(output):
    """Relative tolerance: float32 rounding anywhere upstream limits the precision."""
    if any(v.dtype == "float32" for v in ancestors([output])):
        return 1e-4
    return 1e-9


def agree(outputs, expected, got):
    for out, a, b in zip(outputs, expected, got):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.kind in "biu":
            if not np.array_equal(a, b):
                return False
        elif not np.allclose(b, a, rtol=tolerance(out), atol=1e-6, equal_nan=True):
            return False
    return True


def culprits(inputs, outputs, values, expected):
    """The rewrite names whose exclusion alone makes the results agree."""
    found = []
    for name in sorted(known_names()):
        mode = fg.Mode("py", exclude=(name,))
        try:
            f = fg.function(inputs, outputs, mode=mode, on_unused_input="ignore")
            if agree(outputs, expected, f(*values)):
                found.append(name)
        except Exception:  # this exclusion does not avoid the problem; keep bisecting
            continue
    return found


def check(inputs, outputs, values):
    """Assert that ``outputs`` give the same results with every rewrite on and off."""
    off = fg.function(inputs, outputs, mode=NO_REWRITES, on_unused_input="ignore")
    expected = off(*values)
    graphs = "\n".join(fg.pprint(o) for o in outputs)
    try:
        got = fg.function(inputs, outputs, on_unused_input="ignore", mode="py")(*values)
    except Exception as exc:
        raise AssertionError(
            f"with rewrites, {type(exc).__name__}: {exc}\nfor\n{graphs}\n"
            f"excluding one of these alone avoids it: {culprits(inputs, outputs, values, expected)}"
        ) from exc
    if not agree(outputs, expected, got):
        raise AssertionError(
            f"rewrites change the results of\n{graphs}\n"
            f"without rewrites: {expected}\nwith rewrites:    {got}\n"
            f"excluding one of these alone fixes it: {culprits(inputs, outputs, values, expected)}"
        )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    data=st.data(),
    seed=st.integers(0, 2**16),
    n_outputs=st.integers(1, 2),
    nonfinite=st.booleans(),
)
def test_rewrites_keep_values(data, seed, n_outputs, nonfinite):
    named = make_inputs()
    builder = Builder(data.draw, named)
    outputs = [builder.expr(4, top=True)[0] for _ in range(n_outputs)]
    check(list(named.values()), outputs, input_values(seed, nonfinite))


def _regressions():
    """Minimal failing examples the property test found, kept as fixed cases."""
    x = fg.vector("x")
    special = np.array([1.0, np.inf, np.nan, -2.0])
    return {
        # np.dot(0.0, v) is 0 even where v is inf or nan; Dot now multiplies (as np.dot
        # documents for 0-d operands), so dot_scalar_to_mul keeps the value.
        "dot_scalar_to_mul-nonfinite": ([x], [fg.dot(0.0, x)], [special]),
        # Rewrites may turn a -0.0 into +0.0 (x + 0 -> x, log(exp(x)) -> x; documented in
        # the README), so these examples compare the values, not the sign of zeros.
        "add_zero-negative-zero": ([x], [fg.abs(1.0 / (x + 0.0))], [np.array([-0.0, 2.0])]),
        "log_exp_to_identity-negative-zero": (
            [x],
            [fg.abs(1.0 / fg.log(fg.exp(x)))],
            [np.array([-0.0, 2.0])],
        ),
    }


REGRESSIONS = _regressions()


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_found_examples(case):
    check(*REGRESSIONS[case])
