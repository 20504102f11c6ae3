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
    internal, conversions = _internal_types(n_inputs, constants, steps)
    const_types = [internal[n_inputs + j] for j in range(len(constants))]
    helpers = [{i: link.helper(*c) for i, c in converts.items()} for converts in conversions]
    later = [internal[s] for s in range(n_inputs, n_inputs + len(internal))]  # after inputs

    def codegen(context, builder, sig, args):
        for attribute in ("noinline", "optnone"):
            builder.function.attributes.add(attribute)
        types = list(sig.args) + later
        names = [step.kernel for step in steps] + [h for c in helpers for h in c.values()]
        addresses = {
            name: link.emit_lookup(context, builder, name) for name in dict.fromkeys(names)
        }
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
                addresses,
            )
            if len(step.outs) > 1:
                values += [builder.extract_value(result, j) for j in range(len(step.outs))]
            else:
                values.append(result)
            for s in released:
                link.release(context, builder, types[s], values[s])
        return context.make_tuple(builder, sig.return_type, [values[s] for s in results])

    def typer(typingctx, *args):
        types = list(args) + later
        return numba.types.Tuple([types[s] for s in results])(*args), codegen

    return link.intrinsic_of(n_inputs, typer, label)


def _internal_types(n_inputs, constants, steps) -> tuple:
    """The Numba types of the constants' and the nodes' slots, which follow from the
    kernels' signatures; and per step, the ``link.helper`` conversions (position ->
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
    """The ``link.helper_module`` tuples a plan's conversions need (its kernels loaded), so
    that they compile as units of their own, before the entry that calls them."""
    _, conversions = _internal_types(n_inputs, constants, steps)
    needed = dict.fromkeys(c for converts in conversions for c in converts.values())
    return [link.helper_module(*c) for c in needed]


__all__ = ["Step", "body", "helper_modules"]
