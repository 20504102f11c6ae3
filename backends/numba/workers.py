"""Compiling linked kernels in a second process, on the machine's other core.

Linked kernels (``link``) are independent: while this process compiles them from the front
of a function's list, a worker process compiles them from the back, into the shared disk
cache, and this process then loads each worker-compiled kernel from there. The worker is
started when a large graph (``codegen.LINK_NODES``) begins to compile, kept for the
process's later compiles, and ends when this process does; it takes work when a compile has
enough units to share (``MIN_SHARED`` kernels).

``FUSEGRAPH_COMPILE_WORKERS=0`` switches it off; it is off too on one core, and when the
disk cache is not usable (the worker's code could not reach this process). A worker that
fails or dies costs nothing but time: this process compiles what it did not.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import subprocess
import sys
import threading
import time

import numba
import numpy as np

#: The fewest cold kernels a compile shares with the worker (starting one costs a second).
MIN_SHARED = 4
#: Seconds a compile waits for one of the worker's units before ending it (a hung worker).
WAIT_LIMIT = 600.0

_lock = threading.Lock()
_io_lock = threading.Lock()
_worker: subprocess.Popen | None = None


def enabled() -> bool:
    """Whether compiles may use a worker process."""
    if os.environ.get("FUSEGRAPH_COMPILE_WORKERS", "1") == "0":
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return cores > 1


def _encode(t):
    """A JSON form of the Numba type ``t``: a boolean, an array, a tuple of them, or a
    signature of them."""
    if isinstance(t, numba.core.typing.Signature):
        return {"return": _encode(t.return_type), "args": [_encode(a) for a in t.args]}
    if t == numba.types.boolean:
        return "bool"
    if isinstance(t, numba.types.BaseTuple):
        return [_encode(item) for item in t]
    return {"dtype": str(t.dtype), "ndim": t.ndim, "layout": t.layout}


def _decode(encoded):
    if encoded == "bool":
        return numba.types.boolean
    if isinstance(encoded, list):
        return numba.types.Tuple([_decode(item) for item in encoded])
    if "args" in encoded:
        return _decode(encoded["return"])(*[_decode(a) for a in encoded["args"]])
    dtype = numba.from_dtype(np.dtype(encoded["dtype"]))
    return numba.types.Array(dtype, encoded["ndim"], encoded["layout"])


def start() -> subprocess.Popen | None:
    """The worker process, started if it is not running (None if it cannot be)."""
    global _worker
    with _lock:
        if _worker is not None:
            if _worker.poll() is None:
                return _worker
            _close(_worker)  # a dead one (ended by ``Shared.wait``, or crashed)
        try:
            _worker = subprocess.Popen(
                [sys.executable, "-m", "fusegraph.backends.numba.workers"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                env=dict(os.environ, FUSEGRAPH_COMPILE_WORKERS="0"),
            )
        except OSError:
            _worker = None
        return _worker


def _close(worker: subprocess.Popen) -> None:
    """End ``worker`` (closing its input ends it) and close its pipes."""
    try:
        worker.stdin.close()
        worker.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        worker.kill()
        worker.wait()
    worker.stdout.close()


def _stop() -> None:
    if _worker is not None:
        _close(_worker)


atexit.register(_stop)


def _after_fork_in_child() -> None:
    # the parent's worker and its pipes stay the parent's; a child starts its own
    global _worker, _lock, _io_lock
    _worker, _lock, _io_lock = None, threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Shared:
    """A list of cold units ``(name, request)`` shared with the worker: :meth:`next` gives
    this process the next name from the front, ``None`` when the rest are the worker's or
    done; the worker takes them from the back (``theirs``). :meth:`wait` blocks until the
    worker has finished with one (then it is in the disk cache, unless the worker failed:
    compile it here). A request has the unit's module ``source``, which defines
    ``kernel``, and its ``signature``."""

    def __init__(self, units: list):
        self.units = collections.deque(units)  # (name, request)
        self._done: dict = {}
        self._cond = threading.Condition()
        self._worker = start() if len(units) >= MIN_SHARED else None
        #: the units the worker took (None without a worker)
        self.theirs: list | None = None
        if self._worker is not None:
            self.theirs = []
            threading.Thread(target=self._feed, daemon=True).start()

    def next(self):
        with self._cond:
            return self.units.popleft()[0] if self.units else None

    def _feed(self) -> None:
        worker = self._worker
        while True:
            with self._cond:
                if not self.units:
                    return
                name, request = self.units.pop()
                self.theirs.append(name)
            request = dict(
                request,
                signature=_encode(request["signature"]),
                cache_dir=os.environ.get("FUSEGRAPH_CACHE_DIR"),
            )
            try:
                with _io_lock:  # one request at a time, whichever compile sends it
                    worker.stdin.write(json.dumps(request) + "\n")
                    worker.stdin.flush()
                    ok = json.loads(worker.stdout.readline() or "false")
            except (OSError, ValueError):
                ok = False
            with self._cond:
                self._done[name] = bool(ok)
                self._cond.notify_all()
            if not ok:
                return  # a failed or dead worker gets no more: this process takes the rest

    def wait(self, name: str) -> bool:
        """Block until the worker is done with ``name``; whether it compiled it. A worker
        that has not answered within ``WAIT_LIMIT`` seconds is ended (this process then
        compiles what it had)."""
        deadline = time.monotonic() + WAIT_LIMIT
        with self._cond:
            while name not in self._done:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._worker.kill()  # its pipe closes: the feeding thread stops
                    return False
                self._cond.wait(left)
            return self._done[name]


def main() -> None:
    """The worker: compile each requested kernel (one JSON line each) into the disk cache,
    answering ``true`` or ``false`` per line."""
    from fusegraph.backends.numba import cache

    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request["cache_dir"] is None:  # the requester's cache, which tests change
                os.environ.pop("FUSEGRAPH_CACHE_DIR", None)
            else:
                os.environ["FUSEGRAPH_CACHE_DIR"] = request["cache_dir"]
            module = cache.load_module(request["source"])
            if not module.__dict__[cache.CACHEABLE]:
                raise RuntimeError("no disk cache")
            module.kernel.compile(_decode(request["signature"]))
            answer = True
        except Exception:  # noqa: BLE001 - the requesting process compiles it instead
            answer = False
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
