"""The ``canonicalize`` rules: each rewrites to golden text with the unrewritten graph's
values (edges included), does not fire where it would be invalid, and can be switched off
by name with ``fg.Mode("py", exclude=...)``."""

import numpy as np
import pytest
from rewrite_harness import NO_REWRITES, check_rewrite, rewritten

import fusegraph as fg
from fusegraph.ops.elemwise import Elemwise
from fusegraph.ops.grad_ops import SumTo
from fusegraph.ops.scalar import Cast
from fusegraph.ops.shape_ops import DimShuffle, MakeVector, ShapeI, shape_i
from fusegraph.rewrites.canonicalize import canonicalize
from fusegraph.rewrites.passes import optimize

R = np.random.default_rng(42)
EDGE = np.array([0.0, -0.0, 1.5, -2.0, 1e308, np.inf, -np.inf, np.nan])
EMPTY = np.zeros(0)
I32 = np.array([-(2**31), -1, 0, 7, 2**31 - 1], dtype="int32")
I8 = np.array([-128, -1, 0, 127], dtype="int8")


def f64(*shape):
    return R.normal(size=shape)


def f32(*shape):
    return R.normal(size=shape).astype("float32")


# Symbolic variables used by the cases (names are what the golden text shows).
x, y, v, w = fg.vector("x"), fg.vector("y"), fg.vector("v"), fg.vector("w")
m, g = fg.matrix("m"), fg.matrix("g")
s = fg.scalar("s")
n = fg.scalar("n", dtype="int64")
i = fg.vector("i", dtype="int32")
i8 = fg.vector("i8", dtype="int8")
x32 = fg.vector("x32", dtype="float32")
a, b = fg.scalar("a"), fg.scalar("b")
m3 = fg.tensor("m3", shape=(None, 3))
c1 = fg.tensor("c1", shape=(None, 1))
s3 = fg.tensor("s3", shape=(3,))
s23 = fg.tensor("s23", shape=(2, 3))
t3 = fg.tensor("t3", shape=(None, None, 3))
i3 = fg.tensor("i3", shape=(None, 3), dtype="int32")
i1 = fg.tensor("i1", shape=(1,), dtype="int32")


@fg.as_op(
    [fg.TensorType("float64", (None, None))],
    [fg.TensorType("float64", (None,))],
    infer_shape=lambda fgraph, node, shapes: [(shapes[0][1],)],
)
def _column_sums(a):
    """A user's op that declares its output's shape (``Op.infer_shape``)."""
    return a.sum(axis=0)


def case(rule, inputs, output, expected, values, rtol=1e-12):
    return pytest.param(inputs, output, expected, values, rtol, id=rule)


FIRES = [
    # x * 1, x + 0, x - 0, x / 1, x ** 1, --x
    case("mul_by_one", [x], x * 1, "x", [(EDGE,), (EMPTY,)]),
    case("mul_by_one-int", [i], 1 * i, "i", [(I32,)]),
    case("mul_by_one-cast", [i], i * fg.constant(1.0), "cast{float64}(i)", [(I32,)]),
    case("mul_by_one-float32", [x32], fg.constant(1.0) * x32, "cast{float64}(x32)", [(f32(4),)]),
    case("mul_by_one-ones_like", [m], fg.ones_like(m) * m, "m", [(f64(2, 3),), (f64(0, 3),)]),
    case("add_zero", [x], x + 0, "x", [(EDGE,), (EMPTY,)]),
    case("add_zero-int8", [i8], 0 + i8, "i8", [(I8,)]),
    case("add_zero-cast", [i], i + fg.constant(0.0), "cast{float64}(i)", [(I32,)]),
    case("add_zero-zeros_like", [m], fg.zeros_like(m) + m, "m", [(f64(2, 3),), (f64(0, 0),)]),
    case("sub_zero", [x], x - 0, "x", [(EDGE,)]),
    case("sub_zero-zeros_like", [i], i - fg.zeros_like(i), "i", [(I32,)]),
    case("div_by_one", [x], x / 1, "x", [(EDGE,)]),
    case("div_by_one-int", [i], i / 1, "cast{float64}(i)", [(I32,)]),
    case("pow_one", [x], x**1, "x", [(EDGE,)]),
    case("pow_one-int", [i], i ** fg.constant(1.0), "cast{float64}(i)", [(I32,)]),
    case("neg_neg", [x], fg.neg(-x), "x", [(EDGE,)]),
    case("neg_neg-int8", [i8], fg.neg(-i8), "i8", [(I8,)]),
    # x * 0 where x is finite
    case("mul_by_zero", [i], i * 0, "Alloc(0, i.shape)", [(I32,)]),
    case("mul_by_zero-cast", [i], 0.0 * fg.cast(i, "float32"), "Alloc(0.0, i.shape)", [(I32,)]),
    case("mul_by_zero-scalar", [n], n * 0, "0", [(np.array(5),)]),
    case("mul_by_zero-zeros", [m], fg.zeros((m.shape[0], 3)).sum(), "0.0", [(f64(2, 2),)]),
    # a*x + b*x
    case("add_like_terms", [x], 2.0 * x + 3.0 * x, "5.0 * x", [(EDGE,)]),
    case("add_like_terms-x+x", [x], x + x, "2.0 * x", [(EDGE,)]),
    case("add_like_terms-ax+x", [x], x * 2.0 + x, "3.0 * x", [(EDGE,)]),
    case("add_like_terms-negative", [x], -2.0 * x + x * -3.0, "-5.0 * x", [(EDGE,)]),
    case("add_like_terms-float32", [x32], x32 * 2.0 + 0.5 * x32, "2.5 * x32", [(f32(5),)]),
    # checks
    case("check_that_holds", [x], fg.check_parameter(x, fg.constant(True), "m"), "x", [(EDGE,)]),
    case(
        "check_that_holds-array",
        [x],
        fg.check_parameter(x, fg.constant(np.ones((2, 1), bool)), "m"),
        "x",
        [(EDGE,)],
    ),
    # casts
    case("useless_cast", [x], Elemwise(Cast(dtype="float64"))(x), "x", [(EDGE,)]),
    case(
        "cast_of_lossless_cast",
        [i],
        fg.cast(fg.cast(i, "int64"), "float32"),
        "cast{float32}(i)",
        [(I32,)],
    ),
    case(
        "cast_of_lossless_cast-bool",
        [x32],
        fg.cast(fg.cast(x32, "float64"), "bool"),
        "cast{bool}(x32)",
        [(np.array([0, -0.0, 0.5, np.nan, np.inf], "float32"),)],
    ),
    case(
        "cast_of_lossless_cast-int_to_float",
        [i],
        fg.cast(fg.cast(i, "float64"), "float32"),
        "cast{float32}(i)",
        [(I32,)],
    ),
    # dimshuffles
    case("useless_dimshuffle", [m], DimShuffle(2, (0, 1))(m), "m", [(f64(2, 3),)]),
    case("dimshuffle_of_dimshuffle", [m], m.T.T, "m", [(f64(2, 3),), (f64(0, 3),)]),
    case(
        "dimshuffle_of_dimshuffle-compose",
        [m],
        m.dimshuffle(0, "x", 1).T,
        "m.dimshuffle(1, 'x', 0)",
        [(f64(2, 3),)],
    ),
    case(
        "dimshuffle_of_dimshuffle-drop",
        [c1],
        c1.T.dimshuffle(1),
        "c1.dimshuffle(0)",
        [(f64(4, 1),), (f64(0, 1),)],
    ),
    case(
        "dimshuffle_of_keepdims_reduce",
        [m],
        m.sum(axis=0, keepdims=True).dimshuffle(1),
        "Sum{axis=(0,)}(m)",
        [(f64(2, 3),), (f64(0, 3),)],
    ),
    case(
        "dimshuffle_of_keepdims_reduce-transpose",
        [m],
        m.max(axis=1, keepdims=True).T,
        "Max{axis=(1,)}(m).dimshuffle('x', 0)",
        [(f64(2, 3),), (f64(0, 3),)],
    ),
    # reshapes
    case(
        "reshape_of_reshape",
        [m3],
        m3.reshape(-1).reshape((3, -1)),
        "Reshape{ndim=2}(m3, [3, -1])",
        [(f64(2, 3),), (f64(0, 3),)],
    ),
    case("useless_reshape", [m], m.reshape(m.shape), "m", [(f64(2, 3),), (f64(0, 3),)]),
    case("useless_reshape-minus1", [m3], m3.reshape((-1, 3)), "m3", [(f64(2, 3),), (f64(0, 3),)]),
    case("useless_reshape-vector", [x], x.reshape(-1), "x", [(EDGE,), (EMPTY,)]),
    case("useless_reshape-entries", [m3], m3.reshape((m3.shape[0], 3)), "m3", [(f64(2, 3),)]),
    # broadcasts
    case("useless_broadcast", [m], fg.broadcast_to(m, m.shape), "m", [(f64(2, 3),)]),
    case("useless_broadcast-alloc", [m], fg.full(m.shape, m), "m", [(f64(0, 3),)]),
    case("useless_broadcast-static", [s3], fg.broadcast_to(s3, (3,)), "s3", [(f64(3),)]),
    case(
        "broadcast_of_broadcast",
        [x],
        fg.broadcast_to(fg.broadcast_to(x, (2, 4)), (3, 2, 4)),
        "BroadcastTo(x, [3, 2, 4])",
        [(f64(4),), (f64(1),)],
    ),
    case(
        "elemwise_drop_broadcast",
        [s, m],
        fg.broadcast_to(s, m.shape) * m,
        "s * m",
        [(f64(), f64(2, 3)), (np.array(np.inf), f64(0, 3))],
    ),
    case(
        "elemwise_drop_broadcast-alloc",
        [s3, m3],
        m3 - fg.full(m3.shape, s3),
        "m3 - s3",
        [(f64(3), f64(2, 3))],
    ),
    case("add_zero-zeros_like_broadcast", [m, y], m + fg.zeros_like(y), "m", [(f64(2, 3), f64(3))]),
    case(
        "elemwise_lift_broadcast",
        [s, m],
        fg.exp(fg.broadcast_to(s, m.shape)),
        "BroadcastTo(exp(s), m.shape)",
        [(f64(), f64(2, 3)), (f64(), f64(0, 3))],
    ),
    case(
        "elemwise_lift_broadcast-fold",
        [m],
        fg.zeros_like(m) + 1.0,
        "BroadcastTo(1.0, m.shape)",
        [(f64(2, 3),)],
    ),
    case(
        "elemwise_lift_broadcast-dimshuffled",
        [m],
        fg.exp(fg.broadcast_to(fg.constant(0.0).dimshuffle("x", "x"), m.shape)),
        "BroadcastTo([[1.0]], m.shape)",
        [(f64(2, 3),)],
    ),
    case(
        "dimshuffle_of_broadcast",
        [s, m],
        fg.broadcast_to(s, m.shape).dimshuffle(0, "x", 1),
        "BroadcastTo(s.dimshuffle('x', 'x', 'x'), MakeVector{dtype='int64'}(m.shape[0], 1, "
        "m.shape[1]))",
        [(f64(), f64(2, 3)), (np.array(np.nan), f64(0, 3))],
    ),
    case(
        "dimshuffle_of_broadcast-alloc_transposed",
        [x, m],
        fg.full(m.shape, x).T,
        "Alloc(x.dimshuffle(0, 'x'), MakeVector{dtype='int64'}(m.shape[1], m.shape[0]))",
        [(f64(3), f64(2, 3)), (f64(1), f64(2, 1))],
    ),
    case(
        "elemwise_of_expanded_scalars",
        [s],
        fg.neg(s.dimshuffle("x", "x")),
        "(-s).dimshuffle('x', 'x')",
        [(f64(),), (np.array(-np.inf),)],
    ),
    case(
        "elemwise_of_expanded_scalars-constant",
        [s],
        fg.exp(s.dimshuffle("x")) * 2.0,
        "(exp(s) * 2.0).dimshuffle('x')",
        [(f64(),), (np.array(np.nan),)],
    ),
    case(
        "elemwise_drop_leading_axes",
        [m, x],
        m + x.dimshuffle("x", 0),
        "m + x",
        [(f64(2, 3), f64(3))],
    ),
    case(
        "elemwise_drop_leading_axes-scalar",
        [x, s],
        x.dimshuffle("x", 0) + s.dimshuffle("x", "x"),
        "x + s.dimshuffle('x', 'x')",
        [(f64(3), f64()), (EMPTY, f64())],
    ),
    # sums of broadcasts
    case(
        "sum_of_broadcast",
        [s],
        fg.broadcast_to(s, (2, 3)).sum(),
        "s * 6.0",
        [(f64(),), (np.array(np.inf),), (np.array(np.nan),)],
    ),
    case(
        "sum_of_broadcast-constant",
        [m],
        fg.broadcast_to(2.0, m.shape).sum(),
        "2.0 * cast{float64}(m.shape[0] * m.shape[1])",
        [(f64(2, 3),), (f64(0, 3),)],
    ),
    case(
        "sum_of_broadcast-added",
        [x],
        fg.broadcast_to(x, (3, x.shape[0])).sum(axis=0),
        "x * 3.0",
        [(EDGE,), (EMPTY,)],
        rtol=1e-15,
    ),
    case(
        "sum_of_broadcast-own",
        [x],
        fg.broadcast_to(x, (3, x.shape[0])).sum(axis=1),
        "BroadcastTo(Sum{axis=(0,)}(x), [3])",
        [(f64(5),), (EMPTY,)],
    ),
    case(
        "sum_of_broadcast-all",
        [x],
        fg.broadcast_to(x, (3, x.shape[0])).sum(),
        "Sum{axis=(0,)}(x) * 3.0",
        [(f64(5),), (EMPTY,)],
        rtol=1e-14,
    ),
    case(
        "sum_of_broadcast-int",
        [i],
        fg.broadcast_to(i, (3, i.shape[0])).sum(),
        "Sum{axis=(0,)}(i) * 3",
        [(I32,)],
    ),
    case(
        "sum_of_broadcast-keepdims",
        [x],
        fg.broadcast_to(x, (3, x.shape[0])).sum(axis=0, keepdims=True),
        "(x * 3.0).dimshuffle('x', 0)",
        [(f64(4),)],
        rtol=1e-15,
    ),
    case(
        "sum_of_broadcast-float32",
        [x32],
        fg.broadcast_to(x32, (1000, 3, x32.shape[0])).sum(axis=(0, 1)),
        "x32 * 3000.0",
        [(f32(4),)],
        rtol=1e-4,  # NumPy's float32 summation of 3000 terms is off by a few 1e-5
    ),
    case(
        "sum_of_broadcast-ones_like",
        [m],
        fg.ones_like(m).sum(),
        "cast{float64}(m.shape[0] * m.shape[1])",
        [(f64(2, 3),), (f64(0, 3),)],
    ),
    case(
        "reduce_over_length_one_axes",
        [c1],
        c1.sum(axis=1),
        "c1.dimshuffle(0)",
        [(f64(3, 1),), (f64(0, 1),)],
    ),
    case(
        "reduce_over_length_one_axes-int",
        [i1],
        i1.sum(),
        "cast{int64}(i1).dimshuffle()",
        [(np.array([7], "int32"),)],
    ),
    case("reduce_over_length_one_axes-max", [x], x.dimshuffle(0, "x").max(axis=1), "x", [(EDGE,)]),
    case(
        "reduce_over_length_one_axes-all",
        [c1],
        fg.all(c1, axis=1),
        "cast{bool}(c1).dimshuffle(0)",
        [(EDGE.reshape(-1, 1),)],
    ),
    # SumTo
    case("sum_to_same_shape", [m], SumTo()(fg.exp(m), m.shape), "exp(m)", [(f64(2, 3),)]),
    case(
        "sum_to_static_axes",
        [t3],
        SumTo()(t3, fg.constant([1, 3])),
        "Sum{axis=(0, 1)}(t3).dimshuffle('x', 0)",
        [(f64(2, 4, 3),), (f64(2, 1, 3),), (f64(0, 2, 3),)],
        rtol=1e-14,
    ),
    case(
        "sum_to_static_axes-int",
        [i3],
        SumTo()(i3, fg.constant([1, 3])),
        "cast{int32}(Sum{axis=(0,), keepdims=True}(i3))",
        [(np.array([[2**31 - 1, 0, -5], [1, 2, -(2**31)]], "int32"),)],
    ),
    # shapes
    case("shape_of_known", [s23], s23.shape, "[2, 3]", [(f64(2, 3),)]),
    case("shape_of_known-ancestor", [m], fg.exp(m).shape, "m.shape", [(f64(2, 3),)]),
    case("shape_i_of_known", [m], shape_i(fg.exp(m), 1), "m.shape[1]", [(f64(2, 3),)]),
    case("shape_i_of_known-static", [m3], shape_i(m3, 1), "3", [(f64(2, 3),)]),
    # elementwise inputs' unknown dims are equal at run time: the first one names the axis
    case("shape_of_known-elemwise", [x, y], (x + y).shape, "x.shape", [(f64(3), f64(3))]),
    case("shape_i_of_known-elemwise", [x, y], shape_i(y * x, 0), "y.shape[0]", [(f64(3),) * 2]),
    case(
        "sum_to_same_shape-elemwise", [m, g], SumTo()(m + g, m.shape), "m + g", [(f64(2, 3),) * 2]
    ),
    case(
        "shape_i_from_infer_shape", [m], shape_i(_column_sums(m), 0), "m.shape[1]", [(f64(2, 3),)]
    ),
    case("index_of_shape_vector", [m], m.shape[-1], "m.shape[1]", [(f64(2, 3),)]),
    case("index_of_shape_vector-make_vector", [n], MakeVector()(3, n)[1], "n", [(np.array(4),)]),
]


@pytest.mark.parametrize("inputs, output, expected, values, rtol", FIRES)
def test_rule_fires(inputs, output, expected, values, rtol):
    check_rewrite(inputs, output, expected, values, rtol=rtol)


STAYS = [
    # broadcasting changes the shape: the neutral operand is not removable
    case("mul_by_one", [x], x * fg.ones((2, 1)), "x * [[1.0], [1.0]]", [(f64(3),)]),
    case(
        "mul_by_one-ones_like",
        [m, g],
        fg.ones_like(m) * g,
        "Alloc(1.0, m.shape) * g",
        [(f64(2, 3), f64(2, 3))],
    ),
    case("sub_zero", [x], 0.0 - x, "0.0 - x", [(EDGE,)]),
    case("div_by_one", [x], 1.0 / x, "1.0 / x", [(EDGE,)]),
    case("pow_one", [x], x ** fg.ones((2, 1)), "x ** [[1.0], [1.0]]", [(f64(3),)]),
    case("neg_neg", [x], -x, "-x", [(EDGE,)]),
    # 0 * inf is nan: a float factor of zero stays
    case("mul_by_zero", [x], x * 0, "x * 0.0", [(EDGE,)]),
    # a*x + b*x: symbolic or opposite-sign coefficients, integer sums
    case("add_like_terms-symbolic", [a, b, x], a * x + b * x, "a * x + b * x", [(1.0, 2.0, EDGE)]),
    case(
        "add_like_terms-signs",
        [x],
        2.0 * x + -3.0 * x,
        "2.0 * x + -3.0 * x",
        [(np.array([1e308, -1e308, 1.0]),)],
    ),
    case("add_like_terms-int", [i], 2 * i + 3 * i, "2 * i + 3 * i", [(I32,)]),
    case("add_like_terms-other", [x, y], 2.0 * x + 3.0 * y, "2.0 * x + 3.0 * y", [(EDGE, EDGE)]),
    # a condition known only when run stays
    case(
        "check_that_holds",
        [x],
        fg.check_parameter(x, x > 0, "x <= 0"),
        "CheckParameterValue{message='x <= 0'}(x, x > 0.0)",
        [(np.array([1.0, 2.0]),)],
    ),
    # dtype changes: a real cast stays; lossy and float-to-int chains stay
    case("useless_cast", [x], fg.cast(x, "float32"), "cast{float32}(x)", [(EDGE,)]),
    case(
        "cast_of_lossless_cast-lossy",
        [x],
        fg.cast(fg.cast(x, "float32"), "float64"),
        "cast{float64}(cast{float32}(x))",
        [(np.array([0.1, 1e300]),)],
    ),
    case(
        "cast_of_lossless_cast-to_int",
        [x32],
        fg.cast(fg.cast(x32, "float64"), "int32"),
        "cast{int32}(cast{float64}(x32))",
        [(np.array([1.5, -2.5], "float32"),)],
    ),
    case(
        "cast_of_lossless_cast-int64",
        [n],
        fg.cast(fg.cast(n, "float64"), "float32"),
        "cast{float32}(cast{float64}(n))",
        [(np.array(2**53 + 2**29 + 1),)],
    ),
    case(
        "cast_of_lossless_cast-float_to_int",
        [i],
        fg.cast(fg.cast(i, "float64"), "int8"),
        "cast{int8}(cast{float64}(i))",
        [(np.array([-3, 100], "int32"),)],
    ),
    case(
        "dimshuffle_of_keepdims_reduce",
        [m],
        m.sum(axis=0).dimshuffle("x", 0),
        "Sum{axis=(0,)}(m).dimshuffle('x', 0)",
        [(f64(2, 3),)],
    ),
    case(
        "useless_reshape",
        [m],
        m.reshape((m.shape[0], -1)),
        "Reshape{ndim=2}(m, MakeVector{dtype='int64'}(m.shape[0], -1))",
        [(f64(2, 3),)],
    ),
    case("useless_reshape-other", [m3], m3.reshape((3, -1)), "Reshape{ndim=2}(m3, [3, -1])", []),
    case(
        "useless_broadcast",
        [x, y],
        fg.broadcast_to(x, y.shape),
        "BroadcastTo(x, y.shape)",
        [(f64(1), f64(3)), (f64(3), f64(3))],
    ),
    case(
        "elemwise_drop_broadcast",
        [s, x, y],
        fg.broadcast_to(s, y.shape) * x,
        "BroadcastTo(s, y.shape) * x",
        [(f64(), f64(3), f64(3))],
    ),
    case(
        "elemwise_lift_broadcast",
        [s, m, g],
        fg.broadcast_to(s, m.shape) + g,
        "BroadcastTo(s, m.shape) + g",
        [(f64(), f64(2, 3), f64(2, 3))],
    ),
    case(
        "sum_of_broadcast",
        [x, m],
        fg.broadcast_to(x, m.shape).sum(axis=1),
        "Sum{axis=(1,)}(BroadcastTo(x, m.shape))",
        [(f64(1), f64(2, 3)), (f64(3), f64(2, 3))],
    ),
    case(
        "sum_of_broadcast-empty",
        [s, m],
        fg.broadcast_to(s, m.shape).sum(),
        "Sum{axis=(0, 1)}(BroadcastTo(s, m.shape))",
        [(np.array(np.inf), f64(0, 3)), (f64(), f64(2, 3))],
    ),
    case("reduce_over_length_one_axes", [m], m.sum(axis=1), "Sum{axis=(1,)}(m)", [(f64(2, 3),)]),
    case(
        "sum_to_same_shape",
        [x, m],
        SumTo()(fg.broadcast_to(x, m.shape), x.shape),
        "SumTo(BroadcastTo(x, m.shape), x.shape)",
        [(f64(1), f64(2, 3)), (f64(3), f64(2, 3))],
    ),
    case(
        "sum_to_static_axes", [x, y], SumTo()(x, y.shape), "SumTo(x, y.shape)", [(f64(3), f64(1))]
    ),
    case(
        "dimshuffle_of_broadcast-drops_an_axis",
        [x],
        fg.broadcast_to(x, (1, x.shape[0])).dimshuffle(1),
        "BroadcastTo(x, MakeVector{dtype='int64'}(1, x.shape[0])).dimshuffle(1)",
        [(f64(3),)],
    ),
    case(
        "elemwise_drop_leading_axes-no_other_operand",
        [x],
        fg.exp(x.dimshuffle("x", 0)),
        "exp(x.dimshuffle('x', 0))",
        [(f64(3),)],
    ),
    case(
        "elemwise_drop_broadcast-unknown_inner",
        [v, m],
        m - fg.full(m.shape, v),
        "m - Alloc(v, m.shape)",
        [(f64(1), f64(2, 3))],
    ),
]


@pytest.mark.parametrize("inputs, output, expected, values, rtol", STAYS)
def test_rule_does_not_fire(inputs, output, expected, values, rtol):
    check_rewrite(inputs, output, expected, values, rtol=rtol)


def test_index_of_shape_vector_gives_shape_i():
    assert isinstance(rewritten(m.shape[0]).owner.op, ShapeI)


def test_sum_of_broadcast_counts_exactly_for_ints():
    # int sums wrap alike: 3 * x and x + x + x agree modulo 2**64.
    big = fg.vector("big", dtype="int64")
    out = fg.broadcast_to(big, (3, big.shape[0])).sum(axis=0)
    check_rewrite([big], out, "big * 3", [(np.array([2**62, -(2**63), 5]),)])


# --------------------------------------------------------------------------- switching off

#: One firing case per rule (the first in FIRES with that rule's name).
FIRST = {}
for param in FIRES:
    FIRST.setdefault(param.id.split("-")[0], param.values)


def test_every_rule_has_a_case():
    assert sorted(FIRST) == sorted(r.name for r in canonicalize.rules)


@pytest.mark.parametrize("name", sorted(FIRST))
def test_mode_exclude_switches_rule_off(name):
    inputs, output, _, values, _ = FIRST[name]
    _, stats = optimize([output], exclude=("fusion",))
    assert stats["rewrites"].get(name, 0) > 0
    _, stats = optimize([output], exclude=("fusion", name))
    assert name not in stats["rewrites"]
    mode = fg.Mode("py", exclude=(name, "fusion"))
    f = fg.function(inputs, output, mode=mode, on_unused_input="ignore")
    assert name not in f.rewrite_stats["rewrites"]
    reference = fg.function(inputs, output, mode=NO_REWRITES, on_unused_input="ignore")
    np.testing.assert_allclose(f(*values[0]), reference(*values[0]), rtol=1e-6)


def test_excluding_the_set_switches_all_rules_off():
    _, stats = optimize([fg.ones_like(m).sum() + x * 1], exclude=("canonicalize", "fusion"))
    names = {r.name for r in canonicalize.rules}
    assert not names & set(stats["rewrites"])


# --------------------------------------------------------------------------- gradient graphs


def _mlp_step(static):
    """A 2-layer MLP's cost and SGD updates (weights as inputs, with static shapes or not)."""
    xs = fg.tensor("xs", shape=(None, 4) if static else (None, None))
    ys = fg.tensor("ys", shape=(None, 3) if static else (None, None))
    shapes = [(4, 8), (8,), (8, 3), (3,)]
    params = [
        fg.tensor(name, shape=shape if static else (None,) * len(shape))
        for name, shape in zip(["W1", "b1", "W2", "b2"], shapes)
    ]
    w1, b1, w2, b2 = params
    out = fg.tanh(xs @ w1 + b1) @ w2 + b2
    cost = ((out - ys) ** 2).mean()
    grads = fg.grad(cost, params)
    outputs = [cost] + [p - 0.1 * gp for p, gp in zip(params, grads)]
    values = [f64(5, 4), f64(5, 3)] + [f64(*shape) for shape in shapes]
    return [xs, ys, *params], outputs, values


@pytest.mark.parametrize("static", [True, False])
def test_mlp_gradient_is_cleaned(static):
    inputs, outputs, values = _mlp_step(static)
    mode = fg.Mode("py", exclude=("stabilize", "specialize", "fusion"))
    before = fg.function(inputs, outputs, mode=NO_REWRITES)
    after = fg.function(inputs, outputs, mode=mode)
    for got, want in zip(after(*values), before(*values)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    ops = [type(node.op).__name__ for node in after.graph.toposort()]
    text = fg.dprint(after, file=_Null())
    assert "pow" not in text.split("(output 1)")[1]  # the x ** 1 of d(x**2) is gone
    assert "Alloc" not in ops and "BroadcastTo" not in ops
    # Elementwise ops broadcast only static length-1 dims, so the gradients sum over the
    # static broadcast dims only (b1, b2 over the batch) and need no run-time SumTo.
    assert ops.count("SumTo") == 0
    assert ops.count("Reduce") == 3  # the mean, and the sums for b1 and b2
    assert len(ops) < len(before.graph.toposort()) * 0.85


class _Null:
    def write(self, text):
        pass
