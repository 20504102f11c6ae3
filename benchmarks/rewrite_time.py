"""Rewrite time per pass on training graphs (gradient + SGD updates) of a deep MLP and of
logistic regression, with node counts before and after.

    python -m benchmarks.rewrite_time [--layers 20] [--width 256] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
from time import perf_counter

import numpy as np

import fusegraph as fg
from fusegraph.graph import toposort
from fusegraph.rewrites.identity import remove_forward_identities
from fusegraph.rewrites.passes import optimize


def mlp_step(layers=20, width=256, classes=10, lr=0.01):
    """The outputs of one SGD step (cost, then each parameter's new value) of a
    ``layers``-deep tanh MLP with a softmax cross-entropy cost."""
    rng = np.random.default_rng(0)
    x, y = fg.matrix("x"), fg.vector("y", dtype="int64")
    params, h = [], x
    for i in range(layers):
        n_out = classes if i == layers - 1 else width
        w = fg.shared(rng.normal(scale=width**-0.5, size=(width, n_out)), f"W{i}")
        b = fg.shared(np.zeros(n_out), f"b{i}")
        params += [w, b]
        z = h.dot(w) + b
        h = fg.softmax(z) if i == layers - 1 else fg.tanh(z)
    cost = fg.categorical_crossentropy(h, y).mean()
    return [cost] + _sgd(cost, params, lr)


def logreg_step(features=100, lr=0.1, l2=1e-3):
    """The outputs of one SGD step of L2-regularised logistic regression."""
    x, y = fg.matrix("x"), fg.vector("y")
    w = fg.shared(np.zeros(features), "w")
    b = fg.shared(0.0, "b")
    p = fg.sigmoid(x.dot(w) + b)
    cost = fg.binary_crossentropy(p, y).mean() + l2 * (w * w).sum()
    return [cost] + _sgd(cost, [w, b], lr)


def _sgd(cost, params, lr):
    return [p - lr * g for p, g in zip(params, fg.grad(cost, params))]


GRAPHS = {
    "mlp": lambda args: mlp_step(args.layers, args.width),
    "logreg": lambda args: logreg_step(),
}


def measure(outputs, repeat):
    """Median seconds per pass (and in total) over ``repeat`` runs of ``optimize``, node
    counts before and after, and the number of rewrites of one run."""
    outputs = remove_forward_identities(outputs)
    runs, totals = [], []
    for _ in range(repeat):
        start = perf_counter()
        new, stats = optimize(outputs)
        totals.append(perf_counter() - start)
        runs.append(stats["seconds"])
    passes = list(runs[0])
    seconds = {p: statistics.median(r[p] for r in runs) for p in passes}
    seconds["total"] = statistics.median(totals)
    return {
        "seconds": seconds,
        "before": len(toposort(outputs)),
        "after": len(toposort(new)),
        "rewrites": sum(stats["rewrites"].values()),
    }


def table(results) -> str:
    """The results as a fixed-width text table (milliseconds per pass)."""
    passes = list(next(iter(results.values()))["seconds"])
    head = ["graph", "nodes before", "nodes after", "rewrites"] + [f"{p} ms" for p in passes]
    rows = [
        [name, str(r["before"]), str(r["after"]), str(r["rewrites"])]
        + [f"{1000 * r['seconds'][p]:.1f}" for p in passes]
        for name, r in results.items()
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(cells):
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--layers", type=int, default=20, help="MLP depth")
    parser.add_argument("--width", type=int, default=256, help="MLP hidden width")
    parser.add_argument("--repeat", type=int, default=5, help="runs per graph (median)")
    args = parser.parse_args(argv)
    results = {}
    for name, build in GRAPHS.items():
        label = f"mlp-{args.layers}x{args.width}" if name == "mlp" else name
        results[label] = measure(build(args), args.repeat)
    print(table(results))
    return results


if __name__ == "__main__":
    main()
