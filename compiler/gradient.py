"""Reverse-mode differentiation with Theano's semantics: ``grad`` (with ``known_grads``
overrides), ``Lop`` and ``Rop``. Gradients are graphs; nothing here evaluates anything."""

from __future__ import annotations

import warnings

from fusegraph import ops
from fusegraph.errors import DisconnectedInputError, NullTypeGradError
from fusegraph.graph import (
    Constant,
    NullGrad,
    Variable,
    ancestors,
    as_tensor,
    clone_replace,
    constant,
    toposort,
)
from fusegraph.types import fmt_shape, is_float, shapes_agree


class DisconnectedType:
    """What ``grad(..., return_disconnected="disconnected")`` returns for a ``wrt`` that the
    cost does not depend on."""

    def __repr__(self) -> str:
        return "DisconnectedType()"


def grad(
    cost,
    wrt,
    consider_constant=None,
    disconnected_inputs="raise",
    known_grads=None,
    return_disconnected="zero",
    null_gradients="raise",
):
    """Symbolic gradient of ``cost`` with respect to ``wrt``.

    Args:
        cost: a 0-d float variable, or None when ``known_grads`` gives the seeds.
        wrt: a variable or a list of variables; the result matches (one or a list).
        consider_constant: variables treated as constants (no gradient flows through them).
        disconnected_inputs: ``"raise"`` (DisconnectedInputError), ``"warn"`` or
            ``"ignore"`` for a ``wrt`` that the cost does not depend on.
        known_grads: dict mapping variables to their gradients (variables or arrays of the
            same ndim, float dtype). A known gradient *overrides*: it is that variable's
            total gradient and whatever the cost sends back through it is ignored; its
            contributions still add up with others at its ancestors.
        return_disconnected: what a disconnected ``wrt`` gets: ``"zero"`` (zeros like it),
            ``"none"`` (None) or ``"disconnected"`` (a ``DisconnectedType``).
        null_gradients: ``"raise"`` (NullTypeGradError) or ``"return"`` (a ``NullGrad``)
            when the gradient is undefined (through an op without a gradient).

    Integer ``wrt`` get no gradient (they are treated as disconnected, without raising).
    """
    _check_choice("disconnected_inputs", disconnected_inputs, ("raise", "warn", "ignore"))
    _check_choice("return_disconnected", return_disconnected, ("zero", "none", "disconnected"))
    _check_choice("null_gradients", null_gradients, ("raise", "return"))
    single = not isinstance(wrt, (list, tuple))
    wrt = [wrt] if single else list(wrt)
    for i, w in enumerate(wrt):
        if not isinstance(w, Variable):
            raise TypeError(f"grad: wrt[{i}] must be a symbolic variable, got {type(w).__name__}")
    seeds = _check_known_grads(known_grads)
    roots = list(seeds)
    contributions = {}
    if cost is not None:
        cost = _check_cost(cost)
        contributions[cost] = [constant(1.0, dtype=cost.dtype)]
        roots.append(cost)
    elif not seeds:
        raise TypeError("grad: give a cost, or known_grads (or both)")
    totals = _backprop(roots, contributions, seeds, wrt, consider_constant or ())
    reachable = set(ancestors(roots))
    results = []
    for i, w in enumerate(wrt):
        g = totals.get(w)
        if isinstance(g, NullGrad):
            if null_gradients == "raise":
                raise NullTypeGradError(f"grad: the gradient w.r.t. {w} is undefined: {g.reason}")
        elif g is None:
            if is_float(w.dtype) or w not in reachable:
                _disconnected(i, w, disconnected_inputs)
            g = _disconnected_value(w, return_disconnected)
        elif g.name is None and cost is not None and cost.name and w.name:
            g.name = f"(d{cost.name}/d{w.name})"
        results.append(g)
    return results[0] if single else results


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"grad: {name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )


def _check_cost(cost):
    if not isinstance(cost, Variable):
        raise TypeError(f"grad: cost must be a symbolic variable, got {type(cost).__name__}")
    if cost.ndim != 0 or not is_float(cost.dtype):
        raise TypeError(
            f"grad: cost must be a 0-d float variable, got {cost} of type {cost.type}; "
            "use .sum() or fg.jacobian"
        )
    return cost


def _check_known_grads(known_grads):
    seeds = {}
    for key, value in (known_grads or {}).items():
        if not isinstance(key, Variable):
            raise TypeError(f"grad: known_grads key {key!r} is not a symbolic variable")
        if not is_float(key.dtype):
            raise TypeError(
                f"grad: known_grads key {key} has dtype {key.dtype}; only float variables "
                "have gradients"
            )
        try:
            g = as_tensor(value)
        except TypeError as exc:
            raise TypeError(f"grad: known_grads[{key}] is not a tensor: {exc}") from None
        if not is_float(g.dtype):
            raise TypeError(
                f"grad: known_grads[{key}] has dtype {g.dtype}; a gradient must be float"
            )
        if not shapes_agree(key.type.shape, g.type.shape):
            raise ValueError(
                f"grad: known_grads[{key}] has shape {fmt_shape(g.type.shape)} but {key} has "
                f"shape {fmt_shape(key.type.shape)}; a gradient has its variable's shape"
            )
        seeds[key] = ops.cast(g, key.dtype)
    return seeds


def _backprop(roots, contributions, overrides, wrt, consider_constant):
    """Walk the graph backwards from ``roots``; return the total gradient of each variable
    that depends on a ``wrt`` (a variable, or a NullGrad)."""
    blocked = set(consider_constant)
    order = toposort(roots)
    depends = {w for w in wrt if w not in blocked}
    for node in order:
        if any(v in depends for v in node.inputs):
            depends.update(o for o in node.outputs if o not in blocked)

    totals = {}

    def total(var):
        if var in totals:
            return totals[var]
        if var in overrides:
            g = overrides[var]
        else:
            parts = contributions.get(var)
            null = next((p for p in parts or () if isinstance(p, NullGrad)), None)
            g = null if null is not None else _sum(parts)
        totals[var] = g
        return g

    for node in reversed(order):
        if not any(v in depends for v in node.inputs):
            continue
        out_grads = [total(o) for o in node.outputs]
        if all(g is None for g in out_grads) and not node.op.vjp_without_grads:
            continue
        null = next((g for g in out_grads if isinstance(g, NullGrad)), None)
        if null is not None:
            in_grads = [null] * len(node.inputs)
        else:
            out_grads = [
                _zeros_like(o) if g is None else g for o, g in zip(node.outputs, out_grads)
            ]
            in_grads = node.op.vjp(node.inputs, node.outputs, out_grads)
            if len(in_grads) != len(node.inputs):
                raise AssertionError(f"{node.op}.vjp returned {len(in_grads)} gradients")
        for var, g in zip(node.inputs, in_grads):
            if g is None or var not in depends or not is_float(var.dtype):
                continue
            contributions.setdefault(var, []).append(_conform(g, var, node))
    for w in wrt:
        total(w)
    return totals


def _conform(g, var, node):
    """Check a vjp result against its input's type; cast float dtypes to match."""
    if isinstance(g, NullGrad):
        return g
    g = as_tensor(g)
    if not shapes_agree(var.type.shape, g.type.shape):
        raise AssertionError(
            f"internal error: {node.op}.vjp gave a gradient of type {g.type} for an input of "
            f"type {var.type} (node built at {node.trace})"
        )
    return ops.cast(g, var.dtype)


def _sum(parts):
    if not parts:
        return None
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _zeros_like(var):
    return ops.zeros_like(var)


def _disconnected(i, w, mode):
    message = (
        f"grad: wrt[{i}] ({w}) is not part of the cost's computational graph, or only "
        "through non-differentiable paths (stop_gradient, consider_constant, integer ops)"
    )
    if mode == "raise":
        raise DisconnectedInputError(message + "; pass disconnected_inputs='ignore' to allow it")
    if mode == "warn":
        warnings.warn(message, UserWarning, stacklevel=4)


def _disconnected_value(w, mode):
    if mode == "none":
        return None
    if mode == "disconnected":
        return DisconnectedType()
    return ops.zeros_like(w, dtype=w.dtype if is_float(w.dtype) else "float64")


def Lop(f, wrt, eval_points, consider_constant=None, disconnected_inputs="ignore"):
    """Vector-Jacobian product: ``eval_points`` (one per ``f``, shaped like it) times the
    Jacobian of ``f`` with respect to ``wrt``. ``f``/``eval_points`` and ``wrt`` may each be
    one variable or a list; the result matches ``wrt``."""
    fs = f if isinstance(f, (list, tuple)) else [f]
    vs = eval_points if isinstance(eval_points, (list, tuple)) else [eval_points]
    if len(fs) != len(vs):
        raise ValueError(f"Lop: {len(fs)} outputs but {len(vs)} eval_points")
    return grad(
        None,
        wrt,
        consider_constant=consider_constant,
        known_grads=dict(zip(fs, vs)),
        disconnected_inputs=disconnected_inputs,
    )


def Rop(f, wrt, eval_points):
    """Jacobian-vector product: the Jacobian of ``f`` w.r.t. ``wrt`` times ``eval_points``
    (one per ``wrt``, shaped like it), by forward mode: tangents flow from ``wrt`` to ``f``
    through each node's ``Op.jvp``; an op without a rule of its own gets the one its ``vjp``
    implies (``jvp_from_vjp``). Outputs ``f`` does not reach get zeros."""
    single = not isinstance(f, (list, tuple))
    fs = [as_tensor(fi) for fi in ([f] if single else f)]
    ws = wrt if isinstance(wrt, (list, tuple)) else [wrt]
    vs = eval_points if isinstance(eval_points, (list, tuple)) else [eval_points]
    if len(ws) != len(vs):
        raise ValueError(f"Rop: {len(ws)} wrt but {len(vs)} eval_points")
    tangents = {}
    for w, v in zip(ws, vs):
        v = as_tensor(v)
        if v.ndim != w.ndim:
            raise ValueError(f"Rop: the eval_point of {w} ({w.type}) has type {v.type}")
        if is_float(w.dtype):
            tangents[w] = ops.cast(v, w.dtype)
    for node in toposort(fs):
        ts = [tangents.get(x) for x in node.inputs]
        if all(t is None for t in ts):
            continue
        out_ts = node.op.jvp(node.inputs, node.outputs, ts)
        if out_ts is None:
            out_ts = jvp_from_vjp(node, ts)
        if len(out_ts) != len(node.outputs):
            raise ValueError(f"{node.op}.jvp returned {len(out_ts)} tangents")
        for out, t in zip(node.outputs, out_ts):
            if isinstance(t, NullGrad):
                raise NullTypeGradError(f"Rop: {t.reason} (node built at {node.trace})")
            if t is not None and is_float(out.dtype):
                tangents[out] = _conform(t, out, node)
    jvps = [tangents.get(fi) for fi in fs]
    jvps = [ops.zeros_like(fi) if t is None else t for fi, t in zip(fs, jvps)]
    return jvps[0] if single else jvps


def jvp_from_vjp(node, tangents) -> list:
    """The forward rule ``node``'s ``vjp`` implies: the vjp is linear in its seeds ``u``, so
    the gradient of ``sum(vjp(u) * t)`` with respect to ``u`` is the Jacobian times ``t``.
    Built on a copy of the node whose variable inputs are stand-ins, so that it costs the
    node's size, not its ancestors' (on the node itself if the op rebuilds otherwise)."""
    local = _local_copy(node)
    seeds = [Variable(o.type, name=f"u{k}") for k, o in enumerate(local.outputs)]
    grads = node.op.vjp(local.inputs, local.outputs, seeds)
    terms = []
    for g, t, x in zip(grads, tangents, node.inputs):
        if t is None or g is None or not is_float(x.dtype):
            continue
        if isinstance(g, NullGrad):
            return [g] * len(node.outputs)
        g = as_tensor(g)
        terms.append(ops.sum(g * ops.cast(t, g.dtype)))
    wanted = [k for k, o in enumerate(local.outputs) if is_float(o.dtype)]
    if not terms or not wanted:
        return [None] * len(node.outputs)
    jvps = grad(
        _sum(terms),
        [seeds[k] for k in wanted],
        disconnected_inputs="ignore",
        null_gradients="return",
    )
    replace = dict(zip(local.inputs, node.inputs))
    replace.update(zip(local.outputs, node.outputs))
    # The result does not depend on the seeds' values; a leftover reference gets zeros.
    replace.update({u: ops.zeros_like(o) for u, o in zip(seeds, node.outputs)})
    result = [None] * len(node.outputs)
    for k, j in zip(wanted, jvps):
        result[k] = j if isinstance(j, NullGrad) else clone_replace([j], replace)[0]
    return result


def _local_copy(node):
    """``node``'s op applied to stand-ins for its non-constant inputs, or ``node`` itself when
    that fails or gives other output types."""
    inputs = [x if isinstance(x, Constant) else Variable(x.type) for x in node.inputs]
    try:
        local = node.op.make_node(*inputs)
    except Exception:
        return node
    same = [o.type for o in local.outputs] == [o.type for o in node.outputs]
    return local if same else node


__all__ = ["DisconnectedType", "Lop", "Rop", "grad"]
