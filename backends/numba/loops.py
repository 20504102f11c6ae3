"""Loop generator of the Numba backend: ``kernel_source`` renders an ``Elemwise``,
``FusedElemwise`` (and the reduction fused into it) or ``Reduce`` node as the source of one
njit function with explicit loops, NumPy's broadcasting and the scalar code of ``scalar_code``."""

# Shape of a generated kernel (inputs i0, i1, ...; loop dims n0, n1, ...):
#
# 1. The loop shape: per axis (inputs align right, as NumPy), the length of the inputs' dims
#    that are not statically 1. Elementwise ops broadcast only static 1s, so those lengths
#    must be equal; else the kernel raises ValueError(BROADCAST_ERROR) (the Function wrapper
#    re-runs the py backend for the detailed message).
# 2. Main mode (every output has the loop shape): outputs are fresh C-contiguous arrays.
#    - Fast path, when every input that is not statically of size 1 is C-contiguous with the
#      loop's size (so, its dims being the loop's, with its shape): one flat loop over
#      1-d views (``flat_view``), which LLVM vectorises. Statically size-1 inputs are read once.
#      A fused reduction over trailing axes runs as outer x inner loops with a scalar
#      accumulator; over leading axes as reduced x kept loops accumulating into the kept row
#      (vectorisable without reassociation); other axis sets take the general path.
#    - General path: nested loops over the loop shape; an input's index is 0 on its static
#      length-1 dims, the loop index on the others.
# 3. Every output has the loop's shape (before a reduction): ``FusedElemwise`` requires its
#    outputs to have the loop's broadcast pattern.
# 4. sin/cos/tan use vecmath (NaN beyond vecmath.TRIG_LIMIT): the vectorised loop ORs
#    ``slow_path_condition`` into ``slow``; if set, a scalar loop recomputes the flagged
#    elements with ``slow_path_expr`` (elementwise nodes), or the whole node is recomputed
#    with libm trig (nodes with a reduction, whose accumulators already hold the NaNs).
# 5. Reductions accumulate in the output dtype (NumPy's rule, ``reduce_dtype``), in loop
#    order: integer, bool, max/min, all/any results equal NumPy's exactly; float sum, prod and
#    mean equal it up to rounding, as NumPy sums pairwise. max/min propagate NaN
#    (scalar_code's _maximum/_minimum); max/min over an empty axis raise ValueError, as NumPy;
#    mean is sum / count in the output dtype (NaN for an empty axis, as the reference).
# 6. Parallel kernels (``parallel=True``) are the serial kernel in which each loop that can
#    run in parallel, when it has at least PARALLEL_MIN_SIZE elements, is replaced by a call
#    of a helper ``<name>_par<j>`` (same decorator plus ``parallel=True``) running the same
#    loop body under a ``numba.prange`` over the outer dimension only:
#    - fast path: the elements (Numba gives each thread one range, which LLVM vectorises
#      like the serial loop; explicit chunks of 2**12..2**16 elements were slower);
#    - trailing-axis reduction: the kept elements, each with its own scalar accumulator;
#    - leading-axis reduction: blocks of the kept row, each accumulating over the reduced
#      axes (never a prange over a reduced axis, so never two threads on one element);
#    - general path: the first axis when it is not reduced and longer than 1.
#    Every output element is thus computed and accumulated in the serial order: the results
#    equal the serial kernel's, float sums included. Reductions over every axis (one
#    accumulator) and the slow paths below (trig fix-up, libm recomputation:
#    rare) stay serial. The trig flag is private to each prange iteration and added to a
#    count (``+=`` is a prange reduction, ``|=`` is not); the helper returns count != 0.
#    Smaller loops run the serial code: no thread start-up (~2 us). The threshold, measured
#    on 2 cores: a prange beats the serial loop from ~2**11 elements for a transcendental
#    body, from ~2**15 for a memory-bound x*y+z; 2**15 keeps every loop at least as fast, at
#    the price of one more copy of the loop body (a parallel kernel compiles in ~1.5-2.3x
#    the serial time). Why helpers, not prange in the kernel: there, Numba 0.68's parfor
#    pass took the loop dims (assigned under conditions by the broadcast checks) as 1 in
#    prange bodies, so inner loops ran once, and its parallel ``ndarray.fill`` wrote out of
#    bounds; a helper gets dims and arrays as plain arguments.

from __future__ import annotations

import collections
import hashlib
import re
from pathlib import Path

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fusegraph.backends.numba import arrays, scalar_code, vecmath
from fusegraph.backends.numba.cache import ENTRY_DECORATOR, KERNEL_DECORATOR
from fusegraph.backends.numba.scalar_code import (
    cast_expr,
    constant_expr,
    np_dtype,
    scalar_expr,
    slow_path_condition,
    slow_path_expr,
    trig_ops,
)
from fusegraph.ops.elemwise import Elemwise
from fusegraph.ops.fused import FusedElemwise, Reduction, ScalarConstant, Step
from fusegraph.ops.reduction import Reduce, reduce_dtype
from fusegraph.ops.scalar import Cast
from fusegraph.types import is_float

#: The message of the ValueError a kernel raises for shapes that do not broadcast.
BROADCAST_ERROR = "operands could not be broadcast together"
_EMPTY_ERROR = "zero-size array to reduction operation {} which has no identity"
_IND = "    "

#: Loops of fewer elements run serially in a ``parallel`` kernel (see the file's comment).
PARALLEL_MIN_SIZE = 2**15
#: The kept elements of a leading-axis reduction are split among threads in blocks of a
#: multiple of _BLOCK elements (whole cache lines for 4-byte types and up: no false sharing)
#: and of at least _MIN_BLOCK (runs of consecutive elements per row for the prefetcher: a
#: memory-bound x*y+z summed over 10000 x 1000 is 1.3x slower with 2 blocks of 500).
_BLOCK = 16
_MIN_BLOCK = 256
#: Reductions along the innermost loop compute their values in blocks of this many elements
#: (a vectorised loop), then accumulate them in order (``_Kernel.blocked``).
_RED_BLOCK = 256
assert ENTRY_DECORATOR.endswith(")")
#: The decorator of the parallel helpers: ``cache.ENTRY_DECORATOR`` with ``parallel=True``.
#: They stay dispatchers of their own: inlined, they would lose Numba's parallel passes.
PARALLEL_DECORATOR = ENTRY_DECORATOR[:-1] + ", parallel=True)"
#: The names a helper takes from its kernel: inputs, views, outputs, accumulators, hoisted
#: scalars, broadcast multipliers, loop dims and sizes (the loop's own names never match).
_FREE = re.compile(r"\b(?:[fgiorx]\d+|m\d+_\d+|n\d+|size|nkept|nred)\b")


#: Changes whenever this file does (embedded in kernels next to the other hashes).
SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


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


#: The import lines a module of kernels needs (its decorators' pipeline, scalar_code's,
#: ``num_threads``, the block sums and the array intrinsics).
IMPORTS = (
    "import numba\n"
    + "from fusegraph.backends.numba.pipeline import GeneratedCompiler\n"
    + scalar_code.IMPORTS
    + "from fusegraph.backends.numba.loops import block_sum_f32, block_sum_f64, num_threads\n"
    + arrays.IMPORTS
)


#: The op classes whose kernels this module renders (the others' are in ``kernels``).
LOOP_OPS = (Elemwise, FusedElemwise, Reduce)


def as_fused(op, in_types) -> FusedElemwise:
    """``op`` as a ``FusedElemwise``: an ``Elemwise`` is a one-step scalar graph, a
    ``Reduce`` the reduction of its input (cast to its own dtype: the identity step)."""
    if isinstance(op, FusedElemwise):
        return op
    if isinstance(op, Elemwise):
        nin = op.scalar_op.nin
        return FusedElemwise(nin, (Step(op.scalar_op, tuple(range(nin))),), (nin,))
    if isinstance(op, Reduce):
        identity = Step(Cast(dtype=in_types[0].dtype), (0,))
        return FusedElemwise(1, (identity,), (1,), Reduction(0, op.kind, op.axis, op.keepdims))
    raise TypeError(f"kernel_source: {op} is not an Elemwise, FusedElemwise or Reduce")


def _tuple(items) -> str:
    items = list(items)
    if len(items) == 1:
        return f"({items[0]},)"
    return f"({', '.join(items)})"


def _prod(items) -> str:
    items = list(items)
    return " * ".join(items) if items else "1"


class _Kernel:
    """The state of one rendering: the node's scalar graph, its dtypes and static shapes."""

    def __init__(self, op, in_types, out_types, name, parallel=False, contiguous=False):
        self.src_op = op
        self.contiguous = contiguous
        in_types = list(in_types)
        self.op = op = as_fused(op, in_types)
        self.name = name
        self.in_types = list(in_types)
        self.out_types = list(out_types)
        if len(self.in_types) != op.nin or len(self.out_types) != len(op.outputs):
            raise TypeError(f"kernel_source: {op} takes {op.nin} inputs, gives {len(op.outputs)}")
        self.nin = op.nin
        self.ndim = max((t.ndim for t in self.in_types), default=0)
        dtypes = [t.dtype for t in self.in_types]
        for s in op.steps:
            dtypes.append(s.op.output_dtype(*(dtypes[a] for a in s.args)))
        self.dtypes = dtypes
        self.red = op.reduction
        for k, r in enumerate(op.outputs):
            want = dtypes[r]
            if self.red is not None and k == self.red.output:
                want = reduce_dtype(self.red.kind, want)
            if self.out_types[k].dtype != want:
                raise TypeError(f"kernel_source: output {k} is {want}, not {out_types[k]}")
        # statically size-1 inputs (0-d included) are read once, outside the loops
        self.hoisted = [all(d == 1 for d in t.shape) for t in self.in_types]
        self.parallel = parallel
        self.helpers = []  # the sources of the parallel helpers
        # prange loops only where the loop can reach PARALLEL_MIN_SIZE elements
        size = self.static_size()
        self.par = parallel and self.ndim >= 1 and (size is None or size >= PARALLEL_MIN_SIZE)

    # ------------------------------------------------------------------ static shape facts

    def in_dim(self, i: int, axis: int, ndim: int):
        """The dim of input ``i`` on axis ``axis`` of an ``ndim``-d loop (None: absent)."""
        d = axis - (ndim - self.in_types[i].ndim)
        return d if d >= 0 else None

    def static(self, i: int, d: int):
        return self.in_types[i].shape[d]

    def static_size(self):
        """The loop's number of elements if the static shapes determine it, else None."""
        size = 1
        for a in range(self.ndim):
            dims = {
                self.static(i, d)
                for i in range(self.nin)
                if (d := self.in_dim(i, a, self.ndim)) is not None and self.static(i, d) != 1
            }
            if None in dims:
                return None
            size *= max(dims, default=1)
        return size

    # ------------------------------------------------------------------ code pieces

    def shape_code(self) -> list:
        """Statements computing ``n<axis>``, the loop's length on each axis: that of the
        inputs' dims not statically 1, which must all be equal (elementwise ops broadcast
        only static 1s), else 1; then one test of them all (a ``raise`` each would cost
        Numba more to compile than the loop: a third of a large fused kernel's compile)."""
        lines, tests = [], []
        for a in range(self.ndim):
            n = f"n{a}"
            first = True
            for i in range(self.nin):
                d = self.in_dim(i, a, self.ndim)
                if d is None or self.static(i, d) == 1:
                    continue
                s = f"i{i}.shape[{d}]"
                if first:
                    lines.append(f"{n} = {s}")
                    first = False
                else:
                    tests.append(f"{s} != {n}")
            if first:
                lines.append(f"{n} = 1")
        if tests:
            lines += [f"if {' or '.join(tests)}:", f"{_IND}raise ValueError({BROADCAST_ERROR!r})"]
        return lines

    def closure(self, refs) -> list:
        """The step indices needed to compute ``refs``, in order."""
        need = set()
        todo = [r for r in refs if r >= self.nin]
        while todo:
            r = todo.pop()
            if r - self.nin in need:
                continue
            need.add(r - self.nin)
            todo += [a for a in self.op.steps[r - self.nin].args if a >= self.nin]
        return sorted(need)

    def ref(self, r: int) -> str:
        return f"a{r}" if r < self.nin else f"s{r - self.nin}"

    def step_line(self, j: int, trig: str) -> str:
        """``s<j> = <expr>  # <op>``; ``trig`` is "vec" (vecmath) or "slow" (libm)."""
        sop, args = self.op.steps[j]
        in_dt = tuple(self.dtypes[a] for a in args)
        out_dt = self.dtypes[self.nin + j]
        names = [self.ref(a) for a in args]
        if trig == "slow" and sop.name in trig_ops() and not isinstance(sop, ScalarConstant):
            expr = slow_path_expr(sop, in_dt, out_dt, names)
        else:
            expr = scalar_expr(sop, in_dt, out_dt, names)
        return f"s{j} = {expr}  # {sop}"

    def step_lines(self, steps, trig: str) -> list:
        """The lines of ``steps``; sigmoid and softplus steps of one ``x`` (or of ``x`` and
        ``-x``) compute ``exp(-|x|)`` (and its log1p) once, before the first of them."""
        groups = collections.defaultdict(list)
        for j in steps:
            sop, args = self.op.steps[j]
            dt = self.dtypes[self.nin + j]
            if sop.name in ("sigmoid", "softplus") and self.dtypes[args[0]] == dt:
                groups[(self._unsigned(args[0]), dt)].append(j)
        shared = {j: (key, g[0]) for key, g in groups.items() if len(g) > 1 for j in g}
        lines = []
        for j in steps:
            if j not in shared:
                lines.append(self.step_line(j, trig))
                continue
            (x, dt), first = shared[j]
            s = "f32" if dt == "float32" else "f64"
            e, lo, lg = f"ee{first}", f"el{first}", f"lg{first}"
            if j == first:
                lines.append(f"{e}, {lo} = vecmath.exp_neg_abs_{s}({self.ref(x)})")
                if any(self.op.steps[k].op.name == "softplus" for k in groups[(x, dt)]):
                    lines.append(f"{lg} = vecmath.softplus_log_{s}({e})")
            sop, (a,) = self.op.steps[j]
            extra = f", {lg}" if sop.name == "softplus" else ""
            lines.append(f"s{j} = vecmath.{sop.name}_from_{s}({self.ref(a)}, {e}, {lo}{extra})")
        return lines

    def _unsigned(self, r: int) -> int:
        """``r``, or the value it negates (``-x`` has the ``|x|`` of ``x``)."""
        if r >= self.nin:
            sop, args = self.op.steps[r - self.nin]
            if sop.name == "neg" and self.dtypes[args[0]] == self.dtypes[r]:
                return args[0]
        return r

    def trig_steps(self, steps) -> list:
        return [
            j
            for j in steps
            if self.op.steps[j].op.name in trig_ops()
            and not isinstance(self.op.steps[j].op, ScalarConstant)
        ]

    def trig_cond(self, j: int) -> str:
        sop, args = self.op.steps[j]
        in_dt = tuple(self.dtypes[a] for a in args)
        return slow_path_condition(sop, in_dt, [self.ref(a) for a in args])

    def body(self, outs, load, store, trig: str, flag: str = "slow") -> list:
        """The loop body computing outputs ``outs`` (positions) for one element.

        ``load(i)`` is the expression reading input ``i``; ``store(k, name)`` the lines that
        consume output ``k``'s value. ``trig``: "vec" (vecmath, OR-ing the huge-argument
        condition into ``flag``), "slow" (libm) or "fixup" (libm, only for flagged elements).
        """
        refs = [self.op.outputs[k] for k in outs]
        steps = self.closure(refs)
        used = sorted(
            {a for j in steps for a in self.op.steps[j].args if a < self.nin}
            | {r for r in refs if r < self.nin}
        )
        lines = [f"a{i} = {load(i)}" for i in used]
        tail = []
        if trig == "fixup":
            tsteps = self.trig_steps(steps)
            first = self.closure([a for j in tsteps for a in self.op.steps[j].args])
            lines += [self.step_line(j, "slow") for j in first]
            conds = " | ".join(self.trig_cond(j) for j in tsteps)
            lines.append(f"if {conds}:")
            rest = [j for j in steps if j not in set(first)]
            tail = [self.step_line(j, "slow") for j in rest]
            for k, r in zip(outs, refs):
                tail += store(k, self.ref(r))
            return lines + [_IND + t for t in tail]
        lines += self.step_lines(steps, trig)
        if trig == "vec":
            lines += [f"{flag} |= {self.trig_cond(j)}" for j in self.trig_steps(steps)]
        for k, r in zip(outs, refs):
            lines += store(k, self.ref(r))
        return lines

    # ------------------------------------------------------------------ reductions

    def value_dtype(self, k: int) -> str:
        return self.dtypes[self.op.outputs[k]]

    def acc_dtype(self) -> str:
        return self.out_types[self.red.output].dtype

    def init(self) -> str:
        kind, dt = self.red.kind, self.acc_dtype()
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

    def combine(self, acc: str, v: str) -> str:
        kind, dt = self.red.kind, self.acc_dtype()
        vdt = self.value_dtype(self.red.output)
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

    # ------------------------------------------------------------------ loops

    def general_loop(self, trig, par=False) -> list:
        """Nested loops over the loop shape ``n<axis>`` computing every output; output ``k``
        is stored in ``out_name(k)`` (its accumulator if reduced).

        ``par``: return (setup lines, loop lines) where the outermost loop (``ndim >= 1``,
        axis 0 not reduced: each iteration owns its slab of the outputs) is a ``numba.prange``
        (for a helper, see ``helper``); with ``trig`` "vec" each iteration ORs the slow-path
        condition into a private flag and adds it to the ``nslow`` count (a ``+=`` reduction:
        Numba has no ``|=`` one)."""
        lines = []
        ndim, out_name = self.ndim, self.out_name
        outs = list(range(len(self.op.outputs)))
        js = [f"j{a}" for a in range(ndim)]

        def load(i):
            if self.hoisted[i]:
                return f"x{i}"
            idx = []
            for d in range(self.in_types[i].ndim):
                a = d + ndim - self.in_types[i].ndim
                idx.append("0" if self.static(i, d) == 1 else js[a])
            return f"i{i}[{', '.join(idx)}]"

        def store(k, v):
            if ndim == 0:
                return [f"{out_name(k)}[()] = {v}"] if not self.is_red(k) else self._acc0(k, v)
            if self.is_red(k):
                idx = ", ".join("0" if a in self.red.axis else js[a] for a in range(ndim))
                acc = f"{out_name(k)}[{idx}]"
                return [f"{acc} = {self.combine(acc, v)}"]
            return [f"{out_name(k)}[{', '.join(js)}] = {v}"]

        if par:
            flag = trig == "vec"
            loop = ["for j0 in numba.prange(n0):"]
            if flag:
                loop.append(f"{_IND}sl = False")
            depth = 1
            for a in range(1, ndim):
                loop.append(_IND * depth + f"for j{a} in range(n{a}):")
                depth += 1
            loop += [_IND * depth + t for t in self.body(outs, load, store, trig, "sl")]
            if flag:
                loop.append(f"{_IND}nslow += sl")
            return lines, loop
        inner = ndim - 1
        blocked = trig != "fixup" and self.red is not None and inner in self.red.axis
        depth = 0
        for a in range(inner if blocked else ndim):
            lines.append(_IND * depth + f"for j{a} in range(n{a}):")
            depth += 1
        if not blocked:
            return lines + [_IND * depth + t for t in self.body(outs, load, store, trig)]
        idx = ", ".join("0" if a in self.red.axis else js[a] for a in range(ndim))
        acc = f"{out_name(self.red.output)}[{idx}]"
        lines[:0] = [self.block_buffer()]

        def row(name, i, sl):
            if name == "o":
                return f"{out_name(i)}[{', '.join(js[:inner] + [sl])}]"
            t = self.in_types[i]
            if self.hoisted[i] or t.ndim < 1 or t.shape[-1] == 1:  # constant along the row
                return None
            outer = [
                "0" if self.static(i, d) == 1 else js[d + ndim - t.ndim] for d in range(t.ndim - 1)
            ]
            return f"i{i}[{', '.join(outer + [sl])}]"

        blocked = self.blocked(f"n{inner}", outs, row, load, trig, acc)
        return lines + [_IND * depth + t for t in blocked]

    def block_buffer(self) -> str:
        """The buffer of a block of the reduced values (``blocked``)."""
        return f"tb = empty_c({_RED_BLOCK}, {np_dtype(self.value_dtype(self.red.output))})"

    def blocked(self, n, outs, row, load, trig, acc) -> list:
        """The innermost loop (``n`` long) of a reduction along it, in blocks: the loop
        computing the values (stored in ``tb``; vectorisable, as it has no floating-point
        accumulation) and then the loop accumulating them into ``acc`` in order.

        ``row(name, i, sl)`` is the 1-d view along the loop of input (``name`` "i") or
        output (``name`` "o") ``i`` at slice ``sl``, or None for an input that does not vary
        along it (read with ``load(i)``). Elements are read and written through views of
        the block indexed from 0 (``a[c + q]`` does not vectorise: Numba wraps negative
        indices, and LLVM then gathers)."""
        rk = self.red.output
        views = {i: row("i", i, "c:ce") for i in range(self.nin)}
        views = {i: v for i, v in views.items() if v is not None}
        lines = [f"{_IND}w{i} = {v}" for i, v in views.items()]
        lines += [f"{_IND}u{k} = {row('o', k, 'c:ce')}" for k in outs if k != rk]

        def load_block(i):
            return f"w{i}[q]" if i in views else load(i)

        def store_block(k, v):
            return [f"tb[q] = {v}"] if k == rk else [f"u{k}[q] = {v}"]

        head = [
            f"for c in range(0, {n}, {_RED_BLOCK}):",
            f"{_IND}ce = min(c + {_RED_BLOCK}, {n})",
            *lines,
            f"{_IND}for q in range(ce - c):",
            *[_IND * 2 + t for t in self.body(outs, load_block, store_block, trig)],
        ]
        if not (self.red.kind in ("sum", "mean") and self.acc_dtype().startswith("float")):
            return head + [
                f"{_IND}av = {acc}",
                f"{_IND}for q in range(ce - c):",
                f"{_IND * 2}av = {self.combine('av', 'tb[q]')}",
                f"{_IND}{acc} = av",
            ]
        # Float sums: the block's pairwise sum (``block_sum_*``), then to the total: a
        # vectorised add, and a smaller rounding error than one running sum.
        fn = "block_sum_f32" if self.acc_dtype() == "float32" else "block_sum_f64"
        return head + [f"{_IND}{acc} = {self.combine(acc, f'{fn}(tb, ce - c)')}"]

    def _acc0(self, k, v):
        acc = f"{self.out_name(k)}[()]"
        return [f"{acc} = {self.combine(acc, v)}"]

    def is_red(self, k) -> bool:
        return self.red is not None and k == self.red.output

    def out_name(self, k) -> str:
        """Where the loops store output ``k``: its accumulator ``r<k>`` if reduced."""
        return f"r{k}" if self.is_red(k) else f"o{k}"

    def fast_loop(self, trig, par=False) -> list:
        """The flat loop(s) over the 1-d views ``f<i>`` (inputs) and ``g<k>`` (outputs)."""
        outs = list(range(len(self.op.outputs)))

        def load(i):
            return f"x{i}" if self.hoisted[i] else f"f{i}[e]"

        if par:
            return self.par_fast_loop(outs, load, trig)
        if self.red is None:

            def store(k, v):
                return [f"g{k}[e] = {v}"]

            return ["for e in range(size):"] + [
                _IND + t for t in self.body(outs, load, store, trig)
            ]
        rk = self.red.output
        if self.trailing():
            # trailing axes: each kept element accumulates its row, in blocks (``blocked``)
            def row(name, i, sl):
                if name == "o":
                    return f"g{i}[p * nred:p * nred + nred][{sl}]"
                return None if self.hoisted[i] else f"f{i}[p * nred:p * nred + nred][{sl}]"

            blocked = self.blocked("nred", outs, row, load, trig, f"g{rk}[p]")
            return [
                self.block_buffer(),
                "for p in range(nkept):",
                *[_IND + t for t in blocked],
            ]

        # leading axes: the kept row accumulates, one reduced index at a time

        def store(k, v):
            if k == rk:
                return [f"g{k}[p] = {self.combine(f'g{k}[p]', v)}"]
            return [f"g{k}[e] = {v}"]

        return [
            "for q in range(nred):",
            f"{_IND}for p in range(nkept):",
            f"{_IND * 2}e = q * nkept + p",
            *[_IND * 2 + t for t in self.body(outs, load, store, trig)],
        ]

    def par_fast_loop(self, outs, load, trig) -> list:
        """``fast_loop`` with a ``numba.prange`` over its outer dimension: the elements, the
        kept elements of a trailing-axis reduction (one accumulator each, summed in the serial
        order), or blocks of the kept row of a leading-axis reduction (each block accumulates
        over the reduced axes in the serial order; never a prange over a reduced axis).
        The trig flag is private per iteration and counted into ``nslow`` (see general_loop).
        """
        flag = trig == "vec"
        start = ["sl = False"] if flag else []
        end = ["nslow += sl"] if flag else []
        if self.red is None:

            def store(k, v):
                return [f"g{k}[e] = {v}"]

            return [
                "for e in numba.prange(size):",
                *[_IND + t for t in start + self.body(outs, load, store, trig, "sl") + end],
            ]
        # The loops over a row (trailing) or a block (leading) index 0-based views of it
        # (``v`` inputs, ``u`` outputs, ``h`` accumulators): LLVM does not vectorise
        # ``x[b + q]`` (an integer sum was 7x slower), as Numba wraps negative indices.
        rk = self.red.output
        ins = [i for i in range(self.nin) if not self.hoisted[i]]
        outs_e = [k for k in outs if k != rk]

        def load_view(i):
            return f"x{i}" if self.hoisted[i] else f"v{i}[q]"

        def views(n, indent):
            return [f"{indent}v{i} = f{i}[b:b + {n}]" for i in ins] + [
                f"{indent}u{k} = g{k}[b:b + {n}]" for k in outs_e
            ]

        if self.trailing():

            def store(k, v):
                if k == rk:
                    return [f"acc = {self.combine('acc', v)}"]
                return [f"u{k}[q] = {v}"]

            return [
                "for p in numba.prange(nkept):",
                f"{_IND}b = p * nred",
                *views("nred", _IND),
                f"{_IND}acc = {self.init()}",
                *[_IND + t for t in start],
                f"{_IND}for q in range(nred):",
                *[_IND * 2 + t for t in self.body(outs, load_view, store, trig, "sl")],
                f"{_IND}g{rk}[p] = acc",
                *[_IND + t for t in end],
            ]

        def store_block(k, v):
            if k == rk:
                return [f"h{k}[q] = {self.combine(f'h{k}[q]', v)}"]
            return [f"u{k}[q] = {v}"]

        # One block per thread (see _BLOCK): the longest runs of consecutive elements per
        # row (64 blocks for 2 threads were up to 2.7x slower).
        return [
            "nthr = num_threads()",
            f"w = max(((nkept + nthr - 1) // nthr + {_BLOCK - 1}) // {_BLOCK} * {_BLOCK}, "
            f"{_MIN_BLOCK})",
            "for c in numba.prange((nkept + w - 1) // w):",
            f"{_IND}lo = c * w",
            f"{_IND}cnt = min(lo + w, nkept) - lo",
            f"{_IND}h{rk} = g{rk}[lo:lo + cnt]",
            *[_IND + t for t in start],
            f"{_IND}for r in range(nred):",
            f"{_IND * 2}b = r * nkept + lo",
            *views("cnt", _IND * 2),
            f"{_IND * 2}for q in range(cnt):",
            *[_IND * 3 + t for t in self.body(outs, load_view, store_block, trig, "sl")],
            *[_IND + t for t in end],
        ]

    def flat_cond(self, i: int) -> str:
        """When input ``i`` can be read through a flat view of the loop's size: C order, and
        (unless its dims are the loop's, so its size is) the loop's size."""
        t = self.in_types[i]
        c_order = [] if self.contiguous else [f"i{i}.flags.c_contiguous"]
        if t.ndim == self.ndim and 1 not in t.shape:
            return " and ".join(c_order)
        return " and ".join(c_order + [f"i{i}.size == size"])

    def trailing(self) -> bool:
        """Whether the reduction is over trailing axes (the fast path's outer x inner)."""
        axis = self.red.axis
        return axis == tuple(range(self.ndim - len(axis), self.ndim))

    def fast_ok(self) -> bool:
        """Whether the kernel has a flat path: only for loops of 2 dims and more (a 1-d loop
        is the flat loop, and Numba compiles it for each layout), elementwise or reducing
        leading axes. A reduction over trailing axes runs as fast in the general loop's
        blocks (``blocked``); parallel kernels keep its flat path, whose helper gives each
        thread whole rows."""
        if self.ndim < 2 or self.broadcasts():
            return False
        if self.red is None or self.red.axis == tuple(range(len(self.red.axis))):
            return True
        return self.par and self.trailing()

    def broadcasts(self) -> bool:
        """Whether an input that is read in the loop is statically broadcast along an axis
        that is not: its size is then the loop's only if that axis has length 1 at run time,
        so a flat path would be dead code (compiled all the same)."""
        for a in range(self.ndim):
            dims = [self.in_dim(i, a, self.ndim) for i in range(self.nin)]
            if all(d is None or self.static(i, d) == 1 for i, d in enumerate(dims)):
                continue  # no input varies along this axis
            if any(
                not self.hoisted[i] and (d is None or self.static(i, d) == 1)
                for i, d in enumerate(dims)
            ):
                return True
        return False

    def has_trig(self, outs) -> bool:
        refs = [self.op.outputs[k] for k in outs]
        return bool(self.trig_steps(self.closure(refs)))

    # ------------------------------------------------------------------ modes

    def alloc(self, k) -> list:
        """Allocate output ``k`` (its accumulator, initialised, if reduced)."""
        dims = [f"n{a}" for a in range(self.ndim)]
        dt = np_dtype(self.out_types[k].dtype)
        if not self.is_red(k):
            return [f"o{k} = empty_c({_tuple(dims) if dims else '()'}, {dt})"]
        kd = ["1" if a in self.red.axis else dims[a] for a in range(self.ndim)]
        lines = [
            f"nred = {_prod(dims[a] for a in self.red.axis)}",
            f"r{k} = empty_c({_tuple(kd) if kd else '()'}, {dt})",
            *(self.fill(k) if kd else [f"r{k}[()] = {self.init()}"]),
        ]
        if self.red.kind in ("max", "min"):
            kind = "maximum" if self.red.kind == "max" else "minimum"
            lines += ["if nred == 0:", f"{_IND}raise ValueError({_EMPTY_ERROR.format(kind)!r})"]
        return lines

    def fill(self, k) -> list:
        """Set every element of the accumulator ``r<k>`` to the reduction's initial value (a
        loop over its flat view: ``ndarray.fill`` costs Numba a compile per dtype and ndim)."""
        return [
            f"rv{k} = flat_view(r{k})",
            f"for p in range(rv{k}.shape[0]):",
            f"{_IND}rv{k}[p] = {self.init()}",
        ]

    def finish(self, k) -> list:
        """Turn output ``k``'s accumulator into the output ``o<k>``."""
        if not self.is_red(k):
            return []
        lines = []
        dt = self.out_types[k].dtype
        if self.red.kind == "mean":
            n = np_dtype(dt)
            lines += [
                f"rf{k} = flat_view(r{k})",
                f"for p in range(r{k}.size):",
                f"{_IND}rf{k}[p] = {n}(rf{k}[p] / {n}(nred))",
            ]
        if self.red.keepdims:
            return lines + [f"o{k} = r{k}"]
        kept = [f"n{a}" for a in range(self.ndim) if a not in self.red.axis]
        return lines + [f"o{k} = c_view(r{k}, {_tuple(kept) if kept else '()'})"]

    def helper(self, loop, trig) -> str:
        """Make ``loop`` (prange loops) the body of a parallel helper function and return
        the statement calling it. The helper takes the kernel's names it uses (``_FREE``) as
        arguments and, with ``trig``, returns whether the ``nslow`` count is nonzero."""
        name = f"{self.name}_par{len(self.helpers)}"
        args = ", ".join(dict.fromkeys(_FREE.findall("\n".join(loop))))
        body = ["nslow = 0", *loop, "return nslow != 0"] if trig else loop
        head = [PARALLEL_DECORATOR, f"def {name}({args}):"]
        self.helpers.append("\n".join(head + [_IND + t for t in body]) + "\n")
        return f"slow = {name}({args})" if trig else f"{name}({args})"

    def par_switch(self, conds, setup, loop, serial, trig) -> list:
        """``setup`` and a call of the helper running ``loop`` for loops of at least
        PARALLEL_MIN_SIZE elements and ``conds``, else ``serial``."""
        cond = " and ".join([f"size >= {PARALLEL_MIN_SIZE}", *conds])
        par = [*setup, self.helper(loop, trig)]
        return [f"if {cond}:", *[_IND + t for t in par], "else:", *[_IND + t for t in serial]]

    def main_mode(self) -> list:
        nout = len(self.op.outputs)
        outs = list(range(nout))
        lines = [f"size = {_prod(f'n{a}' for a in range(self.ndim))}"]
        for k in outs:
            lines += self.alloc(k)
        trig = self.has_trig(outs)
        if trig:
            lines.append("slow = False")
        general = self.general_loop("vec" if trig else "none")
        if self.par and (self.red is None or 0 not in self.red.axis):
            setup, loop = self.general_loop("vec" if trig else "none", True)
            general = self.par_switch(["n0 > 1"], setup, loop, general, trig)
        if self.fast_ok():
            conds = [self.flat_cond(i) for i in range(self.nin) if not self.hoisted[i]]
            conds = [c for c in conds if c]  # (none for contiguous inputs of the loop's dims)
            fast = [f"f{i} = flat_view(i{i})" for i in range(self.nin) if not self.hoisted[i]]
            for k in outs:
                if self.is_red(k):
                    fast.append(f"g{k} = flat_view(r{k})")
                else:
                    fast.append(f"g{k} = flat_view(o{k})")
            if self.red is not None:
                fast.append(f"nkept = r{self.red.output}.size")
            serial = self.fast_loop("vec" if trig else "none")
            # (a reduction over all axes has one accumulator: it stays serial)
            if self.par and (self.red is None or len(self.red.axis) < self.ndim):
                loop = self.fast_loop("vec" if trig else "none", True)
                more = []
                if self.red is not None:  # at least two rows or two blocks
                    more = ["nkept > 1" if self.trailing() else f"nkept > {_MIN_BLOCK}"]
                serial = self.par_switch(more, [], loop, serial, trig)
            fast += serial
            if conds:
                lines.append(f"if {' and '.join(conds)}:")
                lines += [_IND + t for t in fast]
                lines.append("else:")
                lines += [_IND + t for t in general]
            else:
                lines += fast
        else:
            lines += general
        if trig:
            lines.append("if slow:")
            if self.red is None:
                fix = self.general_loop("fixup")
            else:
                fix = self.fill(self.red.output)
                fix += self.general_loop("slow")
            lines += [_IND + t for t in fix]
        for k in outs:
            lines += self.finish(k)
        return lines

    def render(self) -> str:
        op = self.op
        args = ", ".join(f"i{i}" for i in range(self.nin))
        head = [
            f"# {self.src_op}",
            f"#   inputs: {', '.join(str(t) for t in self.in_types) or 'none'}",
            f"#   scalar_code {scalar_code.SOURCE_HASH}, vecmath {vecmath.SOURCE_HASH}, "
            f"loops {SOURCE_HASH}",
            KERNEL_DECORATOR,
            f"def {self.name}({args}):",
        ]
        lines = self.shape_code()
        lines += [
            f"x{i} = i{i}[{', '.join(['0'] * self.in_types[i].ndim) or '()'}]"
            for i in range(self.nin)
            if self.hoisted[i]
        ]
        lines += self.main_mode()
        ret = ", ".join(f"o{k}" for k in range(len(op.outputs)))
        lines.append(f"return {ret}")
        return "\n\n".join(["\n".join(head + [_IND + t for t in lines]) + "\n", *self.helpers])


def kernel_source(
    op, in_types, out_types, name: str, parallel: bool = False, contiguous: bool = False
) -> str:
    """The source of one njit function ``name(i0, i1, ...)`` computing the node like
    ``op.impl``: same dtypes, shapes and values (transcendentals within a few ulp; float
    sums up to rounding order), returning the output or a tuple of the outputs.

    Args:
        op: an ``Elemwise``, ``FusedElemwise`` or ``Reduce``.
        in_types: the ``TensorType`` of each input (static dims decide where known).
        out_types: the ``TensorType`` of each output (their dtypes are checked).
        name: the function's name.
        parallel: whether to compile with ``parallel=True`` and run the outer dimension of
            the large loops with ``numba.prange`` (same results; see the file's comment).
        contiguous: whether the inputs are C-contiguous arrays (a linked kernel's, see
            ``link``): then the flat loop needs no layout test, and the nested one is
            rendered only where an input's size may differ from the loop's.

    The source needs the globals of ``IMPORTS`` (this module's) and
    ``__fusegraph_cacheable__`` (set by ``cache.load_module``).
    """
    return _Kernel(op, in_types, out_types, name, parallel, contiguous).render()


def module_source(kernels) -> str:
    """A standalone module (imports, then the kernels' sources), e.g. for ``load_module``."""
    return IMPORTS + "\n\n" + "\n\n".join(kernels)


__all__ = [
    "BROADCAST_ERROR",
    "IMPORTS",
    "LOOP_OPS",
    "PARALLEL_DECORATOR",
    "PARALLEL_MIN_SIZE",
    "SOURCE_HASH",
    "as_fused",
    "num_threads",
    "kernel_source",
    "module_source",
]
