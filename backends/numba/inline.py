"""Source-level inlining: a kernel's body written into the function that calls it.

Numba compiles each dispatcher through its whole pipeline and links its machine code into
every caller, and its own ``inline="always"`` copies the callee's IR (twice) at each call
site; both cost more than the kernel's code itself for the small kernels most nodes get. So
the module generator writes a kernel that one node runs, or a small one (``is_small``) at
every node that runs it, straight into the calling function: its locals renamed with the
node's prefix, its parameters replaced by the argument names and its final ``return``
turned into the assignment of the node's outputs.
"""

from __future__ import annotations

import ast
import copy

#: Constructs whose names have scopes of their own, and ``with`` blocks (an object-mode
#: block names its outputs as keywords, which renaming would miss): a kernel using them is
#: not inlined.
_SCOPED = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.comprehension,
    ast.With,
)


def kernel_function(source: str, name: str) -> tuple[ast.FunctionDef, str] | None:
    """The definition of ``name`` in ``source`` and the rest of the source (the helpers and
    comments around it), or None if it cannot be inlined: its only ``return`` must be its
    last statement, and it must define no functions, lambdas or comprehensions."""
    tree = ast.parse(source)
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if len(found) != 1:
        return None
    fn = found[0]
    inner = list(ast.walk(fn))[1:]
    if any(isinstance(n, _SCOPED) for n in inner) or fn.args.vararg or fn.args.kwarg:
        return None
    returns = [n for n in inner if isinstance(n, ast.Return)]
    if returns != [fn.body[-1]] or fn.body[-1].value is None:
        return None
    lines = source.splitlines()
    first = min([fn.lineno] + [d.lineno for d in fn.decorator_list]) - 1
    rest = lines[:first] + lines[fn.end_lineno :]
    if all(not line.strip() or line.lstrip().startswith("#") for line in rest):
        rest = []
    return fn, "\n".join(rest).strip("\n")


#: Kernels of at most this many statements are written inline at every node that runs them:
#: a dispatcher of its own (about 0.1 s of Numba's pipeline) costs more than the copies.
SMALL_KERNEL = 8


def is_small(fn: ast.FunctionDef) -> bool:
    """Whether the kernel ``fn`` has at most ``SMALL_KERNEL`` statements."""
    return sum(isinstance(n, ast.stmt) for n in ast.walk(fn)) - 1 <= SMALL_KERNEL


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping):
        self.mapping = mapping

    def visit_Name(self, node):
        new = self.mapping.get(node.id)
        return ast.copy_location(ast.Name(new, node.ctx), node) if new else node


def inline_body(fn: ast.FunctionDef, prefix: str, args: list, targets: list) -> list:
    """The statements of the kernel ``fn`` (from :func:`kernel_function`) computing
    ``targets`` from the variables named ``args``, with every local renamed ``prefix`` +
    its name; one string per statement, unindented."""
    params = [a.arg for a in fn.args.args]
    stored = {
        n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    mapping = {name: prefix + name for name in stored}
    lines = []
    for param, arg in zip(params, args):
        if param in stored:  # reassigned: bind a renamed copy first
            lines.append(f"{prefix}{param} = {arg}")
        else:
            mapping[param] = arg
    body = [_Rename(mapping).visit(stmt) for stmt in copy.deepcopy(fn.body)]  # fn is reused
    result = body.pop()
    target = ", ".join(targets)
    lines += [ast.unparse(stmt) for stmt in body]
    lines.append(f"{target} = {ast.unparse(result.value)}")
    return lines


__all__ = ["inline_body", "is_small", "kernel_function"]
