"""Parallel kernels (``loops.kernel_source(..., parallel=True)``): the same results as the
serial kernel of the same node — exactly, sums included, since every output element is
accumulated in the serial order — and as ``op.impl``, above and below the size threshold,
for broadcasting, transposed and strided inputs, huge trig arguments, NaN, ints, empty
inputs, and with one thread. Each kernel is compiled once (serial and parallel in one
module); the calls are chosen to cover the fast and general paths with few signatures."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from loop_harness import assert_ulps, kernel_nodes

import fusegraph as fg
from fusegraph.backends.numba import cache, loops

RNG = np.random.default_rng(7)
BIG = loops.PARALLEL_MIN_SIZE  # a loop of at least this many elements runs in parallel


@pytest.fixture(scope="module")
def load(private_cache):
    """Compile kernels in a private cache directory: load(nodes) -> a (serial, parallel)
    pair of functions per node, all in one module."""

    def load_nodes(nodes):
        sources = []
        for j, n in enumerate(nodes):
            types = ([v.type for v in n.inputs], [v.type for v in n.outputs])
            sources.append(loops.kernel_source(n.op, *types, f"s{j}"))
            sources.append(loops.kernel_source(n.op, *types, f"p{j}", True))
        module = cache.load_module(loops.module_source(sources))
        return [(getattr(module, f"s{j}"), getattr(module, f"p{j}")) for j in range(len(nodes))]

    return load_nodes


def rand(*shape):
    return RNG.standard_normal(shape) * 3


def check(fns, op, *arrays, ulps=4):
    """The parallel kernel equals the serial one exactly (NaN included) and ``op.impl``
    (floats within ``ulps`` units of eps relative to max(1, |values|)); inputs unchanged."""
    serial, parallel = fns
    copies = [np.array(a, copy=True) for a in arrays]
    got, want = parallel(*arrays), serial(*arrays)
    with np.errstate(all="ignore"):
        ref = op.impl(*arrays)
    got, want, ref = (r if isinstance(r, tuple) else (r,) for r in (got, want, ref))
    assert len(got) == len(want) == len(ref)
    for g, w, r in zip(got, want, ref):
        r = np.asarray(r)
        assert (g.dtype, g.shape) == (w.dtype, w.shape) == (r.dtype, r.shape)
        assert g.flags.c_contiguous
        np.testing.assert_array_equal(g, w)
        assert_ulps(g, r, ulps)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)
    return got


def helpers(fn):
    """The parallel helpers of kernel ``fn`` (``<name>_par<j>``), by name."""
    module = fn.py_func.__globals__
    return {k: v for k, v in module.items() if k.startswith(fn.__name__ + "_par")}


def assert_helpers_ran(fn, count):
    """``fn`` has ``count`` parallel helpers, all compiled, i.e. called."""
    found = helpers(fn)
    assert len(found) == count
    assert all(h.signatures for h in found.values()), found


# --------------------------------------------------------------------------- sources


def test_sources():
    """parallel=False is the serial kernel; parallel=True adds parallel helpers (and their
    threshold) only for loops that can be large, never a prange over a reduced axis."""
    x, m = fg.matrix("x"), fg.matrix("m")
    s = fg.scalar("s")
    small = fg.tensor("c", shape=(3, 4))
    graphs = {
        "elemwise": fg.exp(x) * m,
        "trailing": fg.sum(fg.sin(x) * m, axis=1),
        "leading": fg.sum(x * m, axis=0),
        "0-d": fg.exp(s) + 1.0,
        "static-small": fg.exp(small) * 2.0,
        "everything": fg.sum(fg.exp(x) * m),
    }
    src = {}
    for key, g in graphs.items():
        (node,) = kernel_nodes([g])
        types = ([v.type for v in node.inputs], [v.type for v in node.outputs])
        serial = loops.kernel_source(node.op, *types, "k")
        assert loops.kernel_source(node.op, *types, "k", False) == serial
        assert "prange" not in serial and "parallel" not in serial
        src[key] = loops.kernel_source(node.op, *types, "k", True)
    for key in ("0-d", "static-small", "everything"):  # no parallel loop: the serial kernel
        (node,) = kernel_nodes([graphs[key]])
        types = ([v.type for v in node.inputs], [v.type for v in node.outputs])
        assert src[key] == loops.kernel_source(node.op, *types, "k")
    for key in ("elemwise", "trailing", "leading"):
        assert src[key].startswith(f"# {kernel_nodes([graphs[key]])[0].op}")
        assert cache.KERNEL_DECORATOR + "\ndef k(" in src[key]
        assert loops.PARALLEL_DECORATOR + "\ndef k_par0(" in src[key]
        assert f"size >= {loops.PARALLEL_MIN_SIZE}" in src[key]
    assert "parallel=True" in loops.PARALLEL_DECORATOR
    assert "for e in numba.prange(size):" in src["elemwise"]
    assert "for j0 in numba.prange(n0):" in src["elemwise"]  # the general path
    assert "for p in numba.prange(nkept):" in src["trailing"]
    assert "for j0 in numba.prange(n0):" in src["trailing"]
    # leading axes: blocks of the kept row in parallel; the general loop (j0 reduced) serial
    assert "for c in numba.prange((nkept + w - 1) // w):" in src["leading"]
    assert src["leading"].count("numba.prange(") == 1
    assert "slow |=" not in src["trailing"].split("def k_par0")[1]  # a private flag per row


# --------------------------------------------------------------------------- elementwise


@pytest.fixture(scope="module")
def elementwise(load):
    """A fused node of three outputs: transcendental with sin, static broadcasting, a 0-d
    input; and its (serial, parallel) kernels."""
    x, m = fg.matrix("x"), fg.matrix("m")
    row = fg.tensor("row", shape=(1, None))
    s = fg.scalar("s")
    t = x * m
    outs = [fg.exp(-(t * t)) * fg.sin(m) + fg.log1p(t * t), t - row, fg.cos(t) * row + s]
    (node,) = kernel_nodes(outs)
    assert len(node.outputs) == 3
    return node, load([node])[0]


def test_fused_elementwise_broadcasting_trig_and_threshold(elementwise):
    node, fns = elementwise
    op = node.op
    sv = np.array(0.25)
    xb, mb, rb = rand(300, 400), rand(300, 400), rand(1, 400)
    mb[[3, 150, 299], [0, 200, 399]] = [1e30, -3e8, 2.0**26]  # huge sin arguments
    mb[7, 7] = np.inf
    xb[9, 9] = np.nan
    # the row-broadcast input leaves no flat path: the general loop, parallel over rows
    check(fns, op, xb, mb, rb, sv)  # parallel, trig fix-up
    check(fns, op, xb[:4, :5].copy(), mb[:4, :5].copy(), rb[:, :5].copy(), sv)  # small
    n = BIG // 2  # just below and just above the threshold
    check(fns, op, rand(2, n - 1), rand(2, n - 1), rand(1, n - 1), sv)
    check(fns, op, rand(2, n), rand(2, n), rand(1, n), sv)
    # strided and Fortran-ordered
    check(fns, op, xb[:, ::-1], mb, rb, sv)
    check(fns, op, xb, np.asfortranarray(mb), rb, sv)
    check(fns, op, rand(1, 2 * BIG), rand(1, 2 * BIG), rand(1, 2 * BIG), sv)  # n0 == 1: serial
    # empty
    check(fns, op, rand(0, 400), rand(0, 400), rb, sv)
    check(fns, op, rand(300, 0), rand(300, 0), rand(1, 0), sv)
    for bad in (mb[:, :7], mb[:, :1], mb[:1]):  # unknown dims never broadcast
        with pytest.raises(ValueError, match="broadcast"):
            fns[1](xb, bad, rb, sv)
    assert_helpers_ran(fns[1], 1)  # the general loop


@pytest.fixture(scope="module")
def flat(load):
    """A fused node without broadcasting (so with a flat path) and its kernels."""
    x, m = fg.matrix("x"), fg.matrix("m")
    t = x * m
    (node,) = kernel_nodes([fg.exp(-(t * t)) * fg.sin(m) + fg.log1p(t * t)])
    return node, load([node])[0]


def test_fused_elementwise_flat_path(flat):
    node, fns = flat
    xb, mb = rand(300, 400), rand(300, 400)
    mb[[3, 150], [0, 200]] = [1e30, -3e8]  # huge sin arguments
    check(fns, node.op, xb, mb)  # flat path, parallel, trig fix-up
    n = BIG // 2  # just below and just above the threshold
    check(fns, node.op, rand(2, n - 1), rand(2, n - 1))
    check(fns, node.op, rand(2, n), rand(2, n))
    check(fns, node.op, xb[:, ::-1], mb)  # strided: the general loop
    check(fns, node.op, rand(0, 400), rand(0, 400))
    assert_helpers_ran(fns[1], 2)  # the flat and the general loop


# --------------------------------------------------------------------------- reductions


@pytest.fixture(scope="module")
def reductions(load):
    """Reduction nodes (with a second, elementwise output for two of them) and their
    (serial, parallel) kernels."""
    x, m = fg.matrix("x"), fg.matrix("m")
    u = fg.tensor3("u")
    i, j = (fg.tensor(n, dtype="int32", shape=(None, None)) for n in "ij")
    t = x * m
    graphs = [
        [t + 1.0, fg.sum(fg.sin(t) + 0.5, axis=1)],  # trailing, trig, second output
        [t - 1.0, fg.sum(fg.exp(t * 0.1), axis=0)],  # leading, second output
        [fg.max(x - m, axis=1)],  # trailing max (NaN)
        [fg.max(x * m, axis=0)],  # leading max (NaN)
        [fg.sum(i * 3 - j, axis=1)],  # int64 accumulator
        [fg.min(i - j, axis=0)],  # int, leading
        [fg.sum(u * 2.0 + 1.0, axis=1)],  # middle axis: general path, parallel over axis 0
        [fg.mean(fg.sqrt(fg.abs(x)) * m, axis=None)],  # everything: one accumulator, serial
    ]
    nodes = [kernel_nodes(g)[0] for g in graphs]
    for g, node in zip(graphs, nodes):
        assert len(node.outputs) == len(g) and node.op.reduction is not None
    return list(zip(nodes, load(nodes)))


def test_reductions(reductions):
    trailing, leading, tmax, lmax, isum, imin, middle, mean = reductions
    xb, mb = rand(300, 500), rand(300, 500)
    mb[5, 6] = 1e20  # huge sin argument in row 5: the node is redone with libm
    # float sums: each element accumulates in the serial order, so the results are equal
    for node, fns in (trailing, leading):
        check(fns, node.op, xb, mb, ulps=256)
        check(fns, node.op, xb[:3, :5].copy(), mb[:3, :5].copy(), ulps=256)  # small: serial
        check(fns, node.op, xb[:, ::-1], mb, ulps=256)  # strided: general path
        check(fns, node.op, rand(BIG, 1), rand(BIG, 1), ulps=256)  # many rows of 1
        check(fns, node.op, rand(1, BIG), rand(1, BIG), ulps=256)  # one row (nkept == 1)
        check(fns, node.op, rand(0, 500), rand(0, 500), ulps=256)
        check(fns, node.op, rand(300, 0), rand(300, 0), ulps=256)
    node, fns = trailing
    check(fns, node.op, xb.T.copy().T, mb.T.copy().T, ulps=256)  # transposed: general
    node, fns = leading
    check(fns, node.op, xb[:, ::2], mb[:, ::2], ulps=256)  # strided: general, serial
    # max/min propagate NaN whatever the split; empty axes raise as in NumPy
    xn = xb.copy()
    xn[[0, 100, 299], [499, 3, 250]] = np.nan
    for node, fns in (tmax, lmax):
        got = check(fns, node.op, xn, mb)
        assert np.isnan(got[0]).sum() == 3
        check(fns, node.op, xn[::-1], mb)
        with pytest.raises(ValueError, match="zero-size"):
            fns[1](rand(0, 0), rand(0, 0))
    iv = RNG.integers(-(2**30), 2**30, (400, 300)).astype("int32")
    jv = RNG.integers(-(2**30), 2**30, (400, 300)).astype("int32")
    for node, fns in (isum, imin):
        check(fns, node.op, iv, jv)
        check(fns, node.op, iv[:7, :3].copy(), jv[:7, :3].copy())
        check(fns, node.op, iv, jv[::-1])
    node, fns = middle
    check(fns, node.op, rand(40, 50, 60), ulps=256)
    check(fns, node.op, rand(40, 1, 60), ulps=256)
    check(fns, node.op, rand(2, 3, 4), ulps=256)
    node, fns = mean
    check(fns, node.op, xb, mb, ulps=256)
    # the fast and general loops of trailing reductions, the fast loop of leading ones (the
    # general one reduces its first axis), the general loop only for the middle axis
    for (_, fns), count in zip(reductions, (2, 1, 2, 1, 2, 1, 1, 0)):
        assert_helpers_ran(fns[1], count)


def test_one_thread(elementwise, reductions):
    """No kernel assumes more than one thread (NUMBA_NUM_THREADS may be 1)."""
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        xb, mb = rand(257, 300), rand(257, 300)
        mb[1, 1] = 1e30
        node, fns = elementwise
        check(fns, node.op, xb, mb, rand(1, 300), np.array(2.0))
        check(fns, node.op, xb[:, ::-1], mb, rand(1, 300), np.array(2.0))
        for node, fns in reductions[:4]:
            check(fns, node.op, xb, mb, ulps=256)
            check(fns, node.op, xb[::-1], mb, ulps=256)
    finally:
        numba.set_num_threads(previous)
