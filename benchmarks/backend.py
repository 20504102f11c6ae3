"""The Numba backend's targets (issue 5), as ratios measured in one run:

* fused elementwise ``exp(-x*x) * sin(y) + log1p(z*z)`` on 1e7 float64: fusegraph against
  NumPy eager and a hand-written single-thread Numba loop, and ``parallel=True`` against
  the serial function;
* logistic-regression cost and gradient (10000 x 100) against NumPy eager;
* call overhead of a 1-element ``x + 1`` against a bare ``@numba.njit`` function;
* compile time in fresh processes, from ``import fusegraph`` to the first result, with an
  empty and with a warm cache (logistic regression; MLP 784-256-10 SGD step).

    python -m benchmarks.backend [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

import numba
import numpy as np

import fusegraph as fg
from benchmarks.timing import wall_times


def best_ms(fn, args, repeat=7, number=1):
    return min(wall_times(fn, args, repeat, number)) * 1e3


# ------------------------------------------------------------------------------ kernels


@numba.njit(error_model="numpy")
def hand_fused(x, y, z):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = math.exp(-x[i] * x[i]) * math.sin(y[i]) + math.log1p(z[i] * z[i])
    return out


def numpy_fused(x, y, z):
    return np.exp(-x * x) * np.sin(y) + np.log1p(z * z)


def fused(n, repeat):
    rng = np.random.default_rng(0)
    x, y, z = (rng.normal(size=n) for _ in range(3))
    sx, sy, sz = fg.vector("x"), fg.vector("y"), fg.vector("z")
    expr = fg.exp(-sx * sx) * fg.sin(sy) + fg.log1p(sz * sz)
    serial = fg.function([sx, sy, sz], expr)
    parallel = fg.function([sx, sy, sz], expr, mode=fg.Mode(parallel=True))
    np.testing.assert_allclose(serial(x, y, z), numpy_fused(x, y, z), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(parallel(x, y, z), serial(x, y, z))
    rows = {
        "NumPy eager": best_ms(numpy_fused, (x, y, z), repeat),
        "hand-written Numba loop (math.*)": best_ms(hand_fused, (x, y, z), repeat),
        "fusegraph": best_ms(serial, (x, y, z), repeat),
        "fusegraph parallel=True": best_ms(parallel, (x, y, z), repeat),
    }
    print(f"\n### Fused elementwise, {n:.0e} float64 (best of {repeat}, ms)\n")
    _table(rows, "fusegraph")
    print(
        f"\nparallel / serial speed-up: {rows['fusegraph'] / rows['fusegraph parallel=True']:.2f}x"
        f" on {numba.config.NUMBA_NUM_THREADS} threads"
    )


def logreg_numpy(X, y, w, b):
    z = X @ w + b
    p = 1 / (1 + np.exp(-z))
    eps = np.log1p(np.exp(-np.abs(z)))
    cost = np.mean(np.maximum(z, 0) - z * y + eps) + 1e-3 * (w @ w)
    g = (p - y) / len(y)
    return cost, X.T @ g + 2e-3 * w, g.sum()


def logreg_function():
    X, y = fg.matrix("X"), fg.vector("y")
    w, b = fg.vector("w"), fg.scalar("b")
    p = fg.sigmoid(X.dot(w) + b)
    cost = fg.binary_crossentropy(p, y).mean() + 1e-3 * (w * w).sum()
    gw, gb = fg.grad(cost, [w, b])
    return fg.function([X, y, w, b], [cost, gw, gb])


def logreg(repeat):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10000, 100))
    y = (rng.random(10000) < 0.5).astype("float64")
    w, b = rng.normal(size=100) * 0.1, np.array(0.1)
    f = logreg_function()
    for got, want in zip(f(X, y, w, b), logreg_numpy(X, y, w, b)):
        np.testing.assert_allclose(got, want, rtol=1e-10)
    rows = {
        "NumPy eager": best_ms(logreg_numpy, (X, y, w, b), repeat, 5),
        "fusegraph": best_ms(f, (X, y, w, b), repeat, 5),
        "fusegraph (py backend)": best_ms(
            fg.function(f.inputs, f.outputs, mode="py"), (X, y, w, b), repeat, 5
        ),
    }
    print(f"\n### Logistic regression cost + gradient, 10000 x 100 (best of {repeat}, ms)\n")
    _table(rows, "fusegraph")


@numba.njit
def bare_add(x):
    return x + 1


def overhead(rounds):
    x = fg.vector("x")
    f = fg.function([x], x + 1)
    trusted = fg.function([x], x + 1, trust_input=True)
    v = np.ones(1)
    calls = {"bare @njit": bare_add, "Function": f, "Function trust_input": trusted}
    samples = {k: [] for k in calls}
    for _ in range(rounds):  # interleaved, so that the machine's noise hits all alike
        for name, fn in calls.items():
            samples[name].append(best_ms(fn, (v,), 3, 20000) * 1e6)
    rows = {k: statistics.median(v) for k, v in samples.items()}
    print("\n### Call overhead, 1-element `x + 1` (median of interleaved rounds, ns)\n")
    _table(rows, "bare @njit", unit="ns", ratio_of="bare @njit")


def compile_times(repeat):
    """The suite's compile measurement (fresh processes; its MLP is the benchmark issue's:
    tanh, float32, batch 128)."""
    from benchmarks.suite import compile_times as measure

    print(f"\n### Compile, fresh process from import to first result (best of {repeat}, s)\n")
    print("| case | seconds |\n|---|---|")
    for result in measure(repeat):
        print(f"| {result.workload} | {result.seconds['fusegraph numba']:.2f} |")


def _table(rows, ours, unit="ms", ratio_of=None):
    base = rows[ratio_of or ours]
    print(f"| variant | {unit} | {'ratio to ' + (ratio_of or ours)} |\n|---|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.3g} | {value / base:.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args(argv)
    print(f"numba {numba.__version__}, numpy {np.__version__}, {os.cpu_count()} cores")
    fused(10**6 if args.quick else 10**7, 3 if args.quick else 7)
    logreg(3 if args.quick else 7)
    overhead(3 if args.quick else 15)
    compile_times(1 if args.quick else 2)


if __name__ == "__main__":
    main()
