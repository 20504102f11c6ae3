"""Parallel kernels of the loop generator (``loops``, ``parallel=True``): each loop that can
run in parallel becomes a helper function ``<kernel>_par<j>`` whose outer loop is a
``numba.prange``, called when the loop is large enough; ``num_threads``, which the generated
code calls."""

# A parallel kernel is the serial kernel in which each loop that can run in parallel, when
# it has at least PARALLEL_MIN_SIZE elements, is replaced by a call of a helper
# ``<name>_par<j>`` (PARALLEL_DECORATOR) running the same loop body under a
# ``numba.prange`` over the outer dimension only:
# - fast path: the elements (Numba gives each thread one range, which LLVM vectorises
#   like the serial loop; explicit chunks of 2**12..2**16 elements were slower);
# - trailing-axis reduction: the kept elements, each with its own scalar accumulator;
# - leading-axis reduction: blocks of the kept row, each accumulating over the reduced
#   axes (never a prange over a reduced axis, so never two threads on one element);
# - general path: the first axis when it is not reduced and longer than 1.
# Every output element is thus computed and accumulated in the serial order: the results
# equal the serial kernel's, float sums included. Reductions over every axis (one
# accumulator) and the slow paths (trig fix-up, libm recomputation: rare) stay serial.
# The trig flag is private to each prange iteration and added to a count (``+=`` is a
# prange reduction, ``|=`` is not); the helper returns count != 0.
# Smaller loops run the serial code: no thread start-up (~2 us). The threshold, measured
# on 2 cores: a prange beats the serial loop from ~2**11 elements for a transcendental
# body, from ~2**15 for a memory-bound x*y+z; 2**15 keeps every loop at least as fast, at
# the price of one more copy of the loop body (a parallel kernel compiles in ~1.5-2.3x
# the serial time). Why helpers, not prange in the kernel: there, Numba 0.68's parfor
# pass took the loop dims (assigned under conditions by the broadcast checks) as 1 in
# prange bodies, so inner loops ran once, and its parallel ``ndarray.fill`` wrote out of
# bounds; a helper gets dims and arrays as plain arguments: the kernel's variables its
# loop reads (``Code.use``).

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fusegraph.backends.numba import loops_flat, loops_nested, loops_reduce
from fusegraph.backends.numba.cache import ENTRY_DECORATOR
from fusegraph.backends.numba.codebuilder import Code, Function

#: Loops of fewer elements run serially in a ``parallel`` kernel (see the file's comment).
PARALLEL_MIN_SIZE = 2**15
#: The kept elements of a leading-axis reduction are split among threads in blocks of a
#: multiple of BLOCK elements (whole cache lines for 4-byte types and up: no false sharing)
#: and of at least MIN_BLOCK (runs of consecutive elements per row for the prefetcher: a
#: memory-bound x*y+z summed over 10000 x 1000 is 1.3x slower with 2 blocks of 500).
BLOCK = 16
MIN_BLOCK = 256
assert ENTRY_DECORATOR.endswith(")")
#: The decorator of the parallel helpers: ``cache.ENTRY_DECORATOR`` with ``parallel=True``.
#: They stay dispatchers of their own: inlined, they would lose Numba's parallel passes.
PARALLEL_DECORATOR = ENTRY_DECORATOR[:-1] + ", parallel=True)"


@intrinsic
def num_threads(typingctx):
    """``numba.get_num_threads()`` for cached code: that overload embeds the address of a
    ctypes function, which makes Numba refuse to cache the kernel ("dynamic globals"); this
    calls the threading layer's ``get_num_threads`` symbol, as Numba's parfors do."""
    numba.get_num_threads()  # launches the threading layer, which registers the symbol

    def codegen(context, builder, sig, args):
        # declared as the parfor lowering does (one declaration per LLVM module)
        fnty = ir.FunctionType(cgutils.intp_t, [])
        return builder.call(
            cgutils.get_or_insert_function(builder.module, fnty, "get_num_threads"), []
        )

    return types.intp(), codegen


def switch(nest, code: Code, conds, parallel_loop, serial_loop, trig: str) -> None:
    """Write a call of a new helper, whose body ``parallel_loop(nest, helper, trig)``
    writes, for loops of at least PARALLEL_MIN_SIZE elements that pass ``conds``; else the
    serial loop, ``serial_loop(nest, code, trig)``. With ``trig`` "vec" the helper counts
    the elements that need the slow path in ``nslow``, and its call sets ``slow``.

    The helper's parameters are the kernel's variables its loop reads: the loops below
    (and the accessors they share with the serial ones) pass each through ``Code.use``."""
    helper = Function(f"{nest.name}_par{len(nest.helpers)}", None, PARALLEL_DECORATOR)
    nest.helpers.append(helper)
    counts = trig == "vec"
    if counts:
        helper("nslow = 0")
    parallel_loop(nest, helper, trig)
    if counts:
        helper("return nslow != 0")
    with code.block(f"if {' and '.join([f'size >= {PARALLEL_MIN_SIZE}', *conds])}:"):
        code(f"slow = {helper.call()}" if counts else helper.call())
    with code.block("else:"):
        serial_loop(nest, code, trig)


def nested_loop(nest, code: Code, trig: str) -> None:
    """``loops_nested.loop`` with a prange over axis 0 (not reduced: each iteration owns
    its slab of the outputs); with ``trig`` "vec" each iteration ORs the slow-path
    condition into a private flag ``sl`` and adds it to the ``nslow`` count."""
    outs = list(range(len(nest.op.outputs)))
    load, store = loops_nested.accessors(nest, code)
    with code.block(f"for j0 in numba.prange({code.use('n0')}):"):
        if trig == "vec":
            code("sl = False")
        for a in range(1, nest.ndim):
            code.loop(f"j{a}", code.use(f"n{a}"))
        nest.body(code, outs, load, store, trig, "sl")
        code.dedent(nest.ndim - 1)
        if trig == "vec":
            code("nslow += sl")


def flat_loop(nest, code: Code, trig: str) -> None:
    """``loops_flat.loop`` with a ``numba.prange`` over its outer dimension: the elements,
    the kept elements of a trailing-axis reduction (one accumulator each, summed in the
    serial order), or blocks of the kept row of a leading-axis reduction (each block
    accumulates over the reduced axes in the serial order; never a prange over a reduced
    axis). The trig flag is private per iteration and counted into ``nslow``."""
    outs = list(range(len(nest.op.outputs)))
    flag = trig == "vec"
    if nest.red is None:

        def store(k, v):
            code(f"{code.use(f'g{k}')}[e] = {v}")

        with code.block(f"for e in numba.prange({code.use('size')}):"):
            if flag:
                code("sl = False")
            nest.body(code, outs, loops_flat.reader(nest, code), store, trig, "sl")
            if flag:
                code("nslow += sl")
        return
    # The loops over a row (trailing) or a block (leading) index 0-based views of it
    # (``v`` inputs, ``u`` outputs, ``h`` accumulators): LLVM does not vectorise
    # ``x[b + q]`` (an integer sum was 7x slower), as Numba wraps negative indices.
    rk = nest.red.output

    def load(i):
        return code.use(f"x{i}") if nest.hoisted[i] else f"v{i}[q]"

    def views(n):
        ins = [i for i in range(nest.nin) if not nest.hoisted[i]]
        code(*[f"v{i} = {code.use(f'f{i}')}[b:b + {n}]" for i in ins])
        code(*[f"u{k} = {code.use(f'g{k}')}[b:b + {n}]" for k in outs if k != rk])

    if nest.trailing():
        store = loops_reduce.storer(nest, code, "acc", "u{k}[q]")
        with code.block(f"for p in numba.prange({code.use('nkept')}):"):
            code(f"b = p * {code.use('nred')}")
            views("nred")
            code(f"acc = {loops_reduce.init(nest)}")
            if flag:
                code("sl = False")
            with code.loop("q", "nred"):
                nest.body(code, outs, load, store, trig, "sl")
            code(f"{code.use(f'g{rk}')}[p] = acc")
            if flag:
                code("nslow += sl")
        return

    store_block = loops_reduce.storer(nest, code, f"h{rk}[q]", "u{k}[q]")
    # One block per thread (see BLOCK): the longest runs of consecutive elements per
    # row (64 blocks for 2 threads were up to 2.7x slower).
    nkept = code.use("nkept")
    code(
        "nthr = num_threads()",
        f"w = max((({nkept} + nthr - 1) // nthr + {BLOCK - 1}) // {BLOCK} * {BLOCK}, {MIN_BLOCK})",
    )
    with code.block("for c in numba.prange((nkept + w - 1) // w):"):
        code("lo = c * w", "cnt = min(lo + w, nkept) - lo")
        code(f"h{rk} = {code.use(f'g{rk}')}[lo:lo + cnt]")
        if flag:
            code("sl = False")
        with code.loop("r", code.use("nred")):
            code("b = r * nkept + lo")
            views("cnt")
            with code.loop("q", "cnt"):
                nest.body(code, outs, load, store_block, trig, "sl")
        if flag:
            code("nslow += sl")
