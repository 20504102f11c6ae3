"""Printing graphs: ``dprint`` (an indented tree, as Theano's debugprint), ``pprint`` (infix
text) and ``to_dot`` (Graphviz DOT text). The ops layer is imported lazily, inside the
printers, because ``fusegraph/__init__`` imports this module."""

from __future__ import annotations

import sys

import numpy as np

from fusegraph.graph import Constant, FunctionGraph, Variable, as_tensor, toposort
from fusegraph.ops.infix import ATOM, UNARY, operator_text, wrap
from fusegraph.shared import SharedVariable

# --------------------------------------------------------------------------- shared helpers


def _ident(n: int) -> str:
    """Short ids A, B, ..., Z, AA, AB, ... (bijective base 26)."""
    text = ""
    n += 1
    while n:
        n, rem = divmod(n - 1, 26)
        text = chr(ord("A") + rem) + text
    return text


def _scalar_text(value) -> str:
    # str() of a NumPy scalar is its shortest round-tripping repr: 2.0, 0.1 (float32), 3, True.
    return str(value)


def _nested_text(data: np.ndarray) -> str:
    if data.ndim == 0:
        return _scalar_text(data[()])
    return "[" + ", ".join(_nested_text(row) for row in data) + "]"


def _constant_text(var: Constant) -> str | None:
    """A constant's name, or its value when it has at most 8 elements, else None."""
    if var.name:
        return var.name
    if var.data.size <= 8:
        return _nested_text(var.data)
    return None


def _targets(obj):
    """Normalise what the printers accept into (roots to print with their tags, tags of
    other variables): a Variable, a list/tuple of them, a ``Function`` or a FunctionGraph."""
    from fusegraph.function import Function

    tags: dict = {}
    if isinstance(obj, Function):
        graph, n_out = obj.graph, len(obj.outputs)
        for pos, var in enumerate(obj.inputs):
            tags.setdefault(var, []).append(f"input {pos}")
        outputs = list(graph.outputs)
        labels = [f"output {i}" for i in range(n_out)]
        labels += [f"update of {target.name or '<unnamed shared>'}" for target, _ in obj.updates]
    elif isinstance(obj, FunctionGraph):
        for pos, var in enumerate(obj.inputs):
            if not isinstance(var, SharedVariable):
                tags.setdefault(var, []).append(f"input {pos}")
        outputs = list(obj.outputs)
        labels = [f"output {i}" for i in range(len(outputs))]
    elif isinstance(obj, (list, tuple)):
        outputs, labels = [as_tensor(v) for v in obj], [None] * len(obj)
    elif isinstance(obj, Variable):
        outputs, labels = [obj], [None]
    else:
        raise TypeError(
            f"cannot print a {type(obj).__name__}; pass a variable, a list of variables "
            "or a compiled Function"
        )
    for var, label in zip(outputs, labels, strict=True):
        if label is not None:
            tags.setdefault(var, []).append(label)
    return outputs, tags


# --------------------------------------------------------------------------- dprint


def _dprint_label(var: Variable) -> str:
    if var.owner is not None:
        suffix = f".{var.index}" if len(var.owner.outputs) > 1 else ""
        return f"{var.owner.op}{suffix}"
    if isinstance(var, Constant):
        return _constant_text(var) or "Constant"
    return var.name or "<unnamed>"


def dprint(obj, file=None) -> str:
    """Print a graph as an indented tree, one line per variable (Theano's debugprint).

    Each line shows the op (or the variable's name or constant value for roots), a short
    ``[id X]`` (one per node, so a subgraph used twice is expanded once and later lines
    marked ``(see above)``), the type ``<dtype kind (static shape)>`` and the name of a
    named intermediate in quotes. For a compiled ``Function`` the outputs and update
    expressions are printed, tagged ``(output i)`` and ``(update of w)``, and its inputs are
    tagged ``(input i)``; shared variables are always tagged ``(shared)``. For example::

        add [id A] <float64 vector> 'z'
         |x [id B] <float64 vector>
         |mul [id C] <float64 vector>
           |2.0 [id D] <float64 scalar>
           |exp [id E] <float64 vector>
             |y [id F] <float64 vector>

    Args:
        obj: a Variable, a list of variables, a compiled ``Function`` or a
            ``FunctionGraph``.
        file: a text stream to write to (default ``sys.stdout``).

    Returns:
        The printed text.
    """
    outputs, tags = _targets(obj)
    ids: dict = {}
    expanded: set = set()
    lines: list[str] = []
    # An explicit stack rather than recursion: graphs may be deeper than Python's limit.
    stack = [(var, "", "") for var in reversed(outputs)]
    while stack:
        var, prefix, child_prefix = stack.pop()
        key = var.owner if var.owner is not None else var
        if key not in ids:
            ids[key] = _ident(len(ids))
        parts = [f"{prefix}{_dprint_label(var)}", f"[id {ids[key]}]", f"<{var.type}>"]
        if var.owner is not None and var.name:
            parts.append(repr(var.name))
        notes = list(tags.get(var, ()))
        if isinstance(var, SharedVariable):
            notes.append("shared")
        repeated = var.owner is not None and var.owner in expanded
        if repeated:
            notes.append("see above")
        if notes:
            parts.append(f"({', '.join(notes)})")
        lines.append(" ".join(parts))
        if var.owner is None or repeated:
            continue
        expanded.add(var.owner)
        inputs = var.owner.inputs
        for i in reversed(range(len(inputs))):
            last = i == len(inputs) - 1
            stack.append((inputs[i], child_prefix + " |", child_prefix + ("  " if last else " |")))
    text = "".join(line + "\n" for line in lines)
    (sys.stdout if file is None else file).write(text)
    return text


# --------------------------------------------------------------------------- pprint


def _pprint_leaf(var: Variable):
    if isinstance(var, Constant):
        text = _constant_text(var) or repr(var)
        # A negative number reads as a unary minus: (-1.0) ** x, not -1.0 ** x.
        return text, UNARY if text.startswith("-") else ATOM
    return (var.name or repr(var)), ATOM


def _index_text(idx, index_args) -> str | None:
    """Render an indexing op's ``idx`` (the entry tuple documented in
    ``fusegraph.ops.indexing``) as NumPy index text, taking symbolic fields and index
    arrays from ``index_args`` in order; None if an entry is not understood."""
    inputs = iter(text for text, _ in index_args)

    def field(f):
        if f == "?":
            return next(inputs, "?")
        return "" if f is None else str(f)

    parts = []
    for entry in idx:
        kind = entry[0] if isinstance(entry, tuple) and entry else None
        if kind == "int":
            parts.append(field(entry[1]))
        elif kind == "slice":
            start, stop, step = (field(f) for f in entry[1:4])
            parts.append(f"{start}:{stop}" + (f":{step}" if step else ""))
        elif kind == "newaxis":
            parts.append("None")
        elif kind in ("array", "mask"):
            parts.append(next(inputs, "?"))
        else:
            return None
    return ", ".join(parts) if parts else "()"


def _indexing_text(op, args) -> str | None:
    """``x[1:3]`` for ``Subtensor``/``AdvancedSubtensor`` and ``set_subtensor(x[i], y)`` /
    ``inc_subtensor(x[i], y)`` for ``IncSubtensor`` of ``fusegraph.ops.indexing``, read from
    their ``idx`` attribute; None for other ops."""
    from fusegraph.ops.indexing import AdvancedSubtensor, IncSubtensor, Subtensor

    idx = getattr(op, "idx", None)
    if not isinstance(idx, tuple):
        return None
    if isinstance(op, (Subtensor, AdvancedSubtensor)):
        index = _index_text(idx, args[1:])
        return None if index is None else f"{wrap(args[0], ATOM - 1)}[{index}]"
    if isinstance(op, IncSubtensor):
        index = _index_text(idx, args[2:])
        fn = "set_subtensor" if getattr(op, "set_instead_of_inc", False) else "inc_subtensor"
        if index is not None:
            return f"{fn}({wrap(args[0], ATOM - 1)}[{index}], {args[1][0]})"
    return None


def _pprint_node(var: Variable, args: list):
    from fusegraph.ops.elemwise import Elemwise
    from fusegraph.ops.linalg import MatMul
    from fusegraph.ops.shape_ops import DimShuffle, Shape, ShapeI

    op = var.owner.op
    if isinstance(op, Elemwise):
        text = operator_text(op.scalar_op.name, args)
        if text is not None:
            return text
    if isinstance(op, MatMul):
        return f"{wrap(args[0], 19)} @ {wrap(args[1], 20)}", 20
    if isinstance(op, Shape):
        return f"{wrap(args[0], ATOM - 1)}.shape", ATOM
    if isinstance(op, DimShuffle):
        pattern = ", ".join(map(repr, op.new_order))
        return f"{wrap(args[0], ATOM - 1)}.dimshuffle({pattern})", ATOM
    if isinstance(op, ShapeI):
        return f"{wrap(args[0], ATOM - 1)}.shape[{op.i}]", ATOM
    indexed = _indexing_text(op, args)
    if indexed is not None:
        return indexed, ATOM
    suffix = f".{var.index}" if len(var.owner.outputs) > 1 else ""
    return f"{op}{suffix}({', '.join(text for text, _ in args)})", ATOM


def pprint(var) -> str:
    """Return ``var``'s expression as readable infix text, e.g. ``x + 2.0 * exp(y)``.

    Infix operators (``a + b``) and unary ``-x`` and ``~x`` get parentheses exactly where
    Python's precedence and grouping need them (``(a + b) * c``, ``a - (b - c)``,
    ``(-x) ** 2``), so the text reads back as the same expression in Python. Other
    elementwise ops and all other ops print as calls, ``exp(y)`` or ``Dot(x, W)``; ``@``,
    ``x.shape``, ``x.shape[0]``, ``x.dimshuffle(0, 'x')`` and indexing (``x[1:3]``,
    ``set_subtensor(x[i], y)``) print as in Python. Root variables print as their
    names, constants compactly as their value (their name if named). Intermediate results
    are always expanded, named or not.

    Args:
        var: the variable (or a number or array, wrapped as a constant) to print.

    Returns:
        The text (nothing is printed).
    """
    var = as_tensor(var)
    memo: dict = {}
    # Post-order with an explicit stack: deep graphs must not hit the recursion limit.
    stack = [var]
    while stack:
        top = stack[-1]
        if top in memo:
            stack.pop()
            continue
        if top.owner is None:
            memo[top] = _pprint_leaf(top)
            stack.pop()
            continue
        pending = [v for v in top.owner.inputs if v not in memo]
        if pending:
            stack.extend(reversed(pending))
            continue
        memo[top] = _pprint_node(top, [memo[v] for v in top.owner.inputs])
        stack.pop()
    return memo[var][0]


# --------------------------------------------------------------------------- to_dot


def _quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _dot_var_label(var: Variable, notes) -> str:
    if isinstance(var, Constant):
        head = [_constant_text(var) or "Constant"]
    else:
        head = [var.name] if var.name else []
    return "\n".join(head + [str(var.type)] + list(notes))


def to_dot(obj) -> str:
    """Return Graphviz DOT text (a ``digraph``) of a graph.

    Variables are boxes (name or constant value, type, and for a ``Function`` the
    ``input i`` / ``output i`` / ``update of w`` role), applies are ellipses labelled with
    their op; an edge runs from each input to its apply, labelled with the input position,
    and from each apply to its outputs (labelled with the output index when there are
    several). An update is drawn as a dashed edge from its expression to the shared
    variable. Render with e.g. ``dot -Tsvg graph.dot``.

    Args:
        obj: a Variable, a list of variables, a compiled ``Function`` or a
            ``FunctionGraph``.

    Returns:
        The DOT text.
    """
    from fusegraph.function import Function

    outputs, tags = _targets(obj)
    nodes = toposort(outputs)
    updates = obj.updates if isinstance(obj, Function) else []
    var_ids: dict = {}
    # Inputs before the applies reading them; roots that are outputs or update targets too.
    for var in (
        [v for node in nodes for v in node.inputs + node.outputs]
        + outputs
        + [target for target, _ in updates]
    ):
        var_ids.setdefault(var, f"v{len(var_ids)}")
    node_ids = {node: f"n{i}" for i, node in enumerate(nodes)}

    lines = ["digraph fusegraph {"]
    if isinstance(obj, Function) and obj.name:
        lines.append(f"  label={_quote(obj.name)};")
    lines.append('  node [fontname="Helvetica", fontsize=10];')
    lines.append('  edge [fontname="Helvetica", fontsize=9];')
    for var, ident in var_ids.items():
        notes = list(tags.get(var, ()))
        styles, fill = [], None
        if isinstance(var, SharedVariable):
            notes.append("shared")
            styles, fill = ["rounded"], "lightyellow"
        elif isinstance(var, Constant):
            styles.append("dashed")
        if any(note.startswith(("output", "update")) for note in notes):
            fill = "lightblue"
        attrs = [f"label={_quote(_dot_var_label(var, notes))}", "shape=box"]
        if fill:
            styles.append("filled")
            attrs.append(f'fillcolor="{fill}"')
        if styles:
            attrs.append(f'style="{",".join(styles)}"')
        lines.append(f"  {ident} [{', '.join(attrs)}];")
    for node, ident in node_ids.items():
        lines.append(f"  {ident} [label={_quote(str(node.op))}, shape=ellipse];")
    for node, ident in node_ids.items():
        for pos, var in enumerate(node.inputs):
            lines.append(f'  {var_ids[var]} -> {ident} [label="{pos}"];')
        several = len(node.outputs) > 1
        for out in node.outputs:
            label = f' [label="{out.index}"]' if several else ""
            lines.append(f"  {ident} -> {var_ids[out]}{label};")
    for target, expr in updates:
        lines.append(
            f"  {var_ids[expr]} -> {var_ids[target]} "
            '[label="update", style=dashed, constraint=false];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = ["dprint", "pprint", "to_dot"]
