"""Fusion of elementwise nodes into one ``FusedElemwise`` node (filled in by the fusion work)."""

from __future__ import annotations


def fuse(outputs):
    """Return ``outputs`` with maximal convex groups of elementwise nodes fused."""
    return list(outputs)
