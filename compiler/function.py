"""``fg.function``: turn symbolic inputs and outputs into a callable ``Function`` that
validates its arguments, runs the graph on a backend and applies shared-variable updates."""

from __future__ import annotations

import warnings

import numpy as np

from fusegraph.backends import py
from fusegraph.errors import MissingInputError, UnusedInputError
from fusegraph.graph import (
    Constant,
    FunctionGraph,
    Variable,
    as_tensor,
    clone_replace,
    constant,
    graph_inputs,
)
from fusegraph.mode import as_mode
from fusegraph.rewrites.identity import remove_forward_identities
from fusegraph.rewrites.passes import optimize
from fusegraph.shared import SharedVariable
from fusegraph.sourceinfo import user_frame
from fusegraph.types import fmt_shape, lossless


def function(
    inputs,
    outputs,
    updates=None,
    givens=None,
    mode=None,
    on_unused_input="raise",
    trust_input=False,
    name=None,
):
    """Compile a callable from symbolic ``inputs`` to ``outputs``.

    Args:
        inputs: list of root variables, the call's positional arguments (also accepted as
            keywords by their names).
        outputs: one variable (the call returns one array) or a list (it returns a list).
        updates: dict or list of ``(shared_variable, new_value)``; all new values are
            computed from the old ones, then assigned, only after a successful call.
        givens: dict or list of ``(variable, replacement)`` substituted before compiling.
        mode: None (default), a backend name (``"py"``) or ``fg.Mode``.
        on_unused_input: ``"raise"`` (default), ``"warn"`` or ``"ignore"`` for inputs no
            output needs.
        trust_input: skip argument validation and conversion (arguments must then already
            be arrays of exactly the inputs' dtypes and shapes).
        name: used in error messages and printing.
    """
    trace = user_frame()
    label = f"function {name!r}" if name else f"function built at {trace.filename}:{trace.lineno}"
    inputs = list(inputs)
    _check_inputs(inputs, label)
    single = not isinstance(outputs, (list, tuple))
    outputs = [as_tensor(o) for o in ([outputs] if single else outputs)]
    update_pairs = _check_updates(updates, label)
    targets = outputs + [expr for _, expr in update_pairs]
    if givens:
        targets = clone_replace(targets, _check_givens(givens, label))
    targets = remove_forward_identities(targets)
    shared_vars = _roots(inputs, targets, label, on_unused_input)
    mode = as_mode(mode)
    targets, stats = optimize(targets, mode.include, mode.exclude)
    fgraph = FunctionGraph(inputs + shared_vars, targets)
    return Function(
        fgraph=fgraph,
        rewrite_stats=stats,
        n_outputs=len(outputs),
        single=single,
        update_targets=[s for s, _ in update_pairs],
        mode=mode,
        trust_input=trust_input,
        name=name,
        label=label,
    )


def _pairs(mapping):
    return list(mapping.items()) if isinstance(mapping, dict) else list(mapping or ())


def _check_inputs(inputs, label):
    for pos, var in enumerate(inputs):
        what = f"{label}: input {pos}"
        if not isinstance(var, Variable):
            raise TypeError(f"{what} must be a symbolic variable, got {type(var).__name__}")
        if isinstance(var, SharedVariable):
            raise TypeError(f"{what} ({var}) is a shared variable; they are implicit inputs")
        if isinstance(var, Constant) or var.owner is not None:
            raise TypeError(
                f"{what} ({var}) is computed from other variables; inputs must be roots such "
                "as fg.vector('x') (use givens= to substitute an intermediate)"
            )
        if var in inputs[:pos]:
            raise ValueError(f"{what} ({var}) appears twice in the inputs")


def _check_updates(updates, label):
    pairs, seen = [], set()
    for target, value in _pairs(updates):
        if not isinstance(target, SharedVariable):
            raise TypeError(f"{label}: update target {target!r} is not a shared variable")
        if target in seen:
            raise ValueError(f"{label}: shared variable {target} is updated twice")
        seen.add(target)
        if isinstance(value, Variable):
            expr = value
        else:
            expr = constant(target.filter(value), name=None)
        if expr.dtype != target.dtype or expr.ndim != target.ndim:
            raise TypeError(
                f"{label}: the update of shared variable {target} has type {expr.type}, "
                f"expected a {target.dtype} tensor of ndim {target.ndim}; "
                f"cast it with .astype({target.dtype!r})"
            )
        pairs.append((target, expr))
    return pairs


def _check_givens(givens, label):
    replace = {}
    for old, new in _pairs(givens):
        new = as_tensor(new)
        if not isinstance(old, Variable):
            raise TypeError(f"{label}: givens key {old!r} is not a variable")
        if old.dtype != new.dtype or old.ndim != new.ndim:
            raise TypeError(
                f"{label}: givens replaces {old} ({old.type}) by {new} ({new.type}); "
                "they must have the same dtype and ndim"
            )
        replace[old] = new
    return replace


def _roots(inputs, targets, label, on_unused_input):
    """Check that every root the targets need is an input, shared or constant; return
    the shared variables in first-use order."""
    roots = graph_inputs(targets)
    used = set(roots)
    for var in roots:
        if var in inputs or isinstance(var, (Constant, SharedVariable)):
            continue
        raise MissingInputError(
            f"{label}: the outputs depend on {var} ({var.type}), which is not among the "
            "inputs; add it to the inputs or substitute it with givens="
        )
    for pos, var in enumerate(inputs):
        if var in used:
            continue
        message = f"{label}: input {pos} ({var}) is not used to compute the outputs"
        if on_unused_input == "raise":
            raise UnusedInputError(message + "; pass on_unused_input='ignore' to allow this")
        if on_unused_input == "warn":
            warnings.warn(message, UserWarning, stacklevel=3)
        elif on_unused_input != "ignore":
            raise ValueError(
                f"on_unused_input must be 'raise', 'warn' or 'ignore', got {on_unused_input!r}"
            )
    return sorted((v for v in roots if isinstance(v, SharedVariable)), key=roots.index)


class Function:
    """A compiled function. Call it with the inputs' values; see ``fg.function``.

    Attributes:
        graph: the rewritten ``FunctionGraph`` that runs (explicit inputs, then shared
            variables).
        rewrite_stats: ``{"seconds": per pass, "rewrites": count per rule}``.
        name: the name given to ``fg.function``.
        trust_input: when True, calls skip argument validation.
    """

    def __init__(
        self,
        fgraph,
        rewrite_stats,
        n_outputs,
        single,
        update_targets,
        mode,
        trust_input,
        name,
        label,
    ):
        self.graph = fgraph
        self.rewrite_stats = rewrite_stats
        self.mode = mode
        self.trust_input = trust_input
        self.name = name
        self._label = label
        self._n_outputs = n_outputs
        self._single = single
        self._n_inputs = len(fgraph.inputs) - sum(
            isinstance(v, SharedVariable) for v in fgraph.inputs
        )
        self._shared = fgraph.inputs[self._n_inputs :]
        self._update_targets = update_targets
        self._positions = {v.name: i for i, v in enumerate(self.inputs) if v.name}
        self._run = py.compile_graph(fgraph)

    @property
    def inputs(self):
        """The explicit inputs, in call order."""
        return self.graph.inputs[: self._n_inputs]

    @property
    def outputs(self):
        """The output variables (without the update expressions)."""
        return self.graph.outputs[: self._n_outputs]

    @property
    def updates(self):
        """The ``(shared_variable, update_expression)`` pairs, as compiled (read-only)."""
        return list(zip(self._update_targets, self.graph.outputs[self._n_outputs :], strict=True))

    def __call__(self, *args, **kwargs):
        if kwargs:
            args = self._merge_keywords(args, kwargs)
        if not self.trust_input:
            args = self._validate(args)
        values = list(args) + [s.get_value(borrow=True) for s in self._shared]
        results = self._run(*values)
        # Every right-hand side was computed from the old values; assign them only now.
        for target, value in zip(self._update_targets, results[self._n_outputs :]):
            target.set_value(value, borrow=True)
        outs = results[: self._n_outputs]
        return outs[0] if self._single else outs

    def _merge_keywords(self, args, kwargs):
        merged = list(args) + [_MISSING] * (self._n_inputs - len(args))
        for key, value in kwargs.items():
            pos = self._positions.get(key)
            if pos is None:
                raise TypeError(f"{self._label}: no input named {key!r}")
            if pos < len(args):
                raise TypeError(f"{self._label}: input {key!r} given by position and by name")
            merged[pos] = value
        return merged

    def _validate(self, args):
        if len(args) != self._n_inputs or any(a is _MISSING for a in args):
            names = ", ".join(str(v) for v in self.inputs)
            given = sum(a is not _MISSING for a in args)
            raise TypeError(
                f"{self._label}: expected {self._n_inputs} arguments ({names}), got {given}"
            )
        return [
            self._convert(pos, var, arg) for pos, (var, arg) in enumerate(zip(self.inputs, args))
        ]

    def _convert(self, pos, var, arg):
        arr = arg if isinstance(arg, np.ndarray) else np.asarray(arg)
        where = f"{self._label}: argument {pos} ({var.name or 'unnamed'})"
        if arr.dtype.name != var.dtype:
            if not lossless(arg, var.dtype):
                raise TypeError(
                    f"{where} expects {var.dtype}, got {arr.dtype.name}: the conversion "
                    f"would lose information; convert it with .astype({var.dtype!r})"
                )
            arr = arr.astype(var.dtype)
        if arr.ndim != var.ndim:
            raise ValueError(
                f"{where} expects a {var.ndim}-d array ({var.type}), got shape {arr.shape}"
            )
        for axis, (want, got) in enumerate(zip(var.type.shape, arr.shape)):
            if want is not None and want != got:
                raise ValueError(
                    f"{where} expects shape {fmt_shape(var.type.shape)}, got {arr.shape} "
                    f"(axis {axis})"
                )
        return arr

    def dprint(self, file=None):
        """Print the compiled graph (see ``fg.dprint``)."""
        from fusegraph.printing import dprint

        return dprint(self, file=file)

    def __repr__(self) -> str:
        return f"<Function {self.name or ''} {self.mode.backend}: {self.graph}>"


_MISSING = object()
