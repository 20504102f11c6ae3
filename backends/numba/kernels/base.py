"""The registry of Numba kernels (``register_kernel``: op class -> ``Kernel``, built-in ops
and users' alike), the dispatcher (``kernel_source``), and the helpers that render kernel
source."""

from __future__ import annotations

import typing

import numba
import numpy as np
from numba.extending import overload

from fusegraph.backends.numba import arrays, scalar_code
from fusegraph.backends.numba.cache import KERNEL_DECORATOR
from fusegraph.backends.numba.codebuilder import INDENT, Function, tuple_trailing
from fusegraph.backends.numba.scalar_code import np_dtype

DECORATOR = KERNEL_DECORATOR

#: The import lines a module holding kernels needs.
IMPORTS = (
    "import numba\n"
    + scalar_code.IMPORTS
    + arrays.IMPORTS
    + "from fusegraph.backends.numba.kernels import as_c, blas_dot, slice_range\n"
    + "from fusegraph.backends.numba import rng\n"
)


# ----------------------------------------------------------------------------------------
# njit helper used by kernels (resolved on the argument's layout when typing)


def as_c(a):
    """``a`` typed C-contiguous: itself (a view typed C) if it is C-contiguous at run time,
    else a C copy (``reshape`` needs C layout in Numba, and linked kernels take it)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


@overload(as_c)
def _as_c(a):
    if a.layout == "C":
        return lambda a: a
    if a.ndim == 0:  # always contiguous (np.ascontiguousarray would make it 1-d)
        return lambda a: arrays.c_view(a, ())

    return lambda a: contiguous(a)


@numba.njit(nogil=True, inline="always")
def contiguous(a):
    """``a`` typed C: a view when it is contiguous at run time, else a C copy."""
    if arrays.is_contiguous(a, "C"):
        return arrays.c_view(a, a.shape)
    return arrays.copy_c(a)


@numba.njit(nogil=True)
def slice_range(n, start, stop, step, has_start, has_stop):
    """``(first, step, length)`` of ``range(n)[start:stop:step]`` by Python's rules (a bound
    not given, ``has_start``/``has_stop`` False, takes its default). Integer arithmetic,
    which types in a fraction of the time of ``np.arange(n)[start:stop:step]``."""
    if step > 0:
        first = (start + n if start < 0 else start) if has_start else 0
        first = min(max(first, 0), n)
        last = (stop + n if stop < 0 else stop) if has_stop else n
        last = min(max(last, 0), n)
        return first, step, (last - first + step - 1) // step if last > first else 0
    first = (start + n if start < 0 else start) if has_start else n - 1
    first = min(max(first, -1), n - 1)
    last = (stop + n if stop < 0 else stop) if has_stop else -1
    last = min(max(last, -1), n - 1)
    return first, step, (first - last - step - 1) // -step if first > last else 0


# ----------------------------------------------------------------------------------------
# rendering helpers


class Kernel(typing.NamedTuple):
    """A registered kernel: ``render(op, in_types, out_types, name)`` returns the source of
    one function ``name`` decorated with ``DECORATOR`` computing ``op`` on arrays of those
    types (see ``kernels/__init__.py`` for the conventions), and whether its result may be
    a view of an input (as NumPy's ``reshape`` or indexing results are)."""

    render: typing.Callable
    may_return_view: bool


#: op class -> its Kernel (filled by ``register_kernel``, built-in ops included)
KERNELS: dict = {}


def register_kernel(*op_classes, may_return_view: bool = False):
    """Register the decorated function as the Numba kernel of ``op_classes`` (and of their
    subclasses that have none of their own): ``render(op, in_types, out_types, name)``
    returns the kernel's source (``Kernel``). ``may_return_view`` says that its result may
    be a view of an input, which the code generator then never assumes fresh."""

    def deco(render):
        for cls in op_classes:
            KERNELS[cls] = Kernel(render, may_return_view)
        return render

    return deco


def kernel_of(op_class) -> Kernel | None:
    """The kernel registered for ``op_class`` or its nearest base class, or None."""
    for cls in op_class.__mro__:
        if cls in KERNELS:
            return KERNELS[cls]
    return None


def kernel_source(op, in_types, out_types, name) -> str:
    """The source of one njit function ``name`` computing ``op`` on the given types.

    Args:
        op: the op (its class selects the kernel).
        in_types: the TensorTypes of the node's inputs.
        out_types: the TensorTypes of the node's outputs.
        name: the function's name.

    Raises:
        NotImplementedError: when the op class has no kernel.
    """
    kernel = kernel_of(type(op))
    if kernel is None:
        raise NotImplementedError(f"no Numba kernel for {type(op).__name__}")
    return kernel.render(op, in_types, out_types, name)


def _function(name, n_inputs) -> Function:
    """The kernel ``name(i0, i1, ...)`` to write (a ``codebuilder.Function``)."""
    return Function(name, [f"i{k}" for k in range(n_inputs)], DECORATOR)


def _at(items) -> str:
    """An index expression for an n-d array (``()`` for a 0-d one)."""
    items = list(items)
    return ", ".join(items) if items else "()"


def _raise(code, cond, exc, msg):
    """``if cond: raise exc(msg)``, merged into the test just written when that raises the
    same error (each ``raise`` costs Numba more to compile than its test)."""
    pad, statement = INDENT * code.level, f'raise {exc}("{msg}")'
    if (
        len(code.lines) >= 2
        and code.lines[-1] == pad + INDENT + statement
        and code.lines[-2].startswith(pad + "if ")
        and code.lines[-2].endswith(":")
    ):
        code.lines[-2] = f"{code.lines[-2][:-1]} or ({cond}):"
        return
    with code.block(f"if ({cond}):"):
        code(statement)


def _check_size(code, dims, itemsize, exc, msg):
    """``raise exc(msg)`` when an array of ``dims`` (non-negative ints) and ``itemsize`` could
    not exist: NumPy's rule, the product of the nonzero dims times the item size must fit in
    int64 (after a wrapped product, a view or a loop would run past its memory)."""
    code(f"nbytes = {itemsize}", "big = False")
    for s in dims:
        code(f"d = {s} + ({s} == 0)", "big |= nbytes > 9223372036854775807 // d", "nbytes *= d")
    _raise(code, "big", exc, msg)


def _shape_vars(code, arr, prefix, ndim):
    names = [f"{prefix}{k}" for k in range(ndim)]
    for k, n in enumerate(names):
        code(f"{n} = {arr}.shape[{k}]")
    return names


def _new(code, var, shape, dtype):
    code(f"{var} = empty_c({tuple_trailing(shape)}, {np_dtype(dtype)})")


def _int_scalar(arg: str) -> str:
    return f"np.int64({arg}[()])"


def unsupported(op_classes) -> list:
    """The classes among ``op_classes`` that have no kernel."""
    return [cls for cls in op_classes if kernel_of(cls) is None]
