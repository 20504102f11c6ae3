"""Linear algebra ops against NumPy: dot, matmul, tensordot and outer over ndims, dtypes,
0-size and non-contiguous operands, batch broadcasting, and their error paths."""

import numpy as np
import pytest
from harness import Case, check_case, rng

import fusegraph as fg

R = rng(7)


def _arr(shape, dtype="float64"):
    if dtype == "bool":
        return R.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return R.integers(0 if dtype[0] == "u" else -4, 5, shape).astype(dtype)
    return R.normal(0, 1, shape).astype(dtype)


def _tol(*dtypes):
    return (1e-5, 1e-5) if "float32" in dtypes else (1e-10, 1e-12)


def _case(id, fn, ref, shapes, dtypes=("float64", "float64"), static=None, covers=None):
    rtol, atol = _tol(*dtypes)
    inputs = [_arr(s, d) for s, d in zip(shapes, dtypes, strict=True)]
    name = covers or fn.__name__
    return Case(id, [name], fn, ref, inputs, static=static, rtol=rtol, atol=atol)


DOT_SHAPES = {
    "vec-vec": [(5,), (5,)],
    "mat-vec": [(3, 4), (4,)],
    "vec-mat": [(4,), (4, 3)],
    "mat-mat": [(3, 4), (4, 2)],
    "3d-vec": [(2, 3, 4), (4,)],
    "3d-mat": [(2, 3, 4), (4, 5)],
    "mat-3d": [(3, 4), (2, 4, 5)],
    "3d-4d": [(2, 3, 4), (2, 3, 4, 2)],
    "0d-0d": [(), ()],
    "0d-mat": [(), (3, 4)],
    "mat-0d": [(3, 4), ()],
    "vec-0d": [(4,), ()],
    "empty-contracted": [(3, 0), (0, 2)],
    "empty-free": [(0, 4), (4, 3)],
    "empty-vec": [(0,), (0,)],
    "empty-3d": [(2, 0, 3), (3, 0)],
}

MATMUL_SHAPES = {
    "vec-vec": [(5,), (5,)],
    "mat-vec": [(3, 4), (4,)],
    "vec-mat": [(4,), (4, 3)],
    "mat-mat": [(3, 4), (4, 2)],
    "batch-same": [(2, 3, 4), (2, 4, 5)],
    "batch-broadcast-1": [(2, 1, 3, 4), (5, 4, 2)],
    "batch-broadcast-2": [(1, 3, 4), (6, 4, 2)],
    "batch-vec": [(2, 3, 4), (4,)],
    "vec-batch": [(4,), (2, 4, 3)],
    "mat-batch": [(3, 4), (2, 2, 4, 5)],
    "empty-batch": [(0, 3, 4), (4, 2)],
    "empty-contracted": [(2, 3, 0), (2, 0, 4)],
    "empty-vec": [(0,), (0,)],
}

DTYPES = {
    "f64": ("float64", "float64"),
    "f32": ("float32", "float32"),
    "int64": ("int64", "int64"),
    "int8": ("int8", "int8"),
    "int32-f32": ("int32", "float32"),
    "int64-f32": ("int64", "float32"),
    "uint8-int8": ("uint8", "int8"),
    "uint64-int64": ("uint64", "int64"),
    "bool": ("bool", "bool"),
    "bool-int16": ("bool", "int16"),
}


def _tensordot(axes):
    def build(a, b):
        return fg.tensordot(a, b, axes)

    def ref(a, b):
        return np.tensordot(a, b, axes)

    return build, ref


TENSORDOT = {
    "default-2": ([(2, 3, 4), (3, 4, 5)], 2),
    "int-1": ([(2, 3), (3, 4)], 1),
    "int-0-outer": ([(2, 3), (4,)], 0),
    "int-0-scalars": ([(), ()], 0),
    "int-full": ([(3, 4), (3, 4)], 2),
    "pair-seqs": ([(2, 3, 4), (4, 3, 5)], ([1, 2], [1, 0])),
    "pair-ints": ([(2, 3), (4, 3)], (1, 1)),
    "negative": ([(2, 3, 4), (4, 3)], ([-1, -2], [0, -1])),
    "empty": ([(2, 0), (0, 3)], 1),
    "empty-free": ([(0, 3), (3, 5)], ([1], [0])),
}


OUTER = {
    "vec-vec": ([(3,), (4,)], ("float64", "float64")),
    "mat-vec": ([(2, 3), (4,)], ("float64", "float64")),
    "3d-mat": ([(2, 1, 2), (3, 2)], ("float64", "float64")),
    "0d-vec": ([(), (3,)], ("float64", "float64")),
    "0d-0d": ([(), ()], ("float64", "float64")),
    "empty": ([(0,), (3,)], ("float64", "float64")),
    "empty-mat": ([(2, 0), (3,)], ("float64", "float64")),
    "int-f32": ([(3,), (2, 2)], ("int16", "float32")),
    "int8": ([(3,), (3,)], ("int8", "int8")),
    "bool": ([(3,), (2,)], ("bool", "bool")),
    "uint64-int64": ([(2,), (2,)], ("uint64", "int64")),
}


def _cases():
    cases = []
    for label, (shapes, dtypes) in OUTER.items():
        cases.append(_case(f"outer-{label}", fg.outer, np.outer, shapes, dtypes))
    for label, shapes in DOT_SHAPES.items():
        cases.append(_case(f"dot-{label}", fg.dot, np.dot, shapes))
    for label, shapes in MATMUL_SHAPES.items():
        cases.append(_case(f"matmul-{label}", fg.matmul, np.matmul, shapes))
    for label, dtypes in DTYPES.items():
        cases.append(_case(f"dot-mat-mat-{label}", fg.dot, np.dot, [(3, 4), (4, 2)], dtypes))
        cases.append(_case(f"dot-vec-vec-{label}", fg.dot, np.dot, [(4,), (4,)], dtypes))
        cases.append(_case(f"dot-0d-vec-{label}", fg.dot, np.dot, [(), (3,)], dtypes))
        cases.append(
            _case(f"matmul-batch-{label}", fg.matmul, np.matmul, [(2, 3, 4), (4, 2)], dtypes)
        )
        build, ref = _tensordot(([0, 2], [1, 0]))
        cases.append(
            _case(f"tensordot-{label}", build, ref, [(2, 3, 4), (4, 2)], dtypes, covers="tensordot")
        )
    for label, (shapes, axes) in TENSORDOT.items():
        build, ref = _tensordot(axes)
        cases.append(_case(f"tensordot-{label}", build, ref, shapes, covers="tensordot"))
    return cases


def _transposed(shape, dtype="float64"):
    """A transposed (Fortran-ordered) view, whatever layout the harness adds."""
    return _arr(shape[::-1], dtype).T


EXTRA = [
    Case(
        "dot-partial-static",
        ["dot"],
        fg.dot,
        np.dot,
        [_arr((3, 4)), _arr((4, 2))],
        static=[(None, 4), (4, None)],
    ),
    Case(
        "matmul-operator",
        ["matmul"],
        lambda a, b: a @ b,
        np.matmul,
        [_arr((2, 3)), _arr((3, 4))],
        rtol=1e-10,
    ),
    Case(
        "matmul-reflected-array",
        ["matmul"],
        lambda b: np.ones((2, 3)) @ b,
        lambda b: np.ones((2, 3)) @ b,
        [_arr((3, 4))],
        rtol=1e-10,
    ),
    Case(
        "dot-method", ["dot"], lambda a, b: a.dot(b), np.dot, [_arr((3,)), _arr((3, 2))], rtol=1e-10
    ),
    Case(
        "dot-python-scalar",
        ["dot"],
        lambda a: fg.dot(a, 2),
        lambda a: np.dot(a, np.int8(2)),
        [_arr((2, 3), "int8")],
    ),
    Case(
        "dot-python-float-f32",
        ["dot"],
        lambda a: fg.dot(0.5, a),
        lambda a: np.dot(np.float32(0.5), a),
        [_arr((3,), "float32")],
        rtol=1e-6,
    ),
    Case(
        "dot-transposed",
        ["dot"],
        lambda a, b: fg.dot(a, b),
        np.dot,
        [_transposed((3, 4)), _transposed((4, 5))],
        rtol=1e-10,
        atol=1e-12,
    ),
    Case(
        "dot-symbolic-transpose",
        ["dot"],
        lambda a, b: fg.dot(a, b.T),
        lambda a, b: np.dot(a, b.T),
        [_arr((3, 4)), _arr((5, 4))],
        rtol=1e-10,
        atol=1e-12,
    ),
    Case(
        "matmul-transposed-batch",
        ["matmul"],
        fg.matmul,
        np.matmul,
        [_arr((4, 3, 2)).transpose(2, 1, 0), _arr((2, 5, 4)).transpose(0, 2, 1)],
        rtol=1e-10,
        atol=1e-12,
    ),
    Case(
        "dot-nan-inf",
        ["dot"],
        fg.dot,
        np.dot,
        [np.array([[np.inf, 1.0], [np.nan, 0.0]]), np.array([1.0, 2.0])],
    ),
    Case(
        "dot-int-overflow-wraps",
        ["dot"],
        fg.dot,
        np.dot,
        [np.array([100, 100], dtype="int8"), np.array([2, 1], dtype="int8")],
    ),
    Case(
        "dot-runtime-mismatch",
        ["dot"],
        fg.dot,
        None,
        [_arr((2, 3)), _arr((4, 5))],
        raises=ValueError,
        check_static_known=False,
    ),
    Case(
        "matmul-runtime-mismatch",
        ["matmul"],
        fg.matmul,
        None,
        [_arr((2, 3, 4)), _arr((3, 4, 5))],
        raises=ValueError,
        check_static_known=False,
    ),
    Case(
        "tensordot-runtime-mismatch",
        ["tensordot"],
        lambda a, b: fg.tensordot(a, b, 1),
        None,
        [_arr((2, 3)), _arr((4, 5))],
        raises=ValueError,
        check_static_known=False,
    ),
]

CASES = _cases() + EXTRA


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_linalg(case):
    check_case(case)


# ----------------------------------------------------------------------------- static types


@pytest.mark.parametrize(
    "fn, sa, sb, expected",
    [
        (fg.dot, (3, None), (None, 4), (3, 4)),
        (fg.dot, (None, 2, 3), (5, 3, 4), (None, 2, 5, 4)),
        (fg.dot, (), (2, None), (2, None)),
        (fg.dot, (7,), (7,), ()),
        (fg.matmul, (None, 2, 3), (5, 1, 3, 4), (5, None, 2, 4)),
        (fg.matmul, (1, 2, 3), (None, 3, 4), (None, 2, 4)),
        (fg.matmul, (2,), (4, 2, 3), (4, 3)),
        (fg.matmul, (4, 2, 3), (3,), (4, 2)),
        (lambda a, b: fg.tensordot(a, b, ([0], [1])), (3, None), (2, 3), (None, 2)),
        (lambda a, b: fg.tensordot(a, b, 0), (3,), (None, 2), (3, None, 2)),
        (fg.outer, (2, 3), (4,), (6, 4)),
        (fg.outer, (2, None), (), (None, 1)),
        (fg.outer, (), (5,), (1, 5)),
    ],
)
def test_static_shape(fn, sa, sb, expected):
    out = fn(fg.tensor("a", shape=sa), fg.tensor("b", shape=sb))
    assert out.type.shape == expected


def test_dtype_promotion_matches_numpy():
    for da in ("bool", "int8", "uint16", "int32", "uint64", "float32", "float64"):
        for db in ("bool", "uint8", "int64", "float32"):
            a, b = fg.matrix("a", dtype=da), fg.matrix("b", dtype=db)
            expected = np.dot(np.ones((1, 1), da), np.ones((1, 1), db)).dtype.name
            assert fg.dot(a, b).dtype == expected
            assert fg.matmul(a, b).dtype == expected
            assert fg.tensordot(a, b, 1).dtype == expected
            assert fg.outer(a, b).dtype == np.outer(np.ones(1, da), np.ones(1, db)).dtype.name


# ----------------------------------------------------------------------------- errors


def test_dot_build_time_mismatch_names_op_and_shapes():
    a, b = fg.tensor("a", shape=(2, 3)), fg.tensor("b", shape=(4, 5))
    with pytest.raises(ValueError, match=r"Dot: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        fg.dot(a, b)
    with pytest.raises(ValueError, match=r"Dot.*\(3,\).*\(4,\)"):
        fg.dot(fg.tensor("v", shape=(3,)), fg.tensor("w", shape=(4,)))
    with pytest.raises(ValueError, match=r"Dot.*\(2, 3, 4\).*\(5, 2\)"):
        fg.dot(fg.tensor("t", shape=(2, 3, 4)), fg.tensor("m", shape=(5, 2)))


def test_dot_runtime_mismatch_is_wrapped_with_op_shapes_and_user_line():
    a, b = fg.matrix("a"), fg.matrix("b")
    out = fg.dot(a, b)  # the line the error must point at
    f = fg.function([a, b], out, mode="py")
    with pytest.raises(ValueError) as info:
        f(np.ones((2, 3)), np.ones((4, 5)))
    message = str(info.value)
    assert "Dot" in message
    assert "(2, 3) float64" in message and "(4, 5) float64" in message
    assert "test_linalg.py" in message and "out = fg.dot(a, b)" in message
    assert isinstance(info.value.__cause__, ValueError)


def test_matmul_errors_at_build_time():
    s, v = fg.scalar("s"), fg.vector("v")
    with pytest.raises(ValueError, match=r"MatMul: operands must be at least 1-d.*\(\)"):
        fg.matmul(s, v)
    with pytest.raises(ValueError, match="MatMul"):
        v @ 2.0
    with pytest.raises(ValueError, match=r"MatMul.*\(2, 3\).*\(4, 5\).*not aligned"):
        fg.tensor("a", shape=(2, 3)) @ fg.tensor("b", shape=(4, 5))
    with pytest.raises(ValueError, match=r"MatMul: the batch dims of shapes \(2, 1, 3\) and"):
        fg.tensor("a", shape=(2, 1, 3)) @ fg.tensor("b", shape=(4, 3, 5))


def test_matmul_runtime_batch_mismatch_names_op():
    a, b = fg.tensor3("a"), fg.tensor3("b")
    f = fg.function([a, b], a @ b, mode="py")
    with pytest.raises(ValueError, match=r"(?s)MatMul.*\(2, 3, 4\) float64, \(3, 4, 5\) float64"):
        f(np.ones((2, 3, 4)), np.ones((3, 4, 5)))


def test_tensordot_axes_errors():
    a, b = fg.tensor("a", shape=(2, 3)), fg.tensor("b", shape=(3, 4))
    with pytest.raises(ValueError, match="axes must be >= 0"):
        fg.tensordot(a, b, -1)
    with pytest.raises(ValueError, match=r"cannot sum over 3 axes"):
        fg.tensordot(a, b, 3)
    with pytest.raises(ValueError, match="must be paired"):
        fg.tensordot(a, b, ([0, 1], [0]))
    with pytest.raises(ValueError, match=r"axis 2 is out of range for a of shape \(2, 3\)"):
        fg.tensordot(a, b, ([2], [0]))
    with pytest.raises(ValueError, match=r"axis -3 is out of range for b"):
        fg.tensordot(a, b, ([1], [-3]))
    with pytest.raises(ValueError, match="duplicate axes"):
        fg.tensordot(a, b, ([1, 1], [0, 0]))
    with pytest.raises(ValueError, match=r"TensorDot.*\(2, 3\) and \(3, 4\) are not aligned"):
        fg.tensordot(a, b, ([0], [0]))
    with pytest.raises(ValueError, match="an int or a pair"):
        fg.tensordot(a, b, [1])
    with pytest.raises(TypeError, match="must be ints"):
        fg.tensordot(a, b, (["x"], [0]))


def test_ops_are_parameter_equal_and_nodes_are_immutable_inputs():
    assert fg.TensorDot((1,), (0,)) == fg.TensorDot((1,), (0,))
    assert hash(fg.Dot()) == hash(fg.Dot())
    a, b = fg.matrix("a"), fg.matrix("b")
    node = fg.tensordot(a, b, ([-1], [0])).owner
    assert node.op == fg.TensorDot((1,), (0,))
    assert node.inputs == (a, b)


def test_outer_is_built_from_flatten_and_dimshuffle():
    a, b = fg.matrix("a"), fg.vector("b")
    out = fg.outer(a, b)
    assert type(out.owner.op).__name__ == "Elemwise" and str(out.owner.op) == "mul"
    col, row = out.owner.inputs
    assert col.owner.op == fg.DimShuffle(1, (0, "x"))
    assert row.owner.op == fg.DimShuffle(1, ("x", 0))
    assert row.owner.inputs[0] is b  # a vector is not flattened again
