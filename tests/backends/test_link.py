"""Linked kernels (``backends/numba/link.py``): each kernel compiled once per process and
per machine, called through the kernel table; ``Function.compile_stats`` and the progress
report."""

import contextlib
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import fusegraph as fg
from fusegraph.backends.numba import codegen, compile_report, link, workers

pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(autouse=True)
def link_every_graph(monkeypatch):
    """Small graphs link only the kernels loaded before; these tests link every one."""
    monkeypatch.setattr(codegen, "LINK_NODES", 0)


def _expr(a, b):
    # one fused loop (linked) and one reduction (linked)
    return [fg.tanh(a) * b + fg.exp(-a), (a * b).sum(axis=0)]


def _linked(f):
    return [u for u in f.compile_stats["per_unit"] if u["kind"] == "kernel"]


@contextlib.contextmanager
def _no_leaks():
    """Fails unless the block leaves NRT's live allocations and meminfos as it found them."""
    from numba.core.runtime import _nrt_python, rtsys

    def live():
        stats = rtsys.get_allocation_stats()
        return stats.alloc - stats.free, stats.mi_alloc - stats.mi_free

    _nrt_python.memsys_enable_stats()
    try:
        before = live()
        yield
        assert live() == before
    finally:
        _nrt_python.memsys_disable_stats()


def test_a_kernel_that_several_nodes_run_is_linked_once():
    x, y = fg.matrix("x"), fg.matrix("y")
    f = fg.function([x, y], [fg.tanh(x) * 3.0 - y, fg.tanh(y) * 3.0 - x])
    fused = [n for n in f.graph.toposort() if isinstance(n.op, fg.ops.fused.FusedElemwise)]
    assert len(fused) == 2 and fused[0].op == fused[1].op
    assert len(_linked(f)) == 1
    a, b = np.random.default_rng(0).normal(size=(2, 3, 4))
    for got, want in zip(f(a, b), [np.tanh(a) * 3 - b, np.tanh(b) * 3 - a], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-15)


def test_another_function_reuses_the_kernels_whatever_the_names():
    x, y = fg.matrix("x"), fg.matrix("y")
    first = fg.function([x, y], _expr(x, y))
    p, q = fg.matrix("p"), fg.matrix("q")
    second = fg.function([p, q], _expr(p, q), name="second")
    assert {u["origin"] for u in _linked(first)} <= {"compiled", "disk", "memory"}
    assert [u["origin"] for u in _linked(second)] == ["memory"] * len(_linked(first))
    a, b = np.random.default_rng(1).normal(size=(2, 5, 3))
    want = [np.tanh(a) * b + np.exp(-a), (a * b).sum(axis=0)]
    for f in (first, second):
        for got, w in zip(f(a, b), want, strict=True):
            np.testing.assert_allclose(got, w, rtol=1e-14)


def test_linked_kernels_take_any_layout():
    x, y = fg.matrix("x"), fg.matrix("y")
    f = fg.function([x, y], _expr(x, y))
    a = np.random.default_rng(2).normal(size=(6, 8))
    for u, v in [(a[::2, ::3], a[1::2, 1::3]), (a.T[:4, :3], a[:3, :4].T), (a[:0], a[:0])]:
        for got, w in zip(f(u, v), [np.tanh(u) * v + np.exp(-u), (u * v).sum(axis=0)]):
            np.testing.assert_allclose(got, w, rtol=1e-14)


def test_a_read_only_broadcast_view_passes_to_a_linked_kernel(monkeypatch):
    """np.broadcast_to's views are typed read-only, linked kernels take mutable C arrays:
    through the glue, and through a small graph's calls of kernels loaded before (whose
    conversions once failed to type), as node results and as arguments."""
    x, n, k = fg.vector("x"), fg.scalar("n", dtype="int64"), fg.scalar("k", dtype="int64")
    outs = [fg.broadcast_to(x, (n, k)).sum(), fg.broadcast_to(x, (n, k)).sum(0)]
    glued = fg.function([x, n, k], outs)
    monkeypatch.setattr(codegen, "LINK_NODES", 32)
    small = fg.function([x, n, k], outs)
    assert "_glue = glue.body(" in glued.source and "__fusegraph_kernels__[" in small.source
    for f in (glued, small):
        got = f(np.arange(3.0), 2, 3)
        np.testing.assert_array_equal(got[0], 6.0)
        np.testing.assert_array_equal(got[1], [0.0, 2.0, 4.0])
    # a read-only argument of another layout: converted into the entry, glue or not
    m = fg.matrix("m")
    value = np.broadcast_to(np.arange(3.0), (2, 3))  # read-only, strides (0, 8)
    for link_nodes in (0, 32):
        monkeypatch.setattr(codegen, "LINK_NODES", link_nodes)
        f = fg.function([m], [fg.tanh(m) * 2.0, (m * 3.0).sum(axis=0)])
        got = f(value)
        np.testing.assert_allclose(got[0], np.tanh(value) * 2.0, rtol=1e-15)
        np.testing.assert_array_equal(got[1], [0.0, 6.0, 12.0])


def test_compile_stats_phases_and_units():
    x = fg.vector("x")
    f = fg.function([x], fg.sin(x) * fg.cosh(x) + 0.25)
    stats = f.compile_stats
    for phase in ("rewrite", "codegen", "typing", "llvm", "other"):
        assert stats[phase] >= 0.0
    assert stats["typing"] > 0.0 and stats["llvm"] > 0.0  # its entry, at least, compiled
    assert sum(stats["units"].values()) == len(stats["per_unit"])
    # the glue needs the kernels' declared signatures only: the entry compiles first
    kinds = [u["kind"] for u in stats["per_unit"]]
    assert kinds[0] == "entry" and kinds.count("entry") == 1 and len(kinds) > 1
    total = sum(u["seconds"] for u in stats["per_unit"])
    assert stats["typing"] + stats["llvm"] + stats["other"] == pytest.approx(total, abs=1e-9)
    with pytest.raises(AttributeError, match="compiles nothing"):
        _ = fg.function([x], x + 1, mode="py").compile_stats


def test_a_long_compile_reports_progress_unless_silenced(monkeypatch, capfd):
    x, y = fg.matrix("x"), fg.matrix("y")
    monkeypatch.setattr(compile_report, "PROGRESS_AFTER", 0.0)
    fg.function([x, y], [fg.arctan(x) - y], name="progress")
    err = capfd.readouterr().err
    assert "fusegraph: compiling function 'progress':" in err and "units" in err
    monkeypatch.setenv("FUSEGRAPH_PROGRESS", "0")
    fg.function([x, y], [fg.arctan(y) - x], name="silent")
    assert "fusegraph" not in capfd.readouterr().err


def test_a_key_missing_from_the_table_raises_instead_of_crashing(monkeypatch):
    x, y = fg.vector("x"), fg.vector("y")
    f = fg.function([x, y], fg.sinh(x) * y)
    (name,) = f._executable.linked_sources
    _, signature, _ = link._loaded[link.key_of(name)]
    missing = "fusegraph_cache_5eed"  # known to the compiler, absent from the table
    monkeypatch.setitem(link._loaded, link.key_of(missing), (None, signature, None))
    unknown = link._intrinsic(signature, missing)
    arity = len(signature.args)
    args = ", ".join(f"a{i}" for i in range(arity))
    namespace = {"k": unknown}
    exec(f"def call({args}):\n    return k({args})", namespace)
    call = numba.njit(namespace["call"])
    values = [np.ones((1,) * t.ndim, dtype=t.dtype.name) for t in signature.args]
    with pytest.raises(RuntimeError, match="fusegraph_cache_5eed is not loaded"):
        call(*values)
    np.testing.assert_allclose(f(np.ones(2), np.ones(2)), np.sinh(1.0) * np.ones(2))


CHILD = """
import json
import numpy as np
import fusegraph as fg
from fusegraph.backends.numba import codegen
codegen.LINK_NODES = 0
x, y = fg.matrix("x"), fg.matrix("y")
# (a strided view and a transpose read by kernels: the glue converts them through helpers)
outs = [fg.tanh(x) * y + fg.exp(-x), (x * y).sum(axis=0), x[:, ::2] * 2, x.T.dot(y)]
f = fg.function([x, y], outs)
a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
want = [np.tanh(a) * b + np.exp(-a), (a * b).sum(axis=0), a[:, ::2] * 2, a.T @ b]
for got, w in zip(f(a, b), want, strict=True):
    np.testing.assert_allclose(got, w, rtol=1e-13)
print(json.dumps([[u["kind"], u["origin"]] for u in f.compile_stats["per_unit"]]))
"""


def test_a_warm_process_loads_every_unit_from_the_disk_cache(tmp_path):
    env = dict(os.environ, FUSEGRAPH_CACHE_DIR=str(tmp_path / "cache"))
    env.update(FUSEGRAPH_COMPILE_WORKERS="0")
    env.pop("NUMBA_CACHE_DIR", None)

    def run():
        out = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.splitlines()[-1])

    cold, warm = run(), run()
    assert [origin for _, origin in cold] == ["compiled"] * len(cold)
    assert len(cold) >= 8  # the kernels, two helpers and the entry
    assert [kind for kind, _ in warm] == [kind for kind, _ in cold]
    assert [origin for _, origin in warm] == ["disk"] * len(warm)


def _many_kernels(a, b):
    """Reductions over different axes of 3-d arrays: six kernels."""
    return [
        fg.sin(a).sum(axis=(0, 2)),
        fg.cos(a).sum(axis=1),
        fg.tanh(a).max(axis=(1, 2)),
        fg.exp(-a).min(axis=0),
        fg.arctan(a).sum(),
        (a * b).prod(axis=2),
    ]


@pytest.mark.parametrize("workers_on", [True, False])
def test_a_worker_process_compiles_part_of_the_kernels(monkeypatch, workers_on):
    monkeypatch.setattr(workers, "MIN_SHARED", 2)
    if not workers_on:
        monkeypatch.setenv("FUSEGRAPH_COMPILE_WORKERS", "0")
    # float32 3-d inputs and a scale of their own: kernels few other tests load
    x, y = fg.tensor3("x", dtype="float32"), fg.tensor3("y", dtype="float32")
    scale = np.float32(2.0625 if workers_on else 3.0625)
    f = fg.function([x, y], _many_kernels(x * scale, y))
    origins = [u["origin"] for u in _linked(f)]
    assert len(origins) == 6
    if workers_on and workers.enabled():
        assert sum(o != "memory" for o in origins) >= 2  # else the test would test nothing
        assert "worker" in origins and "compiled" in origins
    else:
        assert "worker" not in origins
    a, b = np.random.default_rng(3).normal(size=(2, 3, 4, 5)).astype("float32")
    a2 = a * scale
    want = [np.sin(a2).sum(axis=(0, 2)), np.cos(a2).sum(axis=1), np.tanh(a2).max(axis=(1, 2))]
    want += [np.exp(-a2).min(axis=0), np.arctan(a2).sum(), (a2 * b).prod(axis=2)]
    for got, w in zip(f(a, b), want, strict=True):
        np.testing.assert_allclose(got, w, rtol=2e-5)


def test_a_long_chain_runs_through_glue_with_its_constants():
    """140 nodes: every node runs a linked kernel through the entry's glue, which embeds the
    constants (injected ones too: more than codegen.LITERAL_LIMIT elements)."""
    x, W = fg.matrix("x"), fg.matrix("W")
    bias = np.linspace(-1, 1, 70)
    h, steps = x, 70
    for k in range(steps):
        h = fg.tanh(fg.dot(h, W) + fg.constant(bias * (k % 3)))
    f = fg.function([x, W], h)
    assert "_glue = glue.body(" in f.source and "__fusegraph_constants__" in f.source
    units = f.compile_stats["per_unit"]
    kinds = [u["kind"] for u in units]
    assert kinds.count("entry") == 1 and len(kinds) == len(f._executable.linked_sources) + 1
    rng = np.random.default_rng(6)
    a, w = rng.normal(size=(3, 70)), rng.normal(size=(70, 70)) * 0.1
    want = a
    for k in range(steps):
        want = np.tanh(want @ w + bias * (k % 3))
    np.testing.assert_allclose(f(a, w), want, rtol=1e-12)


def test_glue_raises_when_a_kernel_is_missing_from_the_table():
    x, y = fg.vector("x"), fg.vector("y")
    f = fg.function([x, y], [fg.tanh(x) * y + 1.0, (x * y).sum()])  # glue: LINK_NODES = 0
    a = np.linspace(-1, 1, 5)
    want = [np.tanh(a) * a + 1.0, (a * a).sum()]
    name = next(iter(f._executable.linked_sources))
    slot = 2 * int(np.flatnonzero(link._table[::2] == link.key_of(name))[0])
    key = int(link._table[slot])
    link._table[slot] = 0  # the key's slot looks empty
    from numba.core.runtime import _nrt_python, rtsys

    _nrt_python.memsys_enable_stats()
    try:
        before = rtsys.get_allocation_stats()
        for _ in range(3):
            with pytest.raises(RuntimeError, match="kernel of this function is not loaded"):
                f._executable.run(a, a)
        after = rtsys.get_allocation_stats()
        assert after.mi_alloc - before.mi_alloc == after.mi_free - before.mi_free  # no leak
    finally:
        link._table[slot] = key
        _nrt_python.memsys_disable_stats()
    for got, w in zip(f(a, a), want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-14)


def test_a_failed_kernel_call_in_the_glue_releases_every_value():
    """A kernel that raises: its error reaches the caller, and neither the values the glue
    made nor the entry's references to the inputs stay alive (NRT's live allocations)."""
    W, x, y = fg.matrix("W"), fg.vector("x"), fg.vector("y")
    h = fg.tanh(fg.dot(W, x))
    f = fg.function([W, x, y], [h * 2.0, fg.exp(fg.dot(W, h)) + y])  # glue: LINK_NODES = 0
    a, v = np.full((4, 4), 0.1), np.ones(4)
    np.testing.assert_allclose(f(a, v, v)[1], np.exp(a @ np.tanh(a @ v)) + v, rtol=1e-14)

    with _no_leaks():
        for _ in range(5):
            with pytest.raises(ValueError, match="could not be broadcast"):
                f._executable.run(a, v, np.ones(3))
            with pytest.raises(ValueError, match="could not be broadcast"):
                f(a, v, np.ones(3))
    np.testing.assert_allclose(f(a, v, v)[0], 2 * np.tanh(a @ v), rtol=1e-14)


def test_glue_constants_of_equal_bytes_keep_their_shapes():
    """The glue keeps one copy of each distinct constant: equal bytes in another shape or
    layout are another constant."""
    x, y = fg.matrix("x"), fg.matrix("y")
    c = np.arange(6.0)
    f = fg.function([x, y], [x * c.reshape(2, 3), y * c.reshape(3, 2), x * c.reshape(3, 2).T])
    assert "_glue = glue.body(" in f.source
    a = np.ones((2, 3))
    got = f(a, a.T)
    for value, want in zip(got, [c.reshape(2, 3), c.reshape(3, 2), c.reshape(3, 2).T]):
        np.testing.assert_array_equal(value, want)


def test_shape_nodes_run_in_the_glue_without_kernels():
    """Shape, ShapeI and MakeVector nodes of a glued graph are the glue's own code: no
    kernel of theirs compiles, their values are the interpreter's (any layout, 0-size, an
    int32 vector), and a failure after them leaks nothing."""
    x, y, k = fg.matrix("x"), fg.vector("y"), fg.vector("k", dtype="int32")
    outs = [
        x.shape,
        k.shape[0] + x.shape[1],
        fg.zeros((x.shape[1], x.shape[0])) + y.sum(),
        x.reshape((x.shape[0] * x.shape[1],)) * 2.0 + y[0],
    ]
    f = fg.function([x, y, k], outs)
    ops = {type(n.op).__name__ for n in f.graph.toposort()}
    assert {"Shape", "ShapeI", "MakeVector"} <= ops
    units = " ".join(u["what"] for u in _linked(f))
    assert all(f"kernel: {op}" not in units for op in ("Shape", "ShapeI", "MakeVector"))
    reference = fg.function([x, y, k], outs, mode="py")
    a = np.arange(12.0).reshape(3, 4)
    for arg in (a, a[:, ::2], a.T, a[:0]):
        args = (arg, np.full(2, 0.5), np.arange(5, dtype="int32"))
        for got, want in zip(f(*args), reference(*args), strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)

    with _no_leaks():
        for _ in range(3):
            with pytest.raises(IndexError):
                f(a, np.ones(0), np.arange(5, dtype="int32"))  # y[0] fails after the shapes


@pytest.mark.parametrize(
    "n, k",
    [(2, 3), (-1, 3), (2, -1), (3, 1), (4, 3), (-1, -1), (11, (6 + 2**64) // 11), (0, -1)],
)
def test_native_reshape_and_alloc_match_the_interpreter(n, k):
    """The glue's own Reshape (-1 inferred anywhere; the wrong size, two unknowns, a product
    that wraps around int64) and Alloc (negative and too large dims) give the interpreter's
    values or raise its exception, with no kernel compiled."""
    x = fg.vector("x")
    dims = [fg.scalar(name, dtype="int64") for name in ("n", "k")]
    outs = [x.reshape(tuple(dims)), fg.full((dims[1], dims[0]), 2.5), fg.zeros(dims, "bool")]
    f = fg.function([x, *dims], outs)
    assert not _linked(f)  # every node is the glue's own
    reference = fg.function([x, *dims], outs, mode="py")
    for values in [(np.arange(6.0), n, k), (np.arange(12.0)[::2], n, k)]:
        try:
            want = reference(*values)
        except ValueError as exc:
            with pytest.raises(ValueError, match=str(exc).split(":")[0].split(" (")[0]):
                f(*values)
            continue
        for got, w in zip(f(*values), want, strict=True):
            assert got.dtype == w.dtype
            np.testing.assert_array_equal(got, w)
    with pytest.raises(ValueError, match="too big"):
        fg.function(dims, fg.full(dims, 1.0))(2, 2**62)


def test_a_worker_that_does_not_answer_in_time_is_ended(monkeypatch):
    def hung(shared):  # takes every unit and answers none
        with shared._cond:
            while shared.units:
                shared.theirs.append(shared.units.pop()[0])

    monkeypatch.setattr(workers, "MIN_SHARED", 2)
    monkeypatch.setattr(workers, "WAIT_LIMIT", 0.2)
    monkeypatch.setattr(workers.Shared, "_feed", hung)
    x, y = fg.tensor3("x"), fg.tensor3("y")  # float64: kernels the other tests do not load
    f = fg.function([x, y], _many_kernels(x * 4.0625, y))
    origins = [u["origin"] for u in _linked(f)]
    if workers.enabled():
        assert "worker" not in origins and origins.count("compiled") >= 2
        assert workers._worker.wait(timeout=10) is not None  # ended
    a, b = np.random.default_rng(7).normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(f(a, b)[4], np.arctan(a * 4.0625).sum(), rtol=1e-13)


def test_worker_requests_carry_whole_signatures():
    a = numba.types.Array(numba.float64, 2, "C")
    v = numba.types.Array(numba.int32, 1, "A")
    for signature in (
        numba.types.Tuple([a, v])(a, numba.types.boolean, v),
        numba.types.Tuple([a, numba.types.boolean])(a),
        a(),
    ):
        encoded = json.loads(json.dumps(workers._encode(signature)))
        assert workers._decode(encoded) == signature
