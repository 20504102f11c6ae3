"""Helpers of the loop-generator tests (tests/backends/test_loops.py, test_parallel.py):
the kernel nodes of a fused graph, and comparison within a number of ulps."""

from __future__ import annotations

import numpy as np

from fusegraph.graph import toposort
from fusegraph.ops.elemwise import Elemwise
from fusegraph.ops.fused import FusedElemwise
from fusegraph.rewrites.fusion import fuse


def kernel_nodes(outputs):
    """The Elemwise and FusedElemwise nodes of ``fuse(outputs)``, in order."""
    nodes = toposort(fuse(outputs))
    return [n for n in nodes if isinstance(n.op, (Elemwise, FusedElemwise))]


def assert_ulps(got, want, ulps):
    """``got`` equals ``want``: floats within ``ulps`` units of eps relative to
    max(1, |values|), anything else (and floats with ``ulps=0``) exactly, NaN included."""
    if want.dtype.kind == "f" and ulps:
        tol = ulps * np.finfo(want.dtype).eps
        # absolute part: sums of rounded terms cancel (1 ulp of a term, not of the sum)
        finite = np.abs(want[np.isfinite(want)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
    else:
        np.testing.assert_array_equal(got, want)
