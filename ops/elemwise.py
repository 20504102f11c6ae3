"""``Elemwise``: a scalar op mapped over tensors with NumPy broadcasting, and the public
elementwise functions (``add``, ``exp``, ``where`` ...) built on it: one per record of
``ops.scalar.OPS``, derived from the record (``where`` and ``cast`` are written out)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from fusegraph.graph import Apply, NullGrad, Op, as_tensor, as_tensor_args
from fusegraph.ops.scalar import OPS, Cast, NoGradient, ScalarOp
from fusegraph.types import (
    TensorType,
    as_dtype,
    broadcast_static,
    check_no_runtime_broadcast,
    is_float,
)


@dataclass(frozen=True)
class Elemwise(Op):
    """Apply ``scalar_op`` element by element. Inputs broadcast as in NumPy where their
    static shapes say so (a dim of static length 1, or a missing leading dim); dims of
    unknown length must be equal at run time (``types.check_no_runtime_broadcast``)."""

    scalar_op: ScalarOp

    def make_node(self, *inputs) -> Apply:
        inputs = [as_tensor(x) for x in inputs]
        if len(inputs) != self.scalar_op.nin:
            raise TypeError(f"{self}: takes {self.scalar_op.nin} inputs, got {len(inputs)}")
        dtype = self.scalar_op.output_dtype(*(x.dtype for x in inputs))
        shape = broadcast_static([x.type.shape for x in inputs], str(self))
        return Apply(self, inputs, [TensorType(dtype, shape)])

    def impl(self, *arrays):
        return np.asarray(self.scalar_op.impl(*arrays))

    def check_inputs(self, node, arrays) -> None:
        check_no_runtime_broadcast([x.type.shape for x in node.inputs], map(np.shape, arrays))

    def vjp(self, inputs, outputs, grads):
        """Per input: the scalar op's derivative times ``g``, summed over the dims the input
        was broadcast along (known from the static shapes); None for non-float inputs."""
        rule = self.scalar_op.grad
        if isinstance(rule, NoGradient):
            return [NullGrad(f"{self} has no gradient: {rule.reason}")] * len(inputs)
        from fusegraph import ops
        from fusegraph.ops.grad_ops import sum_to

        result = []
        for x, gx in zip(inputs, rule(ops, outputs[0], grads[0], *inputs), strict=True):
            if gx is None or not is_float(x.dtype):
                result.append(None)
            else:
                result.append(cast(sum_to(gx, x, static=True), x.dtype))
        return result

    def __str__(self) -> str:
        return str(self.scalar_op)


def elemwise(scalar_op: ScalarOp, *args):
    """Build ``Elemwise(scalar_op)`` on ``args``; Python scalars take the others' dtype."""
    return Elemwise(scalar_op)(*as_tensor_args(*args))


def _constructor(name: str):
    """The public function building ``Elemwise(ScalarOp(name))`` (Python scalars take the
    other arguments' dtype), named and documented after the op's record."""
    op = ScalarOp(name)

    def fn(*args):
        return elemwise(op, *args)

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    symbol = (OPS[name].infix or (None,))[0]
    fn.__doc__ = f"Elementwise ``{name}``" + (f" (``a {symbol} b``)." if symbol else ".")
    return fn


# One constructor per record: ``add``, ``exp``, ``clip`` ... (``where`` is replaced below).
globals().update({name: _constructor(name) for name in OPS})


def where(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (NumPy's ``where``; Theano's ``switch``).
    Written out: ``condition`` keeps its dtype, only ``x`` and ``y`` are unified."""
    x, y = as_tensor_args(x, y)
    return Elemwise(ScalarOp("where"))(as_tensor(condition), x, y)


switch = where


def cast(x, dtype):
    """Convert ``x`` to ``dtype`` (returns ``x`` itself when it already has that dtype)."""
    x = as_tensor(x)
    dtype = as_dtype(dtype)
    if x.dtype == dtype:
        return x
    return Elemwise(Cast(dtype=dtype))(x)


def _public_modules() -> list:
    """The modules that export the constructors: this one, ``fusegraph.ops``, ``fusegraph``."""
    names = (__name__, "fusegraph.ops", "fusegraph")
    return [sys.modules[n] for n in names if n in sys.modules]


def publish(name: str) -> None:
    """Export the constructor of the scalar op ``name``, registered at run time
    (``ops.scalar.register``), from ``_public_modules()``. A name they export already
    (``sum``, another op) raises ValueError, and nothing changes."""
    taken = [f"{m.__name__}.{name}" for m in _public_modules() if hasattr(m, name)]
    if taken:
        raise ValueError(f"scalar op {name!r} would replace {', '.join(taken)}")
    fn = _constructor(name)
    for module in _public_modules():
        setattr(module, name, fn)


def unpublish(name: str) -> None:
    """Undo ``publish(name)``: remove the op's constructor from ``_public_modules()``."""
    for module in _public_modules():
        if getattr(getattr(module, name, None), "__module__", None) == __name__:
            delattr(module, name)


__all__ = [*OPS, "switch", "cast", "elemwise", "Elemwise"]
