"""The glue of a large graph, generated as LLVM IR: one intrinsic that runs every node's
linked kernel in order.

Written as Python, the code between a graph's kernels (the calls, views and shape
arithmetic) costs Numba's type inference and lowering per statement, then LLVM's
optimisation of what they produce: about 20 ms a node, more than most kernels. In a graph
of more than ``codegen.LINK_NODES`` nodes every node is instead a linked kernel (``link``:
compiled once per process, shared by every function that runs it), and the function that
runs them is this intrinsic, whose IR the code generator's plan spells out directly: per
node, a call through the kernel table, then the release of the values no later node reads.

Its values live in stack slots, and a kernel is called with pointers to its arguments'
slots and to its result's, through one small *adapter* per kernel signature that spells
out Numba's calling convention (every field of every array an argument of its own): a
call is a dozen instructions, not a hundred and fifty. The glue and its adapters are
compiled ``optnone``: they are only calls, and LLVM's passes cost seconds on them. Its
typing needs only the kernels' signatures (``link.signature_of``, declared before they
compile), so the entry compiles before its kernels.

A plan refers to values by *slot*: the intrinsic's arguments first (the graph's inputs),
then the constants, then the nodes' outputs in the order the steps make them.
"""

from __future__ import annotations

import hashlib
import typing

import numba
from llvmlite import ir
from numba.core import callconv, cgutils
from numba.extending import intrinsic

from fusegraph.backends.numba import link


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
    first = n_inputs + len(constants)
    # after which step each node output is released: its last reader, or its own step
    last: dict = {}
    for k, step in enumerate(steps):
        for s in step.outs:
            last[s] = k
        for s in step.args:
            if s >= first:
                last[s] = k
    releases: list = [[] for _ in steps]
    for s, k in last.items():
        if s not in results:
            releases[k].append(s)
    internal, conversions = _internal_types(n_inputs, constants, steps)
    const_types = [internal[n_inputs + j] for j in range(len(constants))]
    helpers = [
        {i: link.helper_module(*c)[0] for i, c in converts.items()} for converts in conversions
    ]
    later = [internal[s] for s in range(n_inputs, n_inputs + len(internal))]  # after inputs

    def codegen(context, builder, sig, args):
        for attribute in ("noinline", "optnone"):
            builder.function.attributes.add(attribute)
        types = list(sig.args) + later
        names = [step.kernel for step in steps] + [h for c in helpers for h in c.values()]
        widest = max(len(link.signature_of(name).args) for name in names)
        frame = _Frame(context, builder, dict.fromkeys(names), widest)
        out = cgutils.alloca_once(builder, context.get_value_type(sig.return_type))  # zeroed
        done = builder.append_basic_block("glue.done")
        slots = [frame.store(t, v) for t, v in zip(sig.args, args)]
        slots += [
            frame.store(t, context.get_constant_generic(builder, t, c))
            for t, c in zip(const_types, constants)
        ]
        for step, converts, released in zip(steps, helpers, releases):
            owned, argv = [], []
            for i, (s, (param, blas)) in enumerate(
                zip(step.args, link.operands(link.signature_of(step.kernel)))
            ):
                function = link.needs_helper(types[s], param, blas)
                if function is None:
                    argv += [slots[s], frame.false] if blas else [slots[s]]
                    continue
                if i in converts:  # a linked helper
                    converted = frame.call(converts[i], [slots[s]])
                    rtype = link.signature_of(converts[i]).return_type
                else:  # an input of another layout: its conversion is compiled in
                    value, rtype = link.emit_conversion(
                        context, builder, function, types[s], blas, builder.load(slots[s])
                    )
                    converted = frame.own(rtype, frame.store(rtype, value))
                if blas:
                    owned.append((rtype[0], frame.item(converted, 0)))
                    argv += [owned[-1][1], frame.item(converted, 1)]
                else:
                    owned.append((rtype, converted))
                    argv.append(converted)
            result = frame.call(step.kernel, argv)
            for typ, slot in owned:
                frame.release(typ, slot)
            if len(step.outs) > 1:
                slots += [frame.item(result, j) for j in range(len(step.outs))]
            else:
                slots.append(result)
            for s in released:
                frame.release(types[s], slots[s])
        values = [builder.load(slots[s]) for s in results]
        status = [callconv.RETCODE_OK, context.get_constant(numba.types.intp, 0)]
        builder.store(context.make_tuple(builder, sig.return_type, status + values), out)
        builder.branch(done)
        frame.finish(out, done)
        builder.position_at_end(done)
        return builder.load(out)

    def typer(typingctx, *args):
        types = list(args) + later
        status = [numba.types.int32, numba.types.intp]
        return numba.types.Tuple(status + [types[s] for s in results])(*args), codegen

    return link.intrinsic_of(n_inputs, typer, label)


class _Frame:
    """The glue's values in memory, one stack slot each, and its calls: a kernel gets the
    slots of its arguments and of its result, through the :func:`_adapter` of its signature
    (which spells out Numba's calling convention once per signature, not once per call)."""

    def __init__(self, context, builder, names, widest: int):
        self.context, self.builder = context, builder
        self.argv = cgutils.alloca_once(builder, ir.ArrayType(cgutils.voidptr_t, widest))
        self.excinfo = cgutils.alloca_once(builder, callconv.excinfo_ptr_t)
        self.code = cgutils.alloca_once(builder, callconv.errcode_t)
        self.false = self.store(numba.types.boolean, cgutils.false_bit)
        self._failed = None
        self._owned = []  # (type, slot) of the values the glue made: released on failure
        self.addresses = {name: self._lookup(name) for name in names}

    def store(self, typ, value):
        """A new slot holding ``value`` (of Numba type ``typ``)."""
        slot = cgutils.alloca_once(self.builder, self.context.get_value_type(typ))
        self.builder.store(value, slot)
        return slot

    def item(self, slot, j: int):
        """The slot of item ``j`` of the tuple in ``slot``."""
        return cgutils.gep_inbounds(self.builder, slot, 0, j)

    def _lookup(self, name: str):
        """The address of the loaded module ``name``'s function (``link.lookup``); a module
        missing from the table raises RuntimeError."""
        address = link.lookup(self.builder, name)
        self._check(self.builder.icmp_unsigned("!=", address, address.type(0)), None)
        return address

    def call(self, name: str, args: list):
        """Call the loaded module ``name`` on the values in the slots ``args``; returns the
        slot of its result, which the glue owns. An error it raises goes to the failure
        path (:meth:`finish`)."""
        builder = self.builder
        signature = link.signature_of(name)
        for i, slot in enumerate(args):  # the adapter takes them through one array:
            # calls of more than a few arguments are slow to compile unoptimised
            pointer = builder.bitcast(slot, cgutils.voidptr_t)
            builder.store(pointer, cgutils.gep_inbounds(builder, self.argv, 0, i))
        result = cgutils.alloca_once(builder, self.context.get_value_type(signature.return_type))
        adapter = _adapter(self.context, builder.module, signature)
        argv = cgutils.gep_inbounds(builder, self.argv, 0, 0)
        code = builder.call(adapter, [self.addresses[name], result, self.excinfo, argv])
        ok = builder.or_(
            builder.icmp_signed("==", code, callconv.RETCODE_OK),
            builder.icmp_signed("==", code, callconv.RETCODE_NONE),
        )
        self._check(ok, code)
        return self.own(signature.return_type, result)

    def own(self, typ, slot):
        """Record that the glue owns the value in ``slot`` (zeroed on entry, as every slot
        is: ``cgutils.alloca_once``): a failed call releases it. Returns ``slot``."""
        self._owned.append((typ, slot))
        return slot

    def _check(self, ok, code) -> None:
        """Go on if ``ok``; else take the failure path with the error ``code`` (a failed
        call's, its exception in ``excinfo``) or, with ``code`` None, that of a kernel that
        is not loaded."""
        builder = self.builder
        if self._failed is None:
            self._failed = builder.function.append_basic_block("glue.failed")
            self._missing = builder.function.append_basic_block("glue.missing")
        following = builder.append_basic_block("glue.next")
        if code is None:
            builder.cbranch(ok, following, self._missing)
        else:
            builder.store(code, self.code)
            builder.cbranch(ok, following, self._failed)
        builder.position_at_end(following)

    def finish(self, out, done) -> None:
        """Fill the blocks that failed calls and lookups branch to (after the last call): a
        failure releases the values the glue made and goes to ``done`` with its error code
        and exception in the first two items of the tuple in ``out`` (the others null),
        which the entry passes on (:func:`propagate`) once it has released its own
        references, as a ``raise`` would."""
        if self._failed is None:
            return
        builder = ir.IRBuilder(self._failed)
        for typ, slot in self._owned:  # the values still alive (released ones are null)
            items = (
                list(enumerate(typ)) if isinstance(typ, numba.types.BaseTuple) else [(None, typ)]
            )
            for j, item in items:
                if isinstance(item, numba.types.Array):
                    pointer = slot if j is None else cgutils.gep_inbounds(builder, slot, 0, j)
                    _decref(self.context, builder, item, pointer)
        builder.store(builder.load(self.code), cgutils.gep_inbounds(builder, out, 0, 0))
        excinfo = builder.ptrtoint(builder.load(self.excinfo), cgutils.intp_t)
        builder.store(excinfo, cgutils.gep_inbounds(builder, out, 0, 1))
        builder.branch(done)
        builder.position_at_end(self._missing)  # a RuntimeError, passed on the same way
        message = (
            "a fusegraph kernel of this function is not loaded in this process (compile it again)"
        )
        call_conv = self.context.call_conv
        call_conv.set_static_user_exc(builder, RuntimeError, exc_args=(message,))
        builder.store(call_conv.check_try_status(builder).excinfo, self.excinfo)
        builder.store(callconv.RETCODE_USEREXC, self.code)
        builder.branch(self._failed)

    def release(self, typ, slot) -> None:
        """Release the array in ``slot`` (of Numba type ``typ``) and null it there."""
        _decref(self.context, self.builder, typ, slot, forget=True)


def _decref(context, builder, typ, slot, forget=False) -> None:
    """Decref the array (Numba type ``typ``) in ``slot`` (``link.decref``), then null its
    meminfo there if ``forget``."""
    position = context.data_model_manager[typ].get_field_position("meminfo")
    pointer = cgutils.gep_inbounds(builder, slot, 0, position)
    meminfo = builder.load(pointer)
    link.decref(builder, meminfo)
    if forget:
        builder.store(meminfo.type(None), pointer)


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
