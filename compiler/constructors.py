"""Constructors of symbolic input variables: ``fg.scalar``, ``fg.vector``, ``fg.tensor`` ..."""

from __future__ import annotations

from fusegraph.graph import Variable
from fusegraph.types import TensorType


def tensor(name=None, dtype="float64", shape=(None,)):
    """A symbolic input of the given dtype and static shape (ints, or None for unknown)."""
    if isinstance(name, tuple) or isinstance(dtype, tuple):
        raise TypeError("fg.tensor takes (name, dtype, shape); pass shape= by keyword")
    return Variable(TensorType(dtype, tuple(shape)), name=name)


def scalar(name=None, dtype="float64"):
    """A 0-d symbolic input."""
    return tensor(name, dtype, ())


def vector(name=None, dtype="float64", shape=(None,)):
    """A 1-d symbolic input."""
    return tensor(name, dtype, _check(shape, 1))


def matrix(name=None, dtype="float64", shape=(None, None)):
    """A 2-d symbolic input."""
    return tensor(name, dtype, _check(shape, 2))


def tensor3(name=None, dtype="float64", shape=(None, None, None)):
    """A 3-d symbolic input."""
    return tensor(name, dtype, _check(shape, 3))


def tensor4(name=None, dtype="float64", shape=(None, None, None, None)):
    """A 4-d symbolic input."""
    return tensor(name, dtype, _check(shape, 4))


def _check(shape, ndim):
    shape = tuple(shape)
    if len(shape) != ndim:
        raise ValueError(f"a {ndim}-d variable needs a shape of length {ndim}, got {shape}")
    return shape
