"""The general path of the loop generator (``loops``): nested loops ``j<axis>`` over the
loop shape ``n<axis>``, for any layout and static broadcasting. An input's index is 0 on its
static length-1 dims, the loop index on the others; output ``k`` is stored at the loop's
index, or combined into its accumulator ``r<k>`` at index 0 on the reduced axes."""

from __future__ import annotations

from fusegraph.backends.numba import loops_reduce
from fusegraph.backends.numba.codebuilder import Code


def accessors(nest, code: Code):
    """``(load, store)`` at the loop index ``j0, j1, ...``: ``load(i)`` is the expression
    reading input ``i``, ``store(k, v)`` writes the lines storing output ``k``'s value
    ``v`` (combining it into the accumulator, if reduced)."""
    ndim = nest.ndim
    js = [f"j{a}" for a in range(ndim)]

    def load(i):
        if nest.hoisted[i]:
            return code.use(f"x{i}")
        t = nest.in_types[i]
        idx = ["0" if nest.static(i, d) == 1 else js[d + ndim - t.ndim] for d in range(t.ndim)]
        return f"{code.use(f'i{i}')}[{', '.join(idx)}]"

    def store(k, v):
        out = code.use(nest.out_name(k))
        if not nest.is_red(k):
            code(f"{out}[{', '.join(js) or '()'}] = {v}")
            return
        idx = ", ".join("0" if a in nest.red.axis else js[a] for a in range(ndim))
        acc = f"{out}[{idx or '()'}]"
        code(f"{acc} = {loops_reduce.combine(nest, acc, v)}")

    return load, store


def loop(nest, code: Code, trig: str) -> None:
    """The serial nested loops computing every output. A reduction along the innermost
    axis runs that loop in blocks (``loops_reduce.blocked``), except in the libm fix-up."""
    ndim = nest.ndim
    outs = list(range(len(nest.op.outputs)))
    load, store = accessors(nest, code)
    inner = ndim - 1
    if trig == "fixup" or nest.red is None or inner not in nest.red.axis:
        js = code.loops([f"n{a}" for a in range(ndim)], "j")
        nest.body(code, outs, load, store, trig)
        code.dedent(len(js))
        return
    code(loops_reduce.block_buffer(nest))
    js = code.loops([f"n{a}" for a in range(inner)], "j")
    idx = ", ".join("0" if a in nest.red.axis else f"j{a}" for a in range(ndim))
    acc = f"{nest.out_name(nest.red.output)}[{idx}]"

    def row(name, i, sl):
        if name == "o":
            return f"{nest.out_name(i)}[{', '.join(js + [sl])}]"
        t = nest.in_types[i]
        if nest.hoisted[i] or t.ndim < 1 or t.shape[-1] == 1:  # constant along the row
            return None
        outer = [
            "0" if nest.static(i, d) == 1 else f"j{d + ndim - t.ndim}" for d in range(t.ndim - 1)
        ]
        return f"i{i}[{', '.join(outer + [sl])}]"

    loops_reduce.blocked(nest, code, f"n{inner}", outs, row, load, trig, acc)
    code.dedent(len(js))
