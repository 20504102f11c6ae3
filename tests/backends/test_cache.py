"""The disk cache of generated modules: hits and misses, corrupt and unwritable caches,
threads and processes loading the same source at once, and the ``cache`` command line."""

import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path

import numba
import pytest

from fusegraph.backends.numba import cache
from fusegraph.backends.numba.cache import CacheWarning

needs_in_tree_numba_cache = pytest.mark.skipif(
    bool(numba.config.CACHE_DIR), reason="NUMBA_CACHE_DIR moves Numba's files elsewhere"
)


def _source(body="x + 1", tag=None):
    """A tiny generated module; ``tag`` makes it unique (so no memory hit across tests)."""
    tag = tag or uuid.uuid4().hex
    return (
        f"# test module {tag}\n"
        "import numba\n\n\n"
        f"@numba.njit(cache={cache.CACHEABLE})\n"
        "def f(x):\n"
        f"    return {body}\n"
    )


def _forget(module):
    """Drop a loaded module, as a fresh process would not have it."""
    del sys.modules[module.__name__]


def _env(base):
    env = dict(os.environ, FUSEGRAPH_CACHE_DIR=str(base))
    env.pop("NUMBA_CACHE_DIR", None)
    return env


CHILD = """
import json, sys, time
import numba
from fusegraph.backends.numba import cache
source = open(sys.argv[1], encoding="utf-8").read()
start = float(sys.argv[2])
while time.time() < start - 0.05:
    time.sleep(0.01)
while time.time() < start:  # spin, so that the processes really start together
    pass
module = cache.load_module(source)
result = int(module.f(41))
print(json.dumps({
    "result": result,
    "stats": cache.stats(),
    "numba_hits": sum(module.f.stats.cache_hits.values()),
    "file": module.__file__,
}))
"""


def _children(tmp_path, base, source, n, delay=0.0):
    """Run ``n`` processes loading ``source`` (started together after ``delay`` seconds)."""
    src_file = tmp_path / f"source-{uuid.uuid4().hex}.txt"
    src_file.write_text(source, encoding="utf-8")
    start = str(time.time() + delay)
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", CHILD, str(src_file), start],
            env=_env(base),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def _cli(base, *args):
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "fusegraph", *args],
        env=_env(base),
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---------------------------------------------------------------------------------------
# where


def test_cache_dir_honours_env_and_has_a_version_component(cachedir):
    assert cache.base_dir() == cachedir
    directory = cache.cache_dir()
    assert directory.parent == cachedir and directory.is_dir()
    name = directory.name
    assert numba.__version__ in name and sys.implementation.cache_tag in name
    assert name == cache.version_tag()


@pytest.mark.skipif(sys.platform != "linux", reason="XDG layout")
def test_default_dir_is_the_user_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("FUSEGRAPH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.base_dir() == tmp_path / "fusegraph"
    assert cache.cache_dir(create=False).parent == tmp_path / "fusegraph"


# ---------------------------------------------------------------------------------------
# hits and misses


@needs_in_tree_numba_cache
def test_miss_then_memory_hit_then_disk_hit_in_a_fresh_process(cachedir, tmp_path):
    source = _source()
    module = cache.load_module(source)
    assert cache.stats()["misses"] == 1
    assert module.__fusegraph_cacheable__ is True
    path = Path(module.__file__)
    assert path.parent == cache.cache_dir()
    assert path.name == cache.module_name(source) + ".py"
    assert path.read_text(encoding="utf-8") == source
    assert module.f(41) == 42
    numba_files = sorted(p.suffix for p in (path.parent / "__pycache__").iterdir())
    assert numba_files == [".nbc", ".nbi"]

    assert cache.load_module(source) is module
    assert cache.stats()["memory_hits"] == 1

    [child] = _children(tmp_path, cachedir, source, 1)
    assert child["result"] == 42
    assert child["stats"]["disk_hits"] == 1 and child["stats"]["misses"] == 0
    assert child["numba_hits"] == 1  # the machine code came from Numba's cache
    assert child["file"] == str(path)


def test_disk_hit_in_process_and_module_attributes(cachedir):
    source = _source()
    module = cache.load_module(source)
    _forget(module)
    again = cache.load_module(source)
    assert again is not module and again.f(1) == 2
    assert cache.stats() == {
        "memory_hits": 0,
        "disk_hits": 1,
        "misses": 1,
        "repaired": 0,
        "uncached": 0,
        "unsaved": 0,
    }
    assert sys.modules[again.__name__] is again
    assert again.__name__ == cache.module_name(source)


def test_tracebacks_show_the_generated_source(cachedir):
    module = cache.load_module(
        f"# {uuid.uuid4().hex}\ndef boom():\n    raise ValueError('from the generated module')\n"
    )
    with pytest.raises(ValueError) as info:
        module.boom()
    assert "raise ValueError('from the generated module')" in "".join(
        traceback.format_exception(info.value)
    )


def test_a_failing_source_is_not_left_in_sys_modules(cachedir):
    source = f"# {uuid.uuid4().hex}\nraise RuntimeError('generated module failed')\n"
    for _ in range(2):  # no memory hit the second time: it runs (and fails) again
        with pytest.raises(RuntimeError, match="generated module failed"):
            cache.load_module(source)
        assert cache.module_name(source) not in sys.modules
    with pytest.raises(SyntaxError):
        cache.load_module(f"# {uuid.uuid4().hex}\ndef (:\n")


def test_a_foreign_module_with_the_same_name_is_not_a_hit(cachedir):
    source = _source()
    impostor = type(sys)(cache.module_name(source))
    sys.modules[impostor.__name__] = impostor
    module = cache.load_module(source)
    assert module is not impostor and module.f(1) == 2


# ---------------------------------------------------------------------------------------
# corrupt caches


@pytest.mark.parametrize("damage", ["truncated", "wrong code", "not utf-8", "empty"])
def test_a_corrupt_module_file_is_rewritten_and_the_right_code_runs(cachedir, damage):
    source = _source("x + 1")
    module = cache.load_module(source)
    path = Path(module.__file__)
    _forget(module)
    bad = {
        "truncated": source.encode()[: len(source) // 2],
        "wrong code": _source("x + 2", tag=source.split()[3]).encode(),  # same length
        "not utf-8": b"\xff\xfe\x00garbage",
        "empty": b"",
    }[damage]
    assert len(bad) != len(source) or bad != source.encode()
    path.write_bytes(bad)
    with pytest.warns(CacheWarning, match="corrupt"):
        module = cache.load_module(source)
    assert module.f(1) == 2
    assert path.read_bytes() == source.encode()
    assert cache.stats()["repaired"] == 1 and cache.stats()["misses"] == 2


@needs_in_tree_numba_cache
@pytest.mark.parametrize("which", [".nbi", ".nbc"])
def test_corrupt_numba_cache_files_are_removed_and_recompiled(cachedir, which):
    source = _source()
    module = cache.load_module(source)
    assert module.f(1) == 2
    pycache = Path(module.__file__).parent / "__pycache__"
    [target] = [p for p in pycache.iterdir() if p.suffix == which]
    target.write_bytes(target.read_bytes()[:-7])
    _forget(module)
    with pytest.warns(CacheWarning, match="Numba"):
        module = cache.load_module(source)
    assert module.f(1) == 2
    assert sum(module.f.stats.cache_misses.values()) == 1  # compiled afresh, and saved
    assert sorted(p.suffix for p in pycache.iterdir()) == [".nbc", ".nbi"]
    # the index written again is whole
    with open(pycache / [p.name for p in pycache.iterdir() if p.suffix == ".nbi"][0], "rb") as f:
        assert pickle.load(f) == numba.__version__


def test_corruption_warns_once_per_process(cachedir):
    sources = [_source() for _ in range(2)]
    for source in sources:
        module = cache.load_module(source)
        Path(module.__file__).write_text("broken", encoding="utf-8")
        _forget(module)
    with pytest.warns(CacheWarning) as record:
        assert [cache.load_module(s).f(1) for s in sources] == [2, 2]
    assert len(record) == 1


# ---------------------------------------------------------------------------------------
# unwritable caches


def _unwritable(tmp_path, monkeypatch):
    """A cache directory below a regular file: nothing can be created there (even as root)."""
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    monkeypatch.setenv("FUSEGRAPH_CACHE_DIR", str(afile / "sub"))


def test_unwritable_dir_warns_once_and_uses_a_temporary_dir(cachedir, tmp_path, monkeypatch):
    _unwritable(tmp_path, monkeypatch)
    with pytest.warns(CacheWarning, match="unusable") as record:
        modules = [cache.load_module(_source(body)) for body in ("x + 1", "x + 2")]
    assert len(record) == 1
    assert [m.f(1) for m in modules] == [2, 3]
    for module in modules:
        assert module.__fusegraph_cacheable__ is True
        path = Path(module.__file__)
        assert path.is_file() and not path.is_relative_to(tmp_path)
        if not numba.config.CACHE_DIR:
            assert any((path.parent / "__pycache__").glob(path.stem + ".*.nbi"))
    assert (tmp_path / "afile").read_text() == "not a directory"
    assert cache.load_module(_source("x + 3")).f(1) == 4  # no further warning


def test_no_writable_dir_at_all_runs_from_memory(cachedir, tmp_path, monkeypatch):
    _unwritable(tmp_path, monkeypatch)

    def no_tempdir(*args, **kwargs):
        raise OSError("no temporary directory in this test")

    monkeypatch.setattr(tempfile, "mkdtemp", no_tempdir)
    boom = "    raise ValueError('shown from memory')\n"
    source = _source() + "\n\ndef boom():\n" + boom
    with pytest.warns(CacheWarning, match="from memory") as record:
        module = cache.load_module(source)
        assert cache.load_module(_source("x * 3")).f(2) == 6
    assert len(record) == 1
    assert module.__fusegraph_cacheable__ is False
    assert module.f(1) == 2
    assert cache.load_module(source) is module
    assert cache.stats()["uncached"] == 2
    with pytest.raises(ValueError) as info:
        module.boom()
    assert boom.strip() in "".join(traceback.format_exception(info.value))


# ---------------------------------------------------------------------------------------
# concurrency


def test_threads_loading_the_same_source_get_one_module(cachedir):
    source = _source()
    barrier = threading.Barrier(8)
    results = []

    def load():
        barrier.wait()
        results.append(cache.load_module(source))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(m is results[0] for m in results)
    assert cache.stats()["misses"] == 1 and cache.stats()["memory_hits"] == 7


def test_processes_loading_the_same_new_source_at_once(cachedir, tmp_path):
    # a large module, so that writers overlap (a torn file would be seen and be corrupt)
    source = _source() + "".join(f"# padding line {i:07d} {'.' * 60}\n" for i in range(40_000))
    children = _children(tmp_path, cachedir, source, 4, delay=1.5)
    assert [c["result"] for c in children] == [42] * 4
    for child in children:
        assert child["stats"]["misses"] + child["stats"]["disk_hits"] == 1
        assert child["stats"]["repaired"] == 0
    directory = Path(children[0]["file"]).parent
    files = [p.name for p in directory.iterdir() if p.is_file()]
    assert files == [cache.module_name(source) + ".py"]  # no temporary files left over
    assert (directory / files[0]).read_text(encoding="utf-8") == source
    # and the result loads cleanly (Numba's files included) in this process
    assert cache.load_module(source).f(41) == 42


# ---------------------------------------------------------------------------------------
# command line


@needs_in_tree_numba_cache
def test_cli_info_and_clear_touch_only_fusegraph_files(cachedir, tmp_path):
    module = cache.load_module(_source())
    assert module.f(1) == 2
    directory = Path(module.__file__).parent
    old = cachedir / "fg0.0.1-0123456789ab-numba0.1.0-np1.0.0-cpython-39"
    old.mkdir()
    (old / (cache.PREFIX + "0" * 32 + ".py")).write_text("x = 1\n")
    keep = [
        cachedir / "keep.txt",
        directory / "notes.txt",
        directory / "__pycache__" / "other.cpython-311.pyc",
        cachedir / "unrelated" / (cache.PREFIX + "x.py"),
    ]
    for path in keep:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep me")

    out = _cli(cachedir, "cache", "info")
    assert out.returncode == 0, out.stderr
    assert str(cachedir) in out.stdout
    assert "modules: 2" in out.stdout and "numba cache files: 2" in out.stdout
    assert "(current)" in out.stdout and "(other version)" in out.stdout

    out = _cli(cachedir, "cache", "clear")
    assert out.returncode == 0, out.stderr
    assert "removed 4 files" in out.stdout
    assert all(path.read_text() == "keep me" for path in keep)
    assert not old.exists()
    assert not list(directory.glob(cache.PREFIX + "*"))
    assert not list((directory / "__pycache__").glob(cache.PREFIX + "*"))

    out = _cli(cachedir, "cache", "info")
    assert "modules: 0" in out.stdout
    # a module already loaded keeps working; a reload is a miss that rewrites the file
    assert module.f(2) == 3
    _forget(module)
    assert cache.load_module(module.__loader__.get_source(module.__name__)).f(1) == 2
    assert cache.stats()["misses"] == 2


def test_cli_on_a_missing_dir_and_bad_usage(tmp_path):
    missing = tmp_path / "never"
    for action in ("clear", "info"):
        out = _cli(missing, "cache", action)
        assert out.returncode == 0, out.stderr
        assert str(missing) in out.stdout
    assert not missing.exists()
    out = _cli(missing, "cache", "purge")
    assert out.returncode == 2 and "invalid choice" in out.stderr


# ---------------------------------------------------------------------------------------
# damage seen from a whole function: swapped data, a full disk, a read-only cache


@needs_in_tree_numba_cache
def test_a_swapped_numba_data_file_is_removed_and_recompiled(cachedir):
    """A data file of another function is a valid pickle: Numba would run that code."""
    a_source, b_source = _source("x + 1"), _source("x * 3")
    a, b = cache.load_module(a_source), cache.load_module(b_source)
    assert (a.f(1), b.f(2)) == (2, 6)
    pycache = Path(a.__file__).parent / "__pycache__"
    [a_data] = pycache.glob(a.__name__ + ".*.nbc")
    [b_data] = pycache.glob(b.__name__ + ".*.nbc")
    a_data.write_bytes(b_data.read_bytes())
    _forget(a)
    with pytest.warns(CacheWarning, match="corrupt"):
        a = cache.load_module(a_source)
    assert a.f(1) == 2


FUNCTION_CHILD = """
import resource, signal, sys, warnings
limit = int(sys.argv[1])
if limit:  # a file-size limit: writes beyond it fail with EFBIG, as on a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
warnings.simplefilter("always")
import numpy as np
import fusegraph as fg
x = fg.vector("x")
print([float(fg.function([x], fg.exp(x) * float(v))(np.ones(1))[0]) for v in sys.argv[2:]])
"""


def _function_child(base, limit, *factors):
    """Compile ``exp(x) * factor`` per factor in a fresh process; (values, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", FUNCTION_CHILD, str(limit), *map(str, factors)],
        env=dict(_env(base), FUSEGRAPH_PROGRESS="0"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("limit", [100, 20000])  # no module file fits / only Numba's data
def test_a_full_disk_compiles_in_memory_with_one_warning(tmp_path, limit):
    values, stderr = _function_child(tmp_path / "cache", limit, 2, 3)
    assert values == pytest.approx([2 * math.e, 3 * math.e])
    assert stderr.count("CacheWarning") == 1 and "File too large" in stderr
    values, stderr = _function_child(tmp_path / "cache", 0, 2)  # then without the limit
    assert values == pytest.approx([2 * math.e]) and "CacheWarning" not in stderr


def _make_read_only(path: Path) -> bool:
    """Make the tree read-only even for root (``chattr +i``), or by mode bits otherwise."""
    if os.getuid() != 0:
        for p in [path, *path.rglob("*")]:
            p.chmod(p.stat().st_mode & 0o555)
        return True
    return subprocess.run(["chattr", "-R", "+i", str(path)], capture_output=True).returncode == 0


def _make_writable(path: Path) -> None:
    if os.getuid() == 0:
        subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_read_only_cache_serves_its_hits_and_compiles_the_rest_elsewhere(tmp_path):
    base = tmp_path / "cache"
    _function_child(base, 0, 2)  # warm for the first function
    if not _make_read_only(base):
        pytest.skip("cannot make a directory read-only here (chattr failed)")
    try:
        values, stderr = _function_child(base, 0, 2, 3)
    finally:
        _make_writable(base)
    assert values == pytest.approx([2 * math.e, 3 * math.e])
    assert stderr.count("CacheWarning") == 1 and "temporary directory" in stderr
