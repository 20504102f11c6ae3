"""A builder of generated Python source, shared by the Numba backend's code generators:
``Code`` emits lines at an indentation level (blocks, nested loops) and records the outer
variables the code reads; ``Function`` is a definition whose parameters are given or, for a
helper split off another function, are the outer variables its body reads."""

from __future__ import annotations

INDENT = "    "


class _Opened:
    """The blocks just opened: leaving the ``with`` closes them."""

    def __init__(self, code, n):
        self.code, self.n = code, n

    def __enter__(self):
        return self.code

    def __exit__(self, *exc):
        self.code.dedent(self.n)


class Code:
    """Lines of Python source at an indentation level.

    ``code(text, ...)`` emits lines at the current level; ``block(header)`` emits the header
    and indents what follows, until the ``with`` ends or ``dedent``. Code built apart (a
    branch written before the test that selects it) is spliced in with ``extend``."""

    def __init__(self, level: int = 0):
        self.lines: list[str] = []
        self.level = level
        #: the outer variables the code reads (``use``), in order of first use
        self.used: dict[str, None] = {}

    def __call__(self, *texts: str) -> None:
        for text in texts:
            self.lines.append(INDENT * self.level + text)

    def block(self, header: str) -> _Opened:
        """Emit ``header`` (``for ...:``, ``if ...:``) and indent the lines after it."""
        self(header)
        self.level += 1
        return _Opened(self, 1)

    def loop(self, var: str, stop: str) -> _Opened:
        return self.block(f"for {var} in range({stop}):")

    def loops(self, bounds, prefix: str) -> list[str]:
        """Open nested loops ``for <prefix>0 in range(<bounds[0]>): ...``; returns the index
        names (close them with ``dedent(len(names))``)."""
        names = [f"{prefix}{k}" for k in range(len(bounds))]
        for name, bound in zip(names, bounds):
            self.loop(name, bound)
        return names

    def dedent(self, n: int = 1) -> None:
        self.level -= n

    def extend(self, other: Code) -> None:
        """Append the lines of ``other`` (built at level 0) at the current level."""
        self(*other.lines)
        self.used.update(other.used)

    def use(self, name: str) -> str:
        """``name``, a variable of the enclosing function that this code reads: a helper
        split off that function takes these as its parameters, in order of first use."""
        self.used.setdefault(name)
        return name

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class Function(Code):
    """A function definition: ``comments``, ``decorator``, ``def name(params):``, then the
    body written into it (one level in). With ``params=None`` the parameters are the
    variables the body ``use``s, so a loop moved into a helper receives what it reads."""

    def __init__(self, name: str, params=None, decorator: str | None = None, comments=()):
        super().__init__(level=1)
        self.name = name
        self.decorator = decorator
        self.comments = list(comments)
        self._params = None if params is None else list(params)

    @property
    def params(self) -> list[str]:
        return list(self.used) if self._params is None else self._params

    def returning(self, value: str, close: int = 0) -> str:
        """Close ``close`` open blocks, return ``value``, and give the function's text."""
        self.dedent(close)
        self(f"return {value}")
        return self.text()

    def call(self) -> str:
        """The expression calling the function with its parameters' names."""
        return f"{self.name}({', '.join(self.params)})"

    def text(self) -> str:
        head = [*self.comments, *([self.decorator] if self.decorator else [])]
        head.append(f"def {self.call()}:")
        return "\n".join(head + self.lines) + "\n"


def tuple_expr(items) -> str:
    """A tuple display: ``(a,)``, ``(a, b)``; ``()`` for no items."""
    items = list(items)
    if len(items) == 1:
        return f"({items[0]},)"
    return f"({', '.join(items)})"


def tuple_trailing(items) -> str:
    """A tuple display with a comma after every item, ``(a, b, )``; ``()`` for no items
    (the form the kernels and generated modules write)."""
    return "(" + "".join(f"{i}, " for i in items) + ")"


def product_expr(items) -> str:
    """``a * b * ...``; ``1`` for no items."""
    items = list(items)
    return " * ".join(items) if items else "1"


__all__ = ["INDENT", "Code", "Function", "product_expr", "tuple_expr", "tuple_trailing"]
