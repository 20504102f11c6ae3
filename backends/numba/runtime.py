"""Turning a graph into a callable: render the module (``codegen``), load it through the disk
cache, compile its entry for C-contiguous arguments and switch off implicit compilation, so
that Numba's own dispatch doubles as the argument type check of every call."""

from __future__ import annotations

import threading

import numba
import numpy as np

from fusegraph.backends.numba import cache
from fusegraph.backends.numba.codegen import CONSTANTS, Module


def _array_type(var, layout="C"):
    return numba.types.Array(numba.from_dtype(np.dtype(var.dtype)), var.ndim, layout)


class Compiled:
    """The compiled form of a ``FunctionGraph``.

    Attributes:
        entry: the Numba dispatcher ``entry(*inputs, *shared_values)`` returning the tuple of
            the graph's outputs, or the output itself with ``single=True``
            (``Function.njit``).
        call: the same function for ``Function`` calls: it accepts only the argument types
            it was compiled for (C-contiguous arrays of the inputs' dtypes and ndims at
            first), anything else raises ``TypeError`` until :meth:`compile_for` adds that
            signature.
        source: the generated module's text.
        node_names: the label (``n<k>``) of each node in the source's comments.
    """

    def __init__(self, fgraph, parallel: bool = False, single: bool = False):
        module = Module(fgraph, parallel, single)
        self.source = module.source
        self.node_names = module.node_names
        self._module = cache.load_module(module.source, {CONSTANTS: module.constants})
        self.entry = self._module.entry
        # A twin dispatcher of the same function for the Function's calls, which compiles
        # only on request; ``entry`` stays free to specialise for the user's own njit code.
        # Both share Numba's cache files (same function, same options).
        options = {k: v for k, v in self.entry.targetoptions.items() if k != "nopython"}
        self.call = numba.njit(cache=self._module.__dict__[cache.CACHEABLE], **options)(
            self.entry.py_func
        )
        self._lock = threading.Lock()
        self._compile(tuple(_array_type(v) for v in fgraph.inputs))

    def _compile(self, signature) -> None:
        with self._lock:
            self.call.disable_compile(False)
            try:
                self.call.compile(signature)
            finally:
                self.call.disable_compile(True)

    def compile_for(self, values) -> bool:
        """Add a specialisation for the types of ``values`` (valid arguments of other
        layouts, or read-only arrays); False if the entry already had one."""
        signature = tuple(numba.typeof(v) for v in values)
        if signature in self.call.overloads:
            return False
        self._compile(signature)
        return True


__all__ = ["Compiled"]
