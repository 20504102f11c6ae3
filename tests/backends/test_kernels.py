"""The Numba kernels of the non-elementwise ops against ``op.impl`` (and NumPy): strict dtype
and shape, equal values (floating sums and products within a few ulp), the same exception
class, and inputs never mutated. Each kernel is compiled once per type and reused."""

import numpy as np
import pytest

import fusegraph as fg
from fusegraph.backends.numba import cache, kernels, loops
from fusegraph.ops import creation, grad_ops, indexing, linalg, nn, random, reduction, shape_ops
from fusegraph.ops.indexing import SYMBOLIC

rng = np.random.default_rng(0)


pytestmark = pytest.mark.usefixtures("private_cache")


_compiled: dict = {}


def _var(value, static):
    value = np.asarray(value)
    dims = value.shape if static else (None,) * value.ndim
    return fg.tensor(dtype=value.dtype.name, shape=dims)


def kernel(op, *inputs, static=()):
    """The compiled kernel for ``op`` on inputs typed like ``inputs`` (all dims unknown,
    except for the inputs at positions in ``static``: shape vectors and such)."""
    in_vars = [_var(v, k in static) for k, v in enumerate(inputs)]
    node = op.make_node(*in_vars)
    in_types = tuple(v.type for v in node.inputs)
    out_types = tuple(v.type for v in node.outputs)
    key = (op, in_types)
    if key not in _compiled:
        if isinstance(op, loops.LOOP_OPS):  # Reduce: the loop generator's, as in codegen
            source = loops.module_source([loops.kernel_source(op, in_types, out_types, "k")])
        else:
            source = kernels.IMPORTS + "\n\n" + kernels.kernel_source(op, in_types, out_types, "k")
        _compiled[key] = cache.load_module(source).k
    return _compiled[key]


def check(op, *inputs, static=(), exact=True, expected=None):
    """Run the kernel and compare it with ``op.impl`` (and ``expected`` if given)."""
    inputs = [np.asarray(v) if not isinstance(v, np.ndarray) else v for v in inputs]
    copies = [v.copy() for v in inputs]
    with np.errstate(all="ignore"):
        want = op.impl(*inputs)
    got = kernel(op, *inputs, static=static)(*inputs)
    for before, after in zip(copies, inputs):
        np.testing.assert_array_equal(before, after)  # inputs are not mutated
    _same(got, want, exact)
    if expected is not None:
        _same(got, np.asarray(expected), exact)
    return got


def _same(got, want, exact):
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if exact or want.dtype.kind not in "fc":
        np.testing.assert_array_equal(got, want)
    else:
        rtol = 1e-5 if want.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def raises(exc, op, *inputs, static=()):
    with pytest.raises(exc):
        op.impl(*inputs)
    with pytest.raises(exc):
        kernel(op, *inputs, static=static)(*inputs)


def arr(shape_, dtype="float64", lo=-5, hi=5):
    if dtype == "bool":
        return rng.random(shape_) < 0.5
    return (
        rng.uniform(lo, hi, shape_).astype(dtype)
        if "float" in dtype
        else rng.integers(lo, hi, shape_).astype(dtype)
    )


# ------------------------------------------------------------------------------- registry


def test_registry_covers_the_catalogue():
    expected = {
        shape_ops.Shape, shape_ops.ShapeI, shape_ops.MakeVector, shape_ops.Reshape,
        shape_ops.DimShuffle, shape_ops.BroadcastTo, shape_ops.Join,
        creation.Alloc, creation.ARange, creation.Eye,
        reduction.ArgReduce, reduction.LogSumExp, nn.Softmax, nn.LogSoftmax,
        nn.CrossentropyCategorical1Hot, nn.CrossentropySoftmax1HotDx, linalg.Dot, linalg.MatMul,
        linalg.TensorDot, indexing.Subtensor, indexing.AdvancedSubtensor,
        indexing.IncSubtensor, grad_ops.SumTo, random.RandomVariable,
    }  # fmt: skip
    assert expected <= set(kernels.KERNELS)
    assert not set(loops.LOOP_OPS) & set(kernels.KERNELS)  # one kernel source per op class
    assert kernels.unsupported(expected) == []
    with pytest.raises(NotImplementedError):
        kernels.kernel_source(object(), (), (), "k")


# ------------------------------------------------------------------------------- linalg


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dot_float(dtype):
    a, b = arr((4, 5), dtype), arr((5, 3), dtype)
    check(linalg.Dot(), a, b, exact=False, expected=np.dot(a, b))
    # the same compiled kernel takes transposed (F-layout) and strided operands
    check(linalg.Dot(), arr((5, 4), dtype).T, arr((3, 5), dtype).T, exact=False)
    check(linalg.Dot(), arr((4, 10), dtype)[:, ::2], b, exact=False)
    check(linalg.Dot(), arr((0, 5), dtype), b, exact=False)
    check(linalg.Dot(), arr((4, 0), dtype), arr((0, 3), dtype), exact=False)
    check(linalg.Dot(), arr((5,), dtype), arr((5,), dtype), exact=False)
    check(linalg.Dot(), a, arr((5,), dtype), exact=False)
    check(linalg.Dot(), arr((5,), dtype), b, exact=False)
    raises(ValueError, linalg.Dot(), a, arr((4, 3), dtype))


def _layouts(shape_, dtype):
    """``shape_``-shaped arrays in every layout BLAS distinguishes: C, transposed (F),
    strided, reversed (negative strides), broadcast (zero strides)."""
    rows, cols = shape_ if len(shape_) == 2 else (shape_[0], 1)
    base = arr((rows, cols), dtype)
    views = [base, arr((cols, rows), dtype).T, arr((rows, 2 * cols), dtype)[:, ::2]]
    views += [base[::-1], np.broadcast_to(arr((1, cols), dtype), (rows, cols))]
    return views if len(shape_) == 2 else [v[:, 0] for v in views]


def test_dot_blas_takes_every_layout_and_degenerate_shape():
    """BLAS products (matrix x matrix, matrix x vector, vector x matrix) against NumPy for
    every operand layout and for rows, columns or inner dims of length 0 and 1."""
    dtype, rtol = "float64", 1e-12
    for m, k, n in [(4, 5, 3), (1, 5, 3), (4, 1, 3), (4, 5, 1), (0, 5, 3), (4, 0, 3), (1, 1, 1)]:
        for sa, sb in [((m, k), (k, n)), ((m, k), (k,)), ((k,), (k, n))]:
            f = kernel(linalg.Dot(), arr(sa, dtype), arr(sb, dtype))
            for a in _layouts(sa, dtype):
                for b in _layouts(sb, dtype):
                    got = f(a, b)
                    assert got.dtype == dtype and got.shape == np.dot(a, b).shape
                    np.testing.assert_allclose(got, np.dot(a, b), rtol=rtol, atol=rtol)


def test_dot_transposed_operand_is_not_copied():
    """A DimShuffle transpose renders as ``x.T`` (F layout) and Dot hands it to BLAS."""
    src = kernels.kernel_source(
        shape_ops.DimShuffle(2, (1, 0)),
        (fg.matrix().type,),
        (fg.matrix().type,),
        "t",
    )
    assert "i0.T" in src
    mod = cache.load_module(kernels.IMPORTS + src)
    x = arr((6, 4))
    assert np.shares_memory(mod.t(x), x)
    b = arr((6, 3))
    dot = kernel(linalg.Dot(), x.T, b)
    _same(dot(mod.t(x), b), np.dot(x.T, b), False)
    layouts = {sig[0].layout for sig in dot.signatures}
    assert "F" in layouts  # typed F: blas_dot passes it to gemm with a transpose flag


def test_dot_mixed_and_int_dtypes():
    check(linalg.Dot(), arr((3, 4), "float32"), arr((4, 2)), exact=False)
    check(linalg.Dot(), arr((3, 4), "int64"), arr((4, 2)), exact=False)
    for dtype in ("int64", "int8", "uint8", "bool"):
        a, b = arr((3, 4), dtype), arr((4, 2), dtype)
        check(linalg.Dot(), a, b, expected=np.dot(a, b))
        check(linalg.Dot(), arr((4, 3), dtype).T, b)
        check(linalg.Dot(), arr((4,), dtype), arr((4,), dtype))
    check(linalg.Dot(), np.full((2, 3), 100, "int8"), np.full((3, 2), 100, "int8"))  # wraps


def test_dot_scalar_and_nd():
    check(linalg.Dot(), np.array(2.5), arr((3, 2)))
    check(linalg.Dot(), arr((3, 2), "int8"), np.array(3, "int8"))
    check(linalg.Dot(), np.array(0.0), np.array([np.inf]))  # 0 * inf is nan, not 0
    check(linalg.Dot(), arr((2, 3, 4)), arr((5, 4, 2)), exact=False)
    check(linalg.Dot(), arr((2, 3, 4)), arr((4,)), exact=False)
    check(linalg.Dot(), arr((2, 3, 4), "int32"), arr((4, 2), "int32"))


def test_matmul():
    a, b = arr((2, 3, 4)), arr((2, 4, 5))
    check(linalg.MatMul(), a, b, exact=False, expected=np.matmul(a, b))
    check(linalg.MatMul(), arr((1, 3, 4)), arr((2, 4, 5)), exact=False)  # broadcast batch
    check(linalg.MatMul(), arr((3, 4)), arr((2, 4, 5)), exact=False)
    check(linalg.MatMul(), arr((4,)), arr((2, 4, 5)), exact=False)
    check(linalg.MatMul(), arr((2, 3, 4)), arr((4,)), exact=False)
    check(linalg.MatMul(), arr((3, 4)), arr((4, 5)), exact=False)
    check(linalg.MatMul(), arr((4,)), arr((4,)), exact=False)
    check(linalg.MatMul(), arr((2, 3, 4), "int16"), arr((2, 4, 5), "int16"))
    check(linalg.MatMul(), arr((0, 3, 4), "float32"), arr((1, 4, 5), "float32"), exact=False)
    raises(ValueError, linalg.MatMul(), arr((2, 3, 4)), arr((3, 4, 5)))
    raises(ValueError, linalg.MatMul(), arr((3, 4)), arr((5, 2)))


def test_tensordot():
    a, b = arr((2, 3, 4)), arr((4, 3, 5))
    op = linalg.TensorDot((1, 2), (1, 0))
    check(op, a, b, exact=False, expected=np.tensordot(a, b, ([1, 2], [1, 0])))
    check(op, arr((2, 3, 4), "int32"), arr((4, 3, 5), "int32"))
    check(linalg.TensorDot((), ()), arr((2, 3)), arr((4,)), exact=False)
    check(linalg.TensorDot((0, 1), (0, 1)), arr((2, 3)), arr((2, 3)), exact=False)
    raises(ValueError, op, a, arr((4, 2, 5)))


# ------------------------------------------------------------------------------- reductions

KINDS = ("sum", "prod", "mean", "max", "min", "all", "any")


#: dtype -> the kinds tested on it (each kind is a kernel per dtype: compiles are slow)
REDUCE_CASES = {
    "float64": KINDS,
    "float32": ("sum", "max", "mean"),
    "int8": ("sum", "prod", "max", "mean"),
    "uint64": ("sum", "min", "any"),
    "bool": ("sum", "all", "any", "max"),
}
AXES = [((1,), False), ((0, 2), True), ((0, 1, 2), False), ((2,), False)]


@pytest.mark.parametrize("dtype", list(REDUCE_CASES))
def test_reduce(dtype):
    x = arr((3, 4, 10), dtype, -3, 4)
    if dtype == "float64":
        x[0, 1, 2] = np.nan
    # non-contiguous inputs only, so that one compiled kernel (layout A) takes them all
    values = (x[:, :, ::2], x[:, :, :5].transpose(2, 0, 1).copy().transpose(1, 2, 0))
    for n, kind in enumerate(REDUCE_CASES[dtype]):
        cases = AXES[:2] if dtype == "float64" else [AXES[n % len(AXES)]]
        if dtype == "float64" and kind in ("sum", "max"):
            cases = AXES
        for axis, keepdims in cases:
            op = reduction.Reduce(kind, axis, keepdims)
            k = kernel(op, values[0])
            for value in values:
                _same(k(value), op.impl(value), exact=kind in ("max", "min", "all", "any"))


def test_reduce_empty_and_0d():
    for kind in KINDS:
        op = reduction.Reduce(kind, (0,), False)
        if kind in ("max", "min"):
            raises(ValueError, op, np.zeros((0, 3)))
            check(op, np.zeros((3, 0)))  # nothing reduced over an empty output: fine
        else:
            check(op, np.zeros((0, 3)))
        check(reduction.Reduce(kind, (), False), np.array(2.5))
    check(reduction.Reduce("max", (0,), False), np.array([1.0, np.nan, 3.0]))
    check(reduction.Reduce("min", (0,), False), np.array([np.inf, -np.inf]))


def test_arg_reduce():
    x = arr((3, 4, 5))
    x[1, 2, 3] = np.nan
    for kind in ("argmax", "argmin"):
        for axis, keepdims in [(None, False), (None, True), (1, False), (0, True), (2, False)]:
            op = reduction.ArgReduce(kind, axis, keepdims)
            for value in (x[:, ::-1], np.where(np.isnan(x), 0, x)[::-1]):
                check(op, value)
        op = reduction.ArgReduce(kind, 1, False)
        for dtype in ("int8", "bool", "uint64"):
            check(op, arr((3, 6), dtype))
        raises(ValueError, op, np.zeros((3, 0)))
        check(op, np.zeros((0, 3)))
        check(reduction.ArgReduce(kind, 0), np.array([2, 7, 7, 1]))


def test_logsumexp():
    x = arr((3, 4))
    x[0] = [-np.inf] * 4
    x[1, 1] = np.inf
    x[2, 2] = 800.0
    for axis, keepdims in [((1,), False), ((0, 1), True), ((0,), False)]:
        op = reduction.LogSumExp(axis, keepdims)
        check(op, x, exact=False)
        check(op, x.T.copy().T, exact=False)
        check(op, np.zeros((0, 4)), exact=False)
    check(reduction.LogSumExp((1,)), arr((3, 4), "float32"), exact=False)
    check(reduction.LogSumExp((1,)), arr((3, 4), "int8"), exact=False)
    check(reduction.LogSumExp((1,)), np.array([[1.0, np.nan]]), exact=False)


def test_softmax_and_log_softmax():
    x = arr((3, 5))
    x[0, 1] = -np.inf
    x[1] = -np.inf
    x[2, 3] = 1000.0
    for cls in (nn.Softmax, nn.LogSoftmax):
        for axis in ((1,), (0,), (0, 1)):
            op = cls(axis)
            check(op, x[::-1], exact=False)
            check(op, x[:, ::2], exact=False)
            check(op, np.zeros((0, 10))[:, ::2], exact=False)
        check(cls((1,)), arr((2, 3), "float32"), exact=False)
        check(cls((1,)), arr((2, 3), "int64"), exact=False)


def test_crossentropy():
    p = rng.uniform(0.01, 1, (4, 3))
    t = np.array([0, 2, 1, 2])
    for log_input in (False, True):
        op = nn.CrossentropyCategorical1Hot(log_input)
        check(op, p, t, exact=False)
        check(op, p.T.copy().T, t.astype("int8"), exact=False)
        check(op, np.zeros((0, 3)), np.zeros(0, "int64"), exact=False)
        raises(IndexError, op, p, np.array([0, 3, 1, 0]))
        raises(IndexError, op, p, np.array([0, -1, 1, 0]))
        raises(ValueError, op, p, np.array([0, 1, 1]))
    check(nn.CrossentropyCategorical1Hot(), p.astype("float32"), t, exact=False)


def test_crossentropy_softmax_dx():
    op = nn.CrossentropySoftmax1HotDx()
    sm, t, dy = rng.uniform(0.01, 1, (4, 3)), np.array([0, 2, 1, 2]), arr((4,))
    check(op, dy, sm, t, exact=False)
    check(op, dy[::-1], sm.T.copy().T, t.astype("int8"), exact=False)
    check(op, np.array(0.5), sm[::2], t[::2], exact=False)
    check(op, dy[:0], np.zeros((0, 3)), np.zeros(0, "int64"), exact=False)
    raises(IndexError, op, dy, sm, np.array([0, 3, 1, 0]))
    raises(ValueError, op, dy, sm, np.array([0, 1, 1]))


def test_sum_to():
    op = grad_ops.SumTo()
    g = arr((2, 3, 4))
    for target in ((3, 4), (1, 4), (3, 1), (2, 1, 4), (1, 1, 1)):
        check(op, g, np.array(target), static=(1,), exact=False)
    check(op, arr((2, 3), "int8"), np.array((1, 3)), static=(1,))
    check(op, arr((2, 3), "bool"), np.array((2, 1)), static=(1,))
    raises(ValueError, op, arr((2, 3)), np.array((2, 2)), static=(1,))


# ------------------------------------------------------------------------------- shape


def test_shape_ops():
    x = arr((2, 0, 3))
    check(shape_ops.Shape(), x)
    check(shape_ops.Shape(), np.array(1.0))
    check(shape_ops.ShapeI(1), x)
    check(shape_ops.ShapeI(-1), x)
    op = shape_ops.MakeVector("int64")
    check(op, np.array(3), np.array(2.9), np.array(True))
    check(shape_ops.MakeVector("float32"), np.array(3), np.array(2.5))
    check(shape_ops.MakeVector("int64"))


def test_reshape():
    x = arr((2, 6))
    op = shape_ops.Reshape(3)
    for target in ((3, 2, 2), (-1, 2, 3), (12, 1, 1), (2, -3, 3)):
        check(op, x, np.array(target), static=(1,))
    check(op, x.T, np.array((3, -1, 1)), static=(1,))
    check(op, np.zeros((0, 4)), np.array((2, 0, 3)), static=(1,))
    for bad in ((5, 2, 1), (-1, -1, 3), (0, -1, 1), (-2, 2, -1), (2, 0, -1)):
        raises(ValueError, op, x, np.array(bad), static=(1,))
    check(shape_ops.Reshape(0), np.array([5.0]), np.zeros(0, "int64"), static=(1,))
    check(shape_ops.Reshape(1), np.array(5.0), np.array([1]), static=(1,))


def test_dimshuffle():
    x = arr((2, 1, 3))
    for order in ((2, 0), (0, "x", 2), ("x", 2, 1, 0), (1, 0, 2), (0, 2)):
        op = shape_ops.DimShuffle(3, order)
        got = check(op, x)
        assert np.shares_memory(got, x)
        check(op, x[::-1])
    raises(ValueError, shape_ops.DimShuffle(3, (0, 2)), arr((2, 2, 3)))
    check(shape_ops.DimShuffle(0, ("x", "x")), np.array(4, "int8"))
    check(shape_ops.DimShuffle(2, ()), np.array([[7]]))
    check(shape_ops.DimShuffle(2, (1, 0)), arr((3, 4), "bool"))


def test_broadcast_to_and_alloc():
    for op in (shape_ops.BroadcastTo(), creation.Alloc()):
        check(op, arr((3, 1)), np.array((2, 3, 4)), static=(1,))
        check(op, arr((3, 1), "int8").T, np.array((0, 3)), static=(1,))
        check(op, np.array(2.0), np.array((2, 2)), static=(1,))
        raises(ValueError, op, arr((3, 2)), np.array((2, 3, 4)), static=(1,))
        raises(ValueError, op, arr((3,)), np.array((-1, 3)), static=(1,))
    check(creation.Alloc(), np.array(True), np.array((3,)), static=(1,))


def test_join():
    op = shape_ops.Join(1)
    a, b = arr((2, 3)), arr((2, 0))
    check(op, a, b, a.T.copy().T, expected=np.concatenate([a, b, a], axis=1))
    check(op, arr((2, 1), "int8"), arr((2, 2), "float32"))
    check(shape_ops.Join(0), arr((2,), "bool"), arr((3,), "int64"))
    raises(ValueError, op, a, arr((3, 3)), a)


def test_arange_and_eye():
    for args, dtype in [
        ((0, 5, 1), "int64"),
        ((5, 0, -2), "int64"),
        ((0.5, 3.0, 0.25), "float64"),
        ((1, 2, 0.1), "float32"),
        ((0.5, 5, 1), "int64"),
        ((0, 5, 3), "int8"),
        ((0, 2, 1), "bool"),
        ((3, 1, 1), "float64"),
    ]:
        values = [np.array(v) for v in args]
        check(creation.ARange(dtype), *values)
    raises(ZeroDivisionError, creation.ARange("int64"), np.array(0), np.array(5), np.array(0))
    raises(TypeError, creation.ARange("bool"), np.array(0), np.array(5), np.array(1))
    op = creation.Eye("float64")
    for n, m, k in [(3, 3, 0), (3, 5, 2), (4, 2, -1), (0, 2, 0), (2, 2, 5)]:
        check(op, np.array(n), np.array(m), np.array(k))
    check(creation.Eye("int8"), np.array(3), np.array(3), np.array(-1))
    raises(ValueError, op, np.array(-1), np.array(2), np.array(0))


# ------------------------------------------------------------------------------- indexing


def test_subtensor():
    x = arr((4, 5, 6))
    cases = [
        (("int", 1),),
        (("int", -1), ("slice", 1, None, 2)),
        (("slice", None, None, -1), ("newaxis",), ("ellipsis",), ("int", 2)),
        (("int", 0), ("int", 1), ("int", 2)),
        (("slice", 10, 20, None),),
    ]
    for idx in cases:
        op = indexing.Subtensor(idx)
        got = check(op, x)
        if got.ndim and got.size:
            assert np.shares_memory(got, x)
        check(op, x.transpose(1, 2, 0).copy().transpose(2, 0, 1))
    op = indexing.Subtensor((("slice", SYMBOLIC, SYMBOLIC, SYMBOLIC), ("int", SYMBOLIC)))
    for start, stop, step, i in [(0, 3, 1, 0), (-1, None, -1, -5), (3, 1, -1, 4), (1, 9, 2, 2)]:
        vals = [np.array(v if v is not None else 9) for v in (start, stop, step, i)]
        check(op, x, *vals)
    raises(IndexError, op, x, np.array(0), np.array(1), np.array(1), np.array(5))
    raises(ValueError, op, x, np.array(0), np.array(1), np.array(0), np.array(0))
    raises(IndexError, indexing.Subtensor((("int", SYMBOLIC),)), x, np.array(-5))


def test_subtensor_entries_after_an_ellipsis_index_the_right_axis():
    # Regression: the ellipsis did not advance the axis counter, so an int after it was
    # bounds-checked and wrapped against an earlier axis (x[..., -2] read column 0 of a
    # (2, 3) array, x[..., 4] of a (2, 5) array raised IndexError).
    x = arr((2, 3), "float32")
    op = indexing.Subtensor((("ellipsis",), ("int", SYMBOLIC)))
    check(op, x, np.array(-2, "int16"), expected=x[..., -2])
    check(op, arr((2, 5)), np.array(4), expected=None)
    raises(IndexError, op, x, np.array(3))
    y = arr((2, 3, 4))
    for idx, key in [
        ((("ellipsis",), ("int", -1)), (..., -1)),
        ((("int", 1), ("ellipsis",), ("int", -4)), (1, ..., -4)),
        ((("ellipsis",), ("int", 2), ("slice", None, None, -1)), (..., 2, slice(None, None, -1))),
        ((("int", -1), ("ellipsis",)), (-1, ...)),
    ]:
        check(indexing.Subtensor(idx), y, expected=y[key])


def test_empty_ellipsis_separates_advanced_indices():
    # Regression: NumPy takes advanced indices separated by an ellipsis as not adjacent
    # (their broadcast dims go first) even when the ellipsis spans no dims.
    x = arr((3, 4, 5))
    idx = (("slice", None, None, None), ("array",), ("ellipsis",), ("array",))
    i, j = np.array([0, 2]), np.array([1, 3])
    got = check(indexing.AdvancedSubtensor(idx), x, i, j, expected=x[:, [0, 2], ..., [1, 3]])
    assert got.shape == (2, 3)
    y = arr((2, 3))
    for set_ in (False, True):
        check(indexing.IncSubtensor(idx, set_, True), x, y, i, j)
    adjacent = (("slice", None, None, None), ("array",), ("array",), ("ellipsis",))
    check(indexing.AdvancedSubtensor(adjacent), x, i, j, expected=x[:, [0, 2], [1, 3], ...])


def test_advanced_subtensor():
    x = arr((4, 5, 6))
    i2 = np.array([[0, -1], [3, 3]])
    cases = [
        ((("array",),), [np.array([3, 0, 0, -2])]),
        ((("slice", None, None, None), ("array",)), [i2]),
        ((("array",), ("slice", 1, None, None), ("array",)), [np.array([0, 1]), np.array([2])]),
        ((("array",), ("array",)), [np.array([1, 2]), np.array([[0], [4]])]),
        ((("int", 1), ("slice", None, None, 2), ("array",)), [np.array([0, -3])]),
        ((("mask",),), [x[:, :, 0] > 0]),
        ((("ellipsis",), ("mask",)), [np.array([True, False, True, False, False, True])]),
        ((("newaxis",), ("array",), ("int", 0)), [np.array([[1, 2, 3]])]),
        ((("array",),), [np.zeros(0, "int64")]),
        ((("array",),), [np.array([1, 2], "uint8")]),
    ]
    for n, (idx, index_values) in enumerate(cases):
        op = indexing.AdvancedSubtensor(idx)
        check(op, x, *index_values, expected=x[indexing.build_key(idx, index_values)])
        if n < 3:
            check(op, np.asfortranarray(x), *index_values)
    op = indexing.AdvancedSubtensor((("array",),))
    raises(IndexError, op, x, np.array([0, 4]))
    raises(IndexError, op, x, np.array([-5]))
    raises(IndexError, indexing.AdvancedSubtensor((("array",), ("array",))), x, np.ones(2, int),
           np.ones(3, int))  # fmt: skip
    raises(IndexError, indexing.AdvancedSubtensor((("mask",),)), x, np.ones(3, bool))
    check(op, arr((4,), "bool"), np.array([3, 3, 0]))


def test_inc_subtensor():
    x = arr((4, 5))
    cases = [
        ((("array",),), [np.array([1, 1, 3, -4])], arr((4, 5))),
        ((("array",), ("array",)), [np.array([0, 0, 2]), np.array([1, 1, 1])], arr((3,))),
        ((("slice", None, None, None), ("array",)), [np.array([4, 4])], arr((1,))),
        ((("mask",),), [np.array([True, False, True, True])], np.array(2.0)),
        ((("array",),), [np.zeros(0, "int64")], np.array(1.0)),
    ]
    for idx, index_values, y in cases:
        for set_ in (False, True):
            op = indexing.IncSubtensor(idx, set_, True)
            check(op, x, y, *index_values)
            if not set_:
                check(op, x.T.copy().T, y, *index_values)
    basic = [
        ((("int", 1),), [], arr((5,))),
        ((("slice", 1, None, 2), ("int", SYMBOLIC)), [np.array(-2)], np.array(3.0)),
        ((("slice", SYMBOLIC, None, None),), [np.array(2)], arr((1, 5))),
    ]
    for idx, index_values, y in basic:
        for set_ in (False, True):
            check(indexing.IncSubtensor(idx, set_, False), x, y, *index_values)
    op = indexing.IncSubtensor((("array",),), False, True)
    check(op, arr((5,), "int8"), np.array([100, 100], "int8"), np.array([2, 2]))
    check(op, arr((5,), "bool"), np.array([True]), np.array([2, 2]))
    raises(IndexError, op, x, arr((5,)), np.array([4]))
    raises(ValueError, op, x, arr((2, 4)), np.array([0, 1]))
