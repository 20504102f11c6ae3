"""The rewrite pipeline: which passes run and in which order, as plain code in one place.

canonicalize (with merge and constant folding) → stabilize → specialize → canonicalize again
(the cleanups that what stabilize and specialize built now allows: a gradient's broadcast
that a specialised loss leaves droppable) → fusion. A Mode's ``include``/``exclude`` names
switch passes, rule sets or single rules on or off.
"""

from __future__ import annotations

from time import perf_counter

from fusegraph.rewrites.canonicalize import canonicalize
from fusegraph.rewrites.engine import check_type, rewrite
from fusegraph.rewrites.specialize import specialize
from fusegraph.rewrites.stabilize import stabilize

#: Names a Mode may include or exclude besides rule-set and rule names.
PASS_NAMES = ("merge", "constant_folding", "canonicalize", "stabilize", "specialize", "fusion")
RULE_SETS = (canonicalize, stabilize, specialize)


def optimize(outputs, include=(), exclude=()):
    """Rewrite the graph of ``outputs``; return ``(new_outputs, stats)``.

    ``stats`` has ``"seconds"`` (per pass) and ``"rewrites"`` (counts per rule name).
    """
    fold = "constant_folding" not in exclude
    merge = "merge" not in exclude
    stats = {"seconds": {}, "rewrites": {}}
    originals = list(outputs)
    seconds = stats["seconds"]
    for rule_set in (*RULE_SETS, canonicalize):
        rules = rule_set.enabled(include, exclude)
        start = perf_counter()
        outputs = rewrite(outputs, rules, fold=fold, merge=merge, stats=stats["rewrites"])
        seconds[rule_set.name] = seconds.get(rule_set.name, 0.0) + perf_counter() - start
        _check_outputs(originals, outputs, rule_set.name)
    if "fusion" not in exclude:
        from fusegraph.rewrites.fusion import fuse

        start = perf_counter()
        outputs = fuse(outputs)
        stats["seconds"]["fusion"] = perf_counter() - start
        _check_outputs(originals, outputs, "fusion")
    return outputs, stats


def known_names() -> set:
    """Every name a Mode's include/exclude may use."""
    names = set(PASS_NAMES)
    for rule_set in RULE_SETS:
        names.add(rule_set.name)
        names.update(r.name for r in rule_set.rules)
    return names


def _check_outputs(originals, outputs, pass_name):
    for old, new in zip(originals, outputs):
        check_type(old, new, pass_name)
