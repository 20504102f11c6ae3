"""``FusedElemwise``: a group of elementwise ops, and optionally one reduction over their
result, as one node holding a scalar graph. The fusion pass builds these; backends run them
as one loop over the broadcast shape (the ``py`` backend step by step with NumPy)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

from fusegraph.graph import Apply, NullGrad, Op, as_tensor
from fusegraph.ops.infix import ATOM, UNARY, operator_text
from fusegraph.ops.reduction import Reduce, reduce_dtype, reduced_shape
from fusegraph.ops.scalar import ScalarOp
from fusegraph.types import (
    TensorType,
    as_dtype,
    broadcast_static,
    check_no_runtime_broadcast,
    fmt_shape,
)


@dataclass(frozen=True)
class ScalarConstant(ScalarOp):
    """A 0-d constant folded into a scalar graph: a step with no arguments.

    The value is kept as its raw bytes so that ``-0.0`` and ``0.0`` (or two NaN payloads)
    never compare equal; ``value`` gives it back as a NumPy scalar.
    """

    name: str = "constant"
    dtype: str = "float64"
    data: bytes = b""

    def __post_init__(self):
        object.__setattr__(self, "dtype", as_dtype(self.dtype))
        if len(self.data) != np.dtype(self.dtype).itemsize:
            raise ValueError(f"ScalarConstant: {len(self.data)} bytes for one {self.dtype}")

    @classmethod
    def of(cls, value, dtype=None) -> ScalarConstant:
        """The constant holding ``value`` (a 0-d array, NumPy or Python scalar)."""
        arr = np.asarray(value, dtype=dtype)
        if arr.ndim != 0:
            raise ValueError(f"ScalarConstant: value must be 0-d, got shape {arr.shape}")
        return cls(dtype=arr.dtype.name, data=arr.tobytes())

    @property
    def value(self):
        return np.frombuffer(self.data, dtype=self.dtype)[0]

    @property
    def nin(self) -> int:
        return 0

    def output_dtype(self, *dtypes: str) -> str:
        return self.dtype

    def impl(self):
        return np.array(self.value, dtype=self.dtype)

    def __str__(self) -> str:
        return str(self.value)


class Step(NamedTuple):
    """One scalar operation of a fused graph: ``op`` applied to the values ``args`` (refs)."""

    op: ScalarOp
    args: tuple


class Reduction(NamedTuple):
    """The reduction folded into a fused node: output ``output`` (a position in
    ``FusedElemwise.outputs``) is reduced with ``kind`` over ``axis`` (a sorted tuple of
    non-negative axes of that value), as ``Reduce(kind, axis, keepdims)`` would."""

    output: int
    kind: str
    axis: tuple
    keepdims: bool = False


@dataclass(frozen=True)
class FusedElemwise(Op):
    """Several elementwise operations (and optionally one reduction) run as one node.

    The scalar graph is a register program. A *ref* numbers a value: refs ``0 .. nin-1``
    are the node's inputs, ref ``nin + j`` is the result of ``steps[j]``. Each step is a
    ``Step(op, args)``: a ``ScalarOp`` (``Cast`` and ``ScalarConstant`` included) applied to
    earlier refs, so walking ``steps`` in order evaluates the graph. ``outputs`` lists the
    refs the node returns, in order (each a step). With ``reduction``, the output at
    position ``reduction.output`` is returned reduced instead of elementwise.

    Every value broadcasts as in NumPy: a step's shape is the broadcast of its arguments'
    shapes, so output ``k`` has the broadcast shape of the inputs it depends on
    (``depends_on(outputs[k])``). The fusion pass only groups nodes of equal ndim and equal
    statically-known length-1 dims, so all outputs have the node's loop shape unless an
    unknown dim turns out to be 1 at run time.

    ``traces`` (one source line per step, None for constants) is not part of the op's
    identity; it lets run-time errors name the user's line of the failing step.
    """

    nin: int
    steps: tuple
    outputs: tuple
    reduction: Reduction | None = None
    traces: tuple = field(default=(), compare=False, repr=False)

    def __post_init__(self):
        steps = tuple(Step(s[0], tuple(int(a) for a in s[1])) for s in self.steps)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "outputs", tuple(int(r) for r in self.outputs))
        object.__setattr__(self, "traces", tuple(self.traces))
        for j, (op, args) in enumerate(steps):
            if not isinstance(op, ScalarOp):
                raise TypeError(f"FusedElemwise: step {j} has op {op!r}, not a ScalarOp")
            if len(args) != op.nin:
                raise TypeError(f"FusedElemwise: step {j} ({op}) takes {op.nin} args, got {args}")
            if any(not 0 <= a < self.nin + j for a in args):
                raise ValueError(f"FusedElemwise: step {j} ({op}) refers to a later value {args}")
        end = self.nin + len(steps)
        if not self.outputs or any(not self.nin <= r < end for r in self.outputs):
            raise ValueError(f"FusedElemwise: outputs {self.outputs} must be step refs")
        if self.reduction is not None:
            k, kind, axis, keepdims = self.reduction
            Reduce(kind, axis, keepdims)  # validates the kind
            axis = tuple(sorted(int(a) for a in axis))
            object.__setattr__(self, "reduction", Reduction(int(k), kind, axis, bool(keepdims)))
            if not 0 <= k < len(self.outputs):
                raise ValueError(f"FusedElemwise: reduced output {k} is not an output")

    # ----------------------------------------------------------------------- graph helpers

    def depends_on(self, ref: int) -> tuple:
        """The sorted input indices that the value ``ref`` depends on."""
        return self._deps[ref]

    @cached_property
    def _deps(self) -> list:
        deps = [frozenset((i,)) for i in range(self.nin)]
        for _, args in self.steps:
            deps.append(frozenset().union(*(deps[a] for a in args)))
        return [tuple(sorted(d)) for d in deps]

    @cached_property
    def _release(self) -> tuple:
        """Per step, the step refs whose last use it is (so ``impl`` can drop them)."""
        last = {}
        for j, (_, args) in enumerate(self.steps):
            for a in args:
                if a >= self.nin:
                    last[a] = j
        kept = set(self.outputs)
        release = [[] for _ in self.steps]
        for ref, j in last.items():
            if ref not in kept:
                release[j].append(ref)
        return tuple(map(tuple, release))

    # ----------------------------------------------------------------------- op interface

    def make_node(self, *inputs) -> Apply:
        """Type rule: each step's dtype is its scalar op's dtype rule on its arguments, its
        static shape their broadcast; the reduced output follows ``Reduce``'s rule. Every
        output (before its reduction) has the loop's broadcast pattern (the fusion pass
        groups only nodes of one pattern), so the Numba loops never need a smaller one."""
        inputs = [as_tensor(x) for x in inputs]
        if len(inputs) != self.nin:
            raise TypeError(f"{self}: takes {self.nin} inputs, got {len(inputs)}")
        types = [x.type for x in inputs]
        for op, args in self.steps:
            arg_types = [types[a] for a in args]
            dtype = op.output_dtype(*(t.dtype for t in arg_types))
            shape = broadcast_static([t.shape for t in arg_types], str(op))
            types.append(TensorType(dtype, shape))
        out_types = [types[r] for r in self.outputs]
        loop = broadcast_static([x.type.shape for x in inputs], str(self))
        for k, t in enumerate(out_types):
            if t.ndim != len(loop) or any((d == 1) != (n == 1) for d, n in zip(t.shape, loop)):
                raise ValueError(
                    f"{self}: output {k} has static shape {fmt_shape(t.shape)} and the loop "
                    f"{fmt_shape(loop)}: the outputs of a fused loop have its broadcast pattern"
                )
        if self.reduction is not None:
            k, kind, axis, keepdims = self.reduction
            t = out_types[k]
            if any(a >= t.ndim for a in axis):
                raise ValueError(f"{self}: reduction axes {axis} out of range for ndim {t.ndim}")
            out_types[k] = TensorType(
                reduce_dtype(kind, t.dtype), reduced_shape(t.shape, axis, keepdims)
            )
        return Apply(self, inputs, out_types)

    def impl(self, *arrays):
        values = dict(enumerate(arrays))
        nin = self.nin
        for j, (op, args) in enumerate(self.steps):
            operands = [values[a] for a in args]
            try:
                values[nin + j] = np.asarray(op.impl(*operands))
            except ValueError as exc:
                raise ValueError(self._step_error(j, operands, exc)) from exc
            for ref in self._release[j]:
                del values[ref]
        results = [values[r] for r in self.outputs]
        if self.reduction is not None:
            k, kind, axis, keepdims = self.reduction
            results[k] = Reduce(kind, axis, keepdims).impl(results[k])
        return results[0] if len(results) == 1 else tuple(results)

    def check_inputs(self, node, arrays) -> None:
        check_no_runtime_broadcast([x.type.shape for x in node.inputs], map(np.shape, arrays))

    def _step_error(self, j, operands, exc) -> str:
        op, args = self.steps[j]
        names = ", ".join(self._ref_name(a) for a in args)
        shapes = " and ".join(fmt_shape(np.shape(v)) for v in operands)
        where = self.traces[j] if j < len(self.traces) else None
        text = f"{op}({names}) on shapes {shapes}: {exc}"
        return text + (f" (built at {where})" if where is not None else "")

    def _ref_name(self, ref: int) -> str:
        return f"i{ref}" if ref < self.nin else f"step {ref - self.nin}"

    def vjp(self, inputs, outputs, grads):
        reason = (
            f"{self} has no gradient: fusion runs when a function is compiled, so take "
            "gradients (fg.grad) of the graph as built, before compiling"
        )
        return [NullGrad(reason)] * len(inputs)

    def __str__(self) -> str:
        return f"Fused{{{self.expression()}}}"

    def expression(self) -> str:
        """The scalar graph as text: inputs are ``i0, i1, ...``; a step used more than once
        is bound first as ``s0 = ...;``; several outputs are separated by commas."""
        uses = Counter(a for _, args in self.steps for a in args)
        uses.update(self.outputs)
        texts = {i: (f"i{i}", ATOM) for i in range(self.nin)}
        bindings = []
        for j, (op, args) in enumerate(self.steps):
            text = _render(op, [texts[a] for a in args])
            if uses[self.nin + j] > 1 and op.nin:
                name = f"s{len(bindings)}"
                bindings.append(f"{name} = {text[0]}")
                text = (name, ATOM)
            texts[self.nin + j] = text
        outs = [texts[r][0] for r in self.outputs]
        if self.reduction is not None:
            k, kind, axis, keepdims = self.reduction
            outs[k] = f"{Reduce(kind, axis, keepdims)}({outs[k]})"
        return "; ".join(bindings + [", ".join(outs)])


def _render(op: ScalarOp, args: list) -> tuple:
    """``(text, precedence)`` of ``op`` on rendered operands, by ``pprint``'s rules."""
    if isinstance(op, ScalarConstant):
        text = str(op)
        return text, UNARY if text.startswith("-") else ATOM
    text = operator_text(op.name, args) if type(op) is ScalarOp else None
    return text or (f"{op}({', '.join(text for text, _ in args)})", ATOM)


__all__ = ["FusedElemwise", "Reduction", "ScalarConstant", "Step"]
