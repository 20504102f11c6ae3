"""Command line: ``python -m fusegraph cache info|clear``.

``info`` summarises the disk cache of generated Numba modules (directory, modules, Numba's
cache files, size on disk, per version); ``clear`` removes fusegraph's files from it and
nothing else. ``FUSEGRAPH_CACHE_DIR`` chooses the directory, as for compiled functions.
"""

from __future__ import annotations

import argparse
import sys


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _info() -> int:
    from fusegraph.backends.numba import cache

    summary = cache.info()
    print(f"fusegraph cache directory: {summary['base']}")
    if not summary["exists"]:
        print("  (does not exist yet)")
    print(f"current version: {summary['current']}")
    print(f"modules: {summary['modules']}")
    print(f"numba cache files: {summary['numba_files']}")
    print(f"size on disk: {_size(summary['bytes'])}")
    for version in summary["versions"]:
        mark = " (current)" if version["current"] else " (other version)"
        print(
            f"  {version['directory']}{mark}: {version['modules']} modules, "
            f"{version['numba_files']} numba files, {_size(version['bytes'])}"
        )
    return 0


def _clear() -> int:
    from fusegraph.backends.numba import cache

    removed = cache.clear()
    print(f"removed {removed} files from {cache.base_dir()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusegraph", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cache_parser = commands.add_parser("cache", help="inspect or clear the disk cache")
    actions = cache_parser.add_subparsers(dest="action", required=True)
    actions.add_parser("info", help="show the cache directory and what it holds")
    actions.add_parser("clear", help="remove fusegraph's cached modules and Numba's files")
    args = parser.parse_args(argv)
    if args.action == "info":
        return _info()
    return _clear()


if __name__ == "__main__":
    sys.exit(main())
