"""Backends: what runs a rewritten ``FunctionGraph``, and the registry ``fg.Mode`` names them in.

A backend is any object with ``compile(fgraph, options) -> executable`` (``Backend``).
``fg.function`` rewrites the graph, looks the mode's backend up here and compiles; every
call then goes through the executable (``Executable``). The built-in backends are ``numba``
(generated, fused, cached kernels; the default), ``py`` (each op's NumPy ``impl``, the
reference) and ``debug`` (both, compared node by node); they are imported when first used,
so ``import fusegraph`` does not import Numba.

A third-party backend registers itself once, then works wherever a mode is accepted::

    fusegraph.backends.register_backend("mine", MyBackend())
    f = fg.function([x], y, mode="mine")        # or fg.Mode(backend="mine")
"""

from __future__ import annotations

import dataclasses
import importlib
import typing

if typing.TYPE_CHECKING:  # pragma: no cover
    from fusegraph.graph import FunctionGraph


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    """What ``fg.function`` asks of a backend besides the graph.

    Attributes:
        mode: the ``fg.Mode`` (backend-specific options such as ``parallel`` live there).
        label: names the function in error messages ("function 'f'" or where it was built).
        single: the executable returns the graph's one output itself, not a sequence (the
            function has one output, not a list, and no updates).
        trust_input: the caller skips argument validation (see ``fg.function``).
        unrewritten: the graph before rewriting, for backends that say they want it
            (``Backend.wants_unrewritten``), else None.
    """

    mode: object
    label: str
    single: bool = False
    trust_input: bool = False
    unrewritten: FunctionGraph | None = None


class Executable(typing.Protocol):
    """A compiled graph, as a backend returns it.

    Required:
        run: ``run(*values)`` takes the arrays of ``fgraph.inputs`` (the function's inputs,
            then its shared variables' values, validated and converted by ``fg.function``
            unless ``trust_input``) and returns the outputs as a sequence, or the one output
            itself when ``options.single``. Outputs must not alias the inputs, constants or
            each other.

    Optional (``fg.function`` checks with ``getattr``):
        validates_arguments: True when ``run`` itself raises on every argument it cannot
            take, so that calls may go straight into it before any Python-side validation.
        run_checked(values): the call after validation, when ``run`` raised or the caller
            validated first; it may compile for new argument layouts and explain errors.
            Defaults to ``run(*values)``.
        source: the generated code (``Function.source``).
        compile_stats: a dict of where the compile's time went (``Function.compile_stats``).
        njit: a callable for the user's own compiled code (``Function.njit``).
    """

    run: typing.Callable


class Backend(typing.Protocol):
    """Compiles a ``FunctionGraph`` with ``CompileOptions`` into an ``Executable``."""

    #: whether ``compile`` wants ``options.unrewritten`` (``debug`` compares against it)
    wants_unrewritten: bool

    def compile(self, fgraph: FunctionGraph, options: CompileOptions) -> Executable: ...


#: name -> a backend, or "module:attribute" where the built-in ones are, imported on first use
_REGISTRY: dict = {
    "numba": "fusegraph.backends.numba.runtime:BACKEND",
    "py": "fusegraph.backends.py:BACKEND",
    "debug": "fusegraph.backends.debug:BACKEND",
}


def register_backend(name: str, backend) -> None:
    """Make ``backend`` (an object with ``compile(fgraph, options)``, see ``Backend``)
    available as ``mode=name``. Registering a name twice raises ``ValueError``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_backend: name must be a non-empty str, got {name!r}")
    if not callable(getattr(backend, "compile", None)):
        raise TypeError(
            f"register_backend({name!r}): the backend must have a compile(fgraph, options) "
            f"method; got {type(backend).__name__}"
        )
    if name in _REGISTRY:
        raise ValueError(f"register_backend: a backend named {name!r} is already registered")
    _REGISTRY[name] = backend


def backend_names() -> tuple:
    """The names of the registered backends."""
    return tuple(_REGISTRY)


def get_backend(name: str):
    """The backend registered as ``name`` (``KeyError`` if there is none)."""
    backend = _REGISTRY[name]
    if isinstance(backend, str):
        module, attribute = backend.split(":")
        backend = _REGISTRY[name] = getattr(importlib.import_module(module), attribute)
    return backend


__all__ = [
    "Backend",
    "CompileOptions",
    "Executable",
    "backend_names",
    "get_backend",
    "register_backend",
]
