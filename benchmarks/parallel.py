"""Serial against parallel kernels of the loop generator (``loops.kernel_source(...,
parallel)``): the fused exp(-x*x) * sin(y) + log1p(z*z) on 1e7 float64, the same
expression summed over the trailing and over the leading axis of 1000 x 10000, a cheap
memory-bound x*y + z, and the fused expression around the size threshold.

    python -m benchmarks.parallel [--n 10000000] [--repeat 7] [--no-sizes]

Prints the best (and median) wall time over the repeats, after a warm-up call, and the ratio
serial / parallel; the compile times are those of a fresh cache directory. Timings are only
meaningful on an otherwise idle machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from time import perf_counter

import numba
import numpy as np

import fusegraph as fg
from benchmarks.timing import wall_times
from fusegraph.backends.numba import cache, loops
from fusegraph.graph import toposort
from fusegraph.ops.fused import FusedElemwise
from fusegraph.rewrites.fusion import fuse


def fused_node(outputs):
    """The one FusedElemwise node of ``fuse(outputs)``."""
    nodes = [n for n in toposort(fuse(outputs)) if isinstance(n.op, FusedElemwise)]
    if len(nodes) != 1:
        raise RuntimeError(f"expected one fused node, got {nodes}")
    return nodes[0]


def compile_pair(node, name):
    """The serial and the parallel kernel of ``node``, and their compile times (s): each
    compiled alone, on its first call (tiny arguments of the right types)."""
    in_types = [v.type for v in node.inputs]
    out_types = [v.type for v in node.outputs]
    tiny = [np.ones((1,) * t.ndim, t.dtype) for t in in_types]
    fns, times = [], []
    for parallel in (False, True):
        src = loops.kernel_source(node.op, in_types, out_types, name, parallel)
        t0 = perf_counter()
        fn = getattr(cache.load_module(loops.module_source([src])), name)
        fn(*tiny)
        times.append(perf_counter() - t0)
        fns.append(fn)
    return fns, times


def timing(fn, args, repeat):
    """(best, median) wall time of fn(*args) in ms, after one warm-up call."""
    times = wall_times(fn, args, repeat)
    return 1e3 * min(times), 1e3 * statistics.median(times)


def same(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b))


def row(label, fns, args, repeat):
    """Time the serial kernel and the parallel one(s); print ms and serial / parallel."""
    best, medians, outs = [], [], []
    for fn in fns:
        t, m = timing(fn, args, repeat)
        best.append(t)
        medians.append(m)
        outs.append(fn(*args))
    equal = all(same(outs[0], o) for o in outs[1:])
    cells = " ".join(f"{t:9.3f}" for t in best)
    ratios = " ".join(f"{best[0] / t:6.2f}x" for t in best[1:])
    median = " / ".join(f"{m:.3f}" for m in medians)
    print(f"{label:30s} {cells} {ratios}  (median {median}){'' if equal else '  DIFFER'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-sizes", action="store_true", help="skip the threshold sizes")
    args = parser.parse_args(argv)
    os.environ.setdefault("FUSEGRAPH_CACHE_DIR", tempfile.mkdtemp(prefix="fg-bench-"))
    rng = np.random.default_rng(0)

    x, y, z = fg.vector("x"), fg.vector("y"), fg.vector("z")
    a, b, c = fg.matrix("a"), fg.matrix("b"), fg.matrix("c")

    def expr(u, v, w):
        return fg.exp(-(u * u)) * fg.sin(v) + fg.log1p(w * w)

    kernels = {
        "fused": fused_node([expr(x, y, z)]),
        "trailing sum": fused_node([fg.sum(expr(a, b, c), axis=1)]),
        "leading sum": fused_node([fg.sum(expr(a, b, c), axis=0)]),
        "x*y+z": fused_node([x * y + z]),
    }
    compiled = {}
    print(f"cores {os.cpu_count()}, numba threads {numba.get_num_threads()}, ", end="")
    print(f"threshold {loops.PARALLEL_MIN_SIZE} elements")
    print(f"{'compile time (fresh cache)':30s} {'serial s':>9s} {'parallel s':>10s}")
    for j, (label, node) in enumerate(kernels.items()):
        compiled[label], (cs, cp) = compile_pair(node, f"k{j}")
        print(f"{label:30s} {cs:9.2f} {cp:10.2f}")
    print(f"threading layer {numba.threading_layer()}")

    n = args.n
    vec = [rng.standard_normal(n) for _ in range(3)]
    rows, cols = 1000, max(1, n // 1000)
    mat = [v[: rows * cols].reshape(rows, cols) for v in vec]
    print(f"\nload average {os.getloadavg()[0]:.2f} (timings need an idle machine)")
    head = f"best of {args.repeat}, ms"
    print(f"{head:30s} {'serial':>9s} {'parallel':>9s} {'ratio':>7s}")
    row(f"fused, {n:.0e}", compiled["fused"], vec, args.repeat)
    row(f"trailing sum, {rows} x {cols}", compiled["trailing sum"], mat, args.repeat)
    row(f"leading sum, {rows} x {cols}", compiled["leading sum"], mat, args.repeat)
    row(f"x*y+z, {n:.0e}", compiled["x*y+z"], vec, args.repeat)
    if not args.no_sizes:
        # the threshold: parallel kernels made without it (prange at any size) against
        # the serial kernel and the parallel one with it
        threshold = loops.PARALLEL_MIN_SIZE
        loops.PARALLEL_MIN_SIZE = 1
        try:
            anysize = {
                label: compile_pair(kernels[label], f"t{j}")[0][1]
                for j, label in enumerate(("fused", "x*y+z"))
            }
        finally:
            loops.PARALLEL_MIN_SIZE = threshold
        print(f"\n{'around the threshold, ms':30s} {'serial':>9s} {'prange':>9s} ", end="")
        print(f"{'parallel':>9s}  (prange: parallel kernel without the threshold)")
        for size in (2**8, 2**10, 2**12, 2**13, 2**14, 2**15, 2**16, 2**18):
            part = [v[:size] for v in vec]
            reps = max(args.repeat, min(2000, 2**24 // size))
            for label in ("fused", "x*y+z"):
                fns = [compiled[label][0], anysize[label], compiled[label][1]]
                row(f"{label}, {size}", fns, part, reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
