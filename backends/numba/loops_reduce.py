"""Reductions of the loop generator (``loops``): a fused reduction's accumulator (allocated,
initialised, combined with each value, finished into the output), the blocked innermost
loop of a reduction along it, and ``block_sum_*``, which the generated code calls."""

# Reductions accumulate in the output dtype (NumPy's rule, ``reduce_dtype``), in loop order:
# integer, bool, max/min, all/any results equal NumPy's exactly; float sum, prod and mean
# equal it up to rounding, as NumPy sums pairwise. max/min propagate NaN (scalar_code's
# _maximum/_minimum); max/min over an empty axis raise ValueError, as NumPy; mean is
# sum / count in the output dtype (NaN for an empty axis, as the reference).

from __future__ import annotations

import numba
import numpy as np

from fusegraph.backends.numba.codebuilder import Code, product_expr, tuple_expr
from fusegraph.backends.numba.scalar_code import cast_expr, constant_expr, np_dtype
from fusegraph.types import is_float

_EMPTY_ERROR = "zero-size array to reduction operation {} which has no identity"
#: Reductions along the innermost loop compute their values in blocks of this many elements
#: (a vectorised loop), then accumulate them in order (``blocked``).
RED_BLOCK = 256


def _block_sum(acc):
    zero = acc(0)

    @numba.njit(error_model="numpy")
    def block_sum(tb, m):
        m8 = m - m % 8
        l0 = l1 = l2 = l3 = l4 = l5 = l6 = l7 = zero
        for q in range(0, m8, 8):
            l0 = acc(l0 + tb[q])
            l1 = acc(l1 + tb[q + 1])
            l2 = acc(l2 + tb[q + 2])
            l3 = acc(l3 + tb[q + 3])
            l4 = acc(l4 + tb[q + 4])
            l5 = acc(l5 + tb[q + 5])
            l6 = acc(l6 + tb[q + 6])
            l7 = acc(l7 + tb[q + 7])
        part = ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
        for q in range(m8, m):
            part = acc(part + tb[q])
        return part

    block_sum.__doc__ = f"""The {acc.__name__} sum of ``tb[:m]`` as NumPy's pairwise summation
    starts it: 8 partial sums (a vectorised add, not a chain of dependent ones), added
    pairwise, then the remainder. One function per process that LLVM inlines into each
    reduction loop (not cached: cached code could not be inlined), instead of the same 16
    lines typed and compiled again in every kernel."""
    return block_sum


block_sum_f64 = _block_sum(np.float64)
block_sum_f32 = _block_sum(np.float32)


def acc_dtype(nest) -> str:
    """The accumulator's dtype: the reduced output's."""
    return nest.out_types[nest.red.output].dtype


def init(nest) -> str:
    """The accumulator's initial value: the reduction's identity."""
    kind, dt = nest.red.kind, acc_dtype(nest)
    if kind in ("sum", "mean"):
        return constant_expr(0, dt)
    if kind == "prod":
        return constant_expr(1, dt)
    if kind in ("all", "any"):
        return constant_expr(kind == "all", "bool")
    if dt == "bool":
        return constant_expr(kind == "min", dt)
    if is_float(dt):
        return constant_expr(-np.inf if kind == "max" else np.inf, dt)
    info = np.iinfo(dt)
    return constant_expr(info.min if kind == "max" else info.max, dt)


def combine(nest, acc: str, v: str) -> str:
    """The expression accumulating the value ``v`` into ``acc``."""
    kind, dt = nest.red.kind, acc_dtype(nest)
    vdt = nest.value_dtype(nest.red.output)
    if kind in ("all", "any"):
        t = v if vdt == "bool" else f"({v} != 0)"
        return f"{acc} {'&' if kind == 'all' else '|'} {t}"
    c = cast_expr(v, vdt, dt)
    if kind in ("max", "min"):
        if dt == "bool":
            return f"{acc} {'|' if kind == 'max' else '&'} {c}"
        return f"_{kind}imum({acc}, {c})"
    symbol = "*" if kind == "prod" else "+"
    return f"{np_dtype(dt)}({acc} {symbol} {c})"


def storer(nest, code: Code, acc: str, element: str):
    """``store(k, v)`` for a loop body with a fused reduction: the reduced output's value is
    combined into ``acc``, another output ``k`` is stored at ``element.format(k=k)``."""

    def store(k, v):
        if k == nest.red.output:
            code(f"{acc} = {combine(nest, acc, v)}")
        else:
            code(f"{element.format(k=k)} = {v}")

    return store


def alloc(nest, code: Code, k: int) -> None:
    """Allocate the accumulator ``r<k>`` of the reduced output ``k`` (its reduced dims 1,
    ``nred`` their product) and initialise it; max/min raise for an empty reduction."""
    dims = [f"n{a}" for a in range(nest.ndim)]
    kd = ["1" if a in nest.red.axis else dims[a] for a in range(nest.ndim)]
    code(
        f"nred = {product_expr(dims[a] for a in nest.red.axis)}",
        f"r{k} = empty_c({tuple_expr(kd)}, {np_dtype(acc_dtype(nest))})",
    )
    if kd:
        fill(nest, code, k)
    else:
        code(f"r{k}[()] = {init(nest)}")
    if nest.red.kind in ("max", "min"):
        kind = "maximum" if nest.red.kind == "max" else "minimum"
        with code.block("if nred == 0:"):
            code(f"raise ValueError({_EMPTY_ERROR.format(kind)!r})")


def fill(nest, code: Code, k: int) -> None:
    """Set every element of the accumulator ``r<k>`` to the reduction's initial value (a
    loop over its flat view: ``ndarray.fill`` costs Numba a compile per dtype and ndim)."""
    code(f"rv{k} = flat_view(r{k})")
    with code.loop("p", f"rv{k}.shape[0]"):
        code(f"rv{k}[p] = {init(nest)}")


def finish(nest, code: Code, k: int) -> None:
    """Turn the accumulator ``r<k>`` into the output ``o<k>``: divided by the count for a
    mean, then a view without the reduced dims unless ``keepdims``."""
    if nest.red.kind == "mean":
        n = np_dtype(acc_dtype(nest))
        code(f"rf{k} = flat_view(r{k})")
        with code.loop("p", f"r{k}.size"):
            code(f"rf{k}[p] = {n}(rf{k}[p] / {n}(nred))")
    if nest.red.keepdims:
        code(f"o{k} = r{k}")
        return
    kept = [f"n{a}" for a in range(nest.ndim) if a not in nest.red.axis]
    code(f"o{k} = c_view(r{k}, {tuple_expr(kept)})")


def block_buffer(nest) -> str:
    """The statement allocating ``tb``, the buffer of a block of reduced values."""
    return f"tb = empty_c({RED_BLOCK}, {np_dtype(nest.value_dtype(nest.red.output))})"


def blocked(nest, code: Code, n: str, outs, row, load, trig: str, acc: str) -> None:
    """The innermost loop (``n`` long) of a reduction along it, in blocks: the loop
    computing the values (stored in ``tb``; vectorisable, as it has no floating-point
    accumulation) and then the loop accumulating them into ``acc`` in order.

    ``row(name, i, sl)`` is the 1-d view along the loop of input (``name`` "i") or
    output (``name`` "o") ``i`` at slice ``sl``, or None for an input that does not vary
    along it (read with ``load(i)``). Elements are read and written through views of
    the block indexed from 0 (``a[c + q]`` does not vectorise: Numba wraps negative
    indices, and LLVM then gathers)."""
    rk = nest.red.output
    views = {i: row("i", i, "c:ce") for i in range(nest.nin)}
    views = {i: v for i, v in views.items() if v is not None}

    def load_block(i):
        return f"w{i}[q]" if i in views else load(i)

    def store_block(k, v):
        code(f"tb[q] = {v}" if k == rk else f"u{k}[q] = {v}")

    with code.block(f"for c in range(0, {n}, {RED_BLOCK}):"):
        code(f"ce = min(c + {RED_BLOCK}, {n})")
        code(*[f"w{i} = {v}" for i, v in views.items()])
        code(*[f"u{k} = {row('o', k, 'c:ce')}" for k in outs if k != rk])
        with code.block("for q in range(ce - c):"):
            nest.body(code, outs, load_block, store_block, trig)
        if nest.red.kind in ("sum", "mean") and acc_dtype(nest).startswith("float"):
            # Float sums: the block's pairwise sum (``block_sum_*``), then to the total: a
            # vectorised add, and a smaller rounding error than one running sum.
            fn = "block_sum_f32" if acc_dtype(nest) == "float32" else "block_sum_f64"
            code(f"{acc} = {combine(nest, acc, f'{fn}(tb, ce - c)')}")
        else:
            code(f"av = {acc}")
            with code.block("for q in range(ce - c):"):
                code(f"av = {combine(nest, 'av', 'tb[q]')}")
            code(f"{acc} = av")
