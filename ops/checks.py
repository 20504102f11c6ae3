"""Run-time checks of values inside a graph: ``check_parameter(x, condition, message)`` is
``x``, or a ValueError when ``condition`` is false anywhere (PyTensor's
``CheckParameterValue``). Random draws use it for the checks NumPy's generators make, such as
a normal's ``scale >= 0``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusegraph.graph import Apply, Op, as_tensor


@dataclass(frozen=True)
class CheckParameterValue(Op):
    """``x`` itself when every element of every condition is true, else ValueError with
    ``message``. The conditions (bool tensors of any shape) get no gradient; ``x`` gets the
    output's. Rewrites drop the check when the conditions are constants that hold."""

    message: str

    def make_node(self, x, *conditions) -> Apply:
        x = as_tensor(x)
        conditions = [as_tensor(c) for c in conditions]
        if not conditions:
            raise TypeError(f"{self}: needs at least one condition")
        for k, c in enumerate(conditions):
            if c.dtype != "bool":
                raise TypeError(f"{self}: condition {k} must be bool, not {c.dtype}")
        return Apply(self, [x, *conditions], [x.type])

    def impl(self, x, *conditions):
        if not all(np.all(c) for c in conditions):
            raise ValueError(self.message)
        return x

    def vjp(self, inputs, outputs, grads):
        return [grads[0]] + [None] * (len(inputs) - 1)


def check_parameter(x, condition, message):
    """``x``, checked when run: ValueError(``message``) unless ``condition`` (a bool tensor)
    is true everywhere."""
    return CheckParameterValue(message)(x, condition)


__all__ = ["CheckParameterValue", "check_parameter"]
