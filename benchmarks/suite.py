"""The benchmark suite: each workload in each variant, checked against NumPy, then timed.

Workloads: fused elementwise ``exp(-x**2) * sin(y) + log1p(z*z)`` (1e3, 1e5, 1e7 float64),
logistic-regression cost and gradient (10000 x 100), one SGD step of an MLP 784-256-10
(tanh, softmax cross-entropy, batch 128, float32), the call overhead of ``x + 1`` on one
element, and compile times (cold and warm cache, fresh processes) split into rewriting,
code generation and the compile proper (Numba/LLVM, or PyTensor's C compiler).

Variants: fusegraph ``numba``, ``numba`` without fusion, ``py`` (interpreted), hand-written
NumPy, a hand-written ``@njit`` loop where one applies, and when installed (they are not
dependencies; they are skipped otherwise) JAX ``jit`` and PyTensor in its C and NUMBA modes,
PyTensor in every workload including compile times.

Every variant's result is compared with NumPy's before it is timed; a time is the median
of ``repeat`` runs after a warm-up call.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from importlib import metadata
from time import perf_counter

import numpy as np

import fusegraph as fg
from benchmarks.backend import bare_add, hand_fused, logreg_function, logreg_numpy, numpy_fused

NO_FUSION = fg.Mode(exclude=("fusion",))
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Sizes and repeats of the three run lengths.
_MLP = (784, 256, 10, 128)  # inputs, hidden units, classes, batch
PLANS = {
    "full": {"fused": (10**3, 10**5, 10**7), "rows": 10_000, "mlp": _MLP, "repeat": 9},
    "quick": {"fused": (10**3, 10**5, 10**6), "rows": 10_000, "mlp": _MLP, "repeat": 5},
    "smoke": {"fused": (10,), "rows": 50, "mlp": (12, 8, 3, 4), "repeat": 1},
}


@dataclass
class Result:
    """One workload: the median seconds per call of each variant that ran (for a compile
    time, the best total, and in ``parts`` its parts)."""

    workload: str
    seconds: dict = field(default_factory=dict)
    parts: dict = field(default_factory=dict)


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
        **_own(
            lambda: {
                "fusegraph numba": fg.function([x, y, z], expr),
                "fusegraph numba, no fusion": fg.function([x, y, z], expr, mode=NO_FUSION),
                "fusegraph py": fg.function([x, y, z], expr, mode="py"),
                "NumPy": numpy_fused,
                "hand-written @njit": hand_fused,
            }
        ),
        **_jax(_jax_fused),
        **_pytensor(_pt_fused),
    }
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

    def own():
        f = logreg_function()
        return {
            "fusegraph numba": f,
            "fusegraph numba, no fusion": fg.function(f.inputs, f.outputs, mode=NO_FUSION),
            "fusegraph py": fg.function(f.inputs, f.outputs, mode="py"),
            "NumPy": logreg_numpy,
        }

    variants = {
        **_own(own),
        **_jax(_jax_logreg),
        **_pytensor(_pt_logreg),
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
    in_place = {  # a function of x and t that returns the loss and updates its shared params
        **_own(
            lambda: {
                "fusegraph numba": _mlp_function(params, None),
                "fusegraph numba, no fusion": _mlp_function(params, NO_FUSION),
                "fusegraph py": _mlp_function(params, "py"),
            }
        ),
        **_pytensor(functools.partial(_pt_mlp, params)),
    }
    for name, (f, shared) in in_place.items():
        _progress(f"{result.workload}: {name}")
        _close(f(x, t), want_loss, 1e-4)
        _close([s.get_value() for s in shared], want_params, 1e-4)
        calls[name] = functools.partial(f, x, t)
    for name, step in _jax(_jax_mlp).items():
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

    calls.update(_own(lambda: {"NumPy": numpy_step}))
    result.seconds = _medians(calls, repeat, 3)
    return result


def overhead(repeat) -> Result:
    x = fg.vector("x")
    v = np.ones(1)
    variants = {
        **_own(
            lambda: {
                "fusegraph numba": fg.function([x], x + 1),
                "fusegraph numba, trust_input": fg.function([x], x + 1, trust_input=True),
                "fusegraph py": fg.function([x], x + 1, mode="py"),
                "NumPy": lambda a: a + 1,
                "hand-written @njit": bare_add,
            }
        ),
        **_pytensor(_pt_add_one),
        **_pytensor(_pt_add_one, trust_input=True),
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
    import {imports}
    t_import = time.perf_counter()
    from benchmarks import suite  # not timed: a peer's process would not import fusegraph
    t1 = time.perf_counter()
    f, args = suite._compile_case({variant!r}, {which!r})
    f(*args)
    first = time.perf_counter() - t1
    parts = suite._compile_parts({variant!r}, f, first)
    print(json.dumps(dict(total=t_import - t0 + first, imports=t_import - t0, **parts)))
    """
)
#: What each variant's process imports in the timed window: its library, and Numba or SciPy
#: if it loads them while compiling (the untimed ``from benchmarks import suite`` after it
#: imports fusegraph, Numba and, through Numba, SciPy).
_IMPORTS = {
    "fusegraph numba": "fusegraph, numba",
    "PyTensor C": "pytensor.tensor, scipy",
    "PyTensor NUMBA": "pytensor.tensor, numba",
}


def _compile_case(variant: str, which: str):
    """The compiled function of ``which`` ("logreg" or "mlp") in ``variant``, and its arguments."""
    mode = PYTENSOR.get(variant)  # None: fusegraph's default mode
    if which == "logreg":
        rng = np.random.default_rng(0)
        args = (rng.normal(size=(100, 100)), np.ones(100), np.zeros(100), np.array(0.0))
        return (logreg_function() if mode is None else _pt_logreg(mode)), args
    params, x, t = _mlp_data(_MLP)
    return (_mlp_function if mode is None else _pt_mlp)(params, mode)[0], (x, t)


def _compile_parts(variant: str, f, seconds: float) -> dict:
    """The parts of ``seconds``, from building a function to its first result: rewriting,
    code generation (fusegraph's, timed again; PyTensor's is inside its compile) and the
    compile proper (Numba/LLVM, or the C compiler) with the first call."""
    if variant == "fusegraph numba":
        from fusegraph.backends.numba.codegen import Module

        rewrite = sum(f.rewrite_stats["seconds"].values())
        t = perf_counter()
        Module(f.graph)
        codegen = perf_counter() - t
    else:  # PyTensor sums the rewriting of all the process compiled: this one function
        from pytensor.compile.debug import profiling

        rewrite, codegen = profiling.total_graph_rewrite_time, None
    return dict(rewrite=rewrite, codegen=codegen, compile=seconds - rewrite - (codegen or 0))


def compile_times(repeat) -> list[Result]:
    """Fresh processes from importing the library to the first result, with an empty then a
    warm cache (fusegraph's, PyTensor's compile directory and Numba's); the total, and its
    parts (``_compile_parts``). The best of ``repeat`` pairs of runs."""
    variants = [*_own(lambda: ["fusegraph numba"]), *_pytensor(lambda mode: mode)]
    results = []
    for which, label in (("logreg", "logistic regression"), ("mlp", "MLP step")):
        runs = {kind: {v: [] for v in variants} for kind in ("cold", "warm")}
        for _, variant in itertools.product(range(repeat), variants):
            with tempfile.TemporaryDirectory() as cache:
                flags = [os.environ.get("PYTENSOR_FLAGS"), f"base_compiledir={cache}/pytensor"]
                env = dict(
                    os.environ,
                    PYTHONPATH=_ROOT,
                    FUSEGRAPH_CACHE_DIR=cache,
                    NUMBA_CACHE_DIR=os.path.join(cache, "numba"),
                    PYTENSOR_FLAGS=",".join(filter(None, flags)),
                )
                script = _COMPILE.format(imports=_IMPORTS[variant], variant=variant, which=which)
                for kind, parts in runs.items():
                    _progress(f"compile {which}, {variant}, {kind} cache")
                    out = subprocess.run(
                        [sys.executable, "-c", script],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    parts[variant].append(json.loads(out.stdout.splitlines()[-1]))
        for kind, parts in runs.items():
            best = {v: min(p, key=lambda run: run["total"]) for v, p in parts.items()}
            seconds = {v: p["total"] for v, p in best.items()}
            results.append(Result(f"compile {label}, {kind} cache", seconds, parts=best))
    return results


# --------------------------------------------------------------------------- optional peers
#
# JAX ``jit`` and PyTensor, where installed (``pip install -e ".[bench]"``); each workload
# builds them with the same graph as fusegraph's, written with the library's public API.

#: PyTensor's modes, by variant name: its C backend (``CVM``: C thunks run by a C virtual
#: machine, FAST_RUN's linker until PyTensor 3 made Numba the default) and its Numba backend.
PYTENSOR = {"PyTensor C": "CVM", "PyTensor NUMBA": "NUMBA"}


#: The variants this process measures: "all"; or, split by ``run(peer_python=...)``, "own"
#: (fusegraph, NumPy, hand-written) in the main process and "peers" in the peer interpreter.
_ROLE = "all"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _own(build):
    """``build()``: the variants that are not peers; empty in the peer interpreter."""
    return build() if _ROLE != "peers" else {}


def _pytensor(build, **options) -> dict:
    """``build(mode, **options)`` in each of PyTensor's ``PYTENSOR`` modes, by variant name
    (an option named in it: "PyTensor C, trust_input"); empty if PyTensor is not installed
    or the peers run in another interpreter."""
    if _ROLE == "own" or not _installed("pytensor"):
        return {}
    suffix = "".join(f", {option}" for option in options)
    return {name + suffix: build(mode, **options) for name, mode in PYTENSOR.items()}


def _jax(build) -> dict:
    """``build(jax)`` (64-bit floats enabled) as the variant "JAX jit"; empty if JAX is not
    installed or the peers run in another interpreter."""
    if _ROLE == "own" or not _installed("jax"):
        return {}
    import jax

    jax.config.update("jax_enable_x64", True)
    return {"JAX jit": build(jax)}


def _pt_fused(mode):
    import pytensor
    import pytensor.tensor as pt

    x, y, z = pt.dvectors("x", "y", "z")
    return pytensor.function([x, y, z], pt.exp(-x * x) * pt.sin(y) + pt.log1p(z * z), mode=mode)


def _jax_fused(jax):
    jnp = jax.numpy
    jitted = jax.jit(lambda x, y, z: jnp.exp(-x * x) * jnp.sin(y) + jnp.log1p(z * z))
    return lambda *a: np.asarray(jitted(*a))


def _pt_logreg(mode):
    import pytensor
    import pytensor.tensor as pt

    X, y, w, b = pt.dmatrix("X"), pt.dvector("y"), pt.dvector("w"), pt.dscalar("b")
    z = X @ w + b
    cost = pt.mean(pt.softplus(z) - y * z) + 1e-3 * (w @ w)  # cross-entropy of sigmoid(z)
    return pytensor.function([X, y, w, b], [cost, *pytensor.grad(cost, [w, b])], mode=mode)


def _jax_logreg(jax):
    jnp = jax.numpy

    def cost(w, b, X, y):
        z = X @ w + b
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 1e-3 * (w @ w)

    value_and_grad = jax.jit(jax.value_and_grad(cost, argnums=(0, 1)))

    def run(X, y, w, b):
        c, (gw, gb) = value_and_grad(w, b, X, y)
        return np.asarray(c), np.asarray(gw), np.asarray(gb)

    return run


def _pt_mlp(params, mode):
    """PyTensor's SGD step, like ``_mlp_function``: the loss, parameters updated in place."""
    import pytensor
    import pytensor.tensor as pt

    shared = [pytensor.shared(p.copy(), n) for p, n in zip(params, ("W1", "b1", "W2", "b2"))]
    W1, b1, W2, b2 = shared
    x, t = pt.matrix("x", dtype="float32"), pt.lvector("t")
    logp = pt.special.log_softmax(pt.tanh(x @ W1 + b1) @ W2 + b2, axis=1)
    loss = -logp[pt.arange(t.shape[0]), t].mean()
    grads = pytensor.grad(loss, shared)
    updates = [(p, p - np.float32(0.1) * g) for p, g in zip(shared, grads)]
    return pytensor.function([x, t], loss, updates=updates, mode=mode), shared


def _jax_mlp(jax):
    """JAX's jitted SGD step (functional: it returns the new parameters)."""
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

    return run


def _pt_add_one(mode, trust_input=False):
    import pytensor
    import pytensor.tensor as pt

    x = pt.dvector("x")
    return pytensor.function([x], x + 1, mode=mode, trust_input=trust_input)


# --------------------------------------------------------------------------- the run


def run(plan: str = "quick", peer_python: str | None = None) -> list[Result]:
    """Every workload of ``plan`` ("full", "quick" or "smoke"), in order. With ``peer_python``,
    an interpreter where JAX and PyTensor are installed (and fusegraph, which the suite
    imports), the peers run in that interpreter, on its Numba, and the rest in this one; the
    peers' rows are merged into each workload's."""
    global _ROLE
    if peer_python is None:
        return _workloads(plan)
    _ROLE = "own"
    try:
        results = _workloads(plan)
    finally:
        _ROLE = "all"
    peers = json.loads(_evaluate_in(peer_python, f"suite._peer_results({plan!r})"))
    for result, peer in zip(results, peers, strict=True):
        result.seconds.update(peer["seconds"])
        result.parts.update(peer["parts"])
    return results


def _peer_results(plan: str) -> str:
    """In the peer interpreter of ``run(plan, peer_python)``: the peers' results, as JSON."""
    global _ROLE
    _ROLE = "peers"
    return json.dumps([dataclasses.asdict(r) for r in _workloads(plan)])


def _evaluate_in(python: str, expression: str) -> str:
    """The printed value of ``expression``, evaluated after ``from benchmarks import suite`` in
    interpreter ``python`` (its progress on this process's stderr)."""
    out = subprocess.run(
        [python, "-c", f"from benchmarks import suite; print({expression})"],
        env=dict(os.environ, PYTHONPATH=_ROOT),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()[-1]


def versions(python: str | None = None) -> str:
    """The versions of NumPy, Numba, JAX and PyTensor (those installed) in this interpreter,
    or in ``python``."""
    if python is not None:
        return _evaluate_in(python, "suite.versions()")
    names = {"numpy": "NumPy", "numba": "Numba", "jax": "JAX", "pytensor": "PyTensor"}
    return ", ".join(f"{n} {metadata.version(m)}" for m, n in names.items() if _installed(m))


def _workloads(plan: str) -> list[Result]:
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
        if r.parts:
            lines.append("| variant | total | imports | rewrite | code generation | compile |")
            lines.append("|---|---|---|---|---|---|")
            for name, p in r.parts.items():
                codegen = "—" if p["codegen"] is None else f"{p['codegen']:.3f}"
                lines.append(
                    f"| {name} | {p['total']:.2f} s | {p['imports']:.2f} | {p['rewrite']:.3f} "
                    f"| {codegen} | {p['compile']:.2f} |"
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


__all__ = ["PLANS", "PYTENSOR", "Result", "mlp_numpy_step", "run", "table", "versions"]
