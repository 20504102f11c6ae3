"""The ``specialize`` rule set."""

from __future__ import annotations

from fusegraph.rewrites.engine import RuleSet

specialize = RuleSet("specialize")
