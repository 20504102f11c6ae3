"""The rewrite engine: declarative rules (a pattern over op classes with named captures,
and a function returning a replacement or None), and one bottom-up walk that applies them
to a fixed point while merging equal nodes and folding constants.

The engine knows no op class: it matches by class, by predicate or by ``KeyedOp`` (a class
and a key of the op, such as an ``Elemwise``'s scalar op name, so that a rule is tried only
on its ops). Op-aware patterns such as ``elemwise("exp", "x")`` are in
``fusegraph.rewrites.patterns``.

Graphs are immutable, so a pass rebuilds: each node is visited once its inputs are final;
a replacement is itself visited before it stands for the node it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fusegraph.graph import Apply, Constant, Op, Variable, rebuild
from fusegraph.types import fmt_shape

#: Constant folding never creates a constant with more elements than this (so that
#: ``zeros((1000, 1000))`` stays an allocation instead of a megabyte in the graph).
FOLD_LIMIT = 10_000
#: A pass that performs more rewrites than this is cycling between rules.
REWRITE_LIMIT = 200_000
#: A variable whose replacement is rewritten again this many times in a row is caught in
#: rules that keep growing the graph. (Rules that undo each other are caught as soon as a
#: node they rewrote comes back within ``CYCLE_WINDOW`` rewrites in a row.)
CHAIN_LIMIT = 10_000
CYCLE_WINDOW = 32


class RewriteError(RuntimeError):
    """A rewrite broke an invariant (changed a variable's type) or rules cycle."""


# --------------------------------------------------------------------------- patterns


@dataclass(frozen=True)
class Pattern:
    """Matches a variable computed by an op: ``op`` is an op class (or tuple of them) or
    a predicate on the op (a ``KeyedOp``, or any callable, with ``op_types`` naming the
    classes it can match if known); ``inputs`` are sub-patterns, capture names (str, any
    variable) or ``Const`` matchers. ``name`` captures the matched variable itself."""

    op: type | tuple | Callable
    inputs: tuple = ()
    name: str | None = None
    commutative: bool = False

    def match(self, var: Variable, captures: dict) -> bool:
        """Whether the pattern matches ``var``; on success ``captures`` gains the bindings."""
        for found in self.matches(var, captures):
            captures.update(found)
            return True
        return False

    def matches(self, var: Variable, captures: dict):
        """Yield every extension of ``captures`` (new dicts) under which the pattern matches
        ``var``. Each input order of a commutative node is tried, so a name bound in one
        branch can still agree with its use elsewhere (backtracking)."""
        node = var.owner
        if node is None or not self._op_matches(node.op):
            return
        if self.inputs and len(self.inputs) != len(node.inputs):
            return
        orders = [node.inputs]
        if self.commutative and len(node.inputs) == 2 and node.inputs[0] is not node.inputs[1]:
            orders.append(node.inputs[::-1])
        for inputs in orders:
            for found in _match_all(self.inputs, inputs, captures):
                if self.name is None:
                    yield found
                elif self.name not in found:
                    yield {**found, self.name: var}
                elif found[self.name] is var:
                    yield found

    def _op_matches(self, op) -> bool:
        if isinstance(self.op, type) or isinstance(self.op, tuple):
            return isinstance(op, self.op)
        return bool(self.op(op))

    @property
    def root_types(self) -> tuple:
        """The op classes the root can match (for indexing rules), or (Op,) for any."""
        if isinstance(self.op, type):
            return (self.op,)
        if isinstance(self.op, tuple):
            return self.op
        return getattr(self.op, "op_types", (Op,))


@dataclass(frozen=True)
class Const:
    """Matches a constant; with ``value``, only one whose every element equals it."""

    value: float | None = None
    name: str | None = None

    def match(self, var: Variable, captures: dict) -> bool:
        if not isinstance(var, Constant):
            return False
        if self.value is not None and not (var.data.size and bool(np.all(var.data == self.value))):
            return False
        if self.name is None:
            return True
        if self.name in captures:  # a repeated name must capture the same variable
            return captures[self.name] is var
        captures[self.name] = var
        return True


def _matches(pattern, var, captures):
    """Yield the extensions of ``captures`` under which ``pattern`` (a capture name, a
    ``Pattern``, or any object with ``match(var, captures) -> bool``) matches ``var``."""
    if isinstance(pattern, str):
        if pattern not in captures:
            yield {**captures, pattern: var}
        elif captures[pattern] is var:
            yield captures
    elif isinstance(pattern, Pattern):
        yield from pattern.matches(var, captures)
    else:
        trial = dict(captures)
        if pattern.match(var, trial):
            yield trial


def _match_all(patterns, variables, captures):
    """Yield the extensions of ``captures`` under which each pattern matches its variable."""
    if not patterns:
        yield captures
        return
    for found in _matches(patterns[0], variables[0], captures):
        yield from _match_all(patterns[1:], variables[1:], found)


@dataclass(frozen=True)
class KeyedOp:
    """An op predicate the walk indexes: it matches an instance of ``op_type`` whose
    ``key(op)`` equals ``value``, and a rule rooted on it is only tried on such ops (one
    dict lookup per node instead of one predicate call per rule). ``key`` should be one
    shared function (rules are grouped by it) returning a hashable value; for example
    ``rewrites.patterns.elemwise("exp")`` roots on ``KeyedOp(Elemwise, scalar_op_name,
    "exp")``."""

    op_type: type
    key: Callable
    value: object

    def __call__(self, op) -> bool:
        return isinstance(op, self.op_type) and self.key(op) == self.value

    @property
    def op_types(self) -> tuple:
        return (self.op_type,)


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """A named rewrite: where ``pattern`` matches a node's (first) output, ``fn(node,
    **captures)`` returns the variable to use instead, or None to leave it."""

    name: str
    pattern: Pattern
    fn: Callable = field(compare=False)
    default: bool = True

    def apply(self, node: Apply):
        captures = {}
        if not self.pattern.match(node.outputs[0], captures):
            return None
        return self.fn(node, **captures)


class RuleSet:
    """A named, ordered set of rules, used as a decorator factory (``elemwise`` is
    ``fusegraph.rewrites.patterns.elemwise``)::

    canonicalize = RuleSet("canonicalize")

    @canonicalize.rule(elemwise("mul", "x", Const(1), commutative=True))
    def mul_by_one(node, x): ...
    """

    def __init__(self, name: str):
        self.name = name
        self.rules: list[Rule] = []

    def rule(self, pattern: Pattern, name: str | None = None, default: bool = True):
        def register(fn):
            self.rules.append(Rule(name or fn.__name__, pattern, fn, default))
            return fn

        return register

    def enabled(self, include=(), exclude=()) -> list[Rule]:
        """The rules on under a Mode's ``include``/``exclude`` names (the set's name or a
        rule's name); rules with ``default=False`` need to be included by name."""
        if self.name in exclude:
            return []
        return [
            r
            for r in self.rules
            if r.name not in exclude and (r.default or r.name in include or self.name in include)
        ]


def _index(rules):
    """Rules keyed by (op class, key function, key value) of their root pattern, with
    (op class, None, None) for a root matched by class or plain predicate; and per op
    class, the key functions of the rules rooted on it."""
    index, keys = {}, {}
    for r in rules:
        root = r.pattern.op
        if isinstance(root, KeyedOp):
            index.setdefault((root.op_type, root.key, root.value), []).append(r)
            keys.setdefault(root.op_type, {})[root.key] = None  # an ordered set
        else:
            for t in r.pattern.root_types:
                index.setdefault((t, None, None), []).append(r)
    return index, keys


def _candidates(indexed, op):
    """The rules whose root may match ``op``, most specific class first (for each class,
    the keyed rules before the others), each group in the order the rules were given."""
    index, keys = indexed
    found = []
    for t in type(op).__mro__:
        for key in keys.get(t, ()):
            found += index.get((t, key, key(op)), [])
        found += index.get((t, None, None), [])
    return found


# --------------------------------------------------------------------------- the walk


def rewrite(outputs, rules=(), fold=True, merge=True, stats=None):
    """Rebuild ``outputs`` bottom-up, applying ``rules`` until none matches, merging
    equal nodes and constants (``merge``) and folding nodes whose inputs are all constant
    (``fold``). Returns the new outputs. ``stats`` (a dict) counts rewrites by rule name.
    """
    index = _index(rules)
    memo: dict = {}  # old or new variable -> its final variable
    seen: dict = {}  # merge key -> outputs of the first node with that key
    constants: dict = {}  # constant signature -> canonical constant
    alias: dict = {}  # variable -> the replacement it waits for
    # variable made by a rule -> (rewrites in a row that led to it, the first node rewritten,
    # the chain of those rewrites as nested ((op, input ids), rule name, parent) tuples)
    depth: dict = {}
    stack = list(reversed(outputs))
    count = 0
    while stack:
        var = stack[-1]
        if var in memo:
            stack.pop()
            continue
        if var in alias:
            target = alias[var]
            if target in memo:
                memo[var] = memo[target]
                stack.pop()
            else:
                stack.append(target)
            continue
        node = var.owner
        if node is None:
            if merge and isinstance(var, Constant):
                var_final = constants.setdefault(var.signature(), var)
            else:
                var_final = var
            memo[var] = var_final
            stack.pop()
            continue
        pending = [v for v in node.inputs if v not in memo]
        if pending:
            stack.extend(reversed(pending))
            continue
        inputs = [memo[v] for v in node.inputs]
        new_outs = node.outputs
        if any(a is not b for a, b in zip(inputs, node.inputs)):
            new_outs = rebuild(node, inputs)
        op = new_outs[0].owner.op
        mergeable = merge and getattr(op, "mergeable", True)
        key = (op, tuple(map(id, inputs)), len(new_outs)) if mergeable else None
        if key is not None and key in seen:
            new_outs = seen[key]
        else:
            replacement, why = _visit(new_outs[0].owner, index, fold)
            if replacement is not None:
                count += 1
                if stats is not None:
                    stats[why] = stats.get(why, 0) + 1
                check_type(node.outputs[0], replacement, why)
                level, origin, chain = depth.get(var, (0, node, None))
                chain = ((op, tuple(map(id, inputs))), why, chain)
                cycle = _cycle(chain)
                if cycle or count > REWRITE_LIMIT or level >= CHAIN_LIMIT:
                    rules_named = ", ".join(repr(r) for r in dict.fromkeys(cycle or [why]))
                    raise RewriteError(
                        f"rewrites do not converge: rules {rules_named} keep rewriting "
                        f"{origin.outputs[0]} (built at {origin.trace})"
                    )
                forbidden = {var, *node.outputs, *new_outs}
                mark = (level + 1, origin, chain)
                _mark_new(replacement, memo, alias, forbidden, depth, mark, why)
                alias[var] = replacement
                continue
            if key is not None:
                seen[key] = new_outs
        for old, new in zip(node.outputs, new_outs):
            memo[old] = new
            memo[new] = new
        stack.pop()
    return [memo[v] for v in outputs]


def _cycle(chain):
    """The rule names of a cycle if the node just rewritten (the head of ``chain``) equals
    one rewritten before it in a row: rules are functions of the node, so rewriting it
    again would lead back here forever. Else None."""
    key, why, link = chain
    names = [why]
    for _ in range(CYCLE_WINDOW):
        if link is None:
            return None
        earlier, name, link = link
        names.append(name)
        if earlier == key:
            return names[::-1]
    return None


def _mark_new(replacement, memo, alias, forbidden, depth, mark, why):
    """Record ``mark`` (rewrites in a row, first node rewritten, chain) for the variables a
    rule just made (those not yet final). Refuse a replacement that contains the variable
    it replaces (or one waiting for it): the walk would never end."""
    todo, visited = [replacement], set()
    while todo:
        v = todo.pop()
        if v in memo or v in visited:
            continue
        if v in forbidden or v in alias:
            raise RewriteError(
                f"rewrite {why!r} returned a graph that contains the variable it replaces"
            )
        visited.add(v)
        depth[v] = mark
        if v.owner is not None:
            todo.extend(v.owner.inputs)


def _visit(node: Apply, index, fold):
    """The replacement for ``node``'s output and the rule's name, or (None, None).
    Only single-output nodes are rewritten."""
    if len(node.outputs) != 1:
        return None, None
    if fold:
        folded = fold_constant(node)
        if folded is not None:
            return folded, "constant_folding"
    for r in _candidates(index, node.op):
        replacement = r.apply(node)
        if replacement is not None and replacement is not node.outputs[0]:
            return replacement, r.name
    return None, None


def fold_constant(node: Apply):
    """A ``Constant`` with the value of ``node``'s single output when all inputs are
    constants, the op allows it and the result is small; else None."""
    if not node.inputs or not all(isinstance(v, Constant) for v in node.inputs):
        return None
    if not getattr(node.op, "foldable", True):
        return None
    out = node.outputs[0]
    if None not in out.type.shape and np.prod(out.type.shape, dtype=np.int64) > FOLD_LIMIT:
        return None
    try:
        with np.errstate(all="ignore"):
            value = np.asarray(node.op.impl(*(v.data for v in node.inputs)))
    except Exception:  # leave the error to run time, where it names the user's line
        return None
    if value.size > FOLD_LIMIT or value.dtype.name != out.dtype:
        return None
    return Constant(value)


def keeps_type(old: Variable, new: Variable) -> bool:
    """True if ``new`` may stand for ``old``: same dtype and ndim, no known dim lost."""
    return (
        new.dtype == old.dtype
        and new.ndim == old.ndim
        and all(a is None or a == b for a, b in zip(old.type.shape, new.type.shape))
    )


def check_type(old: Variable, new: Variable, why: str) -> None:
    """Raise RewriteError unless ``new`` keeps the dtype and every statically known dim of
    ``old``, the variable it replaces (``why`` names the rule or pass)."""
    if not keeps_type(old, new):
        raise RewriteError(
            f"rewrite {why!r} changed {old} from {old.dtype} {fmt_shape(old.type.shape)} to "
            f"{new.dtype} {fmt_shape(new.type.shape)}"
        )
