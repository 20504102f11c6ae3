"""What an object-mode call costs (``fg.as_op`` ops, and ops without a Numba kernel): the
same graph with the middle op as a registered kernel and as ``fg.as_op``, per call and cold
compile, at several sizes, interleaved rounds, medians.

    python -m benchmarks.pycall [--rounds 5]

The graph is ``exp(neg(sin(x)) * 2)``: ``neg`` built in (fused into one loop with ``sin``
and ``exp``), then ``neg`` as an ``as_op`` (``np.negative``, which splits the loop in two
around an object-mode call).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from time import perf_counter

import numpy as np

SIZES = (1, 1_000, 100_000)

_COMPILE = """
import sys, time
import fusegraph as fg
import numpy as np
vec = fg.TensorType("float64", (None,))
neg = fg.as_op([vec], [vec])(np.negative) if sys.argv[1] == "as_op" else fg.neg
x = fg.vector("x")
start = time.perf_counter()
f = fg.function([x], fg.exp(neg(fg.sin(x)) * 2))
print(time.perf_counter() - start)
"""


def build(kind):
    import fusegraph as fg

    vec = fg.TensorType("float64", (None,))
    neg = fg.as_op([vec], [vec])(np.negative) if kind == "as_op" else fg.neg
    x = fg.vector("x")
    return fg.function([x], fg.exp(neg(fg.sin(x)) * 2))


def per_call(f, x, budget=0.2):
    """Median seconds per call of ``f(x)`` over batches filling ``budget`` seconds."""
    f(x)
    n, times = 1, []
    while True:
        start = perf_counter()
        for _ in range(n):
            f(x)
        took = perf_counter() - start
        if took > budget / 10:
            break
        n *= 4
    for _ in range(7):
        start = perf_counter()
        for _ in range(n):
            f(x)
        times.append((perf_counter() - start) / n)
    return statistics.median(times)


def cold_compile(kind) -> float:
    """Seconds of ``fg.function`` in a fresh process with an empty cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, FUSEGRAPH_CACHE_DIR=cache, NUMBA_CACHE_DIR=cache)
        env["FUSEGRAPH_PROGRESS"] = "0"
        out = subprocess.run(
            [sys.executable, "-c", _COMPILE, kind], env=env, capture_output=True, text=True
        )
        if out.returncode:
            raise RuntimeError(out.stderr)
        return float(out.stdout.split()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    functions = {kind: build(kind) for kind in ("kernel", "as_op")}
    rows = {(kind, n): [] for kind in functions for n in SIZES}
    compiles = {kind: [] for kind in functions}
    rng = np.random.default_rng(0)
    inputs = {n: rng.normal(size=n) for n in SIZES}
    want = {n: np.exp(-np.sin(x) * 2) for n, x in inputs.items()}
    for f in functions.values():
        for n, x in inputs.items():
            np.testing.assert_allclose(f(x), want[n], rtol=1e-12)
    for _ in range(args.rounds):
        for kind, f in functions.items():
            for n, x in inputs.items():
                rows[kind, n].append(per_call(f, x))
            compiles[kind].append(cold_compile(kind))
    print(f"object-mode call cost, median of {args.rounds} interleaved rounds")
    print(f"{'size':>8} {'kernel us':>10} {'as_op us':>10} {'added us':>9} {'ratio':>6}")
    for n in SIZES:
        k = statistics.median(rows["kernel", n]) * 1e6
        p = statistics.median(rows["as_op", n]) * 1e6
        print(f"{n:>8} {k:>10.2f} {p:>10.2f} {p - k:>9.2f} {p / k:>6.2f}")
    k, p = (statistics.median(compiles[kind]) for kind in ("kernel", "as_op"))
    print(f"cold compile: kernel {k:.2f} s, as_op {p:.2f} s ({p / k:.2f}x)")


if __name__ == "__main__":
    main()
