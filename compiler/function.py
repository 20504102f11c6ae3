"""``fg.function``: turn symbolic inputs and outputs into a callable ``Function`` that
validates its arguments, runs the graph on a backend and applies shared-variable updates."""

from __future__ import annotations

import builtins
import keyword
import textwrap
import threading
import warnings

from fusegraph.backends import CompileOptions, get_backend
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
            Shared variables read without an update here get their ``default_update``
            if they have one (the generator states of ``fg.RandomStream`` draws).
        givens: dict or list of ``(variable, replacement)`` substituted before compiling.
        mode: None (the default ``fg.Mode()``: Numba), a backend name (``"numba"``,
            ``"py"``, ``"debug"``) or ``fg.Mode``.
        on_unused_input: ``"raise"`` (default), ``"warn"`` or ``"ignore"`` for inputs no
            output needs.
        trust_input: skip argument validation and conversion (arguments must then already
            be arrays of exactly the inputs' dtypes and shapes). In the Numba backend the
            calls then also keep the GIL (releasing it costs 40-50 ns, the largest part of
            what a trusted call adds to Numba's dispatch); threads that want to run trusted
            calls in parallel call ``f.njit``, which releases it.
        name: used in error messages and printing.
    """
    trace = user_frame()
    label = f"function {name!r}" if name else f"function built at {trace.filename}:{trace.lineno}"
    inputs = list(inputs)
    _check_inputs(inputs, label)
    single = not isinstance(outputs, (list, tuple))
    outputs = [as_tensor(o) for o in ([outputs] if single else outputs)]
    update_pairs = _check_updates(updates, label)
    update_pairs += _default_updates(outputs, update_pairs)
    targets = outputs + [expr for _, expr in update_pairs]
    if givens:
        targets = clone_replace(targets, _check_givens(givens, label))
    targets = remove_forward_identities(targets)
    shared_vars = _roots(inputs, targets, label, on_unused_input)
    mode = as_mode(mode)
    unrewritten = FunctionGraph(inputs + shared_vars, targets)
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
        unrewritten=unrewritten if get_backend(mode.backend).wants_unrewritten else None,
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
        same = [i for i, v in enumerate(inputs[:pos]) if var.name and v.name == var.name]
        if same:
            raise ValueError(
                f"{what} and input {same[0]} are both named {var.name!r}: a call by keyword "
                "would be ambiguous; give them distinct names"
            )


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


def _default_updates(outputs, update_pairs):
    """The ``default_update`` of each shared variable the computation reads that
    ``update_pairs`` does not update (found again in what those updates read)."""
    done = {target for target, _ in update_pairs}
    found, frontier = [], outputs + [expr for _, expr in update_pairs]
    while frontier:
        new = []
        for var in graph_inputs(frontier):
            if isinstance(var, SharedVariable) and var not in done:
                done.add(var)
                if var.default_update is not None:
                    found.append((var, var.default_update))
                    new.append(var.default_update)
        frontier = new
    return found


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
        mode: the ``fg.Mode`` it was compiled with.
        name: the name given to ``fg.function``.
        trust_input: when True, calls skip argument validation.

    Calls are thread-safe: compiled code runs without the GIL, so threads calling one
    function run in parallel (except with ``trust_input``, whose calls keep the GIL; its
    ``njit`` releases it); a function with ``updates`` holds a lock from reading the
    shared values to assigning the new ones, so its calls run one at a time.

    A ``Function`` pickles as its graph and options; unpickling compiles again (from the
    disk cache when it is warm). Its shared variables are pickled with it and become new,
    independent shared variables in the unpickled copy.
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
        unrewritten=None,
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
        self._unrewritten = unrewritten
        self._positions = {v.name: i for i, v in enumerate(self.inputs) if v.name}
        self._lock = threading.Lock() if update_targets else None
        self._bare = single and not update_targets  # the executable returns the output itself
        options = CompileOptions(mode, label, self._bare, trust_input, unrewritten)
        self._executable = get_backend(mode.backend).compile(fgraph, options)
        self._run = self._executable.run
        if getattr(self._executable, "validates_arguments", False):
            self._specialise_call()

    def __reduce__(self):
        # the graph and the options; unpickling compiles (from the disk cache when warm)
        return (
            Function,
            (
                self.graph,
                self.rewrite_stats,
                self._n_outputs,
                self._single,
                self._update_targets,
                self.mode,
                self.trust_input,
                self.name,
                self._label,
                self._unrewritten,
            ),
        )

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

    @property
    def source(self) -> str:
        """The generated code (Numba backend: the module, followed by where each node was
        built, then the modules of the linked kernels it calls)."""
        return self._backend_attribute("source", "generates no source")

    @property
    def compile_stats(self) -> dict:
        """Where the compile's time went (Numba backend), in seconds: ``rewrite``,
        ``codegen`` (rendering the modules), ``typing`` (Numba's type inference), ``llvm``
        (LLVM's optimisation and code generation), ``other`` (the rest of Numba's pipeline
        and loading machine code from the disk cache); ``units``, the compiled units
        (linked kernels, the entry) by where their machine code came from
        (``memory``: compiled before in this process, ``disk``: Numba's disk cache,
        ``worker``: compiled by the compile worker process, ``compiled``); and
        ``per_unit``, one record each."""
        stats = self._backend_attribute("compile_stats", "compiles nothing")
        return {"rewrite": sum(self.rewrite_stats["seconds"].values()), **stats}

    @property
    def njit(self):
        """The compiled entry point as a Numba dispatcher, for the user's own ``@numba.njit``
        code (or Python): ``f.njit(*inputs, *shared_values)`` takes the explicit inputs as
        arrays of their dtypes and ndims, then the current value of every shared variable in
        ``f.graph.inputs`` order (``[s.get_value(borrow=True) for s in f.graph.inputs[n:]]``),
        and returns the tuple of the outputs followed by the new values of the updated
        shared variables (``f.updates`` order), without assigning them -- or, when ``f``
        has one output (not a list) and no updates, that output itself. It validates
        nothing beyond Numba's typing and the static dims."""
        return self._backend_attribute("njit", "has no njit entry")

    def _backend_attribute(self, name, missing):
        value = getattr(self._executable, name, None)
        if value is None:
            raise AttributeError(f"{self._label}: mode {self.mode.backend!r} {missing}")
        return value

    def __call__(self, *args, **kwargs):
        return self._call(args, kwargs)

    def _specialise_call(self):
        """Give this instance a subclass whose ``__call__`` goes straight into the compiled
        entry: Numba's dispatch checks the argument types exactly (it compiles nothing
        new) and the entry checks static dims, so valid calls need no Python checks; any
        other call raises there and takes ``_call``, which converts, recompiles for a new
        layout or explains. ``__call__`` has the inputs' names as parameters (when they are
        distinct identifiers), so that keyword calls cost nothing extra. With
        ``trust_input`` and one output, ``__call__`` is the dispatcher itself, one that
        keeps the GIL and compiles for any argument types (errors then carry the compiled
        code's short messages)."""
        if self.trust_input and self._bare and not self._shared:
            # it specialises on new layouts itself (from Numba's cache when warm)
            call = staticmethod(self._run)
        else:
            call = self._generated_call()
        self.__class__ = type("Function", (Function,), {"__call__": call, "__slots__": ()})

    def _generated_call(self):
        """The fast ``__call__`` (see ``_specialise_call``), written for this function's
        inputs, shared variables and updates. Its own names start with ``_``, which input
        names given as parameters do not."""
        names = list(self._positions)
        shared = ["*[_s._value for _s in _shared]"] if self._shared else []
        if len(names) == self._n_inputs and all(_plain_name(n) for n in names):
            params = ", ".join(f"{n}=_MISSING" for n in names)
            call = f"_run({', '.join(names + shared)})"
            slow = f"_slow(({''.join(f'{n}, ' for n in names)}), {{}})"
            guard = ""
        else:  # keywords are looked up by _call
            params = "*_args, **_kwargs"
            call = f"_run({', '.join(['*_args'] + shared)})"
            slow = "_slow(_args, _kwargs)"
            guard = f"""
                if _kwargs:
                    return {slow}"""
        if not self._update_targets:
            result = "_result" if self._bare else "list(_result[:_n_out])"
            body = f"""
                try:
                    _result = {call}
                except Exception:
                    return {slow}
                return {result}"""
        else:
            result = "_result[0]" if self._single else "list(_result[:_n_out])"
            body = f"""
                with _lock:
                    try:
                        _result = {call}
                    except Exception:
                        _result = None
                    else:
                        for _target, _value in zip(_targets, _result[_n_out:]):
                            _target._assign(_value)
                if _result is None:
                    return {slow}
                return {result}"""
        namespace = {
            "_MISSING": _MISSING,
            "_run": self._run,
            "_slow": self._call,
            "_shared": self._shared,
            "_targets": self._update_targets,
            "_lock": self._lock,
            "_n_out": self._n_outputs,
        }
        code = textwrap.indent(textwrap.dedent(guard + body), "    ")
        exec(f"def __call__({params}):{code}", namespace)
        call = namespace["__call__"]
        call.__qualname__ = self._label  # Python's own errors (an unknown keyword) name it
        return staticmethod(call)  # it needs no ``self``: Python's counts are the user's

    def _call(self, args, kwargs):
        """The full call: keywords, validation and conversion, updates, detailed errors."""
        if kwargs:
            args = self._merge_keywords(args, kwargs)
        if not self.trust_input or len(args) != self._n_inputs:
            args = self._validate(args)
        if self._lock is None:
            results = self._execute(args)
        else:
            with self._lock:
                results = self._execute(args)
                # Every right-hand side was computed from the old values; assign them now.
                for target, value in zip(self._update_targets, results[self._n_outputs :]):
                    target._assign(value)
        outs = results[: self._n_outputs]
        return outs[0] if self._single else list(outs)

    def _execute(self, args):
        values = list(args) + [s.get_value(borrow=True) for s in self._shared]
        run_checked = getattr(self._executable, "run_checked", None)
        results = self._run(*values) if run_checked is None else run_checked(values)
        return (results,) if self._bare else results

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
        return var.type.convert(arg, f"{self._label}: argument {pos} ({var.name or 'unnamed'})")

    def dprint(self, file=None):
        """Print the compiled graph (see ``fg.dprint``)."""
        from fusegraph.printing import dprint

        return dprint(self, file=file)

    def __repr__(self) -> str:
        return f"<Function {self.name or ''} {self.mode.backend}: {self.graph}>"


_MISSING = object()


def _plain_name(name: str) -> bool:
    """Whether an input name can be a parameter of the generated ``__call__``."""
    reserved = keyword.iskeyword(name) or hasattr(builtins, name)
    return name.isidentifier() and not name.startswith("_") and not reserved
