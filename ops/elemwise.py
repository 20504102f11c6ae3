"""``Elemwise``: a scalar op mapped over tensors with NumPy broadcasting, and the public
elementwise functions (``add``, ``exp``, ``where`` ...) built on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusegraph.graph import Apply, NullGrad, Op, as_tensor, as_tensor_args
from fusegraph.ops.scalar import GRADS, INFIX, Cast, ScalarOp
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
        rule = GRADS.get(self.scalar_op.name)
        if rule is None:
            return [NullGrad(f"{self} has no gradient")] * len(inputs)
        from fusegraph import ops
        from fusegraph.ops.grad_ops import sum_to

        result = []
        for x, gx in zip(inputs, rule(ops, inputs, outputs[0], grads[0])):
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


def _define(name: str):
    op = ScalarOp(name)

    def fn(*args):
        return elemwise(op, *args)

    fn.__name__ = fn.__qualname__ = name
    symbol = INFIX.get(name, (None,))[0]
    fn.__doc__ = f"Elementwise ``{name}``" + (f" (``a {symbol} b``)." if symbol else ".")
    return fn


add = _define("add")
sub = _define("sub")
mul = _define("mul")
true_div = _define("true_div")
floor_div = _define("floor_div")
mod = _define("mod")
pow = _define("pow")  # noqa: A001 - NumPy's name
neg = _define("neg")
abs = _define("abs")  # noqa: A001 - NumPy's name
sign = _define("sign")
square = _define("square")
reciprocal = _define("reciprocal")
maximum = _define("maximum")
minimum = _define("minimum")
floor = _define("floor")
ceil = _define("ceil")
round = _define("round")  # noqa: A001 - NumPy's name
relu = _define("relu")
exp = _define("exp")
expm1 = _define("expm1")
log = _define("log")
log1p = _define("log1p")
log2 = _define("log2")
log10 = _define("log10")
sqrt = _define("sqrt")
sin = _define("sin")
cos = _define("cos")
tan = _define("tan")
arcsin = _define("arcsin")
arccos = _define("arccos")
arctan = _define("arctan")
arctan2 = _define("arctan2")
sinh = _define("sinh")
cosh = _define("cosh")
tanh = _define("tanh")
erf = _define("erf")
erfc = _define("erfc")
gammaln = _define("gammaln")
psi = _define("psi")
sigmoid = _define("sigmoid")
softplus = _define("softplus")
eq = _define("eq")
neq = _define("neq")
lt = _define("lt")
le = _define("le")
gt = _define("gt")
ge = _define("ge")
logical_and = _define("logical_and")
logical_or = _define("logical_or")
logical_not = _define("logical_not")
isnan = _define("isnan")
isinf = _define("isinf")
isfinite = _define("isfinite")


def where(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (NumPy's ``where``; Theano's ``switch``)."""
    x, y = as_tensor_args(x, y)
    return Elemwise(ScalarOp("where"))(as_tensor(condition), x, y)


switch = where


def clip(x, lo, hi):
    """Limit ``x`` to ``[lo, hi]`` elementwise."""
    return elemwise(ScalarOp("clip"), x, lo, hi)


def cast(x, dtype):
    """Convert ``x`` to ``dtype`` (returns ``x`` itself when it already has that dtype)."""
    x = as_tensor(x)
    dtype = as_dtype(dtype)
    if x.dtype == dtype:
        return x
    return Elemwise(Cast(dtype=dtype))(x)


__all__ = [
    "add",
    "sub",
    "mul",
    "true_div",
    "floor_div",
    "mod",
    "pow",
    "neg",
    "abs",
    "sign",
    "square",
    "reciprocal",
    "maximum",
    "minimum",
    "floor",
    "ceil",
    "round",
    "relu",
    "exp",
    "expm1",
    "log",
    "log1p",
    "log2",
    "log10",
    "sqrt",
    "sin",
    "cos",
    "tan",
    "arcsin",
    "arccos",
    "arctan",
    "arctan2",
    "sinh",
    "cosh",
    "tanh",
    "erf",
    "erfc",
    "gammaln",
    "psi",
    "sigmoid",
    "softplus",
    "eq",
    "neq",
    "lt",
    "le",
    "gt",
    "ge",
    "logical_and",
    "logical_or",
    "logical_not",
    "isnan",
    "isinf",
    "isfinite",
    "where",
    "switch",
    "clip",
    "cast",
    "elemwise",
    "Elemwise",
]
