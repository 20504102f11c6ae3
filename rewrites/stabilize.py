"""The ``stabilize`` rule set."""

from __future__ import annotations

from fusegraph.rewrites.engine import RuleSet

stabilize = RuleSet("stabilize")
