"""What a compile did and how long it took: one record per compiled unit (linked kernel,
entry) with where its machine code came from and Numba's typing and LLVM seconds,
and a progress line on stderr while a compile runs longer than ``PROGRESS_AFTER`` seconds.

Progress is silenced with the environment variable ``FUSEGRAPH_PROGRESS=0``.
"""

from __future__ import annotations

import os
import sys
from time import perf_counter

#: Seconds a compile runs before it reports progress.
PROGRESS_AFTER = 2.0
#: Seconds between two progress lines.
PROGRESS_EVERY = 1.0


def numba_seconds(dispatcher, signature) -> dict:
    """Numba's type-inference and LLVM seconds for ``dispatcher``'s compile of ``signature``
    (zeros when its machine code came from the disk cache)."""
    try:
        metadata = dispatcher.get_metadata(signature) or {}
    except (KeyError, TypeError):
        metadata = {}
    passes = metadata.get("pipeline_times", {}).get("nopython", {})
    typing = sum(t.run for name, t in passes.items() if "type_inference" in name)
    return {"typing": typing, "llvm": metadata.get("timers", {}).get("llvm_lock", 0.0)}


class Report:
    """The records of one compile (``units``), and its progress on stderr.

    Args:
        label: the function's label, as in its error messages.
        total: the number of units the compile will record.
    """

    def __init__(self, label: str, total: int):
        self.label = label
        self.total = total
        self.units: list[dict] = []
        self.codegen = 0.0
        self._start = perf_counter()
        self._last = None  # when the last progress line was printed
        self._quiet = os.environ.get("FUSEGRAPH_PROGRESS", "1") == "0"

    def record(self, kind: str, what: str, origin: str, seconds: float, numba: dict) -> None:
        """Record one unit (``kind`` "kernel" or "entry"; ``origin`` "memory",
        "disk", "worker" (compiled by the worker process) or "compiled") and report
        progress if the compile has run long."""
        self.units.append(dict(kind=kind, what=what, origin=origin, seconds=seconds, **numba))
        now = perf_counter()
        if self._quiet or now - self._start < PROGRESS_AFTER:
            return
        if self._last is not None and now - self._last < PROGRESS_EVERY and kind != "entry":
            return
        self._last = now
        compiled = sum(u["origin"] == "compiled" for u in self.units)
        print(
            f"fusegraph: compiling {self.label}: {len(self.units)}/{self.total} units "
            f"({compiled} compiled, the others cached), {kind} {what[:40]}, "
            f"{now - self._start:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def summary(self) -> dict:
        """Seconds by phase (code generation, Numba typing, LLVM, the rest of Numba's
        pipeline and loading), and the units by origin."""
        total = sum(u["seconds"] for u in self.units)
        typing = sum(u["typing"] for u in self.units)
        llvm = sum(u["llvm"] for u in self.units)
        origins = {"memory": 0, "disk": 0, "worker": 0, "compiled": 0}
        for u in self.units:
            origins[u["origin"]] += 1
        return {
            "codegen": self.codegen,
            "typing": typing,
            "llvm": llvm,
            "other": max(total - typing - llvm, 0.0),
            "units": origins,
        }


__all__ = ["PROGRESS_AFTER", "Report", "numba_seconds"]
