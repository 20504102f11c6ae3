"""Ops that exist for gradients: ``SumTo`` (undoing broadcasting) and the gradient-shaping
identities ``stop_gradient``, ``zero_grad``, ``grad_clip`` and ``grad_scale``."""

from __future__ import annotations

from dataclasses import dataclass

from fusegraph.graph import Apply, Op, as_tensor, static_int_tuple
from fusegraph.types import TensorType, fmt_shape


@dataclass(frozen=True)
class SumTo(Op):
    """Sum ``g`` down to ``shape``: over leading dims and over dims where ``shape`` has 1
    (the inverse of broadcasting ``shape`` to ``g``'s shape, decided at run time)."""

    def make_node(self, g, shape) -> Apply:
        g, shape = as_tensor(g), as_tensor(shape)
        target = static_int_tuple(shape)
        if len(target) > g.ndim:
            raise ValueError(f"{self}: cannot sum a {g.ndim}-d tensor to {len(target)} dims")
        return Apply(self, [g, shape], [TensorType(g.dtype, target)])

    def impl(self, g, shape):
        shape = tuple(int(d) for d in shape)
        lead = g.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1
        )
        out = g.sum(axis=axes, keepdims=True, dtype=g.dtype) if axes else g
        if out.shape[lead:] != shape:
            raise ValueError(f"cannot sum shape {g.shape} down to {shape}")
        return out.reshape(shape)

    def vjp(self, inputs, outputs, grads):
        from fusegraph import ops

        return [ops.broadcast_to(grads[0], ops.shape(inputs[0])), None]


def sum_to(g, x, static: bool = False):
    """Sum the gradient ``g`` down to the shape of ``x`` (which was broadcast to g's shape).

    Uses plain sums where the static shapes decide which dims were broadcast, and a
    run-time ``SumTo`` only for dims that may or may not have been broadcast (unknown).
    ``static=True`` (inputs of elementwise ops, which never broadcast a dim of unknown
    length at run time): only the static shapes decide, so no ``SumTo``.
    """
    from fusegraph import ops

    if g.type.shape == x.type.shape and None not in x.type.shape:
        return g
    lead = g.ndim - x.ndim
    axes, unsure = list(range(lead)), False
    for i, (dx, dg) in enumerate(zip(x.type.shape, g.type.shape[lead:])):
        if dx == 1 and dg != 1:
            axes.append(lead + i)
        elif dx is None and dg != 1 and not static:
            unsure = True
        elif dx is not None and dg is not None and dx != dg:
            raise ValueError(f"sum_to: cannot sum {fmt_shape(g.type.shape)} to {x.type}")
    if axes:
        g = ops.sum(g, axis=tuple(axes), keepdims=True)
        if lead:
            g = ops.dimshuffle(g, tuple(range(lead, g.ndim)))
    return SumTo()(g, ops.shape(x)) if unsure else g


class _ForwardIdentity(Op):
    """Base of ops that return their input unchanged and only change the gradient.
    Function compilation removes them from the forward graph."""

    forward_identity = True

    def make_node(self, x) -> Apply:
        x = as_tensor(x)
        return Apply(self, [x], [x.type])

    def impl(self, x):
        return x


@dataclass(frozen=True)
class StopGradient(_ForwardIdentity):
    """Identity whose input is disconnected from the gradient (Theano's
    ``disconnected_grad``)."""

    def vjp(self, inputs, outputs, grads):
        return [None]


@dataclass(frozen=True)
class ZeroGrad(_ForwardIdentity):
    """Identity whose gradient is zero (the input stays connected)."""

    def vjp(self, inputs, outputs, grads):
        from fusegraph import ops

        return [ops.zeros_like(inputs[0])]


@dataclass(frozen=True)
class GradClip(_ForwardIdentity):
    """Identity whose gradient is clipped to ``[lo, hi]``."""

    lo: float
    hi: float

    def vjp(self, inputs, outputs, grads):
        from fusegraph import ops

        return [ops.clip(grads[0], self.lo, self.hi)]


@dataclass(frozen=True)
class GradScale(_ForwardIdentity):
    """Identity whose gradient is multiplied by ``multiplier``."""

    multiplier: float

    def vjp(self, inputs, outputs, grads):
        return [grads[0] * self.multiplier]


def stop_gradient(x):
    """``x`` in the forward pass; no gradient flows back through it."""
    return StopGradient()(x)


disconnected_grad = stop_gradient


def zero_grad(x):
    """``x`` in the forward pass; its gradient is zero."""
    return ZeroGrad()(x)


def grad_clip(x, lo, hi):
    """``x`` in the forward pass; the gradient flowing back is clipped to ``[lo, hi]``."""
    if not lo <= hi:
        raise ValueError(f"grad_clip: lo ({lo}) must not exceed hi ({hi})")
    return GradClip(float(lo), float(hi))(x)


def grad_scale(x, multiplier):
    """``x`` in the forward pass; the gradient flowing back is multiplied by ``multiplier``."""
    return GradScale(float(multiplier))(x)


__all__ = [
    "GradClip",
    "GradScale",
    "StopGradient",
    "SumTo",
    "ZeroGrad",
    "disconnected_grad",
    "grad_clip",
    "grad_scale",
    "stop_gradient",
    "sum_to",
    "zero_grad",
]
