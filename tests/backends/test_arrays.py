"""The array intrinsics of generated code (``backends/numba/arrays.py``) against NumPy."""

import numba
import numpy as np
import pytest

from fusegraph.backends.numba.arrays import (
    c_view,
    copy_c,
    empty_c,
    flat_view,
    is_contiguous,
    permuted,
    reversed_c,
)
from fusegraph.backends.numba.kernels.base import contiguous
from fusegraph.backends.numba.link import blas_operand


@numba.njit
def _shapes(n, m):
    a = empty_c((n, m), np.float32)
    flat = flat_view(a)
    for i in range(flat.shape[0]):
        flat[i] = i
    b = empty_c(n, np.bool_)
    b[:] = True
    c = empty_c((), np.int64)
    c[()] = 7
    return a, c_view(a, (m, n)), b, c, c_view(c, ()), c_view(flat, (np.int32(1), n * m))


def test_empty_c_and_views_match_numpy():
    a, t, b, c, c0, row = _shapes(2, 3)
    want = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(a, want)
    assert a.dtype == "float32" and a.flags.c_contiguous
    np.testing.assert_array_equal(t, want.reshape(3, 2))
    assert t.strides == (8, 4) and np.shares_memory(t, a)
    assert b.dtype == bool and b.tolist() == [True, True]
    assert c.shape == c0.shape == () and c0[()] == 7 and c.dtype == "int64"
    np.testing.assert_array_equal(row, want.reshape(1, 6))
    empty = _shapes(0, 3)
    assert empty[0].shape == (0, 3) and empty[1].shape == (3, 0)
    with pytest.raises(ValueError, match="negative dimensions"):
        _shapes(-1, 3)


@numba.njit
def _permutations(a):
    return permuted(a, "2,0,1"), permuted(a, "0,1,2"), permuted(a[:, ::2], "1,2,0")


def test_permuted_views_match_numpy_transpose():
    a = np.arange(24.0).reshape(2, 3, 4)
    for x in (a, a[::-1], a.transpose(1, 0, 2), a[:, :0]):
        got = _permutations(x)
        want = [x.transpose(2, 0, 1), x, x[:, ::2].transpose(1, 2, 0)]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
            assert g.shape == w.shape and (w.size == 0 or g.strides == w.strides)
            assert w.size == 0 or np.shares_memory(g, x)
    scalar = numba.njit(lambda s: permuted(s, ""))(np.array(3.5))
    assert scalar.shape == () and scalar[()] == 3.5


@numba.njit
def _layouts(a):
    return is_contiguous(a, "C"), is_contiguous(a, "F"), copy_c(a), contiguous(a)


@numba.njit
def _transposed(a):
    return reversed_c(a) if is_contiguous(a, "F") else copy_c(a)


_LAYOUT_CASES = [
    np.arange(24.0).reshape(2, 3, 4),
    np.arange(24.0).reshape(2, 3, 4)[:, ::-1],
    np.arange(24.0).reshape(2, 3, 4).transpose(2, 1, 0),
    np.arange(24, dtype=np.int32).reshape(4, 6)[:, 1:2],  # length-1 axis: any stride
    np.arange(24, dtype=np.int32).reshape(4, 6)[::2],
    np.zeros((3, 0, 2), dtype=np.float32)[:, :, ::2],  # empty: contiguous both ways
    np.arange(5.0)[::2],
    np.array(7, dtype=np.int16),
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
]


@pytest.mark.parametrize("a", _LAYOUT_CASES, ids=lambda a: f"{a.dtype}{a.shape}{a.strides}")
def test_contiguity_copies_and_conversions_match_numpy(a):
    c, f, copied, converted = _layouts(a)
    assert (c, f) == (a.flags.c_contiguous, a.flags.f_contiguous)
    for out in (copied, converted):
        np.testing.assert_array_equal(out, a)
        assert out.flags.c_contiguous and out.dtype == a.dtype and out.shape == a.shape
    assert not np.shares_memory(copied, a)
    assert np.shares_memory(converted, a) == (c and a.size > 0)
    matrix, transposed = blas_operand(a) if a.ndim == 2 else (None, None)
    if matrix is not None:
        np.testing.assert_array_equal(matrix.T if transposed else matrix, a)
        assert matrix.flags.c_contiguous and transposed == (f and not c)
    np.testing.assert_array_equal(_transposed(a), a.T if f else a)
