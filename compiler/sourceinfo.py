"""Where in the user's code a node was built, so errors can point at the user's line."""

from __future__ import annotations

import linecache
import sys
from typing import NamedTuple


class SourceInfo(NamedTuple):
    """A file, line and function of user code (the first frame outside fusegraph)."""

    filename: str
    lineno: int
    function: str

    @property
    def line(self) -> str:
        """The source text of the line, stripped ('' when the file is unavailable)."""
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self) -> str:
        text = self.line
        where = f'File "{self.filename}", line {self.lineno}, in {self.function}'
        return f"{where}: {text}" if text else where


_UNKNOWN = SourceInfo("<unknown>", 0, "<unknown>")


def user_frame() -> SourceInfo:
    """Return the innermost stack frame whose module is not part of fusegraph."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module == "fusegraph" or module.startswith("fusegraph.")):
            return SourceInfo(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back
    return _UNKNOWN
