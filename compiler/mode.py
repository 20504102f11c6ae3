"""Compilation modes: which backend runs a function. Options travel in this object, never
in global configuration."""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("py",)


@dataclass(frozen=True)
class Mode:
    """How ``fg.function`` compiles.

    Args:
        backend: ``"py"`` runs the graph node by node with each op's NumPy ``impl``.
    """

    backend: str = "py"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; available: {', '.join(BACKENDS)}")


def as_mode(mode) -> Mode:
    """Accept None (the default mode), a backend name, or a ``Mode``."""
    if mode is None:
        return Mode()
    if isinstance(mode, Mode):
        return mode
    if isinstance(mode, str):
        return Mode(backend=mode)
    raise TypeError(f"mode must be None, a backend name or fg.Mode, got {type(mode).__name__}")
