"""Kernels compiled once and called across a boundary that Numba does not compile again.

When an njit function calls another, Numba links the callee's LLVM IR into the caller and
optimises and compiles it there once more, so every function that runs a kernel pays for
it. Here a large kernel is instead its own content-addressed module (``codegen``), compiled
once per process (or loaded from Numba's disk cache), and the functions that run it call its
machine code through a pointer:

* :func:`kernel` compiles the kernel's dispatcher for its signature (C-contiguous arrays,
  so that its loops vectorise and the signature follows from the graph alone), and enters
  the address of its native function in the process's kernel table under a 64-bit key
  derived from the kernel module's name (a digest of its source);
* the intrinsic it returns emits, at each call site, a lookup of that key in the table and
  a call through Numba's own calling convention (exceptions propagate as from any njit
  call); an argument typed with another layout is passed as a view typed C when it is
  contiguous at run time, else as a C copy.

The table is the one symbol the generated code links against, registered when this module
is imported, so machine code loaded from Numba's disk cache never refers to an address of
another process. A key missing from the table (code cached by a user's own njit function
that outlived the kernel it called) raises ``RuntimeError``; it cannot crash.
"""

from __future__ import annotations

import threading

import llvmlite.binding as ll
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic

from fusegraph.backends.numba import arrays
from fusegraph.backends.numba.kernels.base import as_c

#: The symbol through which generated code finds the table.
TABLE_SYMBOL = "fusegraph_kernel_table"
#: Slots in the table (a power of two): the kernels one process can load.
CAPACITY = 1 << 16

# Open addressing: slot s holds the key at [2s] (0: empty) and the function at [2s + 1].
_table = np.zeros(2 * CAPACITY, dtype=np.uint64)
ll.add_symbol(TABLE_SYMBOL, _table.ctypes.data)
_lock = threading.Lock()
_loaded: dict[int, tuple] = {}  # key -> (dispatcher, signature, intrinsic); keeps code alive


def key_of(name: str) -> int:
    """The table key of the kernel module ``name`` (``fusegraph_cache_<hex digest>``)."""
    return int(name.rsplit("_", 1)[1][:16], 16) | 1


def is_loaded(name: str) -> bool:
    """Whether the kernel module ``name`` is in this process's table."""
    return key_of(name) in _loaded


def _insert(key: int, address: int) -> None:
    slot = key & (CAPACITY - 1)
    for _ in range(CAPACITY):
        held = int(_table[2 * slot])
        if held in (0, key):
            _table[2 * slot + 1] = address  # the address first: readers test the key
            _table[2 * slot] = key
            return
        slot = (slot + 1) & (CAPACITY - 1)
    raise RuntimeError(f"fusegraph's kernel table is full ({CAPACITY} kernels in one process)")


def kernel(dispatcher, argtypes: tuple, name: str):
    """The intrinsic that calls ``dispatcher`` compiled for ``argtypes`` (Numba types), the
    function of the kernel module ``name``; compiles it (or loads it from Numba's disk
    cache) on first use in this process. Returns ``(intrinsic, origin)``, ``origin`` being
    ``"memory"`` (loaded before in this process), ``"disk"`` or ``"compiled"``."""
    key = key_of(name)
    with _lock:
        found = _loaded.get(key)
        if found is not None:
            return found[2], "memory"
        origin = compile_for(dispatcher, argtypes)
        cres = dispatcher.overloads[argtypes]
        address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        if not address:  # pragma: no cover - Numba always defines the native function
            raise RuntimeError(f"no native code for kernel {name}")
        _insert(key, address)
        call = _intrinsic(key, cres.signature, name)
        _loaded[key] = (dispatcher, cres.signature, call)
        return call, origin


def compile_for(dispatcher, argtypes: tuple) -> str:
    """Compile ``dispatcher`` for ``argtypes``: ``"disk"`` if Numba loaded it from its disk
    cache, else ``"compiled"``."""
    hits = dispatcher.stats.cache_hits.get(argtypes, 0)
    dispatcher.compile(argtypes)
    return "disk" if dispatcher.stats.cache_hits.get(argtypes, 0) > hits else "compiled"


def _function_pointer(context, builder, key: int, name: str):
    """IR that finds ``key`` in the table: the kernel's address, or a raised RuntimeError."""
    i64 = ir.IntType(64)
    module = builder.module
    try:
        table = module.get_global(TABLE_SYMBOL)
    except KeyError:
        table = ir.GlobalVariable(module, ir.ArrayType(i64, 2 * CAPACITY), TABLE_SYMBOL)
        table.linkage = "external"
    start = builder.block
    probe = builder.append_basic_block("fg_probe")
    advance = builder.append_basic_block("fg_advance")
    missing = builder.append_basic_block("fg_missing")
    found = builder.append_basic_block("fg_found")
    builder.branch(probe)
    builder.position_at_end(probe)
    slot = builder.phi(i64)
    slot.add_incoming(i64(key & (CAPACITY - 1)), start)
    zero = i64(0)
    held = builder.load(builder.gep(table, [zero, builder.shl(slot, i64(1))]))
    builder.cbranch(builder.icmp_unsigned("==", held, i64(key)), found, advance)
    builder.position_at_end(advance)
    following = builder.and_(builder.add(slot, i64(1)), i64(CAPACITY - 1))
    slot.add_incoming(following, advance)
    builder.cbranch(builder.icmp_unsigned("==", held, zero), missing, probe)
    builder.position_at_end(missing)
    context.call_conv.return_user_exc(
        builder,
        RuntimeError,
        (f"fusegraph kernel {name} is not loaded in this process (compile the function again)",),
    )
    builder.position_at_end(found)
    index = builder.add(builder.shl(slot, i64(1)), i64(1))
    return builder.load(builder.gep(table, [zero, index]))


def _contiguous(a):
    return as_c(a)  # the kernels' overload: a view typed C when contiguous, else a copy


def _argument(context, builder, value, actual, param, owned):
    """``value`` (of Numba type ``actual``) as the parameter type ``param``: arrays typed C
    as they are, others through ``kernels.as_c`` (compiled once per type and process), whose
    result is appended to ``owned`` (the caller releases it after the call)."""
    if isinstance(param, numba.types.Array) and actual.layout != "C":
        view = actual.copy(layout="C", readonly=False)
        value = context.compile_internal(builder, _contiguous, view(actual), [value])
        owned.append((view, value))
        actual = view
    return context.cast(builder, value, actual, param)


def _blas_operand(a):
    """``(m, transposed)``: a C-typed array with ``a == (m.T if transposed else m)``, a view
    when ``a`` is C- or F-contiguous at run time, else a C copy."""
    if a.flags.c_contiguous:
        return arrays.c_view(a, a.shape), False
    if a.ndim == 2 and a.flags.f_contiguous:
        t = a.T
        return arrays.c_view(t, t.shape), True
    return np.ascontiguousarray(a), False


def _blas_argument(context, builder, value, actual, param, owned):
    """``value`` as the parameter pair (C array, transposed) of a linked BLAS product, so
    that a transposed operand costs no copy."""
    if actual.layout == "C":
        return context.cast(builder, value, actual, param), cgutils.false_bit
    view = actual.copy(layout="C", readonly=False)
    pair = numba.types.Tuple([view, numba.types.boolean])
    result = context.compile_internal(builder, _blas_operand, pair(actual), [value])
    matrix, transposed = builder.extract_value(result, 0), builder.extract_value(result, 1)
    owned.append((view, matrix))
    return context.cast(builder, matrix, view, param), transposed


def _operands(signature) -> list:
    """Per argument of a call, its parameter type and whether it is a BLAS operand: an
    array parameter followed by a boolean one (``codegen``'s linked products)."""
    params, groups, i = list(signature.args), [], 0
    while i < len(params):
        blas = i + 1 < len(params) and params[i + 1] == numba.types.boolean
        groups.append((params[i], blas))
        i += 2 if blas else 1
    return groups


def _intrinsic(key: int, signature, name: str):
    operands = _operands(signature)

    def codegen(context, builder, sig, args):
        owned, values = [], []
        for value, actual, (param, blas) in zip(args, sig.args, operands):
            if blas:
                values += _blas_argument(context, builder, value, actual, param, owned)
            else:
                values.append(_argument(context, builder, value, actual, param, owned))
        fnty = context.call_conv.get_function_type(signature.return_type, signature.args)
        address = _function_pointer(context, builder, key, name)
        callee = builder.inttoptr(address, fnty.as_pointer())
        status, result = context.call_conv.call_function(
            builder, callee, signature.return_type, signature.args, values
        )
        for view, value in owned:
            context.nrt.decref(builder, view, value)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return result

    def typer(typingctx, *args):
        return signature.return_type(*args), codegen

    # Numba reads an intrinsic's parameters from its signature: one per argument.
    params = ", ".join(f"a{i}" for i in range(len(operands)))
    namespace = {"typer": typer}
    exec(f"def call(typingctx, {params}):\n    return typer(typingctx, {params})", namespace)
    call = namespace["call"]
    call.__name__ = call.__qualname__ = f"kernel_{key:016x}"
    return intrinsic(call)


def parameter_type(var_type) -> numba.types.Array:
    """The Numba type of a linked function's parameter for a graph variable of type
    ``var_type``: C-contiguous (``_argument`` converts what a call site passes), so that
    loops vectorise and the signature follows from the graph alone."""
    return numba.types.Array(numba.from_dtype(np.dtype(var_type.dtype)), var_type.ndim, "C")


__all__ = [
    "CAPACITY",
    "TABLE_SYMBOL",
    "parameter_type",
    "compile_for",
    "is_loaded",
    "key_of",
    "kernel",
]
