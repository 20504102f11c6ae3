"""The ``stabilize`` rule set: rewrites that keep values finite and accurate where the
graph as written overflows, underflows or cancels (``log(1 + x)`` → ``log1p(x)``,
``log(sigmoid(x))`` → ``-softplus(-x)``, ``log(sum(exp(x)))`` → ``logsumexp(x)`` ...).

Rules compose: ``binary_crossentropy(sigmoid(z), t)`` becomes a sum of softplus terms
through ``one_minus_sigmoid_to_sigmoid_neg`` and ``log_sigmoid_to_softplus``, and its
gradient loses the divisions by ``sigmoid(z)`` that overflow through
``mul_cancels_division``.
"""

from __future__ import annotations

import math

from fusegraph import ops
from fusegraph.graph import Constant, Variable, rebuild
from fusegraph.ops.grad_ops import SumTo
from fusegraph.ops.nn import CrossentropyCategorical1Hot, LogSoftmax, Softmax
from fusegraph.ops.reduction import LogSumExp, Reduce
from fusegraph.ops.shape_ops import BroadcastTo, DimShuffle
from fusegraph.rewrites.engine import Const, Pattern, RuleSet
from fusegraph.rewrites.patterns import axis_sets, elemwise, fit, scalar_name
from fusegraph.rewrites.shapes import same_shape
from fusegraph.types import is_float

stabilize = RuleSet("stabilize")

# --------------------------------------------------------------------------- helpers


def as_float(x: Variable, dtype: str) -> Variable:
    """``x`` cast to the float ``dtype`` (itself when it already has it)."""
    return ops.cast(x, dtype)


def negate(x: Variable) -> Variable:
    """``-x``, without building a double negation."""
    if scalar_name(x) == "neg":
        return x.owner.inputs[0]
    return ops.neg(x)


# --------------------------------------------------------------------------- log1p, expm1


@stabilize.rule(elemwise("log", elemwise("add", "x", Const(1), commutative=True)))
def log_one_plus_to_log1p(node, x):
    """``log(1 + x)`` → ``log1p(x)``: exact for tiny ``x``, where ``1 + x`` rounds to 1."""
    dtype = node.inputs[0].dtype
    if not is_float(dtype):
        return None  # an integer 1 + x may wrap around
    return fit(ops.log1p(as_float(x, dtype)), node.outputs[0])


@stabilize.rule(elemwise("sub", elemwise("exp", "x"), Const(1)))
def exp_minus_one_to_expm1(node, x):
    """``exp(x) - 1`` → ``expm1(x)``: exact for tiny ``x``, where ``exp(x)`` rounds to 1."""
    return fit(ops.expm1(as_float(x, node.outputs[0].dtype)), node.outputs[0])


@stabilize.rule(elemwise("add", elemwise("exp", "x"), Const(-1), commutative=True))
def exp_plus_minus_one_to_expm1(node, x):
    """``exp(x) + -1`` → ``expm1(x)``: ``exp(x) - 1`` as a canonical sum."""
    return fit(ops.expm1(as_float(x, node.outputs[0].dtype)), node.outputs[0])


@stabilize.rule(elemwise("sub", Const(1), elemwise("exp", "x")))
def one_minus_exp_to_neg_expm1(node, x):
    """``1 - exp(x)`` → ``-expm1(x)``: exact for tiny ``x``, where ``exp(x)`` rounds to 1."""
    return fit(ops.neg(ops.expm1(as_float(x, node.outputs[0].dtype))), node.outputs[0])


@stabilize.rule(elemwise("log1p", elemwise("exp", "x")))
def log1p_exp_to_softplus(node, x):
    """``log1p(exp(x))`` (and so ``log(1 + exp(x))``) → ``softplus(x)``: finite for large x."""
    return fit(ops.softplus(as_float(x, node.outputs[0].dtype)), node.outputs[0])


def _log1mexp(x):
    """``log(1 - exp(x))`` for ``x <= 0``, accurate everywhere (Mächler 2012): near 0 as
    ``x + log(expm1(-x))`` (= ``log(-expm1(x))``), below ``-log 2`` as ``log1p(-exp(x))``."""
    near_zero = ops.add(x, ops.log(ops.expm1(negate(x))))
    far = ops.log1p(ops.neg(ops.exp(x)))
    return ops.where(ops.gt(x, -math.log(2.0)), near_zero, far)


@stabilize.rule(elemwise("log", elemwise("neg", elemwise("expm1", "x"))))
def log_one_minus_exp_to_log1mexp(node, x):
    """``log(-expm1(x))`` (``log(1 - exp(x))`` after ``one_minus_exp_to_neg_expm1``) →
    log1mexp: finite at tiny ``x`` (where ``1 - exp(x)`` is 0) and at very negative ``x``."""
    return fit(_log1mexp(as_float(x, node.outputs[0].dtype)), node.outputs[0])


@stabilize.rule(elemwise("log", elemwise("sub", Const(1), elemwise("exp", "x"))))
def log_one_minus_exp_direct_to_log1mexp(node, x):
    """``log(1 - exp(x))`` → log1mexp, for graphs where ``one_minus_exp_to_neg_expm1`` is
    off (see ``log_one_minus_exp_to_log1mexp``)."""
    return fit(_log1mexp(as_float(x, node.outputs[0].dtype)), node.outputs[0])


@stabilize.rule(elemwise("log", elemwise("exp", "x")))
def log_exp_to_identity(node, x):
    """``log(exp(x))`` → ``x``: exact, and finite where ``exp(x)`` overflows."""
    return fit(as_float(x, node.outputs[0].dtype), node.outputs[0])


# --------------------------------------------------------------------------- sigmoid


@stabilize.rule(
    elemwise(
        "true_div", Const(1), elemwise("add", Const(1), elemwise("exp", "x"), commutative=True)
    )
)
def one_over_one_plus_exp_to_sigmoid(node, x):
    """``1 / (1 + exp(x))`` → ``sigmoid(-x)``: no overflow of ``exp(x)`` for large x."""
    return fit(ops.sigmoid(negate(as_float(x, node.outputs[0].dtype))), node.outputs[0])


@stabilize.rule(elemwise("sub", Const(1), elemwise("sigmoid", "x")))
def one_minus_sigmoid_to_sigmoid_neg(node, x):
    """``1 - sigmoid(x)`` → ``sigmoid(-x)``: exact where ``sigmoid(x)`` rounds to 1."""
    return fit(ops.sigmoid(negate(as_float(x, node.outputs[0].dtype))), node.outputs[0])


@stabilize.rule(elemwise("log", elemwise("sigmoid", "x")))
def log_sigmoid_to_softplus(node, x):
    """``log(sigmoid(x))`` → ``-softplus(-x)``: finite where ``sigmoid(x)`` underflows."""
    dtype = node.outputs[0].dtype
    return fit(ops.neg(ops.softplus(negate(as_float(x, dtype)))), node.outputs[0])


@stabilize.rule(elemwise("log", elemwise("sub", Const(1), elemwise("sigmoid", "x"))))
def log_one_minus_sigmoid_to_softplus(node, x):
    """``log(1 - sigmoid(x))`` → ``-softplus(x)``: finite where ``sigmoid(x)`` rounds to 1
    (reached when ``one_minus_sigmoid_to_sigmoid_neg`` is off)."""
    dtype = node.outputs[0].dtype
    return fit(ops.neg(ops.softplus(as_float(x, dtype))), node.outputs[0])


def _negated(term: Variable):
    """``-term`` if ``term`` is ``-u``, ``a * -u`` or ``-u * a`` (built without a
    negation), else None."""
    name = scalar_name(term)
    if name == "neg":
        return term.owner.inputs[0]
    if name == "mul":
        a, b = term.owner.inputs
        if scalar_name(b) == "neg":
            return ops.mul(a, b.owner.inputs[0])
        if scalar_name(a) == "neg":
            return ops.mul(a.owner.inputs[0], b)
    return None


@stabilize.rule(elemwise("neg", elemwise("add", "p", "q")))
def neg_of_negated_sum(node, p, q):
    """``-(a * -u + b * -v)`` → ``a * u + b * v`` (exact: negation only flips the sign),
    the cross-entropy of a sigmoid after ``log_sigmoid_to_softplus``."""
    left = _negated(p)
    right = _negated(q) if left is not None else None
    if right is None:
        return None
    return fit(ops.add(left, right), node.outputs[0])


# --------------------------------------------------------------------------- softmax, logsumexp


@stabilize.rule(elemwise("log", Pattern(Softmax, ("x",), name="sm")))
def log_softmax_from_log_of_softmax(node, x, sm):
    """``log(softmax(x, axis))`` → ``log_softmax(x, axis)``: finite where softmax underflows."""
    return fit(LogSoftmax(sm.owner.op.axis)(x), node.outputs[0], proven=True)


@stabilize.rule(
    elemwise("log", Pattern(lambda op: isinstance(op, Reduce) and op.kind == "sum", name="s"))
)
def log_sum_exp_to_logsumexp(node, s):
    """``log(sum(exp(x), axis, keepdims))`` → ``logsumexp(x, axis, keepdims)``: max-shifted,
    so finite where ``exp(x)`` overflows."""
    e = s.owner.inputs[0]
    if scalar_name(e) != "exp":
        return None
    op = s.owner.op
    return fit(LogSumExp(op.axis, op.keepdims)(e.owner.inputs[0]), node.outputs[0], proven=True)


@stabilize.rule(Pattern(CrossentropyCategorical1Hot, (Pattern(Softmax, ("x",), name="sm"), "i")))
def crossentropy_1hot_of_softmax(node, x, sm, i):
    """``-log(softmax(x)[..., i])`` → ``-log_softmax(x)[..., i]``: finite where the picked
    probability underflows (the same op, on log-probabilities, keeps its IndexError for a
    class out of range)."""
    axis = sm.owner.op.axis
    if axis != (x.ndim - 1,) or node.op.log_input:
        return None
    picked = CrossentropyCategorical1Hot(log_input=True)(LogSoftmax(axis)(x), i)
    return fit(picked, node.outputs[0], proven=True)


# --------------------------------------------------------------------------- exp ratios


def _peel(v: Variable):
    """The ``BroadcastTo``/``DimShuffle`` nodes wrapping ``v`` (outermost first) and the
    variable under them; ``SumTo`` nodes that provably sum nothing are skipped."""
    chain = []
    while v.owner is not None:
        op = v.owner.op
        if isinstance(op, (BroadcastTo, DimShuffle)):
            chain.append(v.owner)
        elif not (isinstance(op, SumTo) and same_shape(v.owner.inputs[0], v)):
            break
        v = v.owner.inputs[0]
    return chain, v


def _softmax_axes(chain, s: Variable, e: Variable):
    """The reduced axes if ``s`` is ``sum(e, axes)`` and ``chain`` (then NumPy's
    right-aligned broadcasting) puts each kept axis of the sum back in its place in ``e``,
    so ``e / chain(s)`` is a softmax over the axes; else None."""
    node = s.owner
    if node is None or not isinstance(node.op, Reduce) or node.op.kind != "sum":
        return None
    axes = node.op.axis
    if node.inputs[0] is not e or not axes:
        return None
    kept = [i for i in range(e.ndim) if i not in axes]
    # src[k]: the axis of e that axis k of the current variable carries (None: length 1).
    src = [None if i in axes else i for i in range(e.ndim)] if node.op.keepdims else kept
    for link in reversed(chain):
        if isinstance(link.op, DimShuffle):
            src = [None if a == "x" else src[a] for a in link.op.new_order]
        else:
            src = [None] * (link.outputs[0].ndim - len(src)) + src
    if len(src) > e.ndim:
        return None
    src = [None] * (e.ndim - len(src)) + src
    carried = [a for a in src if a is not None]
    if carried != kept or any(a is not None and a != k for k, a in enumerate(src)):
        return None
    return axes


def _quotient(a, b: Variable, e: Variable):
    """``(a / b) * e`` (``e / b`` when ``a`` is None) without the division, for ``b`` equal
    to ``e``, or ``e = exp(x)`` and ``b`` one of ``1 + e`` (→ sigmoid) and ``sum(e)``
    broadcast back (→ softmax); else None."""
    if b is e:
        return a
    if scalar_name(e) != "exp":
        return None
    x = e.owner.inputs[0]
    ratio = None
    if scalar_name(b) == "add" and any(v is e for v in b.owner.inputs):
        other = b.owner.inputs[1] if b.owner.inputs[0] is e else b.owner.inputs[0]
        if Const(1).match(other, {}):
            ratio = ops.sigmoid(x)
    else:
        chain, s = _peel(b)
        axes = _softmax_axes(chain, s, e)
        if axes is not None:
            ratio = Softmax(axes)(x)
    if ratio is None or a is None or _is_one(a):
        return ratio
    return ops.mul(a, ratio)


def _is_one(a: Variable) -> bool:
    """True for a one-element constant 1 (the seed of a gradient): a factor that only
    broadcasts, so ``mul_cancels_division`` may drop it (it checks the final type)."""
    return isinstance(a, Constant) and a.data.size == 1 and a.data.flat[0] == 1


@stabilize.rule(elemwise("true_div", elemwise("exp", "x", name="e"), "b"))
def exp_over_one_plus_exp_to_sigmoid(node, x, e, b):
    """``exp(x) / (1 + exp(x))`` → ``sigmoid(x)``: no ``inf / inf`` for large x."""
    if scalar_name(b) != "add":
        return None
    new = _quotient(None, b, e)
    return None if new is None else fit(new, node.outputs[0])


@stabilize.rule(elemwise("true_div", elemwise("exp", "x", name="e"), "b"))
def exp_over_sum_exp_to_softmax(node, x, e, b):
    """``exp(x) / sum(exp(x), axes)`` (the sum broadcast back) → ``softmax(x, axes)``:
    max-shifted, so no ``inf / inf`` for large x."""
    if scalar_name(b) == "add":
        return None
    new = _quotient(None, b, e)
    return None if new is None else fit(new, node.outputs[0])


# --------------------------------------------------------------------------- gradients

#: How many nodes ``mul_cancels_division`` may look at per product (rules must be cheap).
_CANCEL_BUDGET = 64


def _may_underflow(c: Variable) -> bool:
    """True for values that underflow to 0 while gradients divide by them: ``sigmoid``,
    ``exp`` and ``softmax`` outputs."""
    node = c.owner
    if node is None:
        return False
    return isinstance(node.op, Softmax) or scalar_name(c) in ("sigmoid", "exp")


def _times(term: Variable, c: Variable, budget: list):
    """``term * c`` with a division by ``c`` (see ``_quotient``) inside ``term`` cancelled,
    or None when there is none within the budget. Walks sums, differences, negations,
    products, numerators and ``SumTo`` nodes that provably sum nothing."""
    budget[0] -= 1
    node = term.owner
    if budget[0] < 0 or node is None:
        return None
    if isinstance(node.op, SumTo):
        inner = node.inputs[0]
        return _times(inner, c, budget) if same_shape(inner, term) else None
    if isinstance(node.op, (BroadcastTo, DimShuffle)):
        return _times_broadcast(term, c)
    name = scalar_name(term)
    args = node.inputs
    if name == "true_div":
        a, b = args
        if b is c:
            return _broadcast_like(a, term, c)
        new = _quotient(a, b, c)
        if new is not None:
            return new
        inner = _times(a, c, budget)
        return None if inner is None else ops.true_div(inner, b)
    if name == "sigmoid" and scalar_name(c) == "exp" and _negations(args[0], c.owner.inputs[0]):
        return ops.sigmoid(c.owner.inputs[0])  # sigmoid(-x) * exp(x) = sigmoid(x)
    if name == "where":
        return _times_where(term, c, budget)
    if name == "neg":
        inner = _times(args[0], c, budget)
        return None if inner is None else ops.neg(inner)
    if name == "mul":
        left = _times(args[0], c, budget)
        if left is not None:
            return ops.mul(left, args[1])
        right = _times(args[1], c, budget)
        return None if right is None else ops.mul(args[0], right)
    if name in ("add", "sub"):
        left, right = _times(args[0], c, budget), _times(args[1], c, budget)
        if left is None and right is None:
            return None
        left = left if left is not None else ops.mul(args[0], c)
        right = right if right is not None else ops.mul(args[1], c)
        return getattr(ops, name)(left, right)
    return None


def _times_where(term: Variable, c: Variable, budget: list):
    """``where(cond, p, q) * c`` as ``where(cond, p * c, q * c)``, with a division of ``p``
    by ``c`` or by ``where(cond, c, _)`` cancelled (the gradient of the one-hot
    cross-entropy divides so); None when nothing cancels."""
    cond, p, q = term.owner.inputs
    left = None
    if scalar_name(p) == "true_div":
        a, b = p.owner.inputs
        if scalar_name(b) == "where" and b.owner.inputs[0] is cond and b.owner.inputs[1] is c:
            left = _broadcast_like(a, p, c)
    if left is None:
        left = _times(p, c, budget)
    right = _times(q, c, budget)
    if left is None and right is None:
        return None
    left = left if left is not None else ops.mul(p, c)
    return ops.where(cond, left, right if right is not None else ops.mul(q, c))


def _negations(a: Variable, b: Variable) -> bool:
    """True if ``a`` is ``-b`` or ``b`` is ``-a``."""
    return (scalar_name(a) == "neg" and a.owner.inputs[0] is b) or (
        scalar_name(b) == "neg" and b.owner.inputs[0] is a
    )


def _broadcast_like(a: Variable, term: Variable, c: Variable):
    """``a`` standing for ``term = a / c`` times ``c``: broadcast to the shape of ``c`` when
    ``a`` provably only broadcasts against it (a constant ``[1.0]`` seed of a gradient),
    else ``a`` itself (``mul_cancels_division`` checks the final shape); None when the
    dtype differs."""
    if a.dtype != term.dtype:
        return None
    memo = {}
    sa, sc = axis_sets(a, memo), axis_sets(c, memo)
    lead = len(sc) - len(sa)
    if lead < 0 or all(y <= x for x, y in zip(sa, sc[lead:])) and not any(sc[:lead]):
        return a  # a already has the shape of a / c
    if all(x <= y for x, y in zip(sa, sc[lead:])):
        return ops.broadcast_to(a, ops.shape(c))
    return a


def _times_broadcast(term: Variable, e: Variable):
    """``term * e`` for ``term`` a broadcast (``BroadcastTo``/``DimShuffle``) of
    ``g / sum(e, axes)`` with ``e = exp(x)`` (the gradient of ``log(sum(exp(x)))``):
    the broadcast of ``g`` times ``softmax(x, axes)``; else None."""
    if scalar_name(e) != "exp":
        return None
    chain, inner = _peel(term)
    if scalar_name(inner) != "true_div":
        return None
    g, s = inner.owner.inputs
    axes = _softmax_axes(chain, s, e)
    if axes is None or not same_shape(inner, s) or g.ndim > inner.ndim:
        return None
    softmax = Softmax(axes)(e.owner.inputs[0])
    if _is_one(g):
        return softmax
    if g.ndim < inner.ndim:  # a broadcast numerator
        g = ops.dimshuffle(g, ("x",) * (inner.ndim - g.ndim) + tuple(range(g.ndim)))
    for link in reversed(chain):
        (g,) = rebuild(link, [g, *link.inputs[1:]])
    return ops.mul(g, softmax)


def _factors(v: Variable, depth: int = 4):
    """``(c, rest)`` pairs with ``v = c * rest()`` (``rest`` None for 1) and ``c`` a value
    that may underflow, found through products and negations up to ``depth`` levels;
    ``rest`` builds its nodes only when called (most candidates cancel nothing)."""
    if _may_underflow(v):
        yield v, None
    name = scalar_name(v)
    if depth == 0 or name not in ("mul", "neg"):
        return
    args = v.owner.inputs
    if name == "neg":
        for c, rest in _factors(args[0], depth - 1):
            if rest is not None:  # (a bare -c is left alone)
                yield c, lambda rest=rest: ops.neg(rest())
        return
    for k, arg in enumerate(args):
        other = args[1 - k]
        for c, rest in _factors(arg, depth - 1):
            if rest is None:
                yield c, lambda other=other: other
            else:
                yield c, lambda rest=rest, other=other: ops.mul(rest(), other)


@stabilize.rule(elemwise("mul", "a", "b"))
def mul_cancels_division(node, a, b):
    """``(g / c) * c`` → ``g`` for ``c`` a sigmoid, exp or softmax, also through sums and
    products (and ``exp`` ratios, see ``_quotient``), and with ``c`` a factor of the other
    operand (``(g / c) * (h * c)`` → ``g * h``, as second derivatives have it): gradients
    compute ``inf * 0`` there where ``c`` underflows; the cancelled form is the limit."""
    for term, other in ((a, b), (b, a)):
        if isinstance(term, Constant):
            continue
        for c, rest in _factors(other):
            new = _times(term, c, [_CANCEL_BUDGET])
            if new is not None:
                return fit(new if rest is None else ops.mul(new, rest()), node.outputs[0])
    return None
