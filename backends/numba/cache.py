"""The disk cache of generated Numba modules.

The code generator renders a whole graph as the source of one Python module; this layer
turns that source into a live module and makes Numba's own ``cache=True`` work for it:

* the module is content-addressed: its name is ``fusegraph_cache_<sha256[:32]>`` and its
  file ``<cache_dir()>/<name>.py``; the file is registered in ``sys.modules`` before it is
  executed, so Numba finds the module (by ``__file__`` and by name) and writes its machine
  code next to it, in ``__pycache__/<name>.<function>-<line>.pyXY.{nbi,nbc}``;
* an existing file is used only if its bytes equal the source (the name alone is never
  trusted); the executed code is always compiled from the verified string, never from a
  ``.pyc``; writes are atomic (a temporary file in the same directory, then ``os.replace``),
  so concurrent processes never see a torn file;
* :func:`cache_dir` has a version component (fusegraph, a fingerprint of the Numba backend's
  sources, Numba, NumPy and the interpreter), so an upgrade never loads old machine code
  (Numba does not notice when a function that a cached function calls changes);
* a corrupt file (ours or Numba's index/data files) is rewritten or removed; an unwritable
  directory falls back to a private temporary directory, then to executing from memory with
  Numba's caching off. Each kind of trouble warns once per process (:class:`CacheWarning`);
  nothing crashes and the right code always runs.

The generated source should decorate with ``numba.njit(cache=__fusegraph_cacheable__)``:
:func:`load_module` sets that global before executing the source (``False`` when the
module has no file that Numba can cache against).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import linecache
import os
import pickle
import pickletools
import re
import shutil
import sys
import tempfile
import threading
import types
import warnings
from pathlib import Path

__all__ = [
    "CACHEABLE",
    "ENTRY_DECORATOR",
    "KERNEL_DECORATOR",
    "LINKED_DECORATOR",
    "CacheWarning",
    "cache_dir",
    "base_dir",
    "clear",
    "info",
    "load_module",
    "module_name",
    "stats",
]

#: the global the generated source reads to decide whether ``cache=True`` is usable
CACHEABLE = "__fusegraph_cacheable__"
#: The decorator of a generated module's entry point: cached when the module allows it, no
#: GIL, NumPy's error model (the Python one checks every division and stops vectorisation),
#: no cfunc wrapper (a C-callable twin that nothing calls, 0.1 s of every compile), and
#: the pipeline of generated code (``pipeline.GeneratedCompiler``, which modules import).
ENTRY_DECORATOR = (
    f'@numba.njit(cache={CACHEABLE}, nogil=True, error_model="numpy", no_cfunc_wrapper=True,'
    " pipeline_class=GeneratedCompiler)"
)
#: The decorator kernels are rendered with. The module generator writes most kernels into
#: the entry's source instead (``codegen``); the others (shared ones get the entry's
#: decorator) Numba types inline at their call site: either way a module compiles as one
#: function, not a dispatcher per kernel whose code Numba would compile again in its caller.
KERNEL_DECORATOR = '@numba.njit(inline="always", nogil=True, error_model="numpy")'
#: The decorator of a linked kernel's module (``link``): cached, and without the wrappers
#: that make a function callable from Python or C (its callers are compiled code), which
#: are a third of a small function's compile time.
LINKED_DECORATOR = ENTRY_DECORATOR[:-1] + ", no_cpython_wrapper=True)"
#: generated module names (and the stems of their files and of Numba's files) start so
PREFIX = "fusegraph_cache_"
_TMP_PREFIX = "." + PREFIX
_VERSION_DIR = re.compile(r"^fg[^-]*-[0-9a-f]+-numba")


class CacheWarning(UserWarning):
    """The disk cache could not be used as intended (corrupt or unwritable); fusegraph
    recompiled and carried on. Issued once per kind of trouble per process."""


# ---------------------------------------------------------------------------------------
# where


def _user_cache_root() -> Path:
    if sys.platform == "win32":
        root = os.environ.get("LOCALAPPDATA") or os.path.join(
            os.path.expanduser("~"), "AppData", "Local"
        )
        return Path(root)
    if sys.platform == "darwin":
        return Path(os.path.expanduser("~/Library/Caches"))
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"))


def base_dir() -> Path:
    """The cache's root: ``$FUSEGRAPH_CACHE_DIR`` (made absolute), else the platform's user
    cache directory plus ``fusegraph``. Not created."""
    env = os.environ.get("FUSEGRAPH_CACHE_DIR")
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    return _user_cache_root() / "fusegraph"


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return "0"


_version_tag: str | None = None


def version_tag() -> str:
    """The versioned subdirectory's name: fusegraph's version, a fingerprint of the Numba
    backend's sources (edits in an editable install count as upgrades), Numba's and NumPy's
    versions and the interpreter's cache tag."""
    global _version_tag
    if _version_tag is None:
        here = Path(__file__).resolve().parent
        digest = hashlib.sha256()
        for path in sorted(here.rglob("*.py")):
            if "fitting" in path.relative_to(here).parts:
                continue
            digest.update(path.relative_to(here).as_posix().encode() + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError:  # pragma: no cover
                pass
            digest.update(b"\0")
        _version_tag = "-".join(
            [
                "fg" + _dist_version("fusegraph").replace("-", "_"),
                digest.hexdigest()[:12],
                "numba" + _dist_version("numba").replace("-", "_"),
                "np" + _dist_version("numpy").replace("-", "_"),
                sys.implementation.cache_tag or sys.implementation.name,
            ]
        )
    return _version_tag


def cache_dir(create: bool = True) -> Path:
    """The directory generated modules live in: ``base_dir() / version_tag()``, created on
    demand (a failure to create it is left to :func:`load_module`, which falls back)."""
    path = base_dir() / version_tag()
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
    return path


def module_name(source: str) -> str:
    """The content-addressed module name of ``source``."""
    return PREFIX + hashlib.sha256(source.encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------------------------------
# process state (reset in a forked child)

_lock = threading.Lock()
_name_locks: dict[str, threading.Lock] = {}
_stats = {"memory_hits": 0, "disk_hits": 0, "misses": 0, "repaired": 0, "uncached": 0, "unsaved": 0}
_warned: set[str] = set()
_fallback: dict[str, object] = {}  # "dir": Path | None (None: mkdtemp failed), "pid": int


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _name_locks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _name_lock(name: str) -> threading.Lock:
    with _lock:
        lock = _name_locks.get(name)
        if lock is None:
            lock = _name_locks[name] = threading.Lock()
        return lock


def stats() -> dict[str, int]:
    """This process's counts: ``memory_hits`` (already loaded), ``disk_hits`` (a verified
    file was imported), ``misses`` (the file was missing or corrupt and was written, or the
    module ran from memory), ``repaired`` (corrupt files rewritten or removed) and
    ``uncached`` (modules executed without a file, so without Numba's cache) and
    ``unsaved`` (functions Numba compiled but could not write to its cache)."""
    with _lock:
        return dict(_stats)


def _count(key: str) -> None:
    with _lock:
        _stats[key] += 1


def _reset_for_tests() -> None:
    """Forget counts, issued warnings and the fallback directory (tests only)."""
    with _lock:
        for key in _stats:
            _stats[key] = 0
        _warned.clear()
        _fallback.clear()


def _warn(kind: str, message: str, stacklevel: int = 4) -> None:
    with _lock:
        if kind in _warned:
            return
        _warned.add(kind)
    warnings.warn(message, CacheWarning, stacklevel=stacklevel)  # load_module's caller


def numba_write_failed(exc: OSError) -> None:
    """Numba compiled a function but could not write its cache files (``link.compile_for``
    saw the error): the code runs from memory; warn once."""
    _count("unsaved")
    _warn(
        "unsaved",
        f"Numba could not write its cache files ({exc}); the compiled code runs from memory "
        "and will be compiled again in a new process",
        stacklevel=5,
    )


# ---------------------------------------------------------------------------------------
# files


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return b"\0unreadable"  # anything that differs from a source


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _pickle_complete(data: bytes) -> bool:
    """Whether ``data`` is exactly one whole pickle (parsed, never executed)."""
    try:
        positions = [pos for _op, _arg, pos in pickletools.genops(data)]
        return bool(positions) and positions[-1] == len(data) - 1
    except Exception:
        return False


def _numba_files(directory: Path, name: str) -> list[Path]:
    pycache = directory / "__pycache__"
    try:
        return [p for p in pycache.iterdir() if p.name.startswith(name + ".")]
    except OSError:
        return []


def _check_numba_files(directory: Path, name: str) -> bool:
    """Remove this module's Numba cache files if any of them is damaged (Numba would crash
    on a truncated index or data file) or holds another module's code (which Numba would
    run). Returns whether something was removed."""
    files = _numba_files(directory, name)
    bad = False
    for path in files:
        if path.suffix not in (".nbi", ".nbc"):
            continue
        data = _read(path)
        if data is None:  # removed meanwhile: Numba copes
            continue
        if path.suffix == ".nbi":
            try:
                with open(path, "rb") as f:
                    pickle.load(f)  # Numba's version string
                    rest = f.read()
                ok = _pickle_complete(rest)
            except Exception:
                ok = False
        else:  # whole, and this module's: a data file swapped in from another function
            # is a valid pickle, and Numba would run that function's code
            ok = _pickle_complete(data) and name.encode() in data
        if not ok:
            bad = True
            break
    if not bad:
        return False
    for path in files:
        try:
            path.unlink()
        except OSError:
            pass
    return True


def _fallback_dir() -> Path | None:
    """A private temporary directory for this process (None if none can be made)."""
    with _lock:
        if "dir" not in _fallback or _fallback.get("pid") != os.getpid():
            try:
                path: Path | None = Path(tempfile.mkdtemp(prefix="fusegraph-cache-"))
            except Exception:
                path = None
            _fallback["dir"] = path
            _fallback["pid"] = os.getpid()
            if path is not None:
                import atexit

                atexit.register(_remove_fallback, path, os.getpid())
        return _fallback["dir"]  # type: ignore[return-value]


def _remove_fallback(path: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that exits normally
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# loading


class _VerifiedLoader(importlib.machinery.SourceFileLoader):
    """Executes the verified source string (never a ``.pyc``, never a re-read of the file,
    which another process might be replacing), with the file's path for tracebacks and
    Numba."""

    def __init__(self, fullname: str, path: str, source: str):
        super().__init__(fullname, path)
        self._source = source

    def get_source(self, fullname):
        return self._source

    def get_code(self, fullname):
        return compile(self._source, self.path, "exec", dont_inherit=True)


def _exec_file_module(
    name: str, path: Path, source: str, digest: str, namespace
) -> types.ModuleType:
    loader = _VerifiedLoader(name, str(path), source)
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    return _exec(module, name, digest, True, namespace, lambda: loader.exec_module(module))


def _exec_memory_module(name: str, source: str, digest: str, namespace) -> types.ModuleType:
    filename = f"<{name}>"
    lines = source.splitlines(keepends=True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    module = types.ModuleType(name)
    code = compile(source, filename, "exec", dont_inherit=True)
    return _exec(module, name, digest, False, namespace, lambda: exec(code, module.__dict__))


def _exec(module, name, digest, cacheable, namespace, run) -> types.ModuleType:
    module.__dict__.update(namespace)
    module.__dict__[CACHEABLE] = cacheable
    module.__dict__["__fusegraph_sha256__"] = digest
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        run()
    except BaseException:
        if sys.modules.get(name) is module:
            if previous is None:
                del sys.modules[name]
            else:
                sys.modules[name] = previous
        raise
    return module


def _is_locator_error(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and "no locator available" in str(exc)


class _Unusable(Exception):
    """A directory cannot hold the module's file (the message says why)."""


def _load_in(directory: Path, name: str, source: str, data: bytes, digest: str, namespace):
    """Load from ``directory``; raises :class:`_Unusable` if the directory cannot hold the
    file, and whatever the source itself raises."""
    path = directory / (name + ".py")
    existing = _read(path)
    hit = existing == data
    if not hit:
        try:
            _write_atomic(path, data)
        except OSError as exc:
            # another process may have written it meanwhile (Windows refuses to replace
            # an open file); anything else means the directory is unusable
            if _read(path) != data:
                raise _Unusable(f"cannot write {path}: {exc}") from None
        if existing is not None:
            _count("repaired")
            _warn("corrupt", f"fusegraph's cached module {path} was corrupt; rewrote it")
    if _check_numba_files(directory, name):
        _count("repaired")
        _warn("corrupt", f"Numba's cache files for {path} were corrupt; removed them")
    try:
        module = _exec_file_module(name, path, source, digest, namespace)
    except RuntimeError as exc:
        if not _is_locator_error(exc):
            raise
        # a verified file in a read-only directory, and Numba has nowhere to cache
        raise _Unusable(f"Numba cannot cache next to {path}: {exc}") from None
    _count("disk_hits" if hit else "misses")
    return module


def load_module(source: str, namespace: dict | None = None) -> types.ModuleType:
    """The module whose source is ``source``, executed once per process.

    Looks in ``sys.modules`` (memory hit), then for ``<cache_dir()>/<name>.py`` with exactly
    this content (disk hit), else writes that file atomically and imports it (miss). The
    module's global ``__fusegraph_cacheable__`` (set before execution) tells whether
    Numba's ``cache=True`` can be used; it is ``False`` only when no directory at all could
    hold the file and the source was executed from memory. Exceptions raised by the source
    itself propagate (and the module is not left in ``sys.modules``).

    ``namespace`` holds extra globals set before execution (the generated code's large
    constants); the source must determine them (e.g. name their digests), since a module
    already loaded is reused by its source alone."""
    namespace = namespace or {}
    data = source.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    name = PREFIX + digest[:32]

    def memory_hit():
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__fusegraph_sha256__", None) == digest:
            _count("memory_hits")
            return module
        return None

    module = memory_hit()
    if module is not None:
        return module
    with _name_lock(name):
        module = memory_hit()
        if module is not None:
            return module
        try:
            return _load_in(cache_dir(), name, source, data, digest, namespace)
        except _Unusable as exc:
            reason = str(exc)
        fallback = _fallback_dir()
        if fallback is not None:
            try:
                module = _load_in(fallback, name, source, data, digest, namespace)
            except _Unusable:
                pass
            else:
                _warn(
                    "unwritable",
                    f"fusegraph's cache directory is unusable ({reason}); compiling into "
                    f"the temporary directory {fallback} instead (not kept after exit)",
                    stacklevel=3,
                )
                return module
        _warn(
            "unwritable",
            f"fusegraph's cache directory is unusable ({reason}) and no temporary directory "
            "works either; running generated modules from memory, without Numba's disk cache",
            stacklevel=3,
        )
        module = _exec_memory_module(name, source, digest, namespace)
        _count("misses")
        _count("uncached")
        return module


# ---------------------------------------------------------------------------------------
# maintenance (``python -m fusegraph cache info|clear``)


def _ours(path: Path) -> bool:
    return path.name.startswith(PREFIX) or path.name.startswith(_TMP_PREFIX)


def _version_dirs(base: Path) -> list[Path]:
    try:
        return sorted(
            p for p in base.iterdir() if p.is_dir() and _VERSION_DIR.match(p.name) is not None
        )
    except OSError:
        return []


def _our_files(directory: Path) -> tuple[list[Path], list[Path]]:
    """(generated modules and temporary files, files in __pycache__) of one version dir."""
    modules: list[Path] = []
    compiled: list[Path] = []
    try:
        modules = [p for p in directory.iterdir() if p.is_file() and _ours(p)]
    except OSError:
        pass
    try:
        compiled = [p for p in (directory / "__pycache__").iterdir() if p.is_file() and _ours(p)]
    except OSError:
        pass
    return modules, compiled


def _size(paths) -> int:
    total = 0
    for p in paths:
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return total


def info() -> dict:
    """A summary of the cache directory's contents (not of this process's hits)."""
    base = base_dir()
    current = version_tag()
    versions = []
    for directory in _version_dirs(base):
        modules, compiled = _our_files(directory)
        versions.append(
            {
                "directory": str(directory),
                "current": directory.name == current,
                "modules": sum(1 for p in modules if p.suffix == ".py"),
                "numba_files": sum(1 for p in compiled if p.suffix in (".nbi", ".nbc")),
                "bytes": _size(modules) + _size(compiled),
            }
        )
    return {
        "base": str(base),
        "exists": base.is_dir(),
        "current": str(base / current),
        "versions": versions,
        "modules": sum(v["modules"] for v in versions),
        "numba_files": sum(v["numba_files"] for v in versions),
        "bytes": sum(v["bytes"] for v in versions),
    }


def clear() -> int:
    """Remove fusegraph's files (generated modules, their temporary files and Numba's cache
    files for them) from every version directory under :func:`base_dir`, and the version
    directories that this leaves empty. Other files are left alone. Returns the number of
    files removed. Modules already loaded in this process keep working."""
    removed = 0
    for directory in _version_dirs(base_dir()):
        modules, compiled = _our_files(directory)
        for path in modules + compiled:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
            except OSError:
                pass
        for empty in (directory / "__pycache__", directory):
            try:
                empty.rmdir()
            except OSError:
                pass
    return removed
