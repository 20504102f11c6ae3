"""Removal of forward identities: ops such as ``stop_gradient`` that only shape gradients
and return their input unchanged vanish from a compiled graph."""

from __future__ import annotations

from fusegraph.graph import rebuild, toposort


def remove_forward_identities(outputs):
    """Return ``outputs`` rebuilt without nodes whose op has ``forward_identity = True``;
    other nodes are re-made only where an input changed."""
    memo = {}
    for node in toposort(outputs):
        inputs = [memo.get(v, v) for v in node.inputs]
        if getattr(node.op, "forward_identity", False):
            memo[node.outputs[0]] = inputs[0]
        elif any(new is not old for new, old in zip(inputs, node.inputs)):
            memo.update(zip(node.outputs, rebuild(node, inputs)))
    return [memo.get(v, v) for v in outputs]
