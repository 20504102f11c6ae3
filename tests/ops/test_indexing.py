"""Indexing ops against NumPy: basic, integer-array and boolean-mask indexing, set/inc_subtensor,
static shapes (including ``x.shape[i]``) and every build- and run-time error."""

import os

import numpy as np
import pytest
from harness import Case, check_case, rng

import fusegraph as fg
from fusegraph.graph import static_int_tuple, static_value
from fusegraph.ops.indexing import AdvancedSubtensor, IncSubtensor, Subtensor

R = rng(7)
_ = slice(None)


def f64(*shape):
    return R.normal(0, 2, shape)


def f32(*shape):
    return R.normal(0, 2, shape).astype("float32")


def ints(*shape, dtype="int32"):
    lo = 0 if dtype.startswith("u") else -50
    return R.integers(lo, 50, shape).astype(dtype)


def bools(*shape):
    return R.random(shape) < 0.5


def idx(values, dtype="int64"):
    return np.array(values, dtype=dtype)


def ix(name, key, data, **kw):
    """A row ``x[key]`` with a constant key."""
    return Case(f"getitem-{name}", ["getitem"], lambda x: x[key], lambda a: a[key], [data], **kw)


def sym(name, build, ref, *inputs, **kw):
    """A row whose key uses the symbolic inputs after ``x``."""
    return Case(f"getitem-{name}", ["getitem"], build, ref, list(inputs), **kw)


def _set(key):
    def ref(a, y, *vals):
        out = a.copy()
        out[key(*vals) if callable(key) else key] = y
        return out

    return ref


def _inc(key):
    def ref(a, y, *vals):
        out = a.copy()
        np.add.at(out, key(*vals) if callable(key) else key, y)
        return out

    return ref


def setc(name, key, data, y, **kw):
    build = lambda x, y: fg.set_subtensor(x[key], y)  # noqa: E731
    return Case(f"set-{name}", ["set_subtensor"], build, _set(key), [data, y], **kw)


def incc(name, key, data, y, **kw):
    build = lambda x, y: fg.inc_subtensor(x[key], y)  # noqa: E731
    return Case(f"inc-{name}", ["inc_subtensor"], build, _inc(key), [data, y], **kw)


M = f64(4, 5)
T3 = f64(3, 4, 5)

BASIC = [
    ix("int", 1, M),
    ix("int-neg", -1, M),
    ix("int-int", (1, -2), M),
    ix("int-to-0d", 3, f64(5)),
    ix("int-all-dims-3d", (2, 3, -5), T3),
    ix("int-np-int8", np.int8(2), M),
    ix("int-np-uint64", (np.uint64(1), np.int16(-1)), M),
    ix("int-middle-axis", (_, 2), T3),
    ix("int-int32-data", (_, 0), ints(3, 4)),
    ix("int-uint8-data", 2, ints(4, 2, dtype="uint8")),
    ix("int-bool-data", (1, _), bools(3, 4)),
    ix("int-f32", -2, f32(3, 4)),
    ix("slice", slice(1, 3), M),
    ix("slice-reverse", slice(None, None, -1), M),
    ix("slice-neg-bounds", slice(-3, -1), f64(6)),
    ix("slice-step", slice(None, None, 2), f64(7)),
    ix("slice-neg-step", slice(5, 1, -2), f64(7)),
    ix("slice-neg-step-neg-bounds", slice(-1, -6, -3), f64(7)),
    ix("slice-clipped", slice(-100, 100), f64(4)),
    ix("slice-beyond-is-empty", slice(10, 20), f64(4)),
    ix("slice-empty-reversed", slice(3, 1), f64(5)),
    ix("slice-2d", (slice(1, None), slice(None, -1, 2)), M),
    ix("slice-3d-f32", (slice(None, 2), _, slice(None, None, -2)), f32(3, 4, 5)),
    ix("slice-int-data", (slice(None, None, -1), slice(1, 3)), ints(3, 4, dtype="int64")),
    ix("slice-python-bool-bound", slice(True, None), f64(3)),
    ix("newaxis", None, M),
    ix("newaxis-middle", (_, None, 1), M),
    ix("newaxis-both-ends", (None, ..., None), M),
    ix("newaxis-np", (np.newaxis, 0, np.newaxis), f32(3, 2)),
    ix("ellipsis", ..., M),
    ix("ellipsis-last-axis", (..., 1), T3),
    ix("ellipsis-first", (1, ...), T3),
    ix("ellipsis-middle", (0, ..., slice(1, 3)), T3),
    ix("empty-tuple", (), M),
    ix("0d-empty-tuple", (), f64()),
    ix("0d-newaxis", None, f64()),
    ix("0d-ellipsis", ..., ints()),
    ix("0size-int-axis1", (_, 1), f64(0, 3)),
    ix("0size-slice", slice(1, None), f64(0, 3)),
    ix("0size-reverse", slice(None, None, -1), f64(0, 3)),
    ix("0size-newaxis", (..., None), f64(0, 3)),
    ix("0size-axis1-int0", 2, f64(3, 0)),
    ix("slice-to-empty", slice(None, 0), f32(4, 2)),
]

SYMBOLIC = [
    sym("sym-int", lambda x, i: x[i], lambda a, i: a[i], M, idx(2, "int32")),
    sym("sym-int-neg-int8", lambda x, i: x[i], lambda a, i: a[i], M, idx(-1, "int8")),
    sym("sym-int-uint8", lambda x, i: x[:, i], lambda a, i: a[:, i], M, idx(4, "uint8")),
    sym("sym-int-uint64", lambda x, i: x[i], lambda a, i: a[i], f64(3), idx(2, "uint64")),
    sym(
        "sym-int-pair",
        lambda x, i, j: x[i, j],
        lambda a, i, j: a[i, j],
        ints(3, 4),
        idx(2),
        idx(-3, "int16"),
    ),
    sym(
        "sym-start-stop",
        lambda x, i, j: x[i:j],
        lambda a, i, j: a[i:j],
        f64(6),
        idx(1, "int32"),
        idx(-1, "int32"),
    ),
    sym("sym-start", lambda x, i: x[_, i:], lambda a, i: a[:, i:], f32(3, 5), idx(2)),
    sym("sym-neg-step", lambda x, s: x[::s], lambda a, s: a[::s], f64(7), idx(-2, "int8")),
    sym(
        "sym-all-three",
        lambda x, i, j, s: x[i:j:s],
        lambda a, i, j, s: a[i:j:s],
        f64(8),
        idx(6),
        idx(0),
        idx(-2),
    ),
    sym(
        "sym-mixed",
        lambda x, i, j: x[i, 1:j, None],
        lambda a, i, j: a[i, 1:j, None],
        T3,
        idx(-1),
        idx(3),
    ),
    sym("sym-slice-0size", lambda x, i: x[i:], lambda a, i: a[i:], f64(0, 2), idx(1)),
    sym(
        "sym-int-float32-data",
        lambda x, i: x[..., i],
        lambda a, i: a[..., i],
        f32(2, 3),
        idx(-2, "int16"),
    ),
    sym(
        "shape-entries",
        lambda x: [x.shape[0], x.shape[-1], x.shape[1:]],
        lambda a: [np.int64(a.shape[0]), np.int64(a.shape[-1]), np.array(a.shape[1:])],
        T3,
    ),
]

ADVANCED = [
    ix("list", [0, 2, 2], M),
    ix("list-neg", [-1, 0], M),
    ix("list-axis1", (_, [4, 0, 1]), M),
    ix("array-int8", idx([1, -1, 1], "int8"), f32(3, 2)),
    ix("array-uint16-2d", idx([[0, 1], [3, 3]], "uint16"), M),
    ix("array-int-data", idx([2, 0]), ints(3, 2)),
    ix("array-bool-data", idx([[1], [0]]), bools(2, 3)),
    ix("two-arrays-broadcast", (idx([[0], [3]]), idx([1, 2, 4])), M),
    ix("array-and-int-adjacent", (_, idx([0, 3]), 1), T3),
    ix("int-and-array-nonadjacent", (1, _, idx([0, 0, 4])), T3),
    ix("arrays-split-by-slice", (idx([0, 2]), _, idx([1, 3])), T3),
    ix("arrays-split-by-newaxis", (_, idx([0, 2]), None, idx([1, 3])), f64(2, 3, 4)),
    ix("arrays-split-by-ellipsis", (idx([0, 2]), ..., idx([1, 3])), T3),
    ix("arrays-split-by-empty-ellipsis", (_, idx([0, 2]), ..., idx([1, 3])), T3),
    ix("array-newaxis-after", (idx([1, 2]), None), M),
    ix("nested-list-2d", [[0, 1], [1, 0]], f64(2, 3)),
    ix("empty-list", [], M),
    ix("empty-array-int32", idx([], "int32"), M),
    ix("empty-list-axis1", (_, []), M),
    ix("empty-list-0size-input", [], f64(0, 3)),
    ix("empty-arrays-broadcast", (idx([]), 0), M),
    ix("array-on-0size-axis1", (_, idx([], "uint8")), f64(3, 0)),
    ix("bool-const-mask", idx([True, False, True, True], "bool"), M),
    ix("bool-const-mask-axis1", (_, np.array([1, 0, 0, 1, 1], bool)), M),
    ix("bool-2d-mask", M > 0, M),
    ix("bool-2d-mask-on-3d", (T3[..., 0] > 0, slice(None, 3)), T3),
    ix("bool-mask-after-slice", (slice(1, 3), T3[0] > 0), T3),
    ix("bool-mask-and-array", (np.array([True, False, True]), _, idx([0, 4])), T3),
    ix("bool-true", True, M),
    ix("bool-false", (None, False), M),
    ix("bool-empty-mask", np.zeros((0,), bool), f64(0, 3)),
    ix("bool-list", [True, False, False, True], M),
    sym("sym-array", lambda x, i: x[i], lambda a, i: a[i], M, idx([3, -4, 3], "int32")),
    sym(
        "sym-array-uint8-2d",
        lambda x, i: x[_, i],
        lambda a, i: a[:, i],
        M,
        idx([[4], [0]], "uint8"),
    ),
    sym(
        "sym-arrays-broadcast",
        lambda x, i, j: x[i, :, j],
        lambda a, i, j: a[i, :, j],
        T3,
        idx([[0], [2]], "int16"),
        idx([1, 4, 4]),
    ),
    sym(
        "sym-int-with-array",
        lambda x, i, j: x[i, j],
        lambda a, i, j: a[i, j],
        M,
        idx(-1, "int8"),
        idx([0, 2]),
    ),
    sym(
        "sym-array-with-slice-bounds",
        lambda x, i, j: x[i, j:],
        lambda a, i, j: a[i, j:],
        M,
        idx([1, 1]),
        idx(2),
    ),
    sym(
        "list-of-scalar-variables",
        lambda x, i, j: x[[i, j, 0]],
        lambda a, i, j: a[[i, j, 0]],
        f64(5),
        idx(3),
        idx(-1, "int32"),
    ),
    sym("sym-empty-array", lambda x, i: x[i], lambda a, i: a[i], f64(0, 3), idx([], "int32")),
    sym("mask-from-comparison", lambda x: x[x > 0], lambda a: a[a > 0], M),
    sym("mask-from-comparison-int", lambda x: x[x > 0], lambda a: a[a > 0], ints(3, 4)),
    sym("mask-from-comparison-f32", lambda x: x[x < 10], lambda a: a[a < 10], f32(2, 5)),
    sym("mask-none-selected", lambda x: x[x > 1e9], lambda a: a[a > 1e9], M),
    sym("mask-0size", lambda x: x[x > 0], lambda a: a[a > 0], f64(0, 4)),
    sym("mask-sym-rows", lambda x, m: x[m], lambda a, m: a[m], M, bools(4)),
    sym("mask-sym-cols-with-int", lambda x, m: x[1, m], lambda a, m: a[1, m], M, bools(5)),
    sym("mask-sym-2d-on-3d", lambda x, m: x[m, 1:], lambda a, m: a[m, 1:], T3, bools(3, 4)),
    sym(
        "mask-sym-and-array",
        lambda x, m, i: x[m, i],
        lambda a, m, i: a[m, i],
        M,
        np.array([True, False, False, True]),
        idx([0, 4]),
    ),
    sym("mask-sym-0d", lambda x, m: x[m], lambda a, m: a[m], f64(3), np.array(True)),
]

Y_ROW = f64(5)
SETINC = [
    setc("slice-scalar-y", slice(1, 3), M, np.array(7.0)),
    setc("slice-row-y", slice(1, 3), M, Y_ROW),
    setc("int-row", 2, M, f64(5)),
    setc("int-int", (2, 3), M, np.array(-1.0)),
    setc("step-neg", (slice(None, None, -2), _), M, f64(2, 1)),
    setc("newaxis-ellipsis", (None, ..., 0), T3, f64(3, 1)),
    setc("f32", (_, slice(1, None)), f32(3, 4), f32(3)),
    setc("int-data-int8-y", slice(0, 2), ints(3, 2), ints(2, dtype="int8")),
    setc("int-data-bool-y", (_, 1), ints(3, 2, dtype="int64"), bools(3)),
    setc("uint32-data-uint8-y", 0, ints(3, 2, dtype="uint32"), ints(2, dtype="uint8")),
    setc("adv-duplicates-last-wins", [0, 2, 0], f64(4), f64(3)),
    setc("adv-2d", (idx([[0], [3]]), idx([1, 2])), M, f64(2, 2)),
    setc("adv-nonadjacent", (1, _, idx([0, 0, 4])), T3, f64(3, 1)),
    setc("mask", M > 0.5, M, np.array(0.0)),
    setc("mask-rows", np.array([True, False, True, False]), M, f64(1, 5)),
    setc("0size", slice(None), f64(0, 3), f64(3)),
    setc("0size-adv", [], f64(4, 2), f64(2)),
    setc("0d-x", (), f64(), np.array(3.0)),
    incc("slice", slice(None, None, 2), f64(5), np.array(1.5)),
    incc("slice-row-y", (slice(1, None), _), M, Y_ROW),
    incc("int", (_, 1), M, f64(4)),
    incc("int-data", (_, 1), ints(3, 4), ints(3, dtype="int16")),
    incc("bool-data", 0, bools(2, 3), bools(3)),
    incc("adv-duplicates-accumulate", [0, 2, 0, 0], f64(4), f64(4)),
    incc("adv-duplicates-broadcast-y", ([0, 0, 1], _), M, f64(5)),
    incc("adv-2d-duplicates", (idx([[0, 0], [1, 0]]), idx([2, 2])), M, np.array(1.0)),
    incc("adv-nonadjacent-duplicates", (1, _, [0, 0]), T3, f64(2, 1)),
    incc("adv-f32", idx([1, 1], "int8"), f32(3, 2), f32(2)),
    incc("adv-int-data", [1, 1, -1], ints(3), ints(3, dtype="int8")),
    incc("mask", M < 0, M, np.array(10.0)),
    incc("mask-cols", (_, np.array([1, 0, 0, 1, 0], bool)), M, f64(4, 1)),
    incc("0size", [], f64(0, 2), f64(2)),
    Case(
        "set-python-scalar-into-f32",
        ["set_subtensor"],
        lambda x: fg.set_subtensor(x[1:], 0.1),
        lambda a: _set(slice(1, None))(a, np.float32(0.1)),
        [f32(4)],
        rtol=0,
    ),
    Case(
        "inc-python-int-into-int8",
        ["inc_subtensor"],
        lambda x: fg.inc_subtensor(x[0], 3),
        lambda a: _inc(0)(a, np.int8(3)),
        [ints(3, dtype="int8")],
    ),
    Case(
        "inc-python-int-into-float",
        ["inc_subtensor"],
        lambda x: fg.inc_subtensor(x[::2], 2),
        lambda a: _inc(slice(None, None, 2))(a, 2.0),
        [f64(5)],
    ),
    Case(
        "inc-set-instead-of-inc",
        ["inc_subtensor"],
        lambda x, y: fg.inc_subtensor(x[[1, 1]], y, set_instead_of_inc=True),
        _set([1, 1]),
        [f64(3), f64(2)],
    ),
    Case(
        "set-sym-slice",
        ["set_subtensor"],
        lambda x, y, i, j: fg.set_subtensor(x[i:j], y),
        _set(lambda i, j: slice(i, j)),
        [f64(6), f64(1), idx(1, "int32"), idx(-2, "int8")],
    ),
    Case(
        "inc-sym-int",
        ["inc_subtensor"],
        lambda x, y, i: fg.inc_subtensor(x[_, i], y),
        _inc(lambda i: (slice(None), i)),
        [M, f64(4), idx(3, "uint8")],
    ),
    Case(
        "inc-sym-array-duplicates",
        ["inc_subtensor"],
        lambda x, y, i: fg.inc_subtensor(x[i], y),
        _inc(lambda i: i),
        [M, f64(3, 5), idx([2, 2, 2], "int32")],
    ),
    Case(
        "set-sym-array",
        ["set_subtensor"],
        lambda x, y, i: fg.set_subtensor(x[i, 1], y),
        _set(lambda i: (i, 1)),
        [M, f64(2), idx([3, 0], "int8")],
    ),
    Case(
        "inc-sym-mask",
        ["inc_subtensor"],
        lambda x, y, m: fg.inc_subtensor(x[m], y),
        _inc(lambda m: m),
        [M, f64(5), bools(4)],
    ),
    Case(
        "inc-mask-from-comparison",
        ["inc_subtensor"],
        lambda x: fg.inc_subtensor(x[x > 0], 1.0),
        lambda a: np.where(a > 0, a + 1, a),
        [M],
    ),
    Case(
        "set-mask-from-comparison-int",
        ["set_subtensor"],
        lambda x: fg.set_subtensor(x[x < 0], 0),
        lambda a: np.maximum(a, 0),
        [ints(3, 4)],
    ),
    Case(
        "set-then-index",
        ["set_subtensor", "getitem"],
        lambda x: fg.set_subtensor(x[1:], 0.0)[::-1],
        lambda a: _set(slice(1, None))(a, 0.0)[::-1],
        [f64(4)],
    ),
]

RUNTIME_ERRORS = [
    sym("err-sym-int-out-of-range", lambda x, i: x[i], None, M, idx(4), raises=IndexError),
    sym(
        "err-sym-int-neg-out-of-range",
        lambda x, i: x[_, i],
        None,
        M,
        idx(-6, "int8"),
        raises=IndexError,
    ),
    sym(
        "err-int-on-0size",
        lambda x: x[0],
        None,
        f64(0, 3),
        raises=IndexError,
        check_static_known=False,
    ),
    sym("err-sym-array-out-of-range", lambda x, i: x[i], None, M, idx([0, 9]), raises=IndexError),
    sym(
        "err-sym-arrays-broadcast",
        lambda x, i, j: x[i, j],
        None,
        M,
        idx([0, 1]),
        idx([0, 1, 2]),
        raises=IndexError,
        check_static_known=False,
    ),
    sym(
        "err-sym-mask-shape",
        lambda x, m: x[m],
        None,
        M,
        bools(3),
        raises=IndexError,
        check_static_known=False,
    ),
    sym("err-sym-step-zero", lambda x, s: x[::s], None, f64(3), idx(0), raises=ValueError),
    Case(
        "err-set-y-shape",
        ["set_subtensor"],
        lambda x, y: fg.set_subtensor(x[1:], y),
        None,
        [f64(4), f64(2)],
        raises=ValueError,
        check_static_known=False,
    ),
    Case(
        "err-inc-adv-out-of-range",
        ["inc_subtensor"],
        lambda x, i: fg.inc_subtensor(x[i], 1.0),
        None,
        [f64(3), idx([3])],
        raises=IndexError,
    ),
]

CASES = BASIC + SYMBOLIC + ADVANCED + SETINC + RUNTIME_ERRORS


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_indexing(case):
    check_case(case)


def test_every_public_function_is_covered():
    covered = {name for case in CASES for name in case.covers}
    assert {"getitem", "set_subtensor", "inc_subtensor"} <= covered


# --------------------------------------------------------------------------- static shapes

STATIC = [
    # (static shape of x, key, expected static shape of x[key])
    ((4, 5), (1,), (5,)),
    ((None, 5), (slice(1, 3),), (None, 5)),
    ((None, 5), (slice(3, 1),), (0, 5)),
    ((None, 5), (slice(-1, -3),), (0, 5)),
    ((None, 5), (slice(1, 3, -1),), (0, 5)),
    ((None, 5), (slice(-2, None),), (None, 5)),
    ((0, None), (slice(1, None, 7), 2), (0,)),
    ((6,), (slice(None, None, -4),), (2,)),
    ((3, 4, 5), (..., None, 1), (3, 4, 1)),
    ((3, None, 5), ([0, 1], _, [1, 2]), (2, None)),
    ((3, None, 5), (1, _, [1, 2]), (2, None)),
    ((3, None, 5), (_, [[1], [2]], [1, 2, 3]), (3, 2, 3)),
    ((3, 4, 5), ([0, 1], None, [1, 2]), (2, 1, 5)),
    ((3, 4, 5), (_, [0, 1], ..., [1, 2]), (2, 3)),
    ((3, 4, 5), (_, [0, 1], [1, 2], ...), (3, 2)),
    ((3, 4), (np.array([True, False, True]),), (2, 4)),
    ((None, 4), (_, np.array([True, False, True, True])), (None, 3)),
    ((3, 4), (True,), (1, 3, 4)),
    ((3, 4), (None, False), (1, 0, 3, 4)),
    ((3, 4), ([], 1), (0,)),
    ((2, 0), (np.zeros((2, 0), bool),), (0,)),
    ((7, 7), (np.zeros(0, bool), 0), (0,)),
]


@pytest.mark.parametrize("shape, key, expected", STATIC, ids=lambda v: str(v))
def test_static_shape_is_exact(shape, key, expected):
    x = fg.tensor("x", shape=shape)
    assert x[key].type.shape == expected
    if None not in shape:
        assert np.zeros(shape)[key].shape == expected


def test_static_shape_of_symbolic_parts():
    x = fg.tensor("x", shape=(3, 4, 5))
    i, b = fg.scalar("i", dtype="int32"), fg.vector("b", dtype="bool")
    v = fg.tensor("v", dtype="int8", shape=(None, 2))
    assert x[i].type.shape == (4, 5)
    assert x[i:].type.shape == (None, 4, 5)
    assert x[b].type.shape == (None, 4, 5)
    assert x[x > 0].type.shape == (None,)
    assert x[:, v].type.shape == (3, None, 2, 5)
    assert fg.tensor("z", shape=(0, 2))[i:].type.shape == (0, 2)
    y = fg.tensor("y", shape=(None, 2, 3))
    assert x[: y.shape[1]].type.shape == (2, 4, 5)
    assert x[y.shape[-1] - 1 :].type.shape[1:] == (4, 5)
    assert set_type(x[1:], 0.0) == ((3, 4, 5), "float64")


def set_type(sub, y):
    out = fg.set_subtensor(sub, y)
    return out.type.shape, out.dtype


def test_shape_entries_are_static():
    x = fg.tensor("x", shape=(3, None, 5))
    assert int(static_value(x.shape[0])) == 3
    assert int(static_value(x.shape[-1])) == 5
    assert static_value(x.shape[1]) is None
    assert static_int_tuple(x.shape[1:]) == (None, 5)
    assert static_int_tuple(x.shape[::2]) == (3, 5)
    assert static_value(x.shape[::2]).tolist() == [3, 5]
    assert static_value(x.shape[::2]).dtype == np.int64
    assert static_int_tuple(x.shape[[2, 0, 0]]) == (5, 3, 3)
    assert static_int_tuple(x.shape[np.array([True, True, False])]) == (3, None)
    assert static_value(fg.constant(np.arange(6))[1:4]).tolist() == [1, 2, 3]
    assert static_value(x.shape[fg.scalar("i", dtype="int64")]) is None
    with pytest.raises(ValueError, match="must be known"):
        static_int_tuple(x.shape[x.shape > 3])


def test_random_keys_against_numpy():
    """Random mixes of every index kind: values, static shape and errors agree with NumPy,
    and set/inc agree with NumPy assignment and np.add.at."""
    gen = rng(11)

    def rand_key():
        items = []
        for _k in range(gen.integers(0, 5)):
            kind = gen.integers(0, 7)
            if kind == 0:
                items.append(int(gen.integers(-3, 3)))
            elif kind == 1:
                bounds = [None if gen.random() < 0.4 else int(gen.integers(-4, 4)) for _ in "ab"]
                items.append(slice(*bounds, [None, 1, 2, -1][gen.integers(0, 4)]))
            elif kind == 2:
                items.append(None)
            elif kind == 3 and not any(item is Ellipsis for item in items):
                items.append(Ellipsis)
            elif kind == 4:
                shape = [(2,), (1,), (2, 1), (0,), ()][gen.integers(0, 5)]
                items.append(gen.integers(-2, 2, shape).astype(["int8", "int64"][kind % 2]))
            elif kind == 5:
                items.append(gen.random([(2,), (3,), (2, 3)][gen.integers(0, 3)]) < 0.5)
        return tuple(items)

    checked = 0
    for _trial in range(400):
        a = gen.normal(size=tuple(int(d) for d in gen.integers(1, 4, gen.integers(0, 4))))
        key = rand_key()
        try:
            expected = a[key]
        except IndexError:
            x = fg.tensor("x", shape=a.shape)
            with pytest.raises(IndexError):
                fg.function([x], x[key], mode="py")(a)
            continue
        for static in (a.shape, (None,) * a.ndim):
            x = fg.tensor("x", shape=static)
            sub = x[key]
            assert sub.type.shape == tuple(
                d if s is not None else None
                for d, s in zip(expected.shape, sub.type.shape, strict=True)
            )
            if static == a.shape:
                assert sub.type.shape == expected.shape, key
            y = gen.normal(size=expected.shape[gen.integers(0, expected.ndim + 1) :])
            yv = fg.tensor("y", shape=(None,) * y.ndim)
            f = fg.function(
                [x, yv], [sub, fg.set_subtensor(sub, yv), fg.inc_subtensor(sub, yv)], mode="py"
            )
            got, got_set, got_inc = f(a, y)
            want_set, want_inc = a.copy(), a.copy()
            want_set[key] = y
            np.add.at(want_inc, key, y)
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(got_set, want_set)
            np.testing.assert_array_equal(got_inc, want_inc)
        checked += 1
    assert checked > 150


# --------------------------------------------------------------------------- errors


def test_build_time_index_errors():
    x = fg.tensor("x", shape=(3, 4))
    with pytest.raises(
        IndexError,
        match=r"Subtensor\{3\}: index 3 is out of bounds for axis 0 "
        r"with size 3",
    ):
        x[3]
    with pytest.raises(IndexError, match=r"index -5 is out of bounds for axis 1 with size 4"):
        x[:, -5]
    with pytest.raises(
        IndexError,
        match=r"AdvancedSubtensor.*index 3 is out of bounds for axis "
        r"0 with size 3",
    ):
        x[[0, 3]]
    with pytest.raises(IndexError, match=r"too many indices.*\(3, 4\).*2-dimensional, but 3"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="too many indices"):
        x[x > 0, 1]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., 0, ...]
    with pytest.raises(IndexError, match=r"boolean index of shape \(2,\) does not match.*axis 0"):
        x[np.array([True, False])]
    with pytest.raises(IndexError, match=r"AdvancedSubtensor.*\(2,\) and \(3,\) cannot be broad"):
        x[[0, 1], [0, 1, 2]]
    with pytest.raises(ValueError, match="slice step cannot be zero"):
        x[::0]


def test_build_time_index_type_errors():
    x = fg.tensor("x", shape=(3, 4))
    with pytest.raises(TypeError, match=r"index 1\.5 \(float\) is not valid"):
        x[1.5]
    with pytest.raises(TypeError, match=r"\(float64\) is not valid"):
        x[0, np.float64(1.0)]
    with pytest.raises(TypeError, match="integer or boolean array, got float64 vector"):
        x[np.array([1.0])]
    with pytest.raises(TypeError, match="integer or boolean array, got float64 scalar"):
        x[fg.scalar("f")]
    with pytest.raises(TypeError, match="slice bounds must be integers"):
        x[1.0:]
    with pytest.raises(TypeError, match="slice bounds must be integers or None, got int64 vector"):
        x[: fg.vector("v", dtype="int64")]
    with pytest.raises(TypeError, match="not valid"):
        x["a"]


def test_runtime_index_error_names_op_shapes_and_line():
    x = fg.matrix("x")
    i = fg.scalar("i", dtype="int32")
    out = x[1:, i]  # the line the error must point at
    f = fg.function([x, i], out, mode="py")
    with pytest.raises(IndexError) as info:
        f(np.zeros((4, 5)), 7)
    message = str(info.value)
    assert "Subtensor{1:, ?}" in message
    assert "index 7 is out of bounds for axis 1 with size 5" in message
    assert "(4, 5) float64, () int32" in message
    assert os.path.basename(__file__) in message and "out = x[1:, i]" in message


def test_runtime_advanced_and_set_errors_name_op():
    x, i = fg.vector("x"), fg.vector("i", dtype="int64")
    f = fg.function([x, i], fg.inc_subtensor(x[i], 1.0), mode="py")
    with pytest.raises(
        IndexError,
        match=r"(?s)AdvancedIncSubtensor\{int array\}.*index 5.*"
        r"fg.inc_subtensor\(x\[i\], 1.0\)",
    ):
        f(np.zeros(3), np.array([0, 5]))
    y = fg.vector("y")
    g = fg.function([x, y], fg.set_subtensor(x[::2], y), mode="py")
    with pytest.raises(
        ValueError,
        match=r"(?s)SetSubtensor\{::2\}.*could not broadcast.*"
        r"\(5,\) float64, \(2,\) float64",
    ):
        g(np.zeros(5), np.zeros(2))


def test_set_subtensor_needs_an_indexing_result():
    x = fg.vector("x")
    with pytest.raises(
        TypeError,
        match=r"set_subtensor: the first argument must be the result "
        r"of indexing.*got x \(float64 vector\)",
    ):
        fg.set_subtensor(x, 1.0)
    with pytest.raises(TypeError, match="inc_subtensor: .*result of indexing.*got a ndarray"):
        fg.inc_subtensor(np.zeros(3), 1.0)
    with pytest.raises(TypeError, match="inc_subtensor: .*result of indexing"):
        fg.inc_subtensor(x + 1, 1.0)


def test_lossy_y_dtype_is_a_type_error():
    xi = fg.vector("xi", dtype="int32")
    xf = fg.vector("xf", dtype="float32")
    with pytest.raises(
        TypeError,
        match=r"SetSubtensor\{0\}: y of dtype float64 cannot be cast "
        r"to x's dtype int32",
    ):
        fg.set_subtensor(xi[0], fg.scalar("y"))
    with pytest.raises(TypeError, match="y of dtype int64 cannot be cast to x's dtype int32"):
        fg.inc_subtensor(xi[1:], fg.vector("y", dtype="int64"))
    with pytest.raises(TypeError, match="y of dtype float64 cannot be cast to x's dtype float32"):
        fg.inc_subtensor(xf[[0]], fg.vector("y"))
    with pytest.raises(TypeError, match="uint8 cannot be cast to x's dtype int8"):
        fg.set_subtensor(fg.vector("z", dtype="int8")[:], fg.vector("u", dtype="uint8"))
    with pytest.raises(
        TypeError,
        match=r"y = 2.5 \(float\) cannot be converted to x's dtype "
        r"int32 without loss",
    ):
        fg.set_subtensor(xi[0], 2.5)
    with pytest.raises(TypeError, match="y = 300 .*int8"):
        fg.inc_subtensor(fg.vector("z", dtype="int8")[0], 300)
    with pytest.raises(TypeError, match="ndarray of dtype float64"):
        fg.set_subtensor(xf[:2], np.zeros(2))
    # Python scalars are weak; exact conversions and safe casts are accepted.
    assert fg.set_subtensor(xi[0], 2.0).dtype == "int32"
    assert fg.set_subtensor(xf[0], 0.1).dtype == "float32"
    assert fg.inc_subtensor(xf[0], fg.scalar("k", dtype="int8")).dtype == "float32"


def test_build_time_y_shape_errors():
    x = fg.tensor("x", shape=(4, 5))
    with pytest.raises(
        ValueError,
        match=r"SetSubtensor\{1:3\}: y of shape \(3,\) cannot be "
        r"broadcast to the shape \(2, 5\) of x\[idx\]",
    ):
        fg.set_subtensor(x[1:3], fg.tensor("y", shape=(3,)))
    with pytest.raises(ValueError, match=r"y of shape \(1, 1, 5\) cannot be broadcast"):
        fg.inc_subtensor(x[1:3], np.ones((1, 1, 5)))
    with pytest.raises(ValueError, match=r"AdvancedIncSubtensor.*\(2,\).*\(3, 5\)"):
        fg.inc_subtensor(x[[0, 0, 1]], np.ones(2))
    # Unknown dims may still match at run time.
    assert fg.set_subtensor(x[1:3], fg.vector("y")).type.shape == (4, 5)


# --------------------------------------------------------------------------- the ops


def test_ops_are_hashable_parameters_and_print_their_index():
    x = fg.tensor3("x")
    i = fg.scalar("i", dtype="int64")
    a, b = x[1:i, None, ..., -1], x[1:i, None, ..., -1]
    assert a.owner.op == b.owner.op and hash(a.owner.op) == hash(b.owner.op)
    assert isinstance(a.owner.op, Subtensor)
    assert a.owner.op.idx == (("slice", 1, "?", None), ("newaxis",), ("ellipsis",), ("int", -1))
    assert str(a.owner.op) == "Subtensor{1:?, None, ..., -1}"
    adv = x[[0], ::-2, x[0, 0] > 0]
    assert isinstance(adv.owner.op, AdvancedSubtensor)
    assert str(adv.owner.op) == "AdvancedSubtensor{int array, ::-2, bool mask}"
    assert str(fg.inc_subtensor(x[0], 1.0).owner.op) == "IncSubtensor{0}"
    assert str(fg.set_subtensor(x[[0]], 1.0).owner.op) == "AdvancedSetSubtensor{int array}"
    assert x[0].owner.op != x[1].owner.op


def test_op_parameters_are_validated():
    with pytest.raises(TypeError, match="invalid index entry"):
        Subtensor((("array",),))
    with pytest.raises(TypeError, match="invalid index entry"):
        Subtensor(("slice", 1, 2, 3))
    with pytest.raises(TypeError, match="must be a tuple"):
        Subtensor([("int", 0)])
    with pytest.raises(TypeError, match="pass advanced=True"):
        IncSubtensor((("mask",),))
    with pytest.raises(TypeError, match="takes 1 index inputs, got 0"):
        Subtensor((("int", "?"),))(fg.vector("x"))
    with pytest.raises(TypeError, match="an integer index must be a 0-d integer"):
        Subtensor((("int", "?"),))(fg.vector("x"), fg.scalar("f"))


def test_inputs_are_not_mutated_and_results_do_not_alias():
    a = np.arange(6.0)
    x = fg.vector("x")
    f = fg.function(
        [x], [x[1:], fg.set_subtensor(x[1:], 0.0), fg.inc_subtensor(x[[0, 0]], 1.0)], mode="py"
    )
    view, set_, inc = f(a)
    view[0] = 100.0
    np.testing.assert_array_equal(a, np.arange(6.0))
    np.testing.assert_array_equal(set_, [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(inc, [2, 1, 2, 3, 4, 5])
