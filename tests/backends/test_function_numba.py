"""``fg.function`` on the Numba backend: the generated module, the call path (direct calls,
conversion, layouts, detailed errors), debug mode, embedding in the user's njit code,
pickling, threads and processes."""

import os
import pickle
import re
import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np
import pytest

import fusegraph as fg
from fusegraph.ops import nn

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model():
    """One compiled function shared by most tests: a dot, a fused elementwise+reduction, a
    view output and a shared variable."""
    x, X = fg.vector("x"), fg.matrix("X")
    W = fg.shared(RNG.normal(size=(3, 2)), "W")
    y = fg.tanh(X.dot(W)).sum(axis=0) + x.sum()
    f = fg.function([x, X], [y, X.T, x * 2], name="model")

    def reference(xv, Xv):
        Wv = W.get_value()
        return [np.tanh(Xv @ Wv).sum(axis=0) + xv.sum(), Xv.T, xv * 2]

    return f, reference


def _same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_numba_is_the_default_mode(model):
    f, _ = model
    assert f.mode == fg.Mode() and f.mode.backend == "numba"
    v = fg.vector("v")
    assert fg.function([v], v + 1, mode="py").mode.backend == "py"


def test_source_is_one_module_traceable_to_nodes(model):
    f, _ = model
    src = f.source
    assert src.count("def entry(x, X, W):") == 1
    for node in f.graph.toposort():
        label = f._executable.node_names[node]
        assert f"# {label}: " in src  # each kernel call is preceded by its node's comment
        assert f"# {label}: {__file__}:" in src  # and the node's line is listed
    compile(src, "<source>", "exec")


def test_kernels_run_once_are_inlined_and_repeated_ones_are_shared(model):
    f, _ = model
    src = f.source
    # the model's Dot and fused kernels run once each: their code is in the entry
    assert "blas_dot(" in src[src.index("def entry(") :]
    assert not re.search(r"^def _k", src, re.M)
    x, y, z, w = (fg.vector(n) for n in "xyzw")
    # small kernels are written in at every node that runs them
    g = fg.function([x, y], [x.dot(y), (x * 2).dot(y * 3)])
    assert not re.search(r"^def _k\d+_dot", g.source, re.M)
    assert g.source.count("blas_dot(") == 2
    _same(g(np.arange(3.0), np.ones(3)), [np.array(3.0), np.array(18.0)])
    # a larger one that several nodes run is one shared dispatcher
    outs = [fg.exp(-a * a) * fg.sin(b) + fg.log1p(a * b) for a, b in ((x, y), (z, w))]
    h = fg.function([x, y, z, w], outs)
    assert len(re.findall(r"^def (_k\d+_fusedelemwise)", h.source, re.M)) == 1
    v = np.linspace(-0.5, 1.5, 5)  # v * v[::-1] > -1
    want = np.exp(-v * v) * np.sin(v[::-1]) + np.log1p(v * v[::-1])
    for got in h(v, v[::-1], v, v[::-1]):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_inlining_takes_only_kernels_with_one_final_return():
    from fusegraph.backends.numba import inline

    text = "# header\n@numba.njit\ndef k(i0, i1):\n    i1 = i1 * 2\n    out = i0 + i1\n"
    text += "    return out\n"
    fn, rest = inline.kernel_function(text, "k")
    assert rest == ""  # only comments were left around it
    body = inline.inline_body(fn, "_n3_", ["_v0", "x"], ["_v3"])
    assert body == ["_n3_i1 = x", "_n3_i1 = _n3_i1 * 2", "_n3_out = _v0 + _n3_i1", "_v3 = _n3_out"]
    early = "def k(i0):\n    if i0.size == 0:\n        return i0\n    return i0 + 1\n"
    nested = "def k(i0):\n    return [v for v in i0]\n"
    helper = "def h(a):\n    return a\n\n\ndef k(i0):\n    return h(i0)\n"
    long = "def k(i0):\n" + "    i0 = i0 + 1\n" * inline.SMALL_KERNEL + "    return i0\n"
    assert inline.kernel_function(early, "k") is None
    assert inline.kernel_function(nested, "k") is None
    assert inline.kernel_function(helper, "k")[1] == "def h(a):\n    return a"
    assert inline.is_small(fn) and not inline.is_small(inline.kernel_function(long, "k")[0])


def test_large_graphs_run_their_kernels_through_glue(monkeypatch):
    """Beyond ``LINK_NODES`` nodes every node runs a linked kernel, through the ``glue``
    intrinsic: views of every layout (a transpose into a product, a strided slice into an
    elementwise kernel), outputs that are views, inputs, constants or repeats, and inputs
    of other layouts all give NumPy's values (here: glue from 2 nodes)."""
    from fusegraph.backends.numba import codegen

    monkeypatch.setattr(codegen, "LINK_NODES", 2)
    x, m, glue = fg.vector("x"), fg.matrix("m"), fg.vector("glue")  # (a generated name)
    h = m.dot(x)
    s = m[:, ::2]
    outs = [h.sum(), m.T.dot(h).max(), (h * 2)[:2].dot(x[:2]), x, s, s * 3, h, h, glue + 1]
    outs.append(fg.constant(np.arange(3.0)))
    f = fg.function([x, m, glue], outs)
    assert "_glue = glue.body(" in f.source and "def kernel(" in f.source

    def want(xv, mv, gv):
        hv, sv = mv @ xv, mv[:, ::2]
        first = [hv.sum(), (mv.T @ hv).max(), (hv * 2)[:2] @ xv[:2], xv, sv, sv * 3, hv, hv]
        return first + [gv + 1, np.arange(3.0)]

    xv, mv, gv = np.arange(3.0), RNG.normal(size=(4, 3)), np.ones(2)
    got = f(xv, mv, gv)
    _same(got, want(xv, mv, gv))
    assert got[6] is not got[7] and not np.shares_memory(got[3], xv)
    _same(f(xv[::-1], np.asfortranarray(mv), gv), want(xv[::-1], mv, gv))
    # every intermediate the glue makes is released: NRT's live allocations do not grow
    from numba.core.runtime import _nrt_python, rtsys

    def live():
        stats = rtsys.get_allocation_stats()
        return stats.alloc - stats.free

    _nrt_python.memsys_enable_stats()
    try:
        f(xv, mv, gv)
        before = live()
        for _ in range(50):
            f(xv, mv, gv)
        assert live() == before
    finally:
        _nrt_python.memsys_disable_stats()


def test_input_names_never_clash_with_generated_names():
    # (inlined kernels read the module's imports: vecmath, math, rng, ...)
    a, b, n, v = fg.vector("v0"), fg.vector("_v1"), fg.vector("np"), fg.vector("vecmath")
    f = fg.function([a, b, n, v], [fg.exp(a) * 2, a + b, b * 3 + n, fg.log(v)])
    one = np.ones(2)
    _same(f(one, one * 2, one, one), [np.exp(one) * 2, one * 3, one * 7, one * 0])


def test_call_takes_inputs_by_position_or_name():
    """The compiled ``__call__`` has the inputs' names as parameters; names that cannot be
    parameters (a keyword, a builtin, a leading underscore) take the general path."""
    x, w = fg.vector("x"), fg.shared(np.ones(2), "w")
    for names in (("a", "b"), ("a", "lambda"), ("_a", "len")):
        a, b = fg.scalar(names[0]), fg.scalar(names[1])
        f = fg.function([a, b], a - b + w.sum(), updates=[(w, w * 2)])
        w.set_value(np.ones(2))
        assert f(3.0, 1.0) == 4.0 and f(**{names[1]: 1.0, names[0]: 3.0}) == 6.0
        with pytest.raises(TypeError, match="no input named 'c'|unexpected keyword .*'c'"):
            f(1.0, c=2.0)
        with pytest.raises(TypeError, match=f"expected 2 arguments .*{names[1]}"):
            f(1.0)
        np.testing.assert_array_equal(w.get_value(), [4.0, 4.0])  # failed calls update nothing
    g = fg.function([x], x + 1)
    np.testing.assert_array_equal(g(x=np.zeros(2)), [1.0, 1.0])


def test_direct_calls_layouts_and_conversion(model):
    f, ref = model
    x, X = RNG.normal(size=4), RNG.normal(size=(5, 3))
    _same(f(x, X), ref(x, X))
    _same(f(x[::-1], np.asfortranarray(X)), ref(x[::-1], X))  # new layouts compile once
    _same(f(list(x), X[:, :]), ref(x, X))  # a list is converted
    _same(f(x=x, X=X), ref(x, X))
    ints = np.arange(4)
    _same(f(ints, X), ref(ints.astype(float), X))  # int64 -> float64 is lossless
    empty = np.zeros((0, 3))
    _same(f(x, empty), ref(x, empty))


def test_outputs_do_not_alias_inputs_or_each_other(model):
    f, _ = model
    x, X = RNG.normal(size=4), RNG.normal(size=(5, 3))
    x0, X0 = x.copy(), X.copy()
    out = f(x, X)
    assert not np.shares_memory(out[1], X)
    out[1][...] = 0
    out[2][...] = 0
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(x, x0)


def test_argument_errors_name_the_argument(model):
    f, _ = model
    with pytest.raises(TypeError, match=r"argument 0 \(x\) expects float64, got complex128"):
        f(np.ones(4, complex), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"argument 1 \(X\) expects a 2-d array"):
        f(np.ones(4), np.ones(3))
    with pytest.raises(TypeError, match="expected 2 arguments"):
        f(np.ones(4))


def test_runtime_errors_name_op_shapes_and_line():
    x = fg.vector("x")
    i = fg.scalar("i", dtype="int64")
    f = fg.function([x, i], x[i] * 2)  # line referenced below
    assert f(np.arange(3.0), 2) == 4.0
    with pytest.raises(IndexError) as info:
        f(np.arange(3.0), 7)
    message = str(info.value)
    assert "Subtensor" in message and "(3,)" in message and "test_function_numba.py" in message


def test_unknown_dims_never_broadcast_at_run_time():
    # As in the py backend: a length-1 array where the type says "unknown" is an error that
    # says how to declare it; a static 1 broadcasts (and its gradient sums the other axis).
    x, y = fg.vector("x"), fg.vector("y")
    row = fg.tensor("row", shape=(1,))
    f = fg.function([x, y, row], [fg.exp(x) * y, (x * row).sum(), fg.grad((x * row).sum(), row)])
    got = f(np.arange(3.0), np.ones(3), np.array([2.0]))
    np.testing.assert_allclose(got[0], np.exp(np.arange(3.0)), rtol=1e-15)
    assert got[1] == 6.0 and got[2].tolist() == [3.0]
    for a, b in ((np.ones(1), np.ones(3)), (np.ones(3), np.ones(1)), (np.ones(2), np.ones(3))):
        with pytest.raises(ValueError, match="could not be broadcast") as info:
            f(a, b, np.array([2.0]))
        assert "test_function_numba.py" in str(info.value)
        if 1 in (len(a), len(b)):
            assert "static length 1 broadcast" in str(info.value)


def test_static_shape_mismatch_is_detected():
    x = fg.tensor("x", dtype="float64", shape=(2, None))
    f = fg.function([x], x.sum())
    assert f(np.ones((2, 5))) == 10.0
    with pytest.raises(ValueError, match=r"expects shape \(2, \?\), got \(3, 5\)"):
        f(np.ones((3, 5)))


def test_trust_input_calls_the_entry_directly_keeping_the_gil():
    x = fg.vector("x")
    f = fg.function([x], x * 2 + 1, trust_input=True)
    assert type(f).__dict__["__call__"].__func__ is f._executable.run  # no Python in between
    np.testing.assert_array_equal(f(np.arange(3.0)), [1.0, 3.0, 5.0])
    np.testing.assert_array_equal(f(np.arange(6.0)[::2]), [1.0, 5.0, 9.0])  # a new layout
    np.testing.assert_array_equal(f.njit(np.arange(3.0)), [1.0, 3.0, 5.0])
    assert not f._executable.run.targetoptions["nogil"] and f.njit.targetoptions["nogil"]
    # Numba's cache index ignores options, so each twin has cache files of its own
    module = sys.modules[f.njit.py_func.__module__]
    pycache = os.path.join(os.path.dirname(module.__file__), "__pycache__")
    indexes = {n.split("-")[0] for n in os.listdir(pycache) if n.endswith(".nbi")}
    assert {f"{module.__name__}.entry", f"{module.__name__}.entry_holding_gil"} <= indexes


def test_a_failed_call_keeps_shared_state():
    s = fg.shared(np.arange(3.0), "s")
    i = fg.scalar("i", dtype="int64")
    f = fg.function([i], s[i], updates={s: s + 1})
    assert f(1) == 1.0
    with pytest.raises(IndexError):
        f(5)
    np.testing.assert_array_equal(s.get_value(), [1.0, 2.0, 3.0])
    assert f(2) == 3.0
    np.testing.assert_array_equal(s.get_value(), [2.0, 3.0, 4.0])


def test_constants_small_and_large():
    x = fg.vector("x")
    big = RNG.normal(size=1000)
    f = fg.function([x], [x + np.arange(1000.0), x * big, fg.constant(big).sum() + 0 * x])
    v = RNG.normal(size=1000)
    _same(f(v), [v + np.arange(1000.0), v * big, big.sum() + 0 * v])
    assert "sha256" in f.source  # the large constant is named by its digest


# ------------------------------------------------------------------------------ debug mode


def test_debug_mode_agrees_on_a_correct_function():
    x = fg.vector("x")
    f = fg.function([x], [fg.log1p(fg.exp(x)).sum(), fg.softmax(x)], mode="debug")
    v = RNG.normal(size=5)
    got = f(v)
    np.testing.assert_allclose(got[0], np.log1p(np.exp(v)).sum(), rtol=1e-12)


def test_debug_mode_names_the_disagreeing_node(monkeypatch):
    x = fg.matrix("x")
    f = fg.function([x], fg.softmax(x) * 2, mode="debug")  # the node's line
    monkeypatch.setattr(nn.Softmax, "impl", lambda self, v: np.zeros_like(v))
    with pytest.raises(fg.DebugModeError) as info:
        f(RNG.normal(size=(2, 3)))
    assert "Softmax" in str(info.value) and "test_function_numba.py" in str(info.value)


def test_debug_mode_catches_mutated_inputs(monkeypatch):
    x = fg.matrix("x")
    f = fg.function([x], fg.softmax(x), mode="debug")

    def mutating(self, v):
        out = np.exp(v - v.max(axis=self.axis, keepdims=True))
        v[...] = 0
        return out / out.sum(axis=self.axis, keepdims=True)

    monkeypatch.setattr(nn.Softmax, "impl", mutating)
    with pytest.raises(fg.DebugModeError, match="mutated input 0"):
        f(RNG.normal(size=(2, 3)))


# ------------------------------------------------------------------------------ embedding


def test_njit_entry_is_callable_from_user_numba_code():
    x = fg.vector("x")
    w = fg.shared(np.array([1.0, 2.0, 3.0]), "w")
    f = fg.function([x], (x * w).sum(), updates={w: w * 0.5})
    entry = f.njit

    @numba.njit
    def user_loop(v, wv, n):
        total = 0.0
        for _ in range(n):
            out, wv = entry(v, wv)
            total += out[()]
        return total, wv

    total, w_end = user_loop(np.ones(3), w.get_value(), 3)
    assert total == pytest.approx(6.0 + 3.0 + 1.5)
    np.testing.assert_array_equal(w_end, [0.125, 0.25, 0.375])
    np.testing.assert_array_equal(w.get_value(), [1.0, 2.0, 3.0])  # not assigned


def test_function_pickles_as_graph_and_options():
    x = fg.vector("x")
    s = fg.shared(np.arange(3.0), "s")
    f = fg.function([x], (x * s).sum(), updates={s: s + x}, name="acc")
    g = pickle.loads(pickle.dumps(f))
    assert g.name == "acc" and g.mode == f.mode
    v = np.ones(3)
    assert g(v) == f(v) == 3.0
    np.testing.assert_array_equal(f.updates[0][0].get_value(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g.updates[0][0].get_value(), [1.0, 2.0, 3.0])  # its own copy
    assert g.source == f.source


# ------------------------------------------------------------------------------ concurrency


def test_four_threads_call_one_function():
    x = fg.vector("x")
    f = fg.function([x], fg.exp(fg.sin(x)).sum())
    data = [RNG.normal(size=200_000) for _ in range(4)]
    want = [np.exp(np.sin(d)).sum() for d in data]
    results = [[] for _ in data]

    def work(k):
        for _ in range(20):
            results[k].append(float(f(data[k])))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        assert len(results[k]) == 20
        np.testing.assert_allclose(results[k], want[k], rtol=1e-11)


def test_updates_are_atomic_across_threads():
    count = fg.shared(np.array(0, dtype="int64"), "count")
    f = fg.function([], count, updates={count: count + 1})

    def work():
        for _ in range(200):
            f()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(count.get_value()) == 800


_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import fusegraph as fg
    from fusegraph.backends.numba import cache
    x = fg.matrix("x")
    f = fg.function([x], [fg.log1p(fg.exp(x)).sum(axis=1), x.T.dot(x)])
    v = np.arange(12.0).reshape(4, 3) / 7
    a, b = f(v)
    assert np.allclose(a, np.log1p(np.exp(v)).sum(axis=1), rtol=1e-12)
    assert np.allclose(b, v.T @ v, rtol=1e-12)
    print(cache.stats()["misses"], cache.stats()["disk_hits"])
    """
)


def test_processes_compiling_the_same_function_at_once(tmp_path):
    env = dict(os.environ, FUSEGRAPH_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_CACHE_DIR", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    # afterwards a fresh process finds the module on disk
    warm = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert warm.returncode == 0, warm.stderr
    misses, hits = map(int, warm.stdout.split())
    assert misses == 0 and hits == 1


def test_parallel_mode_equals_serial():
    x, y = fg.matrix("x"), fg.vector("y")
    e = fg.exp(-x * x) * fg.sin(y) + fg.log1p(x * x)
    outs = [e, e.sum(axis=1), e.max(axis=0)]
    serial = fg.function([x, y], outs)
    parallel = fg.function([x, y], outs, mode=fg.Mode(parallel=True))
    assert "prange" in parallel.source and "prange" not in serial.source
    v, w = RNG.normal(size=(70, 90)), RNG.normal(size=90)
    for a, b in zip(serial(v, w), parallel(v, w)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(serial(v[:, :0], w[:0]), parallel(v[:, :0], w[:0])):
        np.testing.assert_array_equal(a, b)
