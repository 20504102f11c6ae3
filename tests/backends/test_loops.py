"""The loop generator: kernels of Elemwise and fused nodes (built by the fusion pass) against
``op.impl`` — broadcasting, layouts, dtypes, several outputs, fused reductions, huge trig
arguments, broadcast errors — plus a check that the fast path vectorises."""

from __future__ import annotations

import re

import numpy as np
import pytest
from loop_harness import assert_ulps, kernel_nodes

import fusegraph as fg
from fusegraph.backends.numba import cache, loops
from fusegraph.backends.numba.codebuilder import Code, Function, product_expr, tuple_expr
from fusegraph.ops.elemwise import Elemwise
from fusegraph.ops.fused import FusedElemwise, Reduction, Step
from fusegraph.ops.scalar import ScalarOp

RNG = np.random.default_rng(42)


@pytest.fixture(scope="module")
def load(private_cache):
    """Compile kernels in a private cache directory: load(nodes) -> one function per node."""

    def load_nodes(nodes):
        sources = [
            loops.kernel_source(
                n.op, [v.type for v in n.inputs], [v.type for v in n.outputs], f"k{j}"
            )
            for j, n in enumerate(nodes)
        ]
        module = cache.load_module(loops.module_source(sources))
        return [getattr(module, f"k{j}") for j in range(len(nodes))]

    return load_nodes


def check(fn, op, *arrays, ulps=0):
    """``fn(*arrays)`` equals ``op.impl(*arrays)``: type, dtype, shape, values (exactly, or
    floats within ``ulps`` units of eps relative to max(1, |values|)), inputs unchanged."""
    copies = [np.array(a, copy=True) for a in arrays]
    got = fn(*arrays)
    with np.errstate(all="ignore"):  # the reference warns on inf/nan; compiled code does not
        want = op.impl(*arrays)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert isinstance(g, np.ndarray)
        assert (g.dtype, g.shape) == (w.dtype, w.shape)
        assert g.flags.c_contiguous
        assert_ulps(g, w, ulps)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)


def value(var, values):
    """The test value of ``var``: a constant's data, else ``values`` by variable or name."""
    if hasattr(var, "data"):
        return var.data
    return values[id(var)] if id(var) in values else values[var.name]


def rand(*shape, dtype="float64"):
    return (RNG.standard_normal(shape) * 3).astype(dtype)


def layouts(shape):
    """Arrays of ``shape``: C-contiguous, strided, and transposed (the same values)."""
    a = rand(*shape)
    strided = np.zeros(tuple(2 * d for d in shape))[tuple(slice(None, None, 2) for _ in shape)]
    strided[...] = a
    transposed = np.ascontiguousarray(a.T).T
    return [a, strided, transposed]


# --------------------------------------------------------------------------- elementwise


def test_fast_path_is_vectorised_and_huge_trig_arguments_are_exact(load):
    x, y, z = fg.vector("x"), fg.vector("y"), fg.vector("z")
    (node,) = kernel_nodes([fg.exp(-(x**2)) * fg.sin(y) + fg.log1p(z * z)])
    (k,) = load([node])
    a, b, c = rand(1000), rand(1000), rand(1000)
    check(k, node.op, a, b, c, ulps=4)
    llvm = k.inspect_llvm(k.signatures[0])
    assert max(int(n) for n in re.findall(r"<(\d+) x double>", llvm)) >= 4
    b[[3, 500, 999]] = [1e30, -3e8, 2.0**26]
    b[7] = np.inf
    check(k, node.op, a, b, c, ulps=4)
    check(k, node.op, a[::2], b[::2], c[1::2], ulps=4)  # strided: general path + fix-up
    check(k, node.op, a[:0], b[:0], c[:0])
    with pytest.raises(ValueError, match="broadcast"):
        k(a, b[:10], c)


def test_sigmoids_and_softpluses_of_x_and_minus_x_share_one_exponential(load):
    """The gradient of a logistic loss has sigmoid and softplus of z and -z: the kernel
    computes exp(-|z|) and its log1p once for all four."""
    nodes = []
    for dtype in ("float64", "float32"):
        x, y = fg.vector("x", dtype=dtype), fg.vector("y", dtype=dtype)
        out = fg.sigmoid(x) * y + fg.sigmoid(-x) + fg.softplus(x) - fg.softplus(-x) * y
        (node,) = kernel_nodes([out + fg.sigmoid(y)])
        src = loops.kernel_source(node.op, [v.type for v in node.inputs], [out.type], "k")
        assert src.count("exp_neg_abs") == 1 and src.count("softplus_log") == 1
        assert "vecmath.sigmoid_f" in src  # sigmoid(y) alone: the plain function
        nodes.append(node)
    special = [-800.0, -40.0, -1.5, -0.0, 0.3, 40.0, 800.0, np.inf, -np.inf, np.nan]
    for node, k in zip(nodes, load(nodes)):
        dtype = node.inputs[0].dtype
        a = np.concatenate([special, rand(200)]).astype(dtype)
        check(k, node.op, a, rand(a.size, dtype=dtype), ulps=4)
        check(k, node.op, a[::3], a[::-3], ulps=4)


def test_broadcasting_layouts_and_trig_fixup_in_nd(load):
    x = fg.matrix("x")
    row = fg.tensor("row", shape=(1, None))
    m = fg.matrix("m")
    s = fg.scalar("s")
    out1 = fg.cos(x) * row + s  # static broadcast of row, 0-d s
    out2 = fg.tan(x * m) - m  # unknown dims: equal at run time, never broadcast
    nodes = kernel_nodes([out1]) + kernel_nodes([out2])
    k1, k2 = load(nodes)
    for xs in layouts((4, 5)):
        r, sv = rand(1, 5), np.array(1.5)
        check(k1, nodes[0].op, xs, r, sv, ulps=4)
        for ms in layouts((4, 5)):
            check(k2, nodes[1].op, xs, ms, ulps=8)
            check(k2, nodes[1].op, ms, xs, ulps=8)
    big = rand(3, 4)
    big[1, 2] = 1e20
    check(k1, nodes[0].op, big, rand(1, 5)[:, :4], np.array(-2.0), ulps=4)
    check(k1, nodes[0].op, big.T, rand(1, 3), np.array(-2.0), ulps=4)
    check(k2, nodes[1].op, big, rand(3, 4), ulps=8)
    check(k2, nodes[1].op, rand(0, 5), rand(0, 5))
    check(k2, nodes[1].op, rand(3, 0), rand(3, 0))
    for bad in (rand(3, 5), rand(2, 4), rand(1, 5), rand(4, 1)):
        with pytest.raises(ValueError, match="broadcast"):
            k2(rand(4, 5), bad)


def test_mixed_dtypes_several_outputs_0d_and_plain_elemwise(load):
    i = fg.tensor("i", dtype="int32", shape=(None, None))
    f = fg.tensor("f", dtype="float32", shape=(None,))
    u = fg.tensor("u", dtype="uint8", shape=())
    pos = fg.gt(i, 0)
    outs = [
        fg.where(pos, f, i) * 2,  # float64 (int32 with float32)
        fg.logical_and(pos, fg.lt(f, 1.0)),  # bool
        fg.cast(i, "int8") + u,  # int16 arithmetic, wrapping
        fg.true_div(i, u),
    ]
    nodes = kernel_nodes(outs)
    assert any(isinstance(n.op, FusedElemwise) and len(n.outputs) > 1 for n in nodes)
    single = kernel_nodes([fg.floor_div(i, fg.tensor("j", dtype="int32", shape=(None, None)))])
    assert [type(n.op) for n in single] == [Elemwise]
    fns = load(nodes + single)
    iv = RNG.integers(-300, 300, (4, 6)).astype("int32")
    fv = rand(6, dtype="float32")
    values = {"i": iv, "f": fv, "u": np.array(7, "uint8")}
    for node, fn in zip(nodes, fns):
        arrays = [value(v, values) for v in node.inputs]
        check(fn, node.op, *arrays)
        values[id(node.outputs[0])] = fn(*arrays) if len(node.outputs) == 1 else None
        check(fn, node.op, *[np.asfortranarray(a) if a.ndim == 2 else a for a in arrays])
    jv = RNG.integers(-5, 5, (4, 6)).astype("int32")
    check(fns[-1], single[0].op, iv, jv)
    check(fns[-1], single[0].op, iv[:, ::-1], jv[::-1])
    check(fns[-1], single[0].op, np.zeros((0, 6), "int32"), jv[:0])


# --------------------------------------------------------------------------- reductions

REDUCTIONS = [
    ("sum", (2,), False),
    ("sum", (0,), True),
    ("prod", (0, 2), False),
    ("mean", None, False),
    ("mean", (1, 2), True),
    ("max", (2,), False),
    ("max", (0, 1), False),
    ("min", (1,), True),
    ("all", (2,), False),
    ("any", (0,), False),
]


def test_fused_reductions(load):
    x, y = fg.tensor3("x"), fg.tensor("y", shape=(None,))
    nodes = []
    for kind, axis, keepdims in REDUCTIONS:
        value = fg.sin(x) * y + 0.5 if kind not in ("all", "any") else fg.gt(fg.sin(x) * y, 0.5)
        (node,) = kernel_nodes([getattr(fg, kind)(value, axis=axis, keepdims=keepdims)])
        assert node.op.reduction is not None
        nodes.append(node)
    fns = load(nodes)
    xv, yv = rand(3, 4, 5), rand(5)
    xv[0, 1, 2] = np.nan
    xv[2, 0, 0] = 1e25  # huge sin argument: the whole node is redone with libm
    for (kind, _axis, _), node, fn in zip(REDUCTIONS, nodes, fns):
        ulps = 64 if kind in ("sum", "mean", "prod") else 4
        check(fn, node.op, xv, yv, ulps=ulps)
        check(fn, node.op, xv[:, :, ::-1], yv[::-1], ulps=ulps)  # general path
        check(fn, node.op, xv[:2, :3].transpose(1, 0, 2).copy(), yv, ulps=ulps)
        check(fn, node.op, xv[1:2, 3:4], yv, ulps=ulps)
        for empty, ye in ((rand(0, 4, 5), yv), (rand(3, 4, 0), yv[:0])):
            try:
                node.op.impl(empty, ye)
            except ValueError:
                with pytest.raises(ValueError, match="zero-size"):
                    fn(empty, ye)
            else:
                check(fn, node.op, empty, ye)
    assert any(kind == "max" and 2 in axis for kind, axis, _ in REDUCTIONS)


def test_integer_and_bool_reductions_are_exact(load):
    i = fg.tensor("i", dtype="int16", shape=(None, None))
    b = fg.tensor("b", dtype="bool", shape=(None, None))
    graphs = [
        fg.sum(i * 3, axis=1),  # int64 accumulator
        fg.prod(i + 1, axis=0, keepdims=True),  # wraps in int64
        fg.max(i - 1, axis=None),
        fg.sum(fg.logical_not(b), axis=0),  # bool summed as int64
        fg.mean(i * 2, axis=1),  # float64 mean of ints
    ]
    nodes = [kernel_nodes([g])[0] for g in graphs]
    fns = load(nodes)
    iv = RNG.integers(-1000, 1000, (5, 7)).astype("int16")
    bv = RNG.random((5, 7)) < 0.5
    for node, fn in zip(nodes, fns):
        v = bv if node.inputs[0].dtype == "bool" else iv
        check(fn, node.op, v)
        check(fn, node.op, v.T.copy().T)


# --------------------------------------------------------------------------- output shapes


def test_outputs_have_the_loop_pattern(load):
    """A fused node's outputs share the loop's broadcast pattern (the fusion pass groups only
    such nodes), so a kernel never computes an output smaller than its loop."""
    op = FusedElemwise(
        2,
        (Step(ScalarOp("add"), (0, 1)), Step(ScalarOp("exp"), (0,)), Step(ScalarOp("sin"), (0,))),
        (2, 3, 4),
        Reduction(2, "sum", (1,), True),
    )
    with pytest.raises(ValueError, match="broadcast pattern"):
        op.make_node(fg.tensor("a", shape=(None, 1)), fg.matrix("b"))
    node = op.make_node(fg.matrix("a"), fg.matrix("b"))
    (fn,) = load([node])
    a = rand(3, 4)
    a[1, 0] = 1e30  # huge sin argument: the reduction is recomputed with libm
    check(fn, op, a, rand(3, 4), ulps=4)
    check(fn, op, a[::-1], rand(4, 3).T, ulps=4)
    with pytest.raises(ValueError, match="broadcast"):
        fn(a, rand(1, 4))


# --------------------------------------------------------------------------- code builder


def test_code_builder_indents_blocks_and_collects_a_helpers_parameters():
    """Lines take their block's indentation, nested loops close by ``dedent``, code built
    apart is spliced in at the current level; a Function without given parameters takes
    the names its body ``use``s, in order of first use."""
    helper = Function("h", None, "@deco")
    with helper.block(f"for e in range({helper.use('size')}):"):
        names = helper.loops([helper.use("n0"), helper.use("size")], "j")
        helper(f"{helper.use('o0')}[{', '.join(names)}] = {helper.use('x1')}")
        helper.dedent(len(names))
    branch = Code()
    with branch.block("if e > 0:"):
        branch(f"return {branch.use('o0')}")  # read again: still one parameter
    helper.extend(branch)
    assert helper.params == ["size", "n0", "o0", "x1"]
    assert helper.call() == "h(size, n0, o0, x1)"
    assert helper.text() == (
        "@deco\n"
        "def h(size, n0, o0, x1):\n"
        "    for e in range(size):\n"
        "        for j0 in range(n0):\n"
        "            for j1 in range(size):\n"
        "                o0[j0, j1] = x1\n"
        "    if e > 0:\n"
        "        return o0\n"
    )
    kernel = Function("k", ["i0"], comments=["# k"])
    kernel(f"return {kernel.use('i0')}")
    assert kernel.text() == "# k\ndef k(i0):\n    return i0\n"
    assert [tuple_expr([]), tuple_expr(["a"]), tuple_expr("ab")] == ["()", "(a,)", "(a, b)"]
    assert [product_expr([]), product_expr(["n0", "n1"])] == ["1", "n0 * n1"]


def test_parallel_helpers_take_the_kernel_variables_they_read():
    """Each parallel helper is called with its own parameters, each a kernel input or a
    variable the kernel assigns: inputs read once (0-d, static size 1), flat views,
    accumulators, dims."""
    x, m = fg.matrix("x"), fg.matrix("m")
    s, one = fg.scalar("s"), fg.tensor("one", shape=(1, 1))
    graphs = [
        fg.exp(x) * m + s,
        fg.sum(fg.sin(x) * m + one, axis=1),
        fg.sum(x * m - s, axis=0),
        fg.tan(x) * one,
    ]
    for g in graphs:
        (node,) = kernel_nodes([g])
        types = ([v.type for v in node.inputs], [v.type for v in node.outputs])
        kernel, *helpers = loops.kernel_source(node.op, *types, "k", True).split("\n\n")
        assert helpers
        for text in helpers:
            name, params = re.search(r"^def (k_par\d+)\((.*)\):$", text, re.M).groups()
            assert f"{name}({params})" in kernel
            for p in params.split(", "):
                assert re.fullmatch(r"i\d+", p) or re.search(rf"^ +{p} = ", kernel, re.M), p
