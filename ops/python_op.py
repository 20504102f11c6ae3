"""``as_op``: a Python function on NumPy arrays as an op, like Theano's ``as_op``.

The op's ``impl`` calls the function. The ``py`` backend runs it like any op; the Numba
backend runs it through an object-mode call inside the compiled entry, so the rest of the
graph stays compiled (a few microseconds per call, with the GIL held). A gradient, when
given, is a symbolic function of the inputs and the outputs' gradients, as Theano's
``Op.grad``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fusegraph.graph import Apply, NullGrad, Op, as_tensor
from fusegraph.sourceinfo import user_frame
from fusegraph.types import TensorType, is_float


@dataclass(frozen=True, eq=False)
class PythonOp(Op):
    """An op made by ``as_op``; equal only to itself (its function is its identity)."""

    fn: Callable
    itypes: tuple
    otypes: tuple
    shape_fn: Callable | None = None
    grad_fn: Callable | None = None

    def make_node(self, *inputs) -> Apply:
        if len(inputs) != len(self.itypes):
            raise TypeError(f"{self}: expected {len(self.itypes)} inputs, got {len(inputs)}")
        return Apply(self, [self._input(k, x) for k, x in enumerate(inputs)], self.otypes)

    def _input(self, k, x):
        itype, x = self.itypes[k], as_tensor(x)
        if x.ndim != itype.ndim:
            raise TypeError(f"{self}: input {k} ({x}) is {x.type}, expected {itype}")
        if x.dtype != itype.dtype:
            if not np.can_cast(x.dtype, itype.dtype, "safe"):
                raise TypeError(
                    f"{self}: input {k} ({x}) is {x.type}, expected {itype}; "
                    f"cast it with .astype({itype.dtype!r})"
                )
            x = x.astype(itype.dtype)
        for axis, (have, want) in enumerate(zip(x.type.shape, itype.shape)):
            if have is not None and want is not None and have != want:
                raise TypeError(
                    f"{self}: input {k} ({x}) has length {have} on axis {axis}, expected {itype}"
                )
        return x

    def impl(self, *arrays):
        result = self.fn(*arrays)
        if len(self.otypes) == 1:
            return self._output(result, self.otypes[0])
        if not isinstance(result, (list, tuple)) or len(result) != len(self.otypes):
            raise ValueError(
                f"{self}: the function must return a list of {len(self.otypes)} arrays"
            )
        return tuple(self._output(r, t) for r, t in zip(result, self.otypes))

    @staticmethod
    def _output(value, otype):
        """``value`` as an array of ``otype``'s dtype when NumPy casts it within its kind
        (a float64 result for a float32 output); any other mismatch is left for the type
        check to report."""
        value = np.asarray(value)
        if value.dtype != otype.dtype and np.can_cast(value.dtype, otype.dtype, "same_kind"):
            value = value.astype(otype.dtype)
        return value

    def vjp(self, inputs, outputs, grads):
        if self.grad_fn is None:
            return [
                NullGrad(f"{self} has no gradient (pass grad= to fg.as_op)")
                if is_float(x.dtype)
                else None
                for x in inputs
            ]
        result = list(self.grad_fn(list(inputs), list(grads)))
        if len(result) != len(inputs):
            raise ValueError(
                f"{self}: grad returned {len(result)} gradients for {len(inputs)} inputs"
            )
        return [g if g is None or isinstance(g, NullGrad) else as_tensor(g) for g in result]

    def infer_shape(self, fgraph, node, input_shapes):
        if self.shape_fn is None:
            return None
        return self.shape_fn(fgraph, node, input_shapes)

    def __str__(self) -> str:
        return f"as_op({getattr(self.fn, '__module__', '?')}.{_name(self.fn)})"

    def __reduce__(self):
        # ``@fg.as_op`` puts the op where its function was (``module.name``): the op pickles
        # by that name, as functions do; anywhere else, by its fields.
        module, name = getattr(self.fn, "__module__", None), _name(self.fn)
        if module and _by_name(module, name) is self:
            return (_by_name, (module, name))
        return (PythonOp, (self.fn, self.itypes, self.otypes, self.shape_fn, self.grad_fn))


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _by_name(module: str, qualname: str):
    """The object ``module.qualname`` (None if there is none)."""
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


def as_op(itypes, otypes, infer_shape=None, grad=None):
    """Decorator: the Python function ``fn(*arrays)`` as an op, Theano's ``as_op``.

    Args:
        itypes: list of ``fg.TensorType``, one per input. An input of another dtype that
            converts safely is cast; any other mismatch raises ``TypeError``.
        otypes: list of ``fg.TensorType``, one per output. ``fn`` returns one array (one
            output) or a list of them; a result of another dtype of the same kind is cast.
        infer_shape: optional ``infer_shape(fgraph, node, input_shapes)`` returning one
            shape (a tuple of symbolic int scalars) per output, so that the outputs'
            ``.shape`` is known without running ``fn`` (``fgraph`` may be None).
        grad: optional ``grad(inputs, output_grads)`` returning one gradient variable per
            input (None for no gradient), as Theano's ``Op.grad``. Without it, the
            gradient through the op is undefined (``fg.grad`` raises
            ``NullTypeGradError`` when it is needed).

    Returns:
        A decorator turning ``fn`` into the op; calling the op on variables builds a node.
        In the Numba backend the op runs through an object-mode call (see
        ``fusegraph.backends.numba.pycall``).

    Example::

        vec = fg.TensorType("float64", (None,))

        @fg.as_op([vec], [vec], grad=lambda xs, gs: [gs[0] * 3 * xs[0] ** 2])
        def cube(x):
            return x**3
    """
    trace = user_frame()
    itypes = _types("itypes", itypes, trace)
    otypes = _types("otypes", otypes, trace)
    for what, fn in (("infer_shape", infer_shape), ("grad", grad)):
        if fn is not None and not callable(fn):
            raise TypeError(f"as_op at {trace}: {what} must be callable, got {fn!r}")

    def decorate(fn):
        if not callable(fn):
            raise TypeError(f"as_op at {trace}: decorates a function, got {fn!r}")
        return PythonOp(fn, itypes, otypes, infer_shape, grad)

    return decorate


def _types(what, types, trace) -> tuple:
    if isinstance(types, TensorType):
        types = [types]
    types = tuple(types)
    for k, t in enumerate(types):
        if not isinstance(t, TensorType):
            raise TypeError(
                f"as_op at {trace}: {what}[{k}] must be an fg.TensorType (such as "
                f"fg.TensorType('float64', (None,))), got {t!r}"
            )
    return types


__all__ = ["PythonOp", "as_op"]
