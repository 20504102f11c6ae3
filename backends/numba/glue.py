"""The glue of a large graph, generated as LLVM IR: one intrinsic that runs every node's
linked kernel in order.

Written as Python, the code between a graph's kernels (the calls, views and shape
arithmetic) costs Numba's type inference and lowering per statement, then LLVM's
optimisation of what they produce: about 20 ms a node, more than most kernels. In a graph
of more than ``codegen.LINK_NODES`` nodes every node is instead a linked kernel (``link``:
compiled once per process, shared by every function that runs it), and the function that
runs them is this intrinsic, whose IR the code generator's plan spells out directly: per
node, a call through the kernel table (``link.emit_call``), then the release of the values
no later node reads. Its typing is one lookup per kernel, its IR a few instructions a node.

A plan refers to values by *slot*: the intrinsic's arguments first (the graph's inputs),
then the constants, then the nodes' outputs in the order the steps make them.
"""

from __future__ import annotations

import typing

import numba

from fusegraph.backends.numba import link


class Step(typing.NamedTuple):
    """One node: the linked kernel module it runs, the slots of its arguments, and the slots
    its outputs fill (a kernel of several outputs returns them as a tuple)."""

    kernel: str
    args: tuple
    outs: tuple


def body(n_inputs: int, constants: tuple, steps: tuple, results: tuple, label: str = "glue"):
    """The intrinsic ``glue(*inputs)`` running ``steps`` (``Step`` tuples) and returning
    the tuple of the values in the slots ``results`` (node outputs, each once).
    ``constants`` are the arrays of the slots after the inputs'. The kernels must be loaded
    (``link.kernel``) first."""
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
    const_types = tuple(numba.typeof(c).copy(readonly=True) for c in constants)
    # The types of the constants and the nodes' outputs follow from the kernels' signatures:
    # the helpers that convert them for the kernels that read them load now, before the
    # entry compiles or loads from the disk cache (an input's conversion, which depends on
    # the entry's signature, is compiled into it).
    internal = {n_inputs + j: t for j, t in enumerate(const_types)}
    helpers: list = []
    slot = first
    for step in steps:
        signature = link.signature_of(step.kernel)
        converts = {}
        for i, (s, (param, blas)) in enumerate(zip(step.args, link.operands(signature))):
            function = link.needs_helper(internal[s], param, blas) if s in internal else None
            if function is not None:
                converts[i] = link.helper(function, internal[s])
        helpers.append(converts)
        result = signature.return_type
        for t in list(result) if len(step.outs) > 1 else [result]:
            internal[slot] = t
            slot += 1

    def codegen(context, builder, sig, args):
        for attribute in ("noinline", "optnone"):
            builder.function.attributes.add(attribute)
        types = list(sig.args) + [internal[s] for s in range(n_inputs, slot)]
        values = list(args) + [
            context.get_constant_generic(builder, t, c) for t, c in zip(const_types, constants)
        ]
        for step, converts, released in zip(steps, helpers, releases):
            result = link.emit_call(
                context,
                builder,
                step.kernel,
                [values[s] for s in step.args],
                [types[s] for s in step.args],
                converts,
            )
            if len(step.outs) > 1:
                values += [builder.extract_value(result, j) for j in range(len(step.outs))]
            else:
                values.append(result)
            for s in released:
                link.release(context, builder, types[s], values[s])
        return context.make_tuple(builder, sig.return_type, [values[s] for s in results])

    def typer(typingctx, *args):
        types = list(args) + [internal[s] for s in range(n_inputs, slot)]
        return numba.types.Tuple([types[s] for s in results])(*args), codegen

    return link.intrinsic_of(n_inputs, typer, label)


__all__ = ["Step", "body"]
