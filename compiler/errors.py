"""Exception classes and the helper that turns a failure inside a node into a clear error."""

from __future__ import annotations


class GradientError(AssertionError):
    """An analytic gradient disagrees with finite differences (raised by ``verify_grad``)."""


class DebugModeError(AssertionError):
    """``mode="debug"``: two ways of computing a function disagree, or an input was mutated."""


class DisconnectedInputError(ValueError):
    """A ``wrt`` variable of ``grad`` is not part of the cost's graph."""


class NullTypeGradError(TypeError):
    """A gradient was requested through an op whose gradient is undefined."""


def node_error(exc: BaseException, node, input_values) -> BaseException:
    """Return an exception of ``exc``'s kind whose message names the op, the input shapes
    and the user's line that built ``node``; the original stays attached as ``__cause__``."""
    shapes = ", ".join(
        str(getattr(v, "shape", "?")) + (f" {v.dtype}" if hasattr(v, "dtype") else "")
        for v in input_values
    )
    message = (
        f"{node.op} ({type(node.op).__name__}) failed: {exc}\n"
        f"  input shapes: {shapes}\n"
        f"  node built at: {node.trace}"
    )
    for kind in (IndexError, ValueError, TypeError, ZeroDivisionError, OverflowError, MemoryError):
        if isinstance(exc, kind):
            return kind(message)
    return RuntimeError(message)


class MissingInputError(ValueError):
    """A compiled function's outputs depend on a variable that is not one of its inputs."""


class UnusedInputError(ValueError):
    """An input of ``fg.function`` is not needed by any output (``on_unused_input="raise"``)."""
