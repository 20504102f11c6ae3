"""Wall-clock timing shared by the benchmark scripts."""

from __future__ import annotations

from time import perf_counter


def wall_times(fn, args, repeat: int, number: int = 1) -> list[float]:
    """Seconds per call of ``fn(*args)`` in each of ``repeat`` runs of ``number`` calls,
    after one warm-up call (which compiles, fills caches and faults pages in)."""
    fn(*args)
    times = []
    for _ in range(repeat):
        t0 = perf_counter()
        for _ in range(number):
            fn(*args)
        times.append((perf_counter() - t0) / number)
    return times
