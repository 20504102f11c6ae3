"""Object-mode calls: compiled code running an op's NumPy ``impl`` (``fg.as_op`` ops, and
users' ops that have no registered kernel), so that the rest of the graph stays compiled.

``render`` writes the op's kernel as one ``numba.objmode`` block calling ``call_python`` with
a key; the key names the op and its output types in words (``key_of``), so the generated
module is the same text in every process and the disk cache serves it. Each process
registers the key's op before it compiles or loads the module (``render`` does), and
``call_python`` finds it there. The block holds the GIL (Numba takes it) and costs a few
microseconds per call: boxing the arrays, the Python call, unboxing the results.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from fusegraph.backends.numba.cache import CACHEABLE
from fusegraph.backends.numba.codebuilder import Function
from fusegraph.backends.numba.kernels.base import register_kernel
from fusegraph.ops.python_op import PythonOp

#: The kernel's decorator: cached, never inlined, and through Numba's default pipeline (the
#: generated modules' own skips the with-lifting pass that object-mode blocks need). Not
#: ``nogil``: the block takes the GIL anyway (callers may still release it around the kernel).
DECORATOR = f"@numba.njit(cache={CACHEABLE})"
#: key -> (op, output TensorTypes)
_OPS: dict = {}
_LOCK = threading.Lock()
#: op classes already warned about (``warn_unregistered``)
_WARNED: set = set()


def key_of(op, out_types) -> str:
    """A key for ``op`` with these output types: the op's class path and parameters, made
    unique in this process (another op of the same text gets ``#2``, ``#3`` ...)."""
    cls = type(op)
    base = f"{cls.__module__}.{cls.__qualname__}:{op}:{tuple(str(t) for t in out_types)}"
    with _LOCK:
        for k in range(1, len(_OPS) + 2):
            key = base if k == 1 else f"{base}#{k}"
            found = _OPS.get(key)
            if found is None:
                _OPS[key] = (op, tuple(out_types))
                return key
            if found[0] is op or (found[0] == op and found[1] == tuple(out_types)):
                return key
    raise AssertionError("unreachable")  # pragma: no cover


def call_python(key: str, *arrays):
    """Run the op registered as ``key`` on ``arrays``: its outputs, each checked against its
    static type and made a C-contiguous array of its own (never an input's memory)."""
    op, out_types = _OPS[key]
    result = op.impl(*arrays)
    values = (result,) if len(out_types) == 1 else tuple(result)
    if len(values) != len(out_types):
        raise ValueError(f"{op}.impl returned {len(values)} outputs, expected {len(out_types)}")
    outs = []
    for k, (value, out_type) in enumerate(zip(values, out_types)):
        value = np.asarray(value)
        problem = out_type.accepts(value)
        if problem is not None:
            raise TypeError(f"{op}.impl returned {problem} as output {k}, against its type rule")
        fresh = value.flags.c_contiguous and not any(
            isinstance(a, np.ndarray) and np.may_share_memory(value, a) for a in arrays
        )
        outs.append(value if fresh and value.base is None else np.array(value, order="C"))
    return outs[0] if len(outs) == 1 else tuple(outs)


@register_kernel(PythonOp)
def render(op, in_types, out_types, name) -> str:
    """The source of the kernel ``name``: one object-mode block running ``op.impl`` (the
    kernel of ``fg.as_op`` ops, and of users' ops that have none registered)."""
    key = key_of(op, out_types)
    params = [f"i{k}" for k in range(len(in_types))]
    outs = ", ".join(f"o{k}" for k in range(len(out_types)))
    types = ", ".join(f"o{k}={_type_text(t)!r}" for k, t in enumerate(out_types))
    kernel = Function(name, params, DECORATOR)
    with kernel.block(f"with numba.objmode({types}):"):
        kernel(f"{outs} = call_python({', '.join([repr(key), *params])})")
    return "from fusegraph.backends.numba.pycall import call_python\n" + kernel.returning(outs)


def _type_text(tensor_type) -> str:
    """Numba's type string of a C-contiguous array of ``tensor_type`` (``Array(...)`` for a
    0-d one, which the slice notation cannot write)."""
    dtype = np.dtype(tensor_type.dtype).name
    if tensor_type.ndim == 0:
        return f"Array({dtype}, 0, 'C')"
    return f"{dtype}[{', '.join([':'] * (tensor_type.ndim - 1) + ['::1'])}]"


def warn_unregistered(op, trace) -> None:
    """Warn, once per op class, that ``op`` runs through an object-mode call."""
    cls = type(op)
    if cls in _WARNED:
        return
    _WARNED.add(cls)
    warnings.warn(
        f"{cls.__name__} has no Numba kernel (node built at {trace}): it runs its NumPy "
        "impl through an object-mode call, a few microseconds per call with the GIL held. "
        f"Register a kernel with @fusegraph.backends.numba.register_kernel({cls.__name__})",
        UserWarning,
        stacklevel=2,
    )


__all__ = ["call_python", "key_of", "render", "warn_unregistered"]
