"""What the rule sets share: the op-aware patterns and helpers that the generic engine
(``rewrites.engine``) does not know about.

- ``elemwise("exp", "x")``: a pattern for ``Elemwise`` nodes of one scalar op;
- ``scalar_name(var)``: the scalar op's name of the ``Elemwise`` computing ``var``;
- ``fit(new, old)``: ``new`` if it may replace ``old`` (type and run-time shape), else None;
  ``axis_sets(var, memo)``: the lengths that broadcast to each axis of ``var``, its proof.
"""

from __future__ import annotations

from fusegraph.graph import Variable
from fusegraph.ops.elemwise import Elemwise
from fusegraph.ops.shape_ops import DimShuffle
from fusegraph.rewrites.engine import KeyedOp, Pattern, keeps_type
from fusegraph.rewrites.shapes import dims, same_shape

# --------------------------------------------------------------------------- elementwise


def scalar_op_name(op: Elemwise) -> str:
    """The name of an ``Elemwise``'s scalar op: the key ``elemwise`` patterns index by."""
    return op.scalar_op.name


def elemwise(scalar_name: str, *inputs, name=None, commutative=False) -> Pattern:
    """A pattern for ``Elemwise`` nodes of the scalar op ``scalar_name`` (``"exp"``,
    ``"add"`` ...); ``inputs``, ``name`` and ``commutative`` as for ``Pattern``."""
    return Pattern(KeyedOp(Elemwise, scalar_op_name, scalar_name), tuple(inputs), name, commutative)


def scalar_name(var: Variable):
    """The scalar op's name if ``var`` is computed by an ``Elemwise``, else None."""
    node = var.owner
    if node is not None and isinstance(node.op, Elemwise):
        return node.op.scalar_op.name
    return None


# --------------------------------------------------------------------------- replacements


def fit(new: Variable, old: Variable, proven: bool = False):
    """``new`` if it has the dtype and static shape of ``old`` and provably its run-time
    shape, else None (so a rule never triggers the engine's type check). ``proven``: the
    caller built ``new`` with the same run-time shape (for ops ``shapes.dims`` cannot
    follow)."""
    if not keeps_type(old, new):
        return None
    if proven or same_shape(new, old):
        return new
    memo = {}
    return new if axis_sets(new, memo) == axis_sets(old, memo) else None


#: How deep ``axis_sets`` follows elementwise ops before it takes a variable's own dims.
_SETS_DEPTH = 32


def axis_sets(var: Variable, memo: dict, depth: int = 0) -> tuple:
    """Per axis of ``var``, the set of lengths (ints > 1 or ``shapes.dims`` symbols) that
    broadcast to it through elementwise ops and dimshuffles; empty for length 1. Equal
    sets mean equal lengths, so this proves shapes that ``same_shape`` cannot (``y *
    sigmoid(x)`` against ``y * sigmoid(-x) * exp(x)``)."""
    if var in memo:
        return memo[var]
    node = var.owner
    if depth < _SETS_DEPTH and node is not None and isinstance(node.op, Elemwise):
        sets = [frozenset()] * var.ndim
        for x in node.inputs:
            sub = axis_sets(x, memo, depth + 1)
            lead = var.ndim - len(sub)
            for k, lengths in enumerate(sub):
                sets[lead + k] = sets[lead + k] | lengths
        # A known length decides the axis (any other length is an error at run time).
        result = tuple(_known(lengths) for lengths in sets)
    elif depth < _SETS_DEPTH and node is not None and isinstance(node.op, DimShuffle):
        sub = axis_sets(node.inputs[0], memo, depth + 1)
        result = tuple(frozenset() if a == "x" else sub[a] for a in node.op.new_order)
    else:
        result = tuple(frozenset() if d == 1 else frozenset((d,)) for d in dims(var))
    memo[var] = result
    return result


def _known(lengths: frozenset) -> frozenset:
    ints = [d for d in lengths if isinstance(d, int)]
    return frozenset(ints[:1]) if ints else lengths


__all__ = ["axis_sets", "elemwise", "fit", "scalar_name", "scalar_op_name"]
