"""Scalar ops written as Python operators (``a + b``, ``-a``) with the fewest brackets: the
text of ``fg.pprint`` and of ``FusedElemwise``'s name, one rule for both."""

from __future__ import annotations

from fusegraph.ops.scalar import OPS

ATOM = 100  # names, calls and parenthesised expressions: never need parentheses
UNARY = 30  # -x and ~x: bind tighter than * but looser than ** (as in Python)
_UNARY_SYMBOLS = {"neg": "-", "logical_not": "~"}


def wrap(text_prec, min_prec: int) -> str:
    """Parenthesise an operand whose precedence is not above ``min_prec``."""
    text, prec = text_prec
    return text if prec > min_prec else f"({text})"


def operator_text(name: str, args: list) -> tuple | None:
    """``(text, precedence)`` of the scalar op ``name`` on ``(text, precedence)`` operands
    written as a Python operator (``a + b``, ``-a``; ``ops.scalar.OPS[name].infix``), or None if
    it prints as a call. Python's rules: ``+ - * /`` group left to right, ``**`` right to
    left, and comparisons do not chain, so only the operands that need them get brackets;
    a unary operand that is not atomic always does: -(x ** 2), not -x ** 2."""
    infix = OPS[name].infix if name in OPS else None
    if infix and len(args) == 2:
        symbol, prec = infix
        left = prec if name == "pow" or prec <= 5 else prec - 1
        right = prec - 1 if name == "pow" else prec
        return f"{wrap(args[0], left)} {symbol} {wrap(args[1], right)}", prec
    if name in _UNARY_SYMBOLS and len(args) == 1:
        return f"{_UNARY_SYMBOLS[name]}{wrap(args[0], ATOM - 1)}", UNARY
    return None


__all__ = ["ATOM", "UNARY", "operator_text", "wrap"]
