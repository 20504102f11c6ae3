"""The benchmark suite: each workload in each variant, checked against NumPy, then timed.

Workloads: fused elementwise ``exp(-x**2) * sin(y) + log1p(z*z)`` (1e3, 1e5, 1e7 float64),
logistic-regression cost and gradient (10000 x 100), one SGD step of an MLP 784-256-10
(tanh, softmax cross-entropy, batch 128, float32), the call overhead of ``x + 1`` on one
element, and compile times (cold and warm cache, fresh processes) split into rewriting,
code generation and Numba/LLVM.

Variants: fusegraph ``numba``, ``numba`` without fusion, ``py`` (interpreted), hand-written
NumPy, a hand-written ``@njit`` loop where one applies, and PyTensor and JAX when installed
(they are not dependencies; they are skipped otherwise).

Every variant's result is compared with NumPy's before it is timed; a time is the median
of ``repeat`` runs after a warm-up call.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from time import perf_counter

import numpy as np

import fusegraph as fg
from benchmarks.backend import bare_add, hand_fused, logreg_function, logreg_numpy, numpy_fused

NO_FUSION = fg.Mode(exclude=("fusion",))
#: Sizes and repeats of the three run lengths.
_MLP = (784, 256, 10, 128)  # inputs, hidden units, classes, batch
PLANS = {
    "full": {"fused": (10**3, 10**5, 10**7), "rows": 10_000, "mlp": _MLP, "repeat": 9},
    "quick": {"fused": (10**3, 10**5, 10**6), "rows": 10_000, "mlp": _MLP, "repeat": 5},
    "smoke": {"fused": (10,), "rows": 50, "mlp": (12, 8, 3, 4), "repeat": 1},
}


@dataclass
class Result:
    """One workload: the median seconds per call of each variant that ran."""

    workload: str
    seconds: dict = field(default_factory=dict)
    note: str = ""


def _medians(calls: dict, repeat: int, number: int = 1) -> dict:
    """Median seconds per call of each zero-argument callable in ``calls``: a warm-up
    call, then ``repeat`` runs of ``number`` calls, one variant after the other. (Runs
    interleaved across variants measured a fused fusegraph loop 2-3x slower than alone:
    the BLAS threads of the NumPy variant that ran just before still spin on both cores.)"""
    medians = {}
    for name, call in calls.items():
        call()
        times = []
        for _ in range(repeat):
            t0 = perf_counter()
            for _ in range(number):
                call()
            times.append((perf_counter() - t0) / number)
        medians[name] = statistics.median(times)
    return medians


def _bound(variants: dict, args: tuple) -> dict:
    return {name: functools.partial(fn, *args) for name, fn in variants.items()}


def _close(got, want, rtol):
    got = got if isinstance(got, (list, tuple)) else [got]
    want = want if isinstance(want, (list, tuple)) else [want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)


def _progress(text):
    print(f"  ... {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- workloads


def fused(n, repeat) -> Result:
    rng = np.random.default_rng(0)
    args = tuple(rng.normal(size=n) for _ in range(3))
    x, y, z = fg.vector("x"), fg.vector("y"), fg.vector("z")
    expr = fg.exp(-x * x) * fg.sin(y) + fg.log1p(z * z)
    variants = {
        "fusegraph numba": fg.function([x, y, z], expr),
        "fusegraph numba, no fusion": fg.function([x, y, z], expr, mode=NO_FUSION),
        "fusegraph py": fg.function([x, y, z], expr, mode="py"),
        "NumPy": numpy_fused,
        "hand-written @njit": hand_fused,
    }
    variants.update(_peers_fused())
    want = numpy_fused(*args)
    result = Result(f"fused elementwise, {n:.0e} float64")
    number = max(1, 10**5 // n)
    for name, fn in variants.items():
        _progress(f"{result.workload}: {name}")
        _close(fn(*args), want, 1e-12)
    result.seconds = _medians(_bound(variants, args), repeat, number)
    return result


def logreg(rows, repeat) -> Result:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 100))
    y = (rng.random(rows) < 0.5).astype("float64")
    args = (X, y, rng.normal(size=100) * 0.1, np.array(0.1))
    f = logreg_function()
    variants = {
        "fusegraph numba": f,
        "fusegraph numba, no fusion": fg.function(f.inputs, f.outputs, mode=NO_FUSION),
        "fusegraph py": fg.function(f.inputs, f.outputs, mode="py"),
        "NumPy": logreg_numpy,
        **_peers_logreg(),
    }
    want = logreg_numpy(*args)
    result = Result(f"logistic regression cost + gradient, {rows} x 100")
    for name, fn in variants.items():
        _progress(f"{result.workload}: {name}")
        _close(list(fn(*args)), list(want), 1e-9)
    result.seconds = _medians(_bound(variants, args), repeat, 5)
    return result


def _mlp_data(sizes):
    n_in, n_hidden, n_out, batch = sizes
    rng = np.random.default_rng(0)
    params = [
        (rng.normal(size=(n_in, n_hidden)) * 0.05).astype("float32"),
        np.zeros(n_hidden, "float32"),
        (rng.normal(size=(n_hidden, n_out)) * 0.05).astype("float32"),
        np.zeros(n_out, "float32"),
    ]
    x = rng.normal(size=(batch, n_in)).astype("float32")
    t = rng.integers(0, n_out, batch)
    return params, x, t


def mlp_numpy_step(params, x, t, lr=0.1):
    """One SGD step in NumPy: the loss and the new parameters (the reference)."""
    W1, b1, W2, b2 = params
    h = np.tanh(x @ W1 + b1)
    z = h @ W2 + b2
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    batch = len(t)
    loss = -logp[np.arange(batch), t].mean()
    dz = np.exp(logp)
    dz[np.arange(batch), t] -= 1
    dz /= batch
    dh = (dz @ W2.T) * (1 - h * h)
    grads = [x.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]
    return loss, [p - np.float32(lr) * g for p, g in zip(params, grads)]


def _mlp_function(params, mode):
    shared = [fg.shared(p.copy(), n) for p, n in zip(params, ("W1", "b1", "W2", "b2"))]
    W1, b1, W2, b2 = shared
    x, t = fg.matrix("x", dtype="float32"), fg.vector("t", dtype="int64")
    h = fg.tanh(x.dot(W1) + b1)
    loss = fg.categorical_crossentropy(fg.softmax(h.dot(W2) + b2), t).mean()
    grads = fg.grad(loss, shared)
    updates = [(p, p - 0.1 * g) for p, g in zip(shared, grads)]
    return fg.function([x, t], loss, updates=updates, mode=mode), shared


def mlp(sizes, repeat) -> Result:
    params, x, t = _mlp_data(sizes)
    want_loss, want_params = mlp_numpy_step(params, x, t)
    result = Result("MLP {}-{}-{} SGD step, batch {}, float32".format(*sizes))
    calls = {}
    for name, mode in (
        ("fusegraph numba", None),
        ("fusegraph numba, no fusion", NO_FUSION),
        ("fusegraph py", "py"),
    ):
        _progress(f"{result.workload}: {name}")
        f, shared = _mlp_function(params, mode)
        _close(f(x, t), want_loss, 1e-4)
        _close([s.get_value() for s in shared], want_params, 1e-4)
        calls[name] = functools.partial(f, x, t)
    for name, step in _peers_mlp().items():
        _progress(f"{result.workload}: {name}")
        loss, new_params = step(params, x, t)
        _close(loss, want_loss, 1e-4)
        _close(list(new_params), want_params, 1e-4)
        calls[name] = functools.partial(step, params, x, t)
    state = [p.copy() for p in params]

    def numpy_step():
        loss, new = mlp_numpy_step(state, x, t)
        state[:] = new
        return loss

    calls["NumPy"] = numpy_step
    result.seconds = _medians(calls, repeat, 3)
    return result


def overhead(repeat) -> Result:
    x = fg.vector("x")
    v = np.ones(1)
    variants = {
        "fusegraph numba": fg.function([x], x + 1),
        "fusegraph numba, trust_input": fg.function([x], x + 1, trust_input=True),
        "fusegraph py": fg.function([x], x + 1, mode="py"),
        "NumPy": lambda a: a + 1,
        "hand-written @njit": bare_add,
    }
    result = Result("call overhead, x + 1 on 1 element")
    for name, fn in variants.items():
        _progress(f"{result.workload}: {name}")
        _close(fn(v), v + 1, 0)
    result.seconds = _medians(_bound(variants, (v,)), max(repeat, 3), 20_000)
    return result


_COMPILE = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    import fusegraph as fg
    from benchmarks import suite
    from fusegraph.backends.numba.codegen import Module
    t_import = time.perf_counter()
    if {which!r} == "logreg":
        f = suite.logreg_function()
        rng = np.random.default_rng(0)
        args = (rng.normal(size=(100, 100)), np.ones(100), np.zeros(100), np.array(0.0))
    else:
        params, x, t = suite._mlp_data((784, 256, 10, 128))
        f, _ = suite._mlp_function(params, None)
        args = (x, t)
    f(*args)
    t_end = time.perf_counter()
    rewrite = sum(f.rewrite_stats["seconds"].values())
    t = time.perf_counter()
    Module(f.graph)
    codegen = time.perf_counter() - t
    print(json.dumps(dict(total=t_end - t0, imports=t_import - t0, rewrite=rewrite,
                          codegen=codegen, numba=t_end - t_import - rewrite - codegen)))
    """
)


def compile_times(repeat) -> list[Result]:
    """Fresh processes from ``import fusegraph`` to the first result, with an empty then a
    warm cache; the total, and its rewrite, code generation and Numba/LLVM parts."""
    results = []
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for which in ("logreg", "mlp"):
        runs = {"cold": [], "warm": []}
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, FUSEGRAPH_CACHE_DIR=cache, PYTHONPATH=root)
                for kind in ("cold", "warm"):
                    _progress(f"compile {which}, {kind} cache")
                    out = subprocess.run(
                        [sys.executable, "-c", _COMPILE.format(which=which)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    runs[kind].append(json.loads(out.stdout.splitlines()[-1]))
        for kind, parts in runs.items():
            best = min(parts, key=lambda p: p["total"])
            name = "logistic regression" if which == "logreg" else "MLP step"
            results.append(Result(f"compile {name}, {kind} cache", dict(best)))
    return results


# --------------------------------------------------------------------------- optional peers


def _peers_fused() -> dict:
    """JAX ``jit`` and PyTensor (C and NUMBA modes) for the fused workload, if installed."""
    peers = {}
    jax = _jax()
    if jax is not None:
        jnp = jax.numpy
        jitted = jax.jit(lambda x, y, z: jnp.exp(-x * x) * jnp.sin(y) + jnp.log1p(z * z))
        peers["JAX jit"] = lambda *a: np.asarray(jitted(*a))
    try:
        import pytensor
        import pytensor.tensor as pt

        x, y, z = pt.dvector("x"), pt.dvector("y"), pt.dvector("z")
        expr = pt.exp(-x * x) * pt.sin(y) + pt.log1p(z * z)
        for mode in ("FAST_RUN", "NUMBA"):
            peers[f"PyTensor {mode}"] = pytensor.function([x, y, z], expr, mode=mode)
    except ImportError:
        pass
    return peers


def _jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def _peers_logreg() -> dict:
    jax = _jax()
    if jax is None:
        return {}
    jnp = jax.numpy

    def cost(w, b, X, y):
        z = X @ w + b
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 1e-3 * (w @ w)

    value_and_grad = jax.jit(jax.value_and_grad(cost, argnums=(0, 1)))

    def run(X, y, w, b):
        c, (gw, gb) = value_and_grad(w, b, X, y)
        return np.asarray(c), np.asarray(gw), np.asarray(gb)

    return {"JAX jit": run}


def _peers_mlp() -> dict:
    """JAX's jitted SGD step (functional: it returns the new parameters)."""
    jax = _jax()
    if jax is None:
        return {}
    jnp = jax.numpy

    def loss(params, x, t):
        W1, b1, W2, b2 = params
        logp = jax.nn.log_softmax(jnp.tanh(x @ W1 + b1) @ W2 + b2)
        return -jnp.mean(logp[jnp.arange(t.shape[0]), t])

    @jax.jit
    def step(params, x, t):
        value, grads = jax.value_and_grad(loss)(params, x, t)
        return value, [p - 0.1 * g for p, g in zip(params, grads)]

    def run(params, x, t):
        value, new = step(params, x, t)
        return np.asarray(value), [np.asarray(p) for p in new]

    return {"JAX jit": run}


# --------------------------------------------------------------------------- the run


def run(plan: str = "quick") -> list[Result]:
    """Every workload of ``plan`` ("full", "quick" or "smoke"), in order."""
    p = PLANS[plan]
    results = [fused(n, p["repeat"]) for n in p["fused"]]
    results.append(logreg(p["rows"], p["repeat"]))
    results.append(mlp(p["mlp"], p["repeat"]))
    results.append(overhead(p["repeat"]))
    results += compile_times(1 if plan != "full" else 2)
    return results


def table(results: list[Result]) -> str:
    """Markdown: per workload, each variant's median and its ratios to NumPy and to
    fusegraph ``py`` (a ratio > 1 is slower); compile rows give their parts in seconds."""
    lines = []
    for r in results:
        lines.append(f"\n### {r.workload}\n")
        if r.workload.startswith("compile"):
            lines.append("| total | imports | rewrite | code generation | Numba/LLVM |")
            lines.append("|---|---|---|---|---|")
            s = r.seconds
            lines.append(
                f"| {s['total']:.2f} s | {s['imports']:.2f} | {s['rewrite']:.3f} "
                f"| {s['codegen']:.3f} | {s['numba']:.2f} |"
            )
            continue
        numpy_t, py_t = r.seconds.get("NumPy"), r.seconds.get("fusegraph py")
        lines.append("| variant | median | / NumPy | / fusegraph py |")
        lines.append("|---|---|---|---|")
        for name, t in r.seconds.items():
            lines.append(
                f"| {name} | {_fmt(t)} | {t / numpy_t:.2f} | {t / py_t:.3f} |"
                if numpy_t and py_t
                else f"| {name} | {_fmt(t)} | | |"
            )
    return "\n".join(lines) + "\n"


def _fmt(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.0f} ns"


__all__ = ["PLANS", "Result", "mlp_numpy_step", "run", "table"]
