"""Loop generator of the Numba backend: ``kernel_source`` renders an ``Elemwise``,
``FusedElemwise`` (and the reduction fused into it) or ``Reduce`` node as the source of one
njit function with explicit loops, NumPy's broadcasting and the scalar code of ``scalar_code``.
This module holds the node's facts and the statements computing one element (``LoopNest``)
and puts the kernel together; the loops around them are written by ``loops_flat``,
``loops_nested``, ``loops_reduce`` and ``loops_parallel`` into a ``codebuilder.Code``."""

# Shape of a generated kernel (inputs i0, i1, ...; loop dims n0, n1, ...):
#
# 1. The loop shape: per axis (inputs align right, as NumPy), the length of the inputs' dims
#    that are not statically 1. Elementwise ops broadcast only static 1s, so those lengths
#    must be equal; else the kernel raises ValueError(BROADCAST_ERROR) (the Function wrapper
#    re-runs the py backend for the detailed message).
# 2. Main mode (every output has the loop shape): outputs are fresh C-contiguous arrays.
#    - Fast path (``loops_flat``), when every input that is not statically of size 1 is
#      C-contiguous with the loop's size: one flat loop over 1-d views, which LLVM
#      vectorises. Statically size-1 inputs are read once. A fused reduction over trailing
#      or leading axes has flat loops of its own; other axis sets take the general path.
#    - General path (``loops_nested``): nested loops over the loop shape; an input's index
#      is 0 on its static length-1 dims, the loop index on the others.
# 3. Every output has the loop's shape (before a reduction): ``FusedElemwise`` requires its
#    outputs to have the loop's broadcast pattern.
# 4. sin/cos/tan use vecmath (NaN beyond vecmath.TRIG_LIMIT): the vectorised loop ORs
#    ``slow_path_condition`` into ``slow``; if set, a scalar loop recomputes the flagged
#    elements with ``slow_path_expr`` (elementwise nodes), or the whole node is recomputed
#    with libm trig (nodes with a reduction, whose accumulators already hold the NaNs).
# 5. Reductions (``loops_reduce``) accumulate in the output dtype, in loop order, into an
#    accumulator ``r<k>`` that becomes the output at the end.
# 6. Parallel kernels (``parallel=True``, ``loops_parallel``) run each large loop that can
#    run in parallel in a helper ``<name>_par<j>`` under a ``numba.prange`` over its outer
#    dimension, with the serial kernel's results.
#
# The kernel's names: ``x<i>`` an input read once (statically size 1), ``size`` the loop's
# number of elements, ``o<k>`` the outputs, ``r<k>`` an accumulator, ``nred``/``nkept`` the
# number of its reduced/kept elements, ``f<i>``/``g<k>`` flat views of inputs/outputs,
# ``j<axis>``/``e`` loop indices, ``a<i>``/``s<j>`` an element's input/step values.

from __future__ import annotations

import collections
import hashlib
from pathlib import Path

from fusegraph.backends.numba import (
    arrays,
    loops_flat,
    loops_nested,
    loops_parallel,
    loops_reduce,
    scalar_code,
    vecmath,
)
from fusegraph.backends.numba.cache import KERNEL_DECORATOR
from fusegraph.backends.numba.codebuilder import Code, Function, product_expr, tuple_expr
from fusegraph.backends.numba.loops_parallel import (
    PARALLEL_DECORATOR,
    PARALLEL_MIN_SIZE,
    num_threads,
)
from fusegraph.backends.numba.loops_reduce import block_sum_f32, block_sum_f64
from fusegraph.backends.numba.scalar_code import (
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

#: The message of the ValueError a kernel raises for shapes that do not broadcast.
BROADCAST_ERROR = "operands could not be broadcast together"

#: The loop generator's files (the code builder included).
_SOURCES = ("codebuilder", "loops", "loops_flat", "loops_nested", "loops_parallel", "loops_reduce")
#: Changes whenever the loop generator does (embedded in kernels next to the other hashes).
SOURCE_HASH = hashlib.sha256(
    b"".join((Path(__file__).parent / f"{name}.py").read_bytes() for name in _SOURCES)
).hexdigest()[:16]

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


class LoopNest:
    """One node as a loop nest: its scalar graph (``as_fused``), dtypes and static shapes,
    the statements computing one element (``body``), and the parallel helpers written for
    it (``loops_parallel``)."""

    def __init__(self, op, in_types, out_types, name, parallel=False, contiguous=False):
        self.contiguous = contiguous
        self.in_types = in_types = list(in_types)
        self.op = op = as_fused(op, in_types)
        self.name = name
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
        self.helpers: list[Function] = []
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

    def trailing(self) -> bool:
        """Whether the reduction is over trailing axes."""
        axis = self.red.axis
        return axis == tuple(range(self.ndim - len(axis), self.ndim))

    def is_red(self, k) -> bool:
        return self.red is not None and k == self.red.output

    def out_name(self, k) -> str:
        """Where the loops store output ``k``: its accumulator ``r<k>`` if reduced."""
        return f"r{k}" if self.is_red(k) else f"o{k}"

    def value_dtype(self, k: int) -> str:
        """The dtype of output ``k``'s values (before a reduction)."""
        return self.dtypes[self.op.outputs[k]]

    # ------------------------------------------------------------------ one element

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

    def has_trig(self, outs) -> bool:
        refs = [self.op.outputs[k] for k in outs]
        return bool(self.trig_steps(self.closure(refs)))

    def body(self, code: Code, outs, load, store, trig: str, flag: str = "slow") -> None:
        """Write the loop body computing outputs ``outs`` (positions) for one element.

        ``load(i)`` is the expression reading input ``i``; ``store(k, name)`` writes the
        lines that consume output ``k``'s value. ``trig``: "vec" (vecmath, OR-ing the
        huge-argument condition into ``flag``), "slow" (libm) or "fixup" (libm, only for
        flagged elements).
        """
        refs = [self.op.outputs[k] for k in outs]
        steps = self.closure(refs)
        used = sorted(
            {a for j in steps for a in self.op.steps[j].args if a < self.nin}
            | {r for r in refs if r < self.nin}
        )
        code(*[f"a{i} = {load(i)}" for i in used])
        if trig == "fixup":
            tsteps = self.trig_steps(steps)
            first = self.closure([a for j in tsteps for a in self.op.steps[j].args])
            code(*[self.step_line(j, "slow") for j in first])
            with code.block(f"if {' | '.join(self.trig_cond(j) for j in tsteps)}:"):
                code(*[self.step_line(j, "slow") for j in steps if j not in set(first)])
                for k, r in zip(outs, refs):
                    store(k, self.ref(r))
            return
        code(*self.step_lines(steps, trig))
        if trig == "vec":
            code(*[f"{flag} |= {self.trig_cond(j)}" for j in self.trig_steps(steps)])
        for k, r in zip(outs, refs):
            store(k, self.ref(r))


# ---------------------------------------------------------------------- the kernel


def _loop_shape(nest: LoopNest, code: Code) -> None:
    """Statements computing ``n<axis>``, the loop's length on each axis: that of the
    inputs' dims not statically 1, which must all be equal (elementwise ops broadcast
    only static 1s), else 1; then one test of them all (a ``raise`` each would cost
    Numba more to compile than the loop: a third of a large fused kernel's compile)."""
    tests = []
    for a in range(nest.ndim):
        n = f"n{a}"
        first = True
        for i in range(nest.nin):
            d = nest.in_dim(i, a, nest.ndim)
            if d is None or nest.static(i, d) == 1:
                continue
            s = f"i{i}.shape[{d}]"
            if first:
                code(f"{n} = {s}")
                first = False
            else:
                tests.append(f"{s} != {n}")
        if first:
            code(f"{n} = 1")
    if tests:
        with code.block(f"if {' or '.join(tests)}:"):
            code(f"raise ValueError({BROADCAST_ERROR!r})")


def _main_mode(nest: LoopNest, code: Code) -> None:
    """Allocate the outputs, run the fast path when it applies, else the general one
    (each in a parallel helper when large), the trig slow path, and finish reductions."""
    outs = range(len(nest.op.outputs))
    dims = [f"n{a}" for a in range(nest.ndim)]
    code(f"size = {product_expr(dims)}")
    for k in outs:
        if nest.is_red(k):
            loops_reduce.alloc(nest, code, k)
        else:
            code(f"o{k} = empty_c({tuple_expr(dims)}, {np_dtype(nest.out_types[k].dtype)})")
    trig = "vec" if nest.has_trig(outs) else "none"
    if trig == "vec":
        code("slow = False")
    flat = loops_flat.applies(nest)
    conds = loops_flat.conditions(nest) if flat else []
    general = Code()  # not needed when the flat path runs without run-time tests
    if (not flat or conds) and nest.par and (nest.red is None or 0 not in nest.red.axis):
        parallel, serial = loops_parallel.nested_loop, loops_nested.loop
        loops_parallel.switch(nest, general, ["n0 > 1"], parallel, serial, trig)
    elif not flat or conds:
        loops_nested.loop(nest, general, trig)
    if flat:
        fast = Code()
        loops_flat.views(nest, fast)
        # (a reduction over all axes has one accumulator: it stays serial)
        if nest.par and (nest.red is None or len(nest.red.axis) < nest.ndim):
            more = []
            if nest.red is not None:  # at least two rows or two blocks
                rows = "nkept > 1" if nest.trailing() else f"nkept > {loops_parallel.MIN_BLOCK}"
                more = [rows]
            parallel, serial = loops_parallel.flat_loop, loops_flat.loop
            loops_parallel.switch(nest, fast, more, parallel, serial, trig)
        else:
            loops_flat.loop(nest, fast, trig)
        if conds:
            with code.block(f"if {' and '.join(conds)}:"):
                code.extend(fast)
            with code.block("else:"):
                code.extend(general)
        else:
            code.extend(fast)
    else:
        code.extend(general)
    if trig == "vec":
        with code.block("if slow:"):
            if nest.red is None:
                loops_nested.loop(nest, code, "fixup")
            else:
                loops_reduce.fill(nest, code, nest.red.output)
                loops_nested.loop(nest, code, "slow")
    for k in outs:
        if nest.is_red(k):
            loops_reduce.finish(nest, code, k)


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
            the large loops with ``numba.prange`` (same results; see ``loops_parallel``).
        contiguous: whether the inputs are C-contiguous arrays (a linked kernel's, see
            ``link``): then the flat loop needs no layout test, and the nested one is
            rendered only where an input's size may differ from the loop's.

    The source needs the globals of ``IMPORTS`` (this module's) and
    ``__fusegraph_cacheable__`` (set by ``cache.load_module``).
    """
    nest = LoopNest(op, in_types, out_types, name, parallel, contiguous)
    comments = [
        f"# {op}",
        f"#   inputs: {', '.join(str(t) for t in nest.in_types) or 'none'}",
        f"#   scalar_code {scalar_code.SOURCE_HASH}, vecmath {vecmath.SOURCE_HASH}, "
        f"loops {SOURCE_HASH}",
    ]
    params = [f"i{i}" for i in range(nest.nin)]
    kernel = Function(name, params, KERNEL_DECORATOR, comments)
    _loop_shape(nest, kernel)
    for i, t in enumerate(nest.in_types):
        if nest.hoisted[i]:
            kernel(f"x{i} = i{i}[{', '.join(['0'] * t.ndim) or '()'}]")
    _main_mode(nest, kernel)
    kernel(f"return {', '.join(f'o{k}' for k in range(len(nest.op.outputs)))}")
    return "\n\n".join([kernel.text(), *(helper.text() for helper in nest.helpers)])


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
    "LoopNest",
    "as_fused",
    "block_sum_f32",
    "block_sum_f64",
    "num_threads",
    "kernel_source",
    "module_source",
]
