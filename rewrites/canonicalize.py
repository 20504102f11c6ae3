"""The ``canonicalize`` rule set."""

from __future__ import annotations

from fusegraph.rewrites.engine import RuleSet

canonicalize = RuleSet("canonicalize")
