"""Hostile and edge-case inputs (issue 17's reproductions): sizes that overflow int64, the
conversions where NumPy leaves the result undefined, tiny digamma arguments, big-endian
data, ambiguous input names, pickling. Both backends must give the same value or raise the
same kind of error."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.special

import fusegraph as fg
from fusegraph.ops.scalar import float_to_int

MODES = ("py", "numba")
BIG = 2**62


def _int(name):
    return fg.scalar(name, dtype="int64")


@pytest.fixture(scope="module")
def sized():
    """Per mode, functions whose sizes come from int inputs (compiled once)."""
    x, n, k, step = fg.vector("x"), _int("n"), _int("k"), _int("step")
    return {
        mode: {
            "reshape": fg.function([x, n, k], x.reshape((n, k))[10, -1], mode=mode),
            "zeros": fg.function([n, k], fg.zeros((n, k, 2)).sum(), mode=mode),
            "broadcast": fg.function([x, n, k], fg.broadcast_to(x, (n, k)).sum(), mode=mode),
            "arange": fg.function([n, k, step], fg.arange(n, k, step), mode=mode),
        }
        for mode in MODES
    }


@pytest.mark.parametrize("mode", MODES)
def test_size_products_that_wrap_around_raise(sized, mode):
    f = sized[mode]
    # 11 * ((6 + 2**64) // 11) wraps around int64 to 6, the input's size: a view of the
    # claimed shape would read far past the data
    with pytest.raises(ValueError, match="cannot reshape"):
        f["reshape"](np.arange(6.0), 11, (6 + 2**64) // 11)
    assert f["reshape"](np.arange(22.0), 11, 2) == 21.0
    with pytest.raises(ValueError):
        f["zeros"](BIG, 4)  # 2**65 elements
    with pytest.raises(ValueError):
        f["zeros"](0, BIG)  # no elements, but dims no array can have (NumPy raises too)
    assert f["zeros"](3, 0) == 0.0
    with pytest.raises(ValueError):
        f["broadcast"](np.ones(1), BIG, 4)  # a view, but no sum may run over it
    assert f["broadcast"](np.ones(1), 3, 4) == 12.0


def test_static_sizes_that_no_array_can_have_fail_when_built():
    with pytest.raises(ValueError, match=r"Alloc: an array of shape \(4611686018427387904, 4\)"):
        fg.full((BIG, 4), 1.0)
    with pytest.raises(ValueError, match="BroadcastTo: an array of shape"):
        fg.broadcast_to(fg.vector("v"), (BIG, 4))
    with pytest.raises(ValueError, match=r"Reshape\{ndim=2\}: an array of shape"):
        fg.vector("x").reshape((BIG, 2))
    with pytest.raises(ValueError, match="maximum possible size"):
        fg.tensor("t", dtype="float64", shape=(BIG, None, 4))
    assert fg.full((BIG // 8, 0), 1.0).type.shape == (BIG // 8, 0)  # fits: 2**62 bytes


ARANGES = [
    (-(2**63), 2**63 - 1, 2**63 - 1),  # stop - start does not fit in int64
    (2**63 - 1, -(2**63), -(2**63 - 1)),
    (-(2**63), 2**63 - 1, 2**62),
    (5, -7, -3),
    (3, 3, 1),
    (0, 10, 4),
    (-(2**63), -(2**63) + 5, 2),
]


@pytest.mark.parametrize("mode", MODES)
def test_arange_at_the_int64_limits(sized, mode):
    for start, stop, step in ARANGES:
        got = sized[mode]["arange"](start, stop, step)
        np.testing.assert_array_equal(got, np.arange(start, stop, step, dtype=np.int64))
    with pytest.raises(ValueError):
        sized[mode]["arange"](-(2**63), 2**63 - 1, 1)  # 2**64 - 1 elements


@pytest.fixture(scope="module")
def elementwise():
    """Per mode: integer power, digamma, gammaln's gradient, and every float -> int cast."""
    a, b, x, x32 = (
        fg.vector("a", "int64"),
        fg.vector("b", "int64"),
        fg.vector("x"),
        fg.vector("y", "float32"),
    )
    ints = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
    casts = [fg.cast(v, t) for v in (x, x32) for t in ints]
    grad = fg.grad(fg.gammaln(x).sum(), x)
    return {
        mode: (
            fg.function([a, b], a**b, mode=mode),
            fg.function([x, x32], [fg.psi(x), grad, *casts], mode=mode),
        )
        for mode in MODES
    }, ints


@pytest.mark.parametrize("mode", MODES)
def test_negative_integer_powers_raise(elementwise, mode):
    power = elementwise[0][mode][0]
    np.testing.assert_array_equal(power(np.array([2, -3, 7]), np.array([3, 3, 0])), [8, -27, 1])
    with pytest.raises(ValueError, match="negative integer powers are not allowed"):
        power(np.array([2, 1, -1]), np.array([1, -1, -1]))


TINY = np.array([1e-15, 1e-300, -1e-17, 5e-324, -5e-324, 0.0, -0.0, -1.0, -2.5, 1e-8, 0.3, 7.5])
EDGES = np.array(
    [1e10, -1e10, np.nan, np.inf, -np.inf, 300.7, -300.7, 3e9, -3e9, 2.0**63, 1e19, -1.0]
    + [70000.0, 2.0**31, -(2.0**31), -(2.0**31) - 1, 2.0**64, 2.0**63 + 2048, -0.0, 0.99]
)


@pytest.mark.parametrize("mode", MODES)
def test_digamma_and_casts_agree(elementwise, mode):
    (fns, ints) = elementwise[0], elementwise[1]
    out = fns[mode][1](TINY, np.zeros(1, np.float32))
    want = scipy.special.psi(TINY)
    np.testing.assert_allclose(out[0], want, rtol=1e-12)  # psi; poles at -1 (NaN), +-inf at +-0
    np.testing.assert_allclose(out[1], want, rtol=1e-12)  # the gradient of gammaln
    casts = fns[mode][1](EDGES, EDGES.astype(np.float32))[2:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for j, (src, t) in enumerate((s, t) for s in ("float64", "float32") for t in ints):
            values = EDGES.astype(src)
            expected = float_to_int(values, t)
            np.testing.assert_array_equal(casts[j], expected, err_msg=f"{src} -> {t}")
            numpy = values.astype(t)
            # NumPy's own result (x86-64), except uint32 beyond its range (SIMD-dependent)
            same = (values >= 0) & (values < 2**32) if t == "uint32" else np.ones(len(values), bool)
            np.testing.assert_array_equal(expected[same], numpy[same], err_msg=f"{src} -> {t}")


@pytest.mark.parametrize("mode", MODES)
def test_big_endian_arguments_and_shared_values(mode):
    x = fg.vector("x")
    s = fg.shared(np.arange(3.0).astype(">f8"), name="s")
    f = fg.function([x], x * 2 + s, mode=mode)
    np.testing.assert_array_equal(f(np.arange(3.0).astype(">f8")), [0.0, 3.0, 6.0])
    s.set_value(np.ones(3, ">f8"))
    np.testing.assert_array_equal(f(x=np.ones(3, ">f4")), [3.0, 3.0, 3.0])


def test_inputs_with_the_same_name_are_rejected():
    with pytest.raises(ValueError, match="input 1 and input 0 are both named 'x'"):
        fg.function([fg.vector("x"), fg.vector("x")], fg.vector("y") * 0, on_unused_input="ignore")
    a, b = fg.vector(), fg.vector()  # unnamed inputs are positional only: no ambiguity
    assert fg.function([a, b], a + b, mode="py")(np.ones(1), np.ones(1))[0] == 2.0


@pytest.mark.parametrize("mode", MODES)
def test_pickle_every_protocol(mode):
    x = fg.vector("x")
    s = fg.shared(np.ones(2), name="s")
    f = fg.function([x], x * 2 + s, updates=[(s, s + 1)], mode=mode)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        g = pickle.loads(pickle.dumps(f, protocol=protocol))
        np.testing.assert_array_equal(g(np.ones(2)), [3.0, 3.0])
        np.testing.assert_array_equal(g(np.ones(2)), [4.0, 4.0])  # its own shared state
    np.testing.assert_array_equal(s.get_value(), [1.0, 1.0])


@pytest.mark.parametrize("mode", MODES)
def test_allocation_failure_is_a_memory_error_naming_the_op(mode):
    n = _int("n")
    f = fg.function([n], fg.zeros((n, 3)) + 1, mode=mode)
    with pytest.raises(MemoryError, match=r"(?s)failed: .*node built at: .*test_reliability"):
        f(2**40)  # 24 TiB
