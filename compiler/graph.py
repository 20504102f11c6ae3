"""The graph IR: ``Variable``, ``Constant``, ``Apply``, ``Op`` and graph walks.

Graphs are immutable once built: an ``Apply`` fixes its inputs and creates its outputs,
and rewrites build new nodes instead of editing old ones. Variables compare and hash by
identity, so they can be dict keys (as in Theano).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fusegraph.sourceinfo import SourceInfo, user_frame
from fusegraph.tensor_methods import TensorMethods
from fusegraph.types import TensorType, as_dtype, fmt_shape, upcast


class Variable(TensorMethods):
    """A symbolic tensor: the ``index``-th output of ``owner`` (an Apply), or a root if None."""

    __slots__ = ("type", "owner", "index", "name", "__weakref__")

    def __init__(self, type: TensorType, owner: Apply | None = None, index: int = 0, name=None):
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "name", name)

    def __setattr__(self, attr, value):
        # Only the name may change: it is a label, not part of the graph's meaning.
        if attr != "name":
            raise AttributeError(f"{type(self).__name__} is immutable; cannot set {attr!r}")
        object.__setattr__(self, attr, value)

    def __getstate__(self):
        slots = (s for cls in type(self).__mro__ for s in getattr(cls, "__slots__", ()))
        return {s: getattr(self, s) for s in slots if s != "__weakref__" and hasattr(self, s)}

    def __setstate__(self, state):
        for attr, value in state.items():
            object.__setattr__(self, attr, value)

    dtype = property(lambda self: self.type.dtype)
    ndim = property(lambda self: self.type.ndim)

    def __repr__(self) -> str:
        if self.name:
            return self.name
        if self.owner is not None:
            suffix = f".{self.index}" if len(self.owner.outputs) > 1 else ""
            return f"{self.owner.op}{suffix}"
        return f"<{self.type}>"

    __str__ = __repr__


class Constant(Variable):
    """A variable with a fixed value (a read-only NumPy array in ``.data``)."""

    __slots__ = ("data",)

    def __init__(self, data: np.ndarray, name=None):
        data = np.array(data, copy=True)
        data.setflags(write=False)
        super().__init__(TensorType(data.dtype.name, data.shape), None, 0, name)
        object.__setattr__(self, "data", data)

    def __setstate__(self, state):
        super().__setstate__(state)
        self.data.setflags(write=False)

    def signature(self):
        """A hashable key equal for constants of equal type and value (used by merge)."""
        return (self.type, self.data.tobytes())

    def __repr__(self) -> str:
        if self.name:
            return self.name
        if self.data.size <= 8:
            return np.array2string(self.data, separator=", ").replace("\n", "")
        return f"Constant{{{self.type}}}"

    __str__ = __repr__


class Apply:
    """One application of ``op`` to ``inputs``, creating ``outputs`` of the given types.

    ``trace`` is where the user built the node; it is captured automatically.
    """

    __slots__ = ("op", "inputs", "outputs", "trace")

    def __init__(self, op, inputs: Sequence[Variable], output_types, trace: SourceInfo = None):
        self.op = op
        self.inputs = tuple(inputs)
        self.outputs = tuple(Variable(t, self, i) for i, t in enumerate(output_types))
        self.trace = trace if trace is not None else user_frame()
        for i, v in enumerate(self.inputs):
            if not isinstance(v, Variable):
                raise TypeError(f"{op}: input {i} is {type(v).__name__}, not a Variable")

    def __getstate__(self):  # for pickle protocols 0 and 1, which need it with __slots__
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for attr, value in state.items():
            object.__setattr__(self, attr, value)

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(map(repr, self.inputs))})"


class Op:
    """Base class of all ops: subclass it to add an operation (the README's "Extending").

    An op is a frozen dataclass whose fields are its parameters, so equal parameters mean
    equal ops (rewrites merge equal nodes, the Numba backend compiles one kernel per op and
    types). Required:

    - ``make_node(*inputs) -> fg.Apply(self, inputs, output_types)``: convert the inputs
      (``fg.as_tensor``), check them, and give the outputs' types (``fg.TensorType``: dtype
      and static shape): the type rule. Raise ``TypeError``/``ValueError`` naming the op for
      bad inputs.
    - ``impl(*arrays)``: the NumPy reference, what the ``py`` backend runs: one array, or a
      tuple when the node has several outputs, of exactly the output types. It may return
      a view of an input (the backends copy where an output must not alias); it must not
      write to its inputs.

    Optional hooks, each declared here with its default:

    - ``vjp(inputs, outputs, grads)``: reverse mode (``fg.grad``); default: no gradient.
    - ``jvp(inputs, outputs, tangents)``: forward mode (``fg.Rop``); default None, the rule
      ``vjp`` implies.
    - ``infer_shape(fgraph, node, input_shapes)``: the outputs' shapes without running
      ``impl``; default None (unknown, ``x.shape`` then reads the computed value).
    - ``check_inputs(node, arrays)``: run-time checks ``impl`` cannot make; default none.
    - ``vjp_without_grads``: call ``vjp`` even when no gradient reaches the outputs.

    The Numba backend runs an op through the kernel registered for its class
    (``fusegraph.backends.numba.register_kernel``, where ``may_return_view`` says whether
    the kernel's result may be a view of an input); an op without one runs its ``impl``
    through an object-mode call, with a warning. ``examples/custom_op.py`` shows it all.
    """

    #: Whether ``fg.grad`` calls ``vjp`` even when no gradient reaches the outputs (with
    #: zeros): an op whose integer outputs (which carry no gradient) still leave the
    #: gradient of its float inputs undefined says so with ``NullGrad`` there.
    vjp_without_grads = False

    def make_node(self, *inputs) -> Apply:
        raise NotImplementedError(f"{type(self).__name__}.make_node")

    def impl(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__}.impl")

    def check_inputs(self, node: Apply, arrays) -> None:
        """Run-time checks of ``arrays`` against ``node``'s static types that ``impl``
        cannot make (it sees no types); the py backend calls it before ``impl``."""

    def vjp(self, inputs, outputs, grads):
        """The gradient rule: given the gradients of the outputs (``grads``, one variable per
        output), return one entry per input: a gradient variable of the input's type, None
        where no gradient flows (integer or shape inputs), or ``NullGrad`` where the
        gradient is undefined. The default says the op has no gradient."""
        return [NullGrad(f"{self} has no gradient")] * len(inputs)

    def jvp(self, inputs, outputs, tangents):
        """The forward rule: given one tangent per input (a variable of the input's type, or
        None where the input does not vary), return one tangent per output (None where it
        does not vary, ``NullGrad`` where undefined). The default, None, lets ``fg.Rop``
        derive it from ``vjp``; an op overrides it when a direct rule is cheaper."""
        return None

    def infer_shape(self, fgraph, node: Apply, input_shapes):
        """The outputs' shapes from the inputs' (``input_shapes``: per input, a tuple of
        symbolic int64 scalars), as one tuple of symbolic scalars per output, so that
        ``shape(output)`` is computed without running the op. ``fgraph`` may be None. The
        default, None, means unknown."""
        return None

    def __call__(self, *inputs):
        node = self.make_node(*inputs)
        return node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)

    def __str__(self) -> str:
        params = getattr(self, "__dataclass_fields__", {})
        if not params:
            return type(self).__name__
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in params)
        return f"{type(self).__name__}{{{args}}}"


class NullGrad:
    """An undefined gradient, with the reason; ``fg.grad`` raises ``NullTypeGradError``
    when one reaches a ``wrt`` (or returns it, with ``null_gradients="return"``)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"NullGrad({self.reason!r})"


# --------------------------------------------------------------------------- conversions


def constant(value, dtype=None, name=None) -> Constant:
    """Wrap a Python number or array as a ``Constant`` (float16 becomes float32)."""
    arr = np.asarray(value)
    target = as_dtype(dtype if dtype is not None else arr.dtype)
    if arr.dtype.name != target:
        arr = arr.astype(target)
    return Constant(arr, name=name)


#: How ``as_tensor`` stacks a list of variables: that builds a node of an op, and the IR
#: never imports the ops layer standing on it, so ``fusegraph.ops`` installs its ``stack``
#: here when imported (``install_stack``; importing any fusegraph module imports it).
_stack = None


def install_stack(stack) -> None:
    """Make ``as_tensor`` stack a list or tuple that holds variables with ``stack(list of
    variables) -> Variable`` (``fusegraph.ops`` installs ``fusegraph.ops.stack``)."""
    global _stack
    _stack = stack


def as_tensor(x, name=None) -> Variable:
    """Return ``x`` if it is a Variable; wrap numbers and arrays as constants; stack a
    list or tuple that holds variables into a vector (with ``fusegraph.ops.stack``)."""
    if isinstance(x, Variable):
        return x
    if isinstance(x, (list, tuple)) and any(isinstance(e, Variable) for e in _flat(x)):
        if _stack is None:  # only while fusegraph/__init__ runs, before it imports ops
            raise TypeError("as_tensor of a list of variables needs fusegraph.ops imported")
        return _stack([as_tensor(e) for e in x])
    try:
        return constant(x, name=name)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot convert {type(x).__name__} {x!r} to a tensor: {exc}") from None


def _flat(x):
    for e in x:
        if isinstance(e, (list, tuple)):
            yield from _flat(e)
        else:
            yield e


def _is_weak(x) -> bool:
    # Python scalars are "weakly typed" (NumPy 2 / JAX): they take the other operands' dtype.
    return type(x) in (bool, int, float)


def weak_scalar_dtype(value, ref: str) -> str:
    """The dtype a Python scalar takes next to tensors of dtype ``ref`` (NumPy 2 rules)."""
    kind = np.dtype(ref).kind
    if type(value) is bool:
        return ref
    if type(value) is int:
        if kind == "b":
            return "int64"
        if kind in "iu":
            info = np.iinfo(ref)
            if not info.min <= value <= info.max:
                raise OverflowError(f"Python integer {value} out of bounds for {ref}")
        return ref
    return ref if kind == "f" else "float64"


def as_tensor_args(*args) -> list[Variable]:
    """Convert op arguments to variables, giving Python scalars the dtype of the others."""
    strong = [as_tensor(a) for a in args if not _is_weak(a)]
    if not strong:
        return [as_tensor(a) for a in args]
    ref = upcast(*(s.dtype for s in strong))
    it = iter(strong)
    return [constant(a, weak_scalar_dtype(a, ref)) if _is_weak(a) else next(it) for a in args]


def static_value(var: Variable):
    """The value of ``var`` if it is known when the graph is built, else None.

    Knows constants and the entries of ``x.shape`` whose static dim is known.
    """
    if isinstance(var, Constant):
        return var.data
    owner = var.owner
    if owner is not None and hasattr(owner.op, "static_value"):
        return owner.op.static_value(owner)
    return None


def static_int_tuple(var: Variable) -> tuple:
    """Per entry of the int vector ``var``, its value if known when building, else None."""
    value = static_value(var)
    if value is not None:
        return tuple(int(v) for v in np.asarray(value).reshape(-1))
    owner = var.owner
    if owner is not None and hasattr(owner.op, "static_entries"):
        return owner.op.static_entries(owner)
    length = var.type.shape[0] if var.ndim == 1 else None
    if length is None:
        raise ValueError(f"the length of shape vector {var} must be known when building")
    return (None,) * length


# --------------------------------------------------------------------------- graph walks


def toposort(outputs: Iterable[Variable]) -> list[Apply]:
    """The Apply nodes that ``outputs`` depend on, each after all of its inputs' owners."""
    order, done = [], set()
    for out in outputs:
        if out.owner is None or out.owner in done:
            continue
        stack = [(out.owner, iter(out.owner.inputs))]
        while stack:
            node, inputs = stack[-1]
            for var in inputs:
                if var.owner is not None and var.owner not in done:
                    stack.append((var.owner, iter(var.owner.inputs)))
                    break
            else:
                stack.pop()
                if node not in done:
                    done.add(node)
                    order.append(node)
    return order


def ancestors(outputs: Iterable[Variable]) -> list[Variable]:
    """Every variable that ``outputs`` depend on, themselves included."""
    seen, result, todo = set(), [], list(outputs)
    while todo:
        var = todo.pop()
        if var in seen:
            continue
        seen.add(var)
        result.append(var)
        if var.owner is not None:
            todo.extend(var.owner.inputs)
    return result


def graph_inputs(outputs: Iterable[Variable]) -> list[Variable]:
    """The root variables (no owner) that ``outputs`` depend on."""
    return [v for v in ancestors(outputs) if v.owner is None]


def clone_replace(outputs: Sequence[Variable], replace: dict) -> list[Variable]:
    """Rebuild ``outputs`` with each key of ``replace`` substituted by its value.

    Nodes are re-made through their op's ``make_node`` (so types are re-derived) and keep
    the source line they were built at. Untouched subgraphs are shared, not copied.
    """
    memo = dict(replace)
    for node in toposort(outputs):
        if any(out in memo for out in node.outputs):
            continue
        new_inputs = [memo.get(v, v) for v in node.inputs]
        if all(a is b for a, b in zip(new_inputs, node.inputs)):
            continue
        for old, new in zip(node.outputs, rebuild(node, new_inputs)):
            if old.type.dtype != new.type.dtype or old.ndim != new.ndim:
                raise TypeError(
                    f"replacing inputs of {node.op} changed its output from {old.type} to "
                    f"{new.type} (built at {node.trace})"
                )
            memo[old] = new
    return [memo.get(v, v) for v in outputs]


def rebuild(node: Apply, inputs: Sequence[Variable]) -> tuple:
    """Apply ``node``'s op to new ``inputs`` (types are re-derived), keeping the node's
    source line and its outputs' names; return the new outputs."""
    new_node = node.op.make_node(*inputs)
    new_node.trace = node.trace
    for old, new in zip(node.outputs, new_node.outputs):
        new.name = old.name
    return new_node.outputs


class FunctionGraph:
    """A compiled function's graph: its ``inputs`` (explicit inputs, then shared variables)
    and ``outputs``, with a cached ``toposort()`` and ``clients`` map."""

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable]):
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self._order = None

    def toposort(self) -> list[Apply]:
        if self._order is None:
            self._order = toposort(self.outputs)
        return self._order

    def __repr__(self) -> str:
        ins = ", ".join(f"{v}: {v.type}" for v in self.inputs)
        return f"FunctionGraph(inputs=[{ins}], {len(self.toposort())} nodes)"


__all__ = [
    "Variable",
    "Constant",
    "Apply",
    "Op",
    "NullGrad",
    "FunctionGraph",
    "constant",
    "as_tensor",
    "as_tensor_args",
    "static_value",
    "static_int_tuple",
    "toposort",
    "ancestors",
    "graph_inputs",
    "clone_replace",
    "rebuild",
    "fmt_shape",
]
