"""The fast path of the loop generator (``loops``): one flat loop over 1-d views
(``flat_view``) of the inputs and outputs, which LLVM vectorises, taken when every input read
in the loop is C-contiguous with the loop's size (so, its dims being the loop's, with its
shape). Statically size-1 inputs are read once, before the loops. A fused reduction over
trailing axes runs as outer x inner loops with a scalar accumulator (in blocks,
``loops_reduce.blocked``); over leading axes as reduced x kept loops accumulating into the
kept row (vectorisable without reassociation); other axis sets take the general path
(``loops_nested``)."""

from __future__ import annotations

from fusegraph.backends.numba import loops_reduce
from fusegraph.backends.numba.codebuilder import Code


def applies(nest) -> bool:
    """Whether the kernel has a flat path: only for loops of 2 dims and more (a 1-d loop
    is the flat loop, and Numba compiles it for each layout), elementwise or reducing
    leading axes. A reduction over trailing axes runs as fast in the general loop's
    blocks (``loops_reduce.blocked``); parallel kernels keep its flat path, whose helper
    gives each thread whole rows."""
    if nest.ndim < 2 or broadcasts(nest):
        return False
    if nest.red is None or nest.red.axis == tuple(range(len(nest.red.axis))):
        return True
    return nest.par and nest.trailing()


def broadcasts(nest) -> bool:
    """Whether an input that is read in the loop is statically broadcast along an axis
    that is not: its size is then the loop's only if that axis has length 1 at run time,
    so a flat path would be dead code (compiled all the same)."""
    for a in range(nest.ndim):
        dims = [nest.in_dim(i, a, nest.ndim) for i in range(nest.nin)]
        if all(d is None or nest.static(i, d) == 1 for i, d in enumerate(dims)):
            continue  # no input varies along this axis
        if any(
            not nest.hoisted[i] and (d is None or nest.static(i, d) == 1)
            for i, d in enumerate(dims)
        ):
            return True
    return False


def conditions(nest) -> list[str]:
    """The run-time tests for the flat path: per input read in the loop, C order and
    (unless its dims are the loop's, so its size is) the loop's size. None for
    C-contiguous inputs (``nest.contiguous``) of the loop's dims."""
    conds = []
    for i, t in enumerate(nest.in_types):
        if nest.hoisted[i]:
            continue
        c_order = [] if nest.contiguous else [f"i{i}.flags.c_contiguous"]
        if t.ndim == nest.ndim and 1 not in t.shape:
            conds += c_order
        else:
            conds.append(" and ".join(c_order + [f"i{i}.size == size"]))
    return conds


def views(nest, code: Code) -> None:
    """The flat views ``f<i>`` of the inputs and ``g<k>`` of the outputs (the accumulator,
    if reduced); with a reduction, ``nkept``, the accumulator's size."""
    code(*[f"f{i} = flat_view(i{i})" for i in range(nest.nin) if not nest.hoisted[i]])
    code(*[f"g{k} = flat_view({nest.out_name(k)})" for k in range(len(nest.op.outputs))])
    if nest.red is not None:
        code(f"nkept = r{nest.red.output}.size")


def reader(nest, code: Code):
    """``load(i)``: the expression reading input ``i`` at flat index ``e``."""

    def load(i):
        return code.use(f"x{i}") if nest.hoisted[i] else f"{code.use(f'f{i}')}[e]"

    return load


def loop(nest, code: Code, trig: str) -> None:
    """The serial flat loop(s) over the views ``f<i>`` and ``g<k>``."""
    outs = list(range(len(nest.op.outputs)))
    load = reader(nest, code)
    if nest.red is None:

        def store(k, v):
            code(f"g{k}[e] = {v}")

        with code.loop("e", "size"):
            nest.body(code, outs, load, store, trig)
        return
    rk = nest.red.output
    if nest.trailing():
        # trailing axes: each kept element accumulates its row, in blocks (``blocked``)
        def row(name, i, sl):
            if name == "o":
                return f"g{i}[p * nred:p * nred + nred][{sl}]"
            return None if nest.hoisted[i] else f"f{i}[p * nred:p * nred + nred][{sl}]"

        code(loops_reduce.block_buffer(nest))
        with code.loop("p", "nkept"):
            loops_reduce.blocked(nest, code, "nred", outs, row, load, trig, f"g{rk}[p]")
        return

    # leading axes: the kept row accumulates, one reduced index at a time
    store = loops_reduce.storer(nest, code, f"g{rk}[p]", "g{k}[e]")
    with code.loop("q", "nred"), code.loop("p", "nkept"):
        code("e = q * nkept + p")
        nest.body(code, outs, load, store, trig)
