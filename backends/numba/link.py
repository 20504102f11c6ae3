"""Kernels compiled once and called across a boundary that Numba does not compile again.

When an njit function calls another, Numba links the callee's LLVM IR into the caller and
optimises and compiles it there once more, so every function that runs a kernel pays for
it. Here a large kernel is instead its own content-addressed module (``codegen``), compiled
once per process (or loaded from Numba's disk cache), and the functions that run it call its
machine code through a pointer:

* :func:`kernel` compiles the kernel's dispatcher for its signature (C-contiguous arrays,
  so that its loops vectorise, and a return type, so that the signature follows from the
  graph alone and code calling it can be generated before it compiles: :func:`declare`),
  and enters the address of its native function in the process's kernel table under a
  64-bit key derived from the kernel module's name (a digest of its source);
* the intrinsic it returns emits, at each call site (:func:`emit_call`), a lookup of that
  key in the table and a call through Numba's own calling convention (exceptions propagate
  as from any njit call); an argument typed with another layout is passed as a view typed C
  when it is contiguous at run time, else as a C copy, converted by code compiled into the
  caller. ``glue`` calls kernels its own way, with the same table, converting through
  linked *helpers* (:func:`helper_module`), themselves called like kernels.

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
from numba.core.runtime.nrtdynmod import incref_decref_ty
from numba.extending import intrinsic

from fusegraph.backends.numba import arrays, cache
from fusegraph.backends.numba.kernels.base import contiguous

#: The symbol through which generated code finds the table.
TABLE_SYMBOL = "fusegraph_kernel_table"
#: Slots in the table (a power of two): the kernels one process can load.
CAPACITY = 1 << 16

# Open addressing: slot s holds the key at [2s] (0: empty) and the function at [2s + 1].
_table = np.zeros(2 * CAPACITY, dtype=np.uint64)
ll.add_symbol(TABLE_SYMBOL, _table.ctypes.data)
_lock = threading.Lock()
_loaded: dict[int, tuple] = {}  # key -> (dispatcher, signature, intrinsic); keeps code alive
_declared: dict[int, object] = {}  # key -> the signature a module is compiled for


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


def declare(name: str, signature) -> None:
    """Record that the linked module ``name`` is compiled for ``signature`` (a Numba
    signature, its return type included), so that code calling it can be generated before
    it is loaded (:func:`signature_of`)."""
    _declared[key_of(name)] = signature


def kernel(dispatcher, signature, name: str):
    """The intrinsic that calls ``dispatcher`` compiled for ``signature`` (a Numba
    signature whose return type is given, so that callers know it before it compiles), the
    function of the kernel module ``name``; compiles it (or loads it from Numba's disk
    cache) on first use in this process. Returns ``(intrinsic, origin)``, ``origin`` being
    ``"memory"`` (loaded before in this process), ``"disk"`` or ``"compiled"``."""
    key = key_of(name)
    with _lock:
        found = _loaded.get(key)
        if found is not None:
            return found[2], "memory"
        declare(name, signature)
        origin = compile_for(dispatcher, signature)
        cres = dispatcher.overloads[tuple(signature.args)]
        address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        if not address:  # pragma: no cover - Numba always defines the native function
            raise RuntimeError(f"no native code for kernel {name}")
        _insert(key, address)
        call = _intrinsic(cres.signature, name)
        _loaded[key] = (dispatcher, cres.signature, call)
        return call, origin


def compile_for(dispatcher, signature) -> str:
    """Compile ``dispatcher`` for ``signature`` (argument types, or a signature): ``"disk"``
    if Numba loaded it from its disk cache, else ``"compiled"``."""
    hits = dispatcher.stats.cache_hits.get(signature, 0)
    try:
        dispatcher.compile(signature)
    except OSError as exc:
        # Numba registers the machine code before it writes its cache files: when those
        # cannot be written (a full disk, a file-size limit), only the files are lost.
        args = getattr(signature, "args", signature)
        if tuple(args) not in dispatcher.overloads:
            raise
        cache.numba_write_failed(exc)
    return "disk" if dispatcher.stats.cache_hits.get(signature, 0) > hits else "compiled"


#: The function, defined once in every module that calls kernels, that finds a key in the
#: table: the kernel's address, or 0.
LOOKUP_SYMBOL = "fusegraph_kernel_lookup"


def _lookup_function(module):
    """The table lookup of ``module`` (declared and defined on its first use): a function
    of its own, not inlined, so that each call site costs a call rather than a loop."""
    try:
        return module.get_global(LOOKUP_SYMBOL)
    except KeyError:
        pass
    i64 = ir.IntType(64)
    try:
        table = module.get_global(TABLE_SYMBOL)
    except KeyError:
        table = ir.GlobalVariable(module, ir.ArrayType(i64, 2 * CAPACITY), TABLE_SYMBOL)
        table.linkage = "external"
    fn = ir.Function(module, ir.FunctionType(i64, [i64]), LOOKUP_SYMBOL)
    fn.linkage = "linkonce_odr"
    fn.attributes.add("noinline")
    (key,) = fn.args
    builder = ir.IRBuilder(fn.append_basic_block("start"))
    probe = fn.append_basic_block("probe")
    advance = fn.append_basic_block("advance")
    found = fn.append_basic_block("found")
    missing = fn.append_basic_block("missing")
    first = builder.and_(key, i64(CAPACITY - 1))
    builder.branch(probe)
    builder.position_at_end(probe)
    slot = builder.phi(i64)
    slot.add_incoming(first, first.parent)
    zero = i64(0)
    held = builder.load(builder.gep(table, [zero, builder.shl(slot, i64(1))]))
    builder.cbranch(builder.icmp_unsigned("==", held, key), found, advance)
    builder.position_at_end(advance)
    following = builder.and_(builder.add(slot, i64(1)), i64(CAPACITY - 1))
    slot.add_incoming(following, advance)
    builder.cbranch(builder.icmp_unsigned("==", held, zero), missing, probe)
    builder.position_at_end(missing)
    builder.ret(zero)
    builder.position_at_end(found)
    index = builder.add(builder.shl(slot, i64(1)), i64(1))
    builder.ret(builder.load(builder.gep(table, [zero, index])))
    return fn


def lookup(builder, name: str):
    """IR that finds the module ``name`` in the table: its function's address, or 0 if
    this process has not loaded it."""
    return builder.call(_lookup_function(builder.module), [ir.IntType(64)(key_of(name))])


def emit_lookup(context, builder, name: str):
    """IR that finds the loaded module ``name`` in the table: its function's address, or a
    raised RuntimeError."""
    i64 = ir.IntType(64)
    address = lookup(builder, name)
    message = f"fusegraph kernel {name} is not loaded in this process (compile the function again)"
    with cgutils.if_unlikely(builder, builder.icmp_unsigned("==", address, i64(0))):
        context.call_conv.return_user_exc(builder, RuntimeError, (message,))
    return address


@numba.njit(nogil=True, inline="always")
def blas_operand(a):
    """``(m, transposed)``: a C-typed array with ``a == (m.T if transposed else m)``, a view
    when ``a`` is C- or F-contiguous at run time, else a C copy."""
    if arrays.is_contiguous(a, "C"):
        return arrays.c_view(a, a.shape), False
    if a.ndim == 2 and arrays.is_contiguous(a, "F"):
        return arrays.reversed_c(a), True
    return arrays.copy_c(a), False


def helper_module(function, argtype) -> tuple:
    """``(name, source, signature)`` of the linked module whose ``kernel(i0)`` returns
    ``function(i0)`` (``contiguous`` or :func:`blas_operand`, njit functions) for arguments
    of the Numba type ``argtype``, its signature declared (:func:`declare`). Code that
    converts arguments calls it like a kernel instead of compiling its own copy of the
    conversion; it must be loaded like any linked module before that code runs (``glue``'s
    plan lists the helpers it calls)."""
    argtype = writable(argtype)
    signature = converted_type(argtype, function is blas_operand)(argtype)
    name = function.__name__
    source = (
        f"# fusegraph helper: {name}\n# signature: {signature}\n"
        "import numba\nfrom fusegraph.backends.numba.pipeline import GeneratedCompiler\n"
        f"from {function.__module__} import {name}\n\n\n"
        f"{cache.LINKED_DECORATOR}\ndef kernel(i0):\n    return {name}(i0)\n"
    )
    module = cache.module_name(source)
    declare(module, signature)
    return module, source, signature


def operands(signature) -> list:
    """Per argument of a call, its parameter type and whether it is a BLAS operand: an
    array parameter followed by a boolean one (``codegen``'s linked products)."""
    params, groups, i = list(signature.args), [], 0
    while i < len(params):
        blas = i + 1 < len(params) and params[i + 1] == numba.types.boolean
        groups.append((params[i], blas))
        i += 2 if blas else 1
    return groups


def emit_call(context, builder, name: str, values, types):
    """IR calling the loaded kernel module ``name`` with ``values`` (LLVM values of the
    Numba ``types``); returns its result, a new reference. An error the kernel raises
    returns from the function being generated, as a ``raise`` there would. An argument a
    parameter takes as it is (:func:`needs_helper`) is cast; the others are converted by
    code compiled into the caller (once per type and process)."""
    signature = signature_of(name)
    owned, args = [], []
    for value, actual, (param, blas) in zip(values, types, operands(signature)):
        actual = writable(actual)
        function = needs_helper(actual, param, blas)
        if function is None:
            args.append(context.cast(builder, value, actual, param))
            if blas:
                args.append(cgutils.false_bit)  # not transposed
            continue
        result, rtype = emit_conversion(context, builder, function, actual, blas, value)
        args += _converted(context, builder, result, rtype, param, blas, owned)
    fnty = context.call_conv.get_function_type(signature.return_type, signature.args)
    callee = builder.inttoptr(emit_lookup(context, builder, name), fnty.as_pointer())
    status, result = context.call_conv.call_function(
        builder, callee, signature.return_type, signature.args, args
    )
    for view, value in owned:
        decref(builder, context.data_model_manager[view].get(builder, value, "meminfo"))
    with cgutils.if_unlikely(builder, status.is_error):
        context.call_conv.return_status_propagate(builder, status)
    return result


def decref(builder, meminfo) -> None:
    """Decref an array through its meminfo alone (NRT's own decref reads every field of the
    array, which is IR to build and compile); a null meminfo is a no-op."""
    fn = cgutils.get_or_insert_function(builder.module, incref_decref_ty, "NRT_decref")
    builder.call(fn, [meminfo])


def _converted(context, builder, result, rtype, param, blas, owned) -> list:
    """The arguments for ``param`` (and the transpose flag of a BLAS operand) from the
    result of a conversion (``contiguous`` or :func:`blas_operand`), of Numba type
    ``rtype``; the converted array goes to ``owned`` (released after the call)."""
    if not blas:
        owned.append((rtype, result))
        return [context.cast(builder, result, rtype, param)]
    matrix = builder.extract_value(result, 0)
    owned.append((rtype[0], matrix))
    return [context.cast(builder, matrix, rtype[0], param), builder.extract_value(result, 1)]


def needs_helper(actual, param, blas):
    """The function converting an argument of type ``actual`` for the parameter ``param``
    (a BLAS operand when ``blas``): ``contiguous`` or :func:`blas_operand`, whose
    :func:`helper_module` a caller may load; None if the argument passes as it is."""
    if not isinstance(param, numba.types.Array) or param.layout != "C" or actual.layout == "C":
        return None
    return blas_operand if blas else contiguous


def writable(typ):
    """``typ`` without its read-only flag (the same data model): kernels never write their
    inputs, so a read-only array (a view of ``np.broadcast_to``, a read-only argument) is
    passed to them, and converted for them, as its mutable type."""
    if isinstance(typ, numba.types.Array) and not typ.mutable:
        return typ.copy(readonly=False)
    return typ


def emit_conversion(context, builder, function, actual, blas, value) -> tuple:
    """``(result, its type)``: the conversion ``function`` (:func:`needs_helper`'s)
    compiled into the caller and applied to ``value``, of Numba type ``actual``."""
    actual = writable(actual)
    rtype = converted_type(actual, blas)
    return context.compile_internal(builder, function.py_func, rtype(actual), [value]), rtype


def converted_type(actual, blas):
    """The Numba type of what ``contiguous`` (or, for a BLAS operand, :func:`blas_operand`)
    returns for an argument of type ``actual``."""
    view = actual.copy(layout="C", readonly=False)
    return numba.types.Tuple([view, numba.types.boolean]) if blas else view


def signature_of(name: str):
    """The Numba signature the kernel module ``name`` is compiled for (loaded or declared)."""
    key = key_of(name)
    found = _loaded.get(key)
    if found is not None:
        return found[1]
    if key not in _declared:
        raise RuntimeError(f"fusegraph kernel {name} is not loaded in this process")
    return _declared[key]


def result_type(out_types, layout: str = "C", readonly: bool = False):
    """The Numba type a linked kernel returns for graph outputs of types ``out_types``: an
    array (a tuple of them for several outputs) of ``layout``, the layout of the kernel's
    parameters (a fresh array is C; a view of a parameter has its layout), ``readonly``
    for a kernel that may return a read-only view (``np.broadcast_to``'s)."""
    arrays = [parameter_type(t, layout).copy(readonly=readonly) for t in out_types]
    return arrays[0] if len(arrays) == 1 else numba.types.Tuple(arrays)


def intrinsic_of(n_args: int, typer, label: str):
    """A Numba intrinsic of ``n_args`` parameters whose typing is ``typer(typingctx,
    *args)``, named ``label`` (Numba reads an intrinsic's parameters from its signature)."""
    params = ", ".join(f"a{i}" for i in range(n_args))
    namespace = {"typer": typer}
    exec(f"def call(typingctx, {params}):\n    return typer(typingctx, {params})", namespace)
    call = namespace["call"]
    call.__name__ = call.__qualname__ = label
    return intrinsic(call)


def _intrinsic(signature, name: str):
    def codegen(context, builder, sig, args):
        return emit_call(context, builder, name, args, sig.args)

    def typer(typingctx, *args):
        return signature.return_type(*args), codegen

    return intrinsic_of(len(operands(signature)), typer, f"kernel_{key_of(name):016x}")


def parameter_type(var_type, layout: str = "C") -> numba.types.Array:
    """The Numba type of a linked function's parameter for a graph variable of type
    ``var_type``: C-contiguous by default (``emit_call`` converts what a call site passes),
    so that loops vectorise and the signature follows from the graph alone; ``"A"`` for
    view ops, whose results must stay views of any argument."""
    return numba.types.Array(numba.from_dtype(np.dtype(var_type.dtype)), var_type.ndim, layout)


__all__ = [
    "CAPACITY",
    "TABLE_SYMBOL",
    "compile_for",
    "converted_type",
    "declare",
    "decref",
    "emit_call",
    "emit_conversion",
    "emit_lookup",
    "helper_module",
    "intrinsic_of",
    "is_loaded",
    "kernel",
    "key_of",
    "lookup",
    "needs_helper",
    "operands",
    "parameter_type",
    "result_type",
    "signature_of",
    "writable",
]
