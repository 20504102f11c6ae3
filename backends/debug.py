"""``mode="debug"``: every call runs the rewritten graph compiled by Numba and interpreted by
the ``py`` backend, and the unrewritten graph interpreted, compares them and raises
``DebugModeError`` naming the first node or output that disagrees.

Random draws are compared like any value: both backends draw NumPy's numbers from the same
generator state (``fusegraph.ops.random``)."""

from __future__ import annotations

import numpy as np

from fusegraph.backends import py
from fusegraph.errors import DebugModeError
from fusegraph.graph import FunctionGraph


def agree(got, want, rewritten=False) -> str | None:
    """None if ``got`` matches the reference ``want``, else what differs.

    Floats are compared with ``rtol`` 1e-7 (float64) or 1e-4 (float32), since compiled
    transcendental functions and summation orders differ in the last bits; NaN must match
    NaN. With ``rewritten=True`` (rewritten vs unrewritten graph) places where the
    reference is not finite are skipped: stabilising rewrites make such values finite.
    """
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"{got.dtype}{list(got.shape)} vs {want.dtype}{list(want.shape)}"
    if want.dtype.kind not in "fc":
        bad = got != want
    else:
        rtol = 1e-4 if want.dtype == np.float32 else 1e-7
        bad = ~np.isclose(got, want, rtol=rtol, atol=rtol, equal_nan=True)
        if rewritten:
            bad &= np.isfinite(want)
    if not bad.any():
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0]) if got.ndim else ()
    return (
        f"{int(bad.sum())} of {bad.size} elements differ, first at {first}: "
        f"{got[first]!r} vs {want[first]!r}"
    )


class DebugBackend:
    """``mode="debug"`` as a backend (see ``fusegraph.backends.Backend``)."""

    wants_unrewritten = True

    def compile(self, fgraph: FunctionGraph, options):
        run = debug_runner(fgraph, options.unrewritten, options.label)
        return py.Interpreted(run, options.single)


BACKEND = DebugBackend()


def debug_runner(fgraph: FunctionGraph, unrewritten: FunctionGraph, label: str):
    """``run(*values)`` for ``fgraph``, checked as described in the module docstring."""
    from fusegraph.backends.numba.runtime import Compiled

    order = fgraph.toposort()
    inner = [v for node in order for v in node.outputs]
    compiled = Compiled(FunctionGraph(fgraph.inputs, list(fgraph.outputs) + inner))
    reference = py.compile_graph(FunctionGraph(fgraph.inputs, list(fgraph.outputs) + inner))
    original = py.compile_graph(unrewritten)
    n_out = len(fgraph.outputs)

    def checked(what, run, values):
        copies = [v.copy() for v in values]
        results = run(*values)
        for pos, (before, after) in enumerate(zip(copies, values)):
            if not np.array_equal(before, after, equal_nan=True):
                var = fgraph.inputs[pos]
                raise DebugModeError(f"{label}: {what} mutated input {pos} ({var})")
        return results

    def compiled_run(*values):
        compiled.compile_for(values)
        return compiled.run(*values)

    def run(*values):
        want = checked("the interpreter", reference, values)
        got = checked("the Numba backend", compiled_run, values)
        # nodes in topological order first: the first wrong node explains the rest
        for k in [*range(n_out, len(got)), *range(n_out)]:
            problem = agree(got[k], want[k])
            if problem is None:
                continue
            if k < n_out:
                raise DebugModeError(
                    f"{label}: the Numba backend and the interpreter disagree on output {k} "
                    f"({fgraph.outputs[k]}): {problem}"
                )
            node = inner[k - n_out].owner
            raise DebugModeError(
                f"{label}: the Numba backend and the interpreter disagree on node {node.op} "
                f"(output {inner[k - n_out].index}): {problem}; node built at {node.trace}"
            )
        plain = checked("the unrewritten graph", original, values)
        for k, (a, b) in enumerate(zip(want[:n_out], plain)):
            problem = agree(a, b, rewritten=True)
            if problem is not None:
                raise DebugModeError(
                    f"{label}: the rewritten and the unrewritten graph disagree on output {k} "
                    f"({unrewritten.outputs[k]}): {problem}; exclude rewrites with "
                    "fg.Mode(exclude=...) to find the one responsible"
                )
        return list(got[:n_out])

    return run


__all__ = ["BACKEND", "DebugBackend", "agree", "debug_runner"]
