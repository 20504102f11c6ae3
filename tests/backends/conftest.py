"""Fixtures shared by the Numba backend's tests: a private disk cache per test module
(``private_cache``) or per test (``cachedir``)."""

import shutil
import sys

import pytest

from fusegraph.backends.numba import cache


def _isolated(directory, mp):
    """Point ``FUSEGRAPH_CACHE_DIR`` at ``directory`` (with Numba's files beside it) and
    yield it; afterwards drop the generated modules loaded meanwhile from ``sys.modules``
    and remove a fallback directory the cache made."""
    mp.setenv("FUSEGRAPH_CACHE_DIR", str(directory))
    mp.delenv("NUMBA_CACHE_DIR", raising=False)
    cache._reset_for_tests()
    before = set(sys.modules)
    yield directory
    for name in set(sys.modules) - before:
        if name.startswith(cache.PREFIX):
            del sys.modules[name]
    fallback = cache._fallback.get("dir")
    if fallback is not None:
        shutil.rmtree(fallback, ignore_errors=True)
    cache._reset_for_tests()


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    """A fresh cache directory for one test module's compiles, so runs are independent."""
    mp = pytest.MonkeyPatch()
    yield from _isolated(tmp_path_factory.mktemp("cache"), mp)
    mp.undo()


@pytest.fixture
def cachedir(tmp_path, monkeypatch):
    """A fresh cache directory for one test."""
    yield from _isolated(tmp_path / "cache", monkeypatch)
