"""Compilation modes: which backend runs a function (a name in ``fusegraph.backends``'
registry) and which rewrites it gets. Options travel in this object, never in global
configuration."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from fusegraph.backends import backend_names


@dataclass(frozen=True)
class Mode:
    """How ``fg.function`` compiles.

    Args:
        backend: ``"numba"`` (default) compiles the rewritten graph into one generated,
            disk-cached module of fused Numba kernels; ``"py"`` runs the graph node by node
            with each op's NumPy ``impl`` (the reference); ``"debug"`` runs both, and the
            unrewritten graph, and raises ``fg.DebugModeError`` on the first disagreement;
            or the name of a backend registered with ``fusegraph.backends.register_backend``.
        include: names of opt-in rules (or rule sets) to switch on.
        exclude: names of passes (``merge``, ``constant_folding``, ``canonicalize``,
            ``stabilize``, ``specialize``, ``fusion``), rule sets or single rules to
            switch off; ``fg.Mode(exclude=("fusion",))`` compiles without fusion.
        parallel: run large fused loops on all cores (``numba.prange`` over the outer
            dimension; reductions are never split across threads). Numba backend only.
    """

    backend: str = "numba"
    include: tuple = ()
    exclude: tuple = ()
    parallel: bool = False

    def __post_init__(self):
        if self.backend not in backend_names():
            raise ValueError(
                f"unknown backend {self.backend!r}; available: {', '.join(backend_names())}"
            )
        for option in ("include", "exclude"):
            names = getattr(self, option)
            names = (names,) if isinstance(names, str) else tuple(names)
            object.__setattr__(self, option, names)
            _check_names(option, names)


def as_mode(mode) -> Mode:
    """Accept None (the default mode), a backend name, or a ``Mode``."""
    if mode is None:
        return Mode()
    if isinstance(mode, Mode):
        return mode
    if isinstance(mode, str):
        return Mode(backend=mode)
    raise TypeError(f"mode must be None, a backend name or fg.Mode, got {type(mode).__name__}")


def _check_names(option, names):
    from fusegraph.rewrites.passes import known_names

    known = known_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"Mode {option}: unknown rewrite name {unknown[0]!r}{hint}")
