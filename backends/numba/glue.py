"""The glue of a large graph, generated as LLVM IR: one intrinsic that runs every node's
linked kernel in order.

Written as Python, the code between a graph's kernels (the calls, views and shape
arithmetic) costs Numba's type inference and lowering per statement, then LLVM's
optimisation of what they produce: about 20 ms a node, more than most kernels. In a graph
of more than ``codegen.LINK_NODES`` nodes every node is instead a linked kernel (``link``:
compiled once per process, shared by every function that runs it), or, for the shape
plumbing (``native``), a function of the glue's own module; the function that runs them is
this intrinsic.

Its IR does not grow with the graph. The code generator's plan becomes constant tables
(``_Plan``): per *op*, the adapter to call, the module's address, the offsets of its
arguments and of its result, and the arrays no later op reads, released after it. One loop
runs the ops. The values live in one zeroed frame on the stack, and a kernel is called with
pointers into it, through one small *adapter* per kernel signature that spells out Numba's
calling convention (every field of every array an argument of its own). The glue and its
adapters are compiled ``optnone``: they are only calls, and LLVM's passes cost seconds on
them. (Straight-line code, a call and its releases per node, was 60 lines of IR a node,
and the LSTM gradient's entry took 1.5-1.8 s to compile, against about 1 s now.) Its
typing needs only the
kernels' signatures (``link.signature_of``, declared before they compile), so the entry
compiles before its kernels.

A plan refers to values by *slot*: the intrinsic's arguments first (the graph's inputs),
then the constants, then the nodes' outputs in the order the steps make them.
"""

from __future__ import annotations

import hashlib
import itertools
import typing

import numba
from llvmlite import ir
from numba.core import callconv, cgutils
from numba.extending import intrinsic

from fusegraph.backends.numba import link, native


class Step(typing.NamedTuple):
    """One node: the linked kernel module it runs, the slots of its arguments, and the slots
    its outputs fill (a kernel of several outputs returns them as a tuple)."""

    kernel: str
    args: tuple
    outs: tuple


def body(n_inputs: int, constants: tuple, steps: tuple, results: tuple, label: str = "glue"):
    """The intrinsic ``glue(*inputs)`` running ``steps`` (``Step`` tuples) and returning
    ``(code, excinfo, *values)``: the values in the slots ``results`` (node outputs, each
    once), or, when a kernel call failed, its error code and exception (for
    :func:`propagate`) and null values. ``constants`` are the arrays of the slots after the
    inputs'. The kernels' signatures must be declared (``link.declare``) first, and the
    kernels loaded before it runs."""
    steps = tuple(Step(*s) for s in steps)
    internal, conversions = _internal_types(n_inputs, constants, steps)
    later = [internal[s] for s in range(n_inputs, n_inputs + len(internal))]  # after inputs
    helpers = [
        {i: link.helper_module(*c)[0] for i, c in converts.items()} for converts in conversions
    ]

    def codegen(context, builder, sig, args):
        for attribute in ("noinline", "optnone"):
            builder.function.attributes.add(attribute)
        plan = _Plan(context, n_inputs, constants, steps, results, list(sig.args) + later, helpers)
        return _emit(context, builder, sig, args, plan)

    def typer(typingctx, *args):
        types = list(args) + later
        status = [numba.types.int32, numba.types.intp]
        return numba.types.Tuple(status + [types[s] for s in results])(*args), codegen

    return link.intrinsic_of(n_inputs, typer, label)


class _Plan:
    """Where every value of a glue lives and what runs in which order, as tables.

    The values live in one zeroed *frame* on the stack, each at a byte offset: the inputs,
    the constants (one copy of each distinct value), a ``False`` (the transpose flag of a
    BLAS operand passed as it is), each call's result, and the conversions of arguments a
    kernel takes in another layout. An *op* calls one linked module (a kernel, or the helper
    converting an argument for the next op) through the adapter of its signature, with the
    offsets of its arguments and of its result; after it, the arrays no later op reads are
    released. Inputs converted for a kernel are converted before the first op.
    """

    def __init__(self, context, n_inputs, constants, steps, results, types, helpers):
        self.context, self.types = context, types
        self.size = 0
        self.offset = {s: self._add(t) for s, t in enumerate(types[:n_inputs])}
        self.constants = {}  # offset -> (type, value) of each distinct constant
        seen = {}
        for j, value in enumerate(constants):
            typ = types[n_inputs + j]
            key = (typ, value.shape, value.strides, value.tobytes())
            if key not in seen:
                seen[key] = self._add(typ)
                self.constants[seen[key]] = (typ, value)
            self.offset[n_inputs + j] = seen[key]
        self.false = self._add(numba.types.boolean)
        self.first = n_inputs + len(constants)  # the first node output's slot
        self.results = results
        self.ops = []  # (module name, result offset, argument offsets)
        self.releases = []  # per op: offsets of the arrays released after it
        self.owned = []  # offsets of every array the glue makes (released on failure)
        self.input_conversions = {}  # (slot, function, blas) -> (offset, result type)
        self._add_steps(steps, helpers)

    def _add(self, typ) -> int:
        """A new value of Numba type ``typ`` in the frame; returns its offset."""
        llty = self.context.get_value_type(typ)
        align = self.context.get_abi_alignment(llty)
        self.size = -(-self.size // align) * align
        offset = self.size
        self.size += self.context.get_abi_sizeof(llty)
        return offset

    def _items(self, typ, offset) -> list:
        """(type, offset) of the arrays in a value of type ``typ`` at ``offset``."""
        if not isinstance(typ, numba.types.BaseTuple):
            return [(typ, offset)]
        llty = self.context.get_value_type(typ)
        if isinstance(llty, ir.ArrayType):  # a tuple of one type
            size = self.context.get_abi_sizeof(llty.element)
            return [(t, offset + j * size) for j, t in enumerate(typ)]
        target = self.context.target_data
        return [(t, offset + llty.get_element_offset(target, j)) for j, t in enumerate(typ)]

    def _arrays(self, typ, offset) -> list:
        return [o for t, o in self._items(typ, offset) if isinstance(t, numba.types.Array)]

    def _add_steps(self, steps, helpers) -> None:
        """The ops, releases and conversions of the steps (``helpers``: per step, the
        linked conversion module of each argument position that needs one)."""
        types, slot = self.types, self.first
        last = {}  # slot -> the step after which it is released (its last reader)
        for k, step in enumerate(steps):
            for s in list(step.outs) + [s for s in step.args if s >= self.first]:
                last[s] = k
        after_step = [[] for _ in steps]
        for s, k in last.items():
            if s not in self.results:
                after_step[k].append(s)
        last_use = {}  # input conversion -> the op after which it is released
        for k, (step, converts) in enumerate(zip(steps, helpers)):
            signature = link.signature_of(step.kernel)
            args, temps, inputs = [], [], []
            for i, (s, (param, blas)) in enumerate(zip(step.args, link.operands(signature))):
                function = link.needs_helper(types[s], param, blas)
                if function is None:
                    args += [self.offset[s], self.false] if blas else [self.offset[s]]
                    continue
                if i in converts:  # a linked helper, called by an op of its own
                    rtype = link.signature_of(converts[i]).return_type
                    converted = self._add(rtype)
                    self._op(converts[i], converted, [self.offset[s]], rtype)
                    temps += self._arrays(rtype, converted)
                else:  # an input of another layout: converted by code compiled in
                    key = (s, function, blas)
                    if key not in self.input_conversions:
                        rtype = link.converted_type(link.writable(types[s]), blas)
                        self.input_conversions[key] = (self._add(rtype), rtype)
                        self.owned += self._arrays(rtype, self.input_conversions[key][0])
                    converted, rtype = self.input_conversions[key]
                    inputs.append(key)
                args += [o for _, o in self._items(rtype, converted)]
            rtype = signature.return_type
            result = self._add(rtype)
            self._op(step.kernel, result, args, rtype)
            last_use.update((key, len(self.ops) - 1) for key in inputs)
            items = self._items(rtype, result) if len(step.outs) > 1 else [(rtype, result)]
            for _, offset in items:
                self.offset[slot] = offset
                slot += 1
            self.releases[-1] += temps + [self.offset[s] for s in after_step[k]]
        for key, op in last_use.items():
            self.releases[op] += self._arrays(*reversed(self.input_conversions[key]))

    def _op(self, name, result, args, rtype) -> None:
        """An op calling ``name``; the arrays of its result are the glue's."""
        self.ops.append((name, result, args))
        self.releases.append([])
        self.owned += self._arrays(rtype, result)


_I32, _I64 = ir.IntType(32), ir.IntType(64)
#: The type every adapter is called through: (address, result, excinfo, argv) -> code
_ADAPTER_TYPE = ir.FunctionType(
    callconv.errcode_t,
    [_I64, cgutils.voidptr_t, callconv.excinfo_ptr_t.as_pointer(), cgutils.voidptr_t.as_pointer()],
)


def _emit(context, builder, sig, args, plan: _Plan):
    """The glue's IR: the frame filled with the inputs, constants and input conversions,
    the modules looked up, then one loop over the ops that reads their tables (the IR does
    not grow with the graph, the tables do), and the results loaded from the frame."""
    module = builder.module
    with builder.goto_entry_block():
        frame = builder.alloca(ir.ArrayType(ir.IntType(8), max(plan.size, 1)))
        frame.align = 16
    base = builder.bitcast(frame, cgutils.voidptr_t)
    cgutils.memset(builder, base, _I64(plan.size), 0)

    def at(offset, typ=None):
        """A pointer into the frame at ``offset`` (to a value of Numba type ``typ``)."""
        pointer = builder.gep(base, [offset if isinstance(offset, ir.Value) else _I64(offset)])
        if typ is None:
            return pointer
        return builder.bitcast(pointer, context.get_value_type(typ).as_pointer())

    def table(values, typ=_I64):
        """A constant array of ``values`` in the module; returns its reader."""
        content = ir.Constant(ir.ArrayType(typ, max(len(values), 1)), list(values) or [typ(0)])
        variable = cgutils.global_constant(module, module.get_unique_name("glue.table"), content)
        return lambda index: builder.load(builder.gep(variable, [_I32(0), index]))

    def tables(lists):
        """Readers of the concatenated ``lists`` of offsets, of where each list starts, and
        of its length."""
        ends = itertools.accumulate(len(items) for items in lists)
        starts = [end - len(items) for end, items in zip(ends, lists)]
        return (
            table([_I64(v) for items in lists for v in items]),
            table([_I32(v) for v in starts], _I32),
            table([_I32(len(items)) for items in lists], _I32),
        )

    def release(offset):
        """Decref the array whose meminfo is at ``offset`` and null it there."""
        pointer = builder.bitcast(at(offset), cgutils.voidptr_t.as_pointer())
        link.decref(builder, builder.load(pointer))
        builder.store(cgutils.voidptr_t(None), pointer)

    for s, (typ, value) in enumerate(zip(sig.args, args)):
        builder.store(value, at(plan.offset[s], typ))
    for offset, (typ, value) in plan.constants.items():
        builder.store(context.get_constant_generic(builder, typ, value), at(offset, typ))
    builder.store(cgutils.false_bit, at(plan.false, numba.types.boolean))
    for (s, function, blas), (offset, rtype) in plan.input_conversions.items():
        value = builder.load(at(plan.offset[s], plan.types[s]))
        converted, _ = link.emit_conversion(context, builder, function, plan.types[s], blas, value)
        builder.store(converted, at(offset, rtype))

    code = cgutils.alloca_once(builder, callconv.errcode_t)
    excinfo = cgutils.alloca_once(builder, callconv.excinfo_ptr_t)
    failed = builder.append_basic_block("glue.failed")
    missing = builder.append_basic_block("glue.missing")
    names = list(dict.fromkeys(name for name, _, _ in plan.ops))
    addresses = cgutils.alloca_once(builder, ir.ArrayType(_I64, max(len(names), 1)))
    for j, name in enumerate(names):
        slot = cgutils.gep_inbounds(builder, addresses, 0, j)
        if native.is_native(name):
            builder.store(builder.ptrtoint(native.define(context, module, name), _I64), slot)
            continue
        address = link.lookup(builder, name)
        found = builder.append_basic_block("glue.found")
        builder.cbranch(builder.icmp_unsigned("!=", address, _I64(0)), found, missing)
        builder.position_at_end(found)
        builder.store(address, slot)

    adapters = {  # one per signature, shared by the modules of that signature
        name: _adapter(context, module, link.signature_of(name)).bitcast(cgutils.voidptr_t)
        for name in names
    }
    adapter_of = table([adapters[name] for name, _, _ in plan.ops], cgutils.voidptr_t)
    index = {name: j for j, name in enumerate(names)}
    address_of = table([_I32(index[name]) for name, _, _ in plan.ops], _I32)
    result_of = table([_I64(result) for _, result, _ in plan.ops])
    arg_offset, arg_start, arg_count = tables([a for _, _, a in plan.ops])
    release_offset, release_start, release_count = tables(plan.releases)
    argv = cgutils.alloca_once(
        builder, ir.ArrayType(cgutils.voidptr_t, max([len(a) for _, _, a in plan.ops] + [1]))
    )
    with cgutils.for_range(builder, _I32(len(plan.ops))) as op:
        k = op.index
        start = arg_start(k)
        with cgutils.for_range(builder, arg_count(k)) as arg:
            offset = arg_offset(builder.add(start, arg.index))
            builder.store(at(offset), cgutils.gep_inbounds(builder, argv, 0, arg.index))
        address = builder.load(cgutils.gep_inbounds(builder, addresses, 0, address_of(k)))
        adapter = builder.bitcast(adapter_of(k), _ADAPTER_TYPE.as_pointer())
        argv0 = cgutils.gep_inbounds(builder, argv, 0, 0)
        status = builder.call(adapter, [address, at(result_of(k)), excinfo, argv0])
        builder.store(status, code)
        ok = builder.or_(
            builder.icmp_signed("==", status, callconv.RETCODE_OK),
            builder.icmp_signed("==", status, callconv.RETCODE_NONE),
        )
        following = builder.append_basic_block("glue.next")
        builder.cbranch(ok, following, failed)
        builder.position_at_end(following)
        start = release_start(k)
        with cgutils.for_range(builder, release_count(k)) as item:
            release(release_offset(builder.add(start, item.index)))

    out = cgutils.alloca_once(builder, context.get_value_type(sig.return_type))  # zeroed
    done = builder.append_basic_block("glue.done")
    values = [builder.load(at(plan.offset[s], plan.types[s])) for s in plan.results]
    status = [callconv.RETCODE_OK, context.get_constant(numba.types.intp, 0)]
    builder.store(context.make_tuple(builder, sig.return_type, status + values), out)
    builder.branch(done)

    # A failed call releases what the glue made (the arrays released already are null:
    # no-ops) and returns its error code and exception, which the entry passes on
    # (``propagate``) once it has released its own references, as a ``raise`` would.
    builder.position_at_end(failed)
    owned = table([_I64(offset) for offset in plan.owned])
    with cgutils.for_range(builder, _I32(len(plan.owned))) as item:
        release(owned(item.index))
    builder.store(builder.load(code), cgutils.gep_inbounds(builder, out, 0, 0))
    exc = builder.ptrtoint(builder.load(excinfo), cgutils.intp_t)
    builder.store(exc, cgutils.gep_inbounds(builder, out, 0, 1))
    builder.branch(done)
    builder.position_at_end(missing)  # a module not loaded: a RuntimeError, passed on alike
    message = "a fusegraph kernel of this function is not loaded in this process (compile it again)"
    context.call_conv.set_static_user_exc(builder, RuntimeError, exc_args=(message,))
    builder.store(context.call_conv.check_try_status(builder).excinfo, excinfo)
    builder.store(callconv.RETCODE_USEREXC, code)
    builder.branch(failed)
    builder.position_at_end(done)
    return builder.load(out)


def _adapter(context, module, signature):
    """``i32 adapter(i64 address, result*, excinfo*, i8** argv)``, defined once per
    module: calls the function at ``address``, of Numba signature ``signature``, on the
    values the pointers in ``argv`` point to, and stores its result and exception."""
    name = "fusegraph_adapter_" + hashlib.sha256(str(signature).encode()).hexdigest()[:16]
    try:
        return module.get_global(name)
    except KeyError:
        pass
    result_type = context.get_value_type(signature.return_type).as_pointer()
    excinfo_type = callconv.excinfo_ptr_t.as_pointer()
    argv_type = cgutils.voidptr_t.as_pointer()
    fnty = ir.FunctionType(
        callconv.errcode_t, [ir.IntType(64), result_type, excinfo_type, argv_type]
    )
    fn = ir.Function(module, fnty, name)
    fn.linkage = "internal"
    for attribute in ("noinline", "optnone"):
        fn.attributes.add(attribute)
    address, result, excinfo, argv = fn.args
    builder = ir.IRBuilder(fn.append_basic_block("call"))
    args = []
    for i, typ in enumerate(signature.args):
        slot = builder.load(cgutils.gep_inbounds(builder, argv, i))
        args.append(builder.load(builder.bitcast(slot, context.get_value_type(typ).as_pointer())))
    kernel_type = context.call_conv.get_function_type(signature.return_type, signature.args)
    callee = builder.inttoptr(address, kernel_type.as_pointer())
    status, out = context.call_conv.call_function(
        builder, callee, signature.return_type, signature.args, args
    )
    builder.store(out, result)
    builder.store(status.excinfoptr, excinfo)
    builder.ret(status.code)
    return fn


@intrinsic
def propagate(typingctx, code, excinfo):
    """Return from the calling function with the error ``code`` of a failed kernel call
    and its exception (at the address ``excinfo``), as the glue reports them."""

    def codegen(context, builder, sig, args):
        exc = builder.inttoptr(args[1], callconv.excinfo_ptr_t)
        status = callconv.Status(args[0], *[None] * 6, exc)
        context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()

    return numba.types.none(code, excinfo), codegen


def _internal_types(n_inputs, constants, steps) -> tuple:
    """The Numba types of the constants' and the nodes' slots, which follow from the
    kernels' signatures; and per step, the ``link.helper_module`` conversions (position ->
    (function, type)) its arguments from those slots need. (An input's conversion depends
    on the entry's signature: it is compiled into the entry.)"""
    internal = {n_inputs + j: numba.typeof(c).copy(readonly=True) for j, c in enumerate(constants)}
    conversions = []
    slot = n_inputs + len(constants)
    for step in steps:
        signature = link.signature_of(step[0])
        converts = {}
        for i, (s, (param, blas)) in enumerate(zip(step[1], link.operands(signature))):
            function = link.needs_helper(internal[s], param, blas) if s in internal else None
            if function is not None:
                converts[i] = (function, internal[s])
        conversions.append(converts)
        result = signature.return_type
        for t in list(result) if len(step[2]) > 1 else [result]:
            internal[slot] = t
            slot += 1
    return internal, conversions


def helper_modules(n_inputs, constants, steps) -> list:
    """The ``link.helper_module`` tuples a plan's conversions need (its kernels' signatures
    declared), so that they compile as units of their own."""
    _, conversions = _internal_types(n_inputs, constants, steps)
    needed = dict.fromkeys(c for converts in conversions for c in converts.values())
    return [link.helper_module(*c) for c in needed]


__all__ = ["Step", "body", "helper_modules", "propagate"]
