"""Fixtures shared by the Numba backend's tests."""

import sys

import pytest

from fusegraph.backends.numba import cache


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    """A fresh ``FUSEGRAPH_CACHE_DIR`` for one test module's compiles (with Numba's files
    beside it), so runs are independent; the generated modules it loaded are dropped from
    ``sys.modules`` afterwards."""
    mp = pytest.MonkeyPatch()
    directory = tmp_path_factory.mktemp("cache")
    mp.setenv("FUSEGRAPH_CACHE_DIR", str(directory))
    mp.delenv("NUMBA_CACHE_DIR", raising=False)
    cache._reset_for_tests()
    before = set(sys.modules)
    yield directory
    for name in set(sys.modules) - before:
        if name.startswith(cache.PREFIX):
            del sys.modules[name]
    cache._reset_for_tests()
    mp.undo()
