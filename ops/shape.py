"""Shape ops: the symbolic shape of a tensor, reshaping, dim shuffling, joining and
constructors of new tensors (zeros, ones, arange, eye ...)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusegraph.graph import Apply, Op, as_tensor
from fusegraph.types import TensorType


@dataclass(frozen=True)
class Shape(Op):
    """The shape of a tensor as an int64 vector of length ``ndim``."""

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        return Apply(self, [x], [TensorType("int64", (x.ndim,))])

    def impl(self, x):
        return np.array(x.shape, dtype="int64")

    def static_entries(self, node) -> tuple:
        """The static shape of the input (None where unknown)."""
        return node.inputs[0].type.shape

    def static_value(self, node):
        dims = self.static_entries(node)
        return None if None in dims else np.array(dims, dtype="int64")


@dataclass(frozen=True)
class ShapeI(Op):
    """The length of dimension ``i`` of a tensor, as a 0-d int64."""

    i: int

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        if not -x.ndim <= self.i < x.ndim:
            raise IndexError(f"{self}: axis {self.i} is out of range for a {x.ndim}-d input")
        return Apply(self, [x], [TensorType("int64", ())])

    def impl(self, x):
        return np.array(x.shape[self.i], dtype="int64")

    def static_value(self, node):
        dim = node.inputs[0].type.shape[self.i]
        return None if dim is None else np.array(dim, dtype="int64")


def shape(x):
    """The symbolic shape of ``x``: an int64 vector (``x.shape`` is the same)."""
    return Shape()(x)


def shape_i(x, i: int):
    """The length of axis ``i`` of ``x`` as a 0-d int64 variable."""
    return ShapeI(int(i))(x)


__all__ = ["Shape", "ShapeI", "shape", "shape_i"]
