"""The interpreted backend: walks the graph in topological order calling each op's NumPy
``impl``. It is the reference every other backend is checked against."""

from __future__ import annotations

import numpy as np

from fusegraph.errors import node_error
from fusegraph.graph import Constant, FunctionGraph


def compile_graph(fgraph: FunctionGraph):
    """Return ``run(*values) -> list of output arrays`` for ``fgraph``.

    ``values`` are the arrays of ``fgraph.inputs`` in order. Outputs never alias the
    inputs, constants or each other (views are copied), so callers may mutate them.
    NumPy's floating-point warnings are silenced: NaN and inf propagate as values, as they
    do in compiled code.
    """
    order = fgraph.toposort()
    inputs, outputs = fgraph.inputs, fgraph.outputs
    constants = {v: v.data for node in order for v in node.inputs if isinstance(v, Constant)}
    constants.update({v: v.data for v in outputs if isinstance(v, Constant)})

    def run(*values):
        env = dict(constants)
        env.update(zip(inputs, values))
        with np.errstate(all="ignore"):
            for node in order:
                args = [env[v] for v in node.inputs]
                try:
                    node.op.check_inputs(node, args)
                    result = node.op.impl(*args)
                except Exception as exc:
                    raise node_error(exc, node, args) from exc
                if len(node.outputs) == 1:
                    result = (result,)
                for var, value in zip(node.outputs, result):
                    env[var] = _checked(node, var, np.asarray(value))
        results, seen = [], {id(v) for v in values} | {id(v) for v in constants.values()}
        for var in outputs:
            value = env[var]
            if not value.flags.owndata or id(value) in seen:
                try:
                    value = value.copy()
                except MemoryError as exc:  # a broadcast view is copied out
                    if var.owner is None:
                        raise
                    raise node_error(exc, var.owner, [value]) from exc
            seen.add(id(value))
            results.append(value)
        return results

    return run


def _checked(node, var, value):
    """Fail loudly if an op's ``impl`` disagrees with its own type rule (a bug in the op)."""
    problem = var.type.accepts(value)
    if problem is not None:
        raise TypeError(
            f"{node.op}.impl returned {problem}, against its own type rule (node built at "
            f"{node.trace})"
        )
    return value


class Interpreted:
    """An executable (see ``fusegraph.backends.Executable``) made of ``run(*values) -> list
    of outputs``; with ``single`` it returns the one output itself."""

    def __init__(self, run, single: bool):
        self.run = (lambda *values: run(*values)[0]) if single else run


class PyBackend:
    """The interpreter as a backend (``mode="py"``)."""

    wants_unrewritten = False

    def compile(self, fgraph: FunctionGraph, options) -> Interpreted:
        return Interpreted(compile_graph(fgraph), options.single)


BACKEND = PyBackend()
