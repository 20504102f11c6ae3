"""Turning a graph into a callable (the ``numba`` backend, ``BACKEND``): render the module
(``codegen``), load it through the disk cache, compile its entry for C-contiguous arguments
and switch off implicit compilation, so that Numba's own dispatch doubles as the argument
type check of every call."""

from __future__ import annotations

import threading
import types
from time import perf_counter

import numba
import numpy as np

from fusegraph.backends import py
from fusegraph.backends.numba import cache, compile_report, glue, link, workers
from fusegraph.backends.numba.codegen import CONSTANTS, KERNELS, LINK_NODES, Module
from fusegraph.backends.numba.compile_report import Report


def _array_type(var, layout="C"):
    return numba.types.Array(numba.from_dtype(np.dtype(var.dtype)), var.ndim, layout)


class Compiled:
    """The compiled form of a ``FunctionGraph``: the ``numba`` backend's executable (see
    ``fusegraph.backends.Executable``).

    Attributes:
        entry: the Numba dispatcher ``entry(*inputs, *shared_values)`` returning the tuple of
            the graph's outputs, or the output itself with ``single=True``
            (``Function.njit``).
        run: the same function for ``Function`` calls: it accepts only the argument types
            it was compiled for (C-contiguous arrays of the inputs' dtypes and ndims at
            first), anything else raises ``TypeError`` until :meth:`compile_for` adds that
            signature. With ``release_gil=False`` (``trust_input`` functions) it keeps the
            GIL, which saves the 40-50 ns of releasing it, and compiles for any argument
            types it is given, like a plain ``@njit`` function.
        module_source: the generated module's text (the entry's).
        linked_sources: the linked kernels' module texts, by module name.
        report: the ``compile_report.Report`` of this compile.
        node_names: the label (``n<k>``) of each node in the source's comments.
    """

    validates_arguments = True

    def __init__(self, fgraph, parallel=False, single=False, release_gil=True, label="function"):
        start = perf_counter()
        self._fgraph, self._label = fgraph, label
        self._explain = None
        if len(fgraph.toposort()) > LINK_NODES and workers.enabled():
            workers.start()  # it imports while this process renders and loads the modules
        module = Module(fgraph, parallel, single)
        self.module_source = module.source
        self.node_names = module.node_names
        self.linked_sources = {name: unit.source for name, unit in module.linked.items()}
        self.report = Report(label, len(module.linked) + 1)
        self.report.codegen = perf_counter() - start
        self._kernels = {}
        namespace = {CONSTANTS: module.constants, KERNELS: self._kernels}
        units = [(name, *unit) for name, unit in module.linked.items()]
        for name, _, signature in units:
            link.declare(name, signature)

        def compile_entry():
            self._compile_entry(fgraph, module.source, namespace, release_gil)

        if module.glue_plan is None:  # the entry's code calls the kernels' intrinsics
            self._link_units(units)
            compile_entry()
            return
        # The glue needs the kernels' signatures only (declared): the entry compiles first,
        # while a worker process starts and takes kernels. Then the conversions it calls.
        helpers = glue.helper_modules(*module.glue_plan)
        self.report.total += len(helpers)
        self.linked_sources.update((name, source) for name, source, _ in helpers)
        self._link_units(units + helpers, first=compile_entry)

    def _compile_entry(self, fgraph, source, namespace, release_gil) -> None:
        start = perf_counter()
        self._module = cache.load_module(source, namespace)
        self.entry = self._module.entry
        # A twin dispatcher of the same function for the Function's calls, which compiles
        # only on request; ``entry`` stays free to specialise for the user's own njit code.
        # Both share Numba's cache files (same function, same options), except the twin
        # that keeps the GIL, which has a name and cache files of its own.
        options = {k: v for k, v in self.entry.targetoptions.items() if k != "nopython"}
        func = self.entry.py_func
        if not release_gil:
            options["nogil"] = False
            func = _renamed(func, "entry_holding_gil")
        self.run = numba.njit(cache=self._module.__dict__[cache.CACHEABLE], **options)(func)
        self._strict = release_gil
        self._lock = threading.Lock()
        signature = tuple(_array_type(v) for v in fgraph.inputs)
        origin = self._compile(signature)
        numba_seconds = compile_report.numba_seconds(self.run, signature)
        self.report.record("entry", "entry", origin, perf_counter() - start, numba_seconds)

    def _link_units(self, units, first=None) -> None:
        """Link ``units`` ((name, source, signature) of modules defining ``kernel``): with a
        worker process (``workers``) when enough are new to this process, the worker
        compiling from the back of the list while this process runs ``first()`` (if given)
        then compiles from the front, then loads the worker's from the disk cache."""
        found, cold = {}, []
        for name, source, signature in units:
            module = cache.load_module(source)  # its file, before a worker reads it
            found[name] = (source, signature, module.kernel)
            if not link.is_loaded(name) and module.__dict__[cache.CACHEABLE]:
                cold.append((name, dict(source=source, signature=signature)))
        shared = workers.Shared(cold) if workers.enabled() else None
        if first is not None:
            first()
        if shared is not None and shared.theirs is not None:
            while (name := shared.next()) is not None:
                self._link(name, *found[name], perf_counter())
            for name in shared.theirs:
                start = perf_counter()
                by_worker = shared.wait(name)
                self._link(name, *found[name], start, by_worker)
        for name, unit in found.items():
            if name not in self._kernels:
                self._link(name, *unit, perf_counter())

    def _link(self, name, source, signature, dispatcher, start, by_worker=False) -> None:
        """Compile (or load) one linked unit and record it in the report."""
        self._kernels[name], origin = link.kernel(dispatcher, signature, name)
        if by_worker and origin == "disk":
            origin = "worker"
        self.report.record(
            "kernel",
            source.split("\n", 1)[0].removeprefix("# fusegraph "),
            origin,
            perf_counter() - start,
            compile_report.numba_seconds(dispatcher, signature.args)
            if origin == "compiled"
            else {"typing": 0.0, "llvm": 0.0},
        )

    def _compile(self, signature) -> str:
        with self._lock:
            self.run.disable_compile(False)
            try:
                return link.compile_for(self.run, signature)
            finally:
                self.run.disable_compile(self._strict)

    def compile_for(self, values) -> bool:
        """Add a specialisation for the types of ``values`` (valid arguments of other
        layouts, or read-only arrays); False if the entry already had one."""
        signature = tuple(numba.typeof(v) for v in values)
        if signature in self.run.overloads:
            return False
        self._compile(signature)
        return True

    def run_checked(self, values):
        """Run after ``fg.function`` validated ``values``: compile for their layout if they
        are valid arguments of another, and when the compiled code raises (with a constant
        message), run the interpreter, which raises the same error with the op, the shapes
        and the user's line."""
        try:
            return self.run(*values)
        except Exception as exc:
            error = exc
        if self.compile_for(values):  # valid arguments of another layout
            try:
                return self.run(*values)
            except Exception as exc:
                error = exc
        if self._explain is None:
            self._explain = py.compile_graph(self._fgraph)
        self._explain(*values)
        error.add_note(f"{self._label}: the interpreter ran this call without error")
        raise error

    @property
    def source(self) -> str:
        """The generated module, followed by where each node was built, then the modules of
        the linked kernels it calls."""
        where = "\n".join(
            f"# {label}: {node.trace.filename}:{node.trace.lineno}"
            for node, label in self.node_names.items()
        )
        linked = "".join(
            f"\n# ---- linked module {name}\n{text}" for name, text in self.linked_sources.items()
        )
        return f"{self.module_source}\n# Where the nodes were built:\n{where}\n{linked}"

    @property
    def compile_stats(self) -> dict:
        """The report's summary and ``per_unit`` records (see ``Function.compile_stats``)."""
        return {**self.report.summary(), "per_unit": [dict(u) for u in self.report.units]}

    @property
    def njit(self):
        return self.entry


class NumbaBackend:
    """The default backend (see ``fusegraph.backends.Backend``): ``Compiled``."""

    wants_unrewritten = False

    def compile(self, fgraph, options) -> Compiled:
        release_gil = not options.trust_input
        return Compiled(fgraph, options.mode.parallel, options.single, release_gil, options.label)


BACKEND = NumbaBackend()


def _renamed(func, name):
    """A copy of ``func`` under another name: Numba's cache files are named after the
    function and its index ignores options such as ``nogil``, so a twin compiled with other
    options needs a name of its own."""
    twin = types.FunctionType(
        func.__code__, func.__globals__, name, func.__defaults__, func.__closure__
    )
    twin.__qualname__ = name
    return twin


__all__ = ["BACKEND", "Compiled", "NumbaBackend"]
