"""Operators and NumPy-style methods of symbolic variables (``x + y``, ``x.sum()``, ``x[i]``).

Each method builds a node through ``fusegraph.ops``; the import is deferred because the
ops layer itself stands on the graph IR.
"""

from __future__ import annotations

import importlib


def _ops():
    return importlib.import_module("fusegraph.ops")


def _binary(name, reflected=False):
    def method(self, other):
        fn = getattr(_ops(), name)
        return fn(other, self) if reflected else fn(self, other)

    method.__name__ = f"__{'r' if reflected else ''}{name}__"
    return method


def _axis_method(name):
    def method(self, axis=None, keepdims=False):
        return getattr(_ops(), name)(self, axis=axis, keepdims=keepdims)

    method.__name__ = name
    method.__doc__ = f"``fg.{name}(self, axis, keepdims)``."
    return method


class TensorMethods:
    """Mixin giving ``Variable`` its arithmetic, comparison, indexing and reduction methods."""

    __slots__ = ()
    # Make NumPy defer to our reflected operators: ``np.float64(2) * x`` builds a node.
    __array_ufunc__ = None

    __add__, __radd__ = _binary("add"), _binary("add", True)
    __sub__, __rsub__ = _binary("sub"), _binary("sub", True)
    __mul__, __rmul__ = _binary("mul"), _binary("mul", True)
    __truediv__, __rtruediv__ = _binary("true_div"), _binary("true_div", True)
    __floordiv__, __rfloordiv__ = _binary("floor_div"), _binary("floor_div", True)
    __mod__, __rmod__ = _binary("mod"), _binary("mod", True)
    __pow__, __rpow__ = _binary("pow"), _binary("pow", True)
    __matmul__, __rmatmul__ = _binary("matmul"), _binary("matmul", True)
    __lt__, __le__ = _binary("lt"), _binary("le")
    __gt__, __ge__ = _binary("gt"), _binary("ge")
    __and__, __rand__ = _binary("logical_and"), _binary("logical_and", True)
    __or__, __ror__ = _binary("logical_or"), _binary("logical_or", True)

    def __neg__(self):
        return _ops().neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().abs(self)

    def __invert__(self):
        return _ops().logical_not(self)

    def __getitem__(self, key):
        return _ops().getitem(self, key)

    def __bool__(self):
        raise TypeError(
            f"the truth value of symbolic variable {self!r} is unknown until it is computed; "
            "use fg.where/fg.switch for a symbolic condition"
        )

    def __iter__(self):
        raise TypeError(f"symbolic variable {self!r} cannot be iterated; index it instead")

    def __len__(self):
        raise TypeError(f"len() of symbolic variable {self!r} is unknown; use x.shape[0]")

    # ----------------------------------------------------------------- properties
    @property
    def shape(self):
        """The symbolic shape: an int64 vector, so ``x.shape[0]`` is a 0-d int64 variable."""
        return _ops().shape(self)

    @property
    def T(self):
        return _ops().transpose(self)

    # ----------------------------------------------------------------- methods
    sum = _axis_method("sum")
    prod = _axis_method("prod")
    mean = _axis_method("mean")
    max = _axis_method("max")
    min = _axis_method("min")
    all = _axis_method("all")
    any = _axis_method("any")

    def var(self, axis=None, keepdims=False, ddof=0):
        return _ops().var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis=None, keepdims=False, ddof=0):
        return _ops().std(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def argmax(self, axis=None, keepdims=False):
        return _ops().argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _ops().argmin(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape, ndim=None):
        """``x.reshape((2, -1))`` or ``x.reshape(2, -1)``; entries may be symbolic."""
        if len(shape) == 1:
            shape = shape[0]
        return _ops().reshape(self, shape, ndim=ndim)

    def flatten(self, ndim=1):
        return _ops().flatten(self, ndim)

    def dimshuffle(self, *pattern):
        """Theano's ``dimshuffle``: permute dims, ``'x'`` inserts a length-1 dim."""
        if len(pattern) == 1 and isinstance(pattern[0], (list, tuple)):
            pattern = pattern[0]
        return _ops().dimshuffle(self, pattern)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = axes[0]
        return _ops().transpose(self, axes or None)

    def astype(self, dtype):
        return _ops().cast(self, dtype)

    def dot(self, other):
        return _ops().dot(self, other)

    def clip(self, lo, hi):
        return _ops().clip(self, lo, hi)

    def squeeze(self, axis=None):
        return _ops().squeeze(self, axis)
