"""Shared variables: named state (parameters, generator state) that compiled functions read
and, through ``updates``, write."""

from __future__ import annotations

import numpy as np

from fusegraph.graph import Variable
from fusegraph.types import TensorType, as_dtype


class SharedVariable(Variable):
    """A variable whose value lives outside the graph and persists between calls.

    Its static shape is unknown (None per dim) so the value may change shape; its dtype
    and ndim are fixed. ``default_update``, when set to an expression, is the update that
    every function computing from this variable applies unless its ``updates`` give one
    (``fg.RandomStream`` sets it on generator states).
    """

    __slots__ = ("_value", "default_update")

    def __init__(self, value: np.ndarray, name=None):
        super().__init__(TensorType(value.dtype.name, (None,) * value.ndim), None, 0, name)
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "default_update", None)

    def __setattr__(self, attr, value):
        if attr == "default_update":
            if value is not None and (value.dtype != self.dtype or value.ndim != self.ndim):
                raise TypeError(
                    f"shared variable {self.name or '<unnamed>'}: a default update must be a "
                    f"{self.dtype} tensor of ndim {self.ndim}, got {value.type}"
                )
            object.__setattr__(self, attr, value)
        else:
            super().__setattr__(attr, value)

    def get_value(self, borrow: bool = False) -> np.ndarray:
        """The current value; a copy unless ``borrow=True`` (then mutating it changes the
        shared value)."""
        return self._value if borrow else self._value.copy()

    def set_value(self, value, borrow: bool = False) -> None:
        """Replace the value. It must have this variable's ndim and a dtype that casts to
        its dtype without loss; it is copied unless ``borrow=True``."""
        object.__setattr__(self, "_value", self.filter(value, copy=not borrow))

    def _assign(self, value: np.ndarray) -> None:
        """Store ``value``, an array of exactly this variable's dtype and ndim (an update
        computed by a compiled function), without checks or copies."""
        object.__setattr__(self, "_value", value)

    def filter(self, value, copy: bool = True) -> np.ndarray:
        """Check ``value`` against this variable's type and return it as an array."""
        arr = self.type.convert(value, f"shared variable {self.name or '<unnamed>'}")
        # a conversion made a new array already; a copy of the caller's array otherwise
        return arr.copy() if copy and np.may_share_memory(arr, value) else arr


def shared(value, name=None, borrow: bool = False) -> SharedVariable:
    """Create a shared variable holding ``value`` (copied unless ``borrow=True``).

    Python scalars become 0-d arrays (int64/float64/bool); float16 becomes float32.
    """
    arr = np.asarray(value)
    dtype = as_dtype(arr.dtype)
    if arr.dtype.name != dtype or not arr.dtype.isnative:  # also big-endian data
        arr = arr.astype(dtype)
    elif not borrow:
        arr = arr.copy()
    return SharedVariable(arr, name=name)
