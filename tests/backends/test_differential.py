"""Differential tests of the Numba backend: every row of the op tables (``CASES`` of
tests/ops/test_{elemwise,shape,indexing,linalg,reduction,nn}.py, plus the few rows of
``EXTRA`` below) runs under ``mode="numba"`` and is compared with ``mode="py"`` (each op's
NumPy ``impl``) on the same inputs: same dtype and shape of every output, equal values (see
TOLERANCES), NaN and inf at the same places, inputs not mutated, outputs aliasing neither
the inputs nor each other. Rows with ``raises`` must raise the same exception class from the
compiled code, and the detailed message (naming the op) through the ``Function``.

How the compile time is bounded (a Numba kernel costs 0.3-0.7 s to compile on the 2-core CI
machine, and the rows need about a thousand distinct kernels, so compiling is the whole cost):

* BATCHES: one ``fg.function`` compiles the rows of a chunk of a table (``CHUNK`` rows;
  identical kernels in one module are compiled once); each chunk is one test. A chunk that
  fails to compile or raises is bisected down to the guilty rows, so failures name row ids.
* ONE COMPILE PER ROW: ``Function`` compiles its entry for C-contiguous arguments when it is
  built, and Numba compiles each kernel again for every new argument layout, so calling a
  batch once per layout would cost three compiles per row. Instead each row is assigned one
  layout (``row_layout``: as given by the table, strided or Fortran-ordered, by a hash of the
  row's ops and types, so rows sharing kernels share the layout too), made *inside the
  graph*: the argument is C-contiguous and the row reads ``x[..., ::2]`` of a doubled array
  (strided, Numba layout "A") or ``x.T`` of the transposed array (Fortran order, layout "F").
  Inputs that a table gives transposed (the linalg rows) are rebuilt the same way. Every
  kernel thus meets all three layouts, in one compile of C-typed arguments.
* Real non-contiguous *arguments* (which make ``Function`` compile another specialisation)
  are tested on a sample of rows (``CALL_LAYOUT_ROWS``): called as given, then Fortran-
  ordered, then strided, as ``harness.check_case`` does. Fully known static shapes (which
  change the generated code) are tested on another sample (``KNOWN_SHAPES_ROWS``). With
  ``FUSEGRAPH_DIFF_FULL=1`` in the environment both samples are every row (about 4x slower).
* ``FUSEGRAPH_DIFF_SHARD=k/n`` runs the k-th of n interleaved parts of the jobs (0-based),
  to spread the file over several CI jobs.
* A helper process compiles the jobs from the end of the plan while the tests compile from
  the start; both use the module's private disk cache (``FUSEGRAPH_CACHE_DIR``), from which
  a job the helper compiled loads in well under a second. ``FUSEGRAPH_DIFF_WORKERS=0``
  switches it off.

Rows whose disagreement is a known bug outside the Numba kernels are listed in KNOWN_BUGS:
their failures are expected (the chunk's test reports them with ``xfail`` once every other
row passed), and a listed row that passes fails the test so that the entry gets removed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from harness import Case, check_static, fortran, noncontiguous, pattern

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy < 2
    from numpy import byte_bounds

import fusegraph as fg
import fusegraph.ops as ops
from fusegraph.backends.numba import cache, kernels
from fusegraph.backends.numba import loops as loops_module
from fusegraph.graph import Op, toposort
from fusegraph.ops import grad_ops, linalg, nn, reduction
from fusegraph.ops.fused import FusedElemwise
from fusegraph.ops.python_op import PythonOp
from fusegraph.ops.random import RandomVariable

HERE = Path(__file__).resolve().parent
TABLES = ("elemwise", "shape", "indexing", "linalg", "reduction", "nn", "checks", "extra")

FULL = os.environ.get("FUSEGRAPH_DIFF_FULL", "") not in ("", "0")
#: Rows per batch (the compile time per kernel grows with the module beyond ~50 rows).
CHUNK = 40
#: Rows per table also called with C, Fortran-ordered and strided arguments (a fixed
#: pseudo-random sample of the rows with a 2-d input; all rows when FULL).
CALL_LAYOUT_ROWS = {
    "elemwise": 4, "shape": 2, "indexing": 3, "linalg": 2, "reduction": 3, "nn": 1, "checks": 1,
    "extra": 1,
}  # fmt: skip
#: Rows per table also compiled with fully known static shapes (all rows when FULL).
KNOWN_SHAPES_ROWS = {
    "elemwise": 10, "shape": 4, "indexing": 4, "linalg": 3, "reduction": 8, "nn": 2, "checks": 1,
    "extra": 1,
}  # fmt: skip

# Row id -> why its Numba result differs from the py backend (bugs outside the kernels).
KNOWN_BUGS: dict[str, str] = {}


# ------------------------------------------------------------------------------ tolerances

#: Float outputs are compared with ``|numba - py| <= bound`` (NaN and inf must match exactly;
#: integer and bool outputs must be equal):
#:
#: * elementwise rows: ``bound = rtol * |py| + atol * scale``. Both backends evaluate the same
#:   formula per element, but exp/log/trig/tanh/erf/... come from ``vecmath`` (polynomials
#:   within a few ulp) in Numba and from libm or NumPy's SIMD loops in py: a few ulp apart.
#:   Measured here (AVX-512): at most 1 ulp, 64 ulp relative on one result that cancels to
#:   near 0 (hence the atol). Other CPUs take other SIMD paths in NumPy, so the bounds
#:   leave a margin of 10-100x.
#: * rows whose graph sums in another order than NumPy (``_reorders``: float sum, prod, mean
#:   and what builds on them, dot, matmul, tensordot, softmax, logsumexp, sum_to): NumPy sums
#:   pairwise and BLAS in blocks, the kernels in loop order, so they differ by up to about
#:   ``n * eps * sum(|terms|)``: ``bound = rtol * (|py| + scale)``. Measured: at most 9 ulp.
#:
#: ``scale`` is the largest magnitude among this output and the row's float inputs (a
#: stand-in for the magnitude of the terms). A row computes in float32 precision when any
#: value of its graph is float32 (the rounding reaches float64 results: bce of float32
#: outputs and int targets); then the float32 bounds apply.
TOLERANCES = {
    # precision: (elementwise rtol, elementwise atol, reordering rtol)
    "float64": (1e-13, 1e-14, 1e-12),
    "float32": (1e-6, 1e-6, 1e-5),
}


def _reorders(node) -> bool:
    op = node.op
    if isinstance(op, reduction.Reduce):
        return op.kind in ("sum", "prod", "mean")
    if isinstance(op, FusedElemwise):
        return op.reduction is not None and op.reduction.kind in ("sum", "prod", "mean")
    return isinstance(
        op,
        (
            linalg.Dot,
            linalg.MatMul,
            linalg.TensorDot,
            reduction.LogSumExp,
            nn.Softmax,
            nn.LogSoftmax,
            grad_ops.SumTo,
        ),
    )


# ------------------------------------------------------------------------------ extra rows


#: Rows for the op class no table builds: SumTo, the run-time "sum down to this shape" of
#: gradients (the catalogue exempts it as gradient-only; here its kernel must be exercised).
EXTRA = [
    Case(
        "sum-to-broadcast-rows",
        ["sum_to"],
        lambda g, x: grad_ops.sum_to(g, x),
        None,  # compared with the py backend only
        [np.arange(12.0).reshape(3, 4) - 5.5, np.zeros((1, 4))],
        static=[None, (None, 4)],
    ),
    Case(
        "sum-to-leading-and-unknown",
        ["sum_to"],
        lambda g, x: grad_ops.sum_to(g, x),
        None,  # compared with the py backend only
        [np.random.default_rng(5).normal(size=(2, 3, 4)), np.zeros((3, 1))],
    ),
    Case(
        "sum-to-int",
        ["sum_to"],
        lambda g, x: grad_ops.sum_to(g, x),
        None,  # compared with the py backend only
        [np.arange(6, dtype="int32").reshape(2, 3), np.zeros((1, 3), "int32")],
    ),
    Case(
        "sum-to-grad-of-broadcast",
        ["sum_to"],
        lambda x, y: fg.grad((x * y).sum(), y),
        None,  # compared with the py backend only
        [np.random.default_rng(6).normal(size=(3, 4)), np.ones((1, 4))],
        static=[None, (1, None)],
    ),
]


# ------------------------------------------------------------------------------ the rows


@functools.cache
def table(name: str) -> tuple:
    """The rows of an op table (loaded as tests/ops/test_catalogue.py does)."""
    if name == "extra":
        return tuple(EXTRA)
    path = HERE.parent / "ops" / f"test_{name}.py"
    spec = importlib.util.spec_from_file_location(f"difftable_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.CASES)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _sample(cases, rows, count):
    """A fixed pseudo-random choice of ``count`` rows (every row when FULL), KNOWN_BUGS
    rows left out (they are expected to fail where every row runs: rows and raises)."""
    rows = [r for r in rows if cases[r].id not in KNOWN_BUGS]
    if FULL:
        return rows
    return sorted(sorted(rows, key=lambda r: _hash(cases[r].id))[:count])


_SIGNATURES: dict = {}


def _graph_signature(case: Case) -> str:
    """The row's ops and input types (unknown shapes): rows with the same signature use the
    same kernels, so they get the same layout (and share the compiled kernels)."""
    if case.id in _SIGNATURES:
        return _SIGNATURES[case.id]
    statics = case.static or [None] * len(case.inputs)
    syms = [
        fg.tensor(dtype=np.asarray(a).dtype.name, shape=s if s is not None else pattern(a))
        for a, s in zip(map(np.asarray, case.inputs), statics, strict=True)
    ]
    outs = case.build(*syms)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    text = repr([(str(n.op), [str(v.type) for v in n.inputs]) for n in toposort(outs)])
    _SIGNATURES[case.id] = text
    return text


def row_layout(case: Case) -> str:
    """The layout in which the kernels of this row see its inputs (``given`` is the table's
    arrays as they are; they are C-contiguous but for a few linalg rows)."""
    nd = max((np.ndim(a) for a in case.inputs), default=0)
    if nd == 0:
        return "given"
    choices = ("given", "strided", "fortran") if nd >= 2 else ("given", "strided")
    return choices[_hash(_graph_signature(case)) % len(choices)]


def _c_perm(a: np.ndarray):
    """The axes order in which ``a`` is C-contiguous (None if there is none)."""
    perm = sorted(range(a.ndim), key=lambda k: -abs(a.strides[k]))
    if np.transpose(a, perm).flags.c_contiguous:
        return perm
    return None


def _symbolic_input(name, a, static, layout):
    """(root variable, what the row's build receives, C-contiguous argument) for one
    input of a row, with its layout made by the graph."""
    dtype = a.dtype.name
    shape = tuple(static) if static is not None else pattern(a)
    if layout == "strided" and a.ndim >= 1:
        last = None if shape[-1] is None else 2 * shape[-1]
        var = fg.tensor(name, dtype=dtype, shape=shape[:-1] + (last,))
        return var, var[..., ::2], np.repeat(a, 2, axis=-1)
    if layout == "fortran" and a.ndim >= 2:
        var = fg.tensor(name, dtype=dtype, shape=shape[::-1])
        return var, var.T, a.T.copy(order="C")
    if a.flags.c_contiguous or a.ndim < 2:
        var = fg.tensor(name, dtype=dtype, shape=shape)
        return var, var, a if a.flags.c_contiguous else a.copy(order="C")
    perm = _c_perm(a)  # a transposed table input: the transpose happens in the graph
    if perm is None:  # pragma: no cover - no table has one
        raise ValueError(f"{name}: cannot build a layout like strides {a.strides}")
    inverse = list(np.argsort(perm))
    var = fg.tensor(name, dtype=dtype, shape=tuple(shape[k] for k in perm))
    return var, var.transpose(inverse), np.transpose(a, perm).copy(order="C")


@dataclass(frozen=True)
class Job:
    """A compile unit. kind: ``rows`` (unknown shapes, in-graph layouts), ``calls`` (unknown
    shapes, called with each argument layout), ``known`` (fully known static shapes) or
    ``raises`` (one row that raises at run time)."""

    kind: str
    table: str
    chunk: int
    rows: tuple

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.table}-{self.chunk:03d}"


def _chunks(kind, name, rows, size=CHUNK):
    """Equal-sized jobs of at most ``size`` rows; KNOWN_BUGS rows get a job each (a row
    that raises would make its whole batch bisect on every run)."""
    cases = table(name)
    known = [r for r in rows if cases[r].id in KNOWN_BUGS]
    rows = [r for r in rows if cases[r].id not in KNOWN_BUGS]
    n = -(-len(rows) // size)
    step = -(-len(rows) // n) if n else 1
    parts = [rows[k * step : (k + 1) * step] for k in range(n)] + [[r] for r in known]
    return [Job(kind, name, k, tuple(part)) for k, part in enumerate(parts)]


def make_plan() -> list:
    """Every job, in the order the tests run them."""
    rows, calls, known, raises = [], [], [], []
    for name in TABLES:
        cases = table(name)
        ok = [k for k, c in enumerate(cases) if c.raises is None]
        rows += _chunks("rows", name, ok)
        wide = [k for k in ok if FULL or max(map(np.ndim, cases[k].inputs), default=0) >= 2]
        calls += _chunks("calls", name, _sample(cases, wide, CALL_LAYOUT_ROWS[name]))
        static_ok = [k for k in ok if cases[k].check_static_known]
        known += _chunks("known", name, _sample(cases, static_ok, KNOWN_SHAPES_ROWS[name]))
        raises += [Job("raises", name, k, (k,)) for k, c in enumerate(cases) if c.raises]
    return rows + calls + known + raises


def _shard(plan: list) -> list:
    """``FUSEGRAPH_DIFF_SHARD=k/n``: only every n-th job from the k-th (0-based), to split
    the file over n CI jobs."""
    text = os.environ.get("FUSEGRAPH_DIFF_SHARD")
    if not text:
        return plan
    k, n = (int(part) for part in text.split("/"))
    if not 0 <= k < n:
        raise ValueError(f"FUSEGRAPH_DIFF_SHARD={text!r}: expected k/n with 0 <= k < n")
    return plan[k::n]


SHARDED = bool(os.environ.get("FUSEGRAPH_DIFF_SHARD"))
PLAN = _shard(make_plan())
JOBS = {job.key: job for job in PLAN}


@dataclass
class Batch:
    """The symbolic graph of a job: its roots, the outputs, and per row where its
    arguments and outputs are (``spans[row] = (first arg, n args, first out, n outs)``)."""

    job: Job
    inputs: list
    outputs: list
    args: list
    spans: dict


def build_batch(job: Job, rows=None) -> Batch:
    cases = table(job.table)
    batch = Batch(job, [], [], [], {})
    for r in job.rows if rows is None else rows:
        case = cases[r]
        values = [np.asarray(a) for a in case.inputs]
        statics = (
            [a.shape for a in values]
            if job.kind == "known"
            else list(case.static or [None] * len(values))
        )
        layout = row_layout(case) if job.kind == "rows" else "given"
        views = []
        first_arg, first_out = len(batch.args), len(batch.outputs)
        for i, (a, s) in enumerate(zip(values, statics, strict=True)):
            var, view, arg = _symbolic_input(f"r{r}x{i}", a, s, layout)
            batch.inputs.append(var)
            batch.args.append(arg)
            views.append(view)
        outs = case.build(*views)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        batch.outputs += outs
        batch.spans[r] = (first_arg, len(values), first_out, len(outs))
    return batch


def _compile(batch: Batch, mode: str):
    return fg.function(batch.inputs, batch.outputs, mode=mode, on_unused_input="ignore")


@contextlib.contextmanager
def _quiet():
    """NumPy's floating-point warnings off (NaN, inf and empty means are values here)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def call_layouts(job: Job) -> tuple:
    """The argument layouts a job is called with, in order."""
    return ("given", "fortran", "strided") if job.kind == "calls" else ("given",)


def _arguments(batch: Batch, layout: str) -> list:
    if layout == "given":
        return list(batch.args)
    # The C-contiguous arguments (a table's transposed input is rebuilt by the graph, see
    # ``_symbolic_input``) in the layouts of ``harness.check_case``.
    convert = {"fortran": fortran, "strided": noncontiguous}[layout]
    return [convert(a) for a in batch.args]


# ------------------------------------------------------------------------------ helper process


def _claim(plan_dir: Path, key: str) -> bool:
    try:
        fd = os.open(plan_dir / "claims" / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _mark_done(plan_dir: Path, key: str, info: dict) -> None:
    tmp = plan_dir / "done" / f".{key}.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, plan_dir / "done" / key)


def warm(job: Job) -> None:
    """Compile a job as the test will (all its argument layouts), filling the disk cache."""
    batch = build_batch(job)
    f = _compile(batch, "numba")
    if job.kind == "raises":
        return
    with _quiet():
        for layout in call_layouts(job):
            f(*_arguments(batch, layout))


def worker_main(plan_dir: str) -> None:
    """The helper process: claim and warm the plan's jobs from the end."""
    plan_dir = Path(plan_dir)
    keys = json.loads((plan_dir / "plan.json").read_text())
    parent = os.getppid()
    for key in reversed(keys):
        if os.getppid() != parent:  # the test session is gone
            return
        if not _claim(plan_dir, key):
            continue
        start = time.perf_counter()
        info = {"ok": True}
        try:
            warm(JOBS[key])
        except Exception:
            info = {"ok": False, "error": traceback.format_exc(limit=3)}
        info["seconds"] = time.perf_counter() - start
        _mark_done(plan_dir, key, info)


class Runner:
    """Compiles the jobs (or loads what the helper compiled) and keeps the results."""

    def __init__(self, plan_dir: Path, keys: list):
        self.plan_dir = plan_dir
        (plan_dir / "claims").mkdir()
        (plan_dir / "done").mkdir()
        (plan_dir / "plan.json").write_text(json.dumps(keys))
        self.results: dict = {}  # key -> (failures, op classes)
        self.seconds: dict = {}
        self.process = None
        if keys and os.environ.get("FUSEGRAPH_DIFF_WORKERS", "1") != "0":
            code = (
                "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
                "import test_differential as t; t.worker_main(sys.argv[3])"
            )
            log = open(plan_dir / "worker.log", "w")  # noqa: SIM115 - closed in close()
            self._log = log
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, str(HERE.parent), str(HERE), str(plan_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ),
            )

    def close(self):
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:  # pragma: no cover
                    self.process.kill()
                    self.process.wait()
            self._log.close()

    def wait_for_helper(self, key: str) -> None:
        """Return when the job is ours to compile or the helper has finished it."""
        if _claim(self.plan_dir, key):
            return
        done = self.plan_dir / "done" / key
        while not done.exists():
            if self.process is None or self.process.poll() is not None:
                return  # the helper died: compile it here
            time.sleep(0.02)

    def run(self, job: Job):
        if job.key not in self.results:
            self.wait_for_helper(job.key)
            start = time.perf_counter()
            if job.kind == "raises":
                self.results[job.key] = run_raising_row(job)
            else:
                self.results[job.key] = run_batch(job)
            self.seconds[job.key] = time.perf_counter() - start
        return self.results[job.key]


# ------------------------------------------------------------------------------ comparisons


@dataclass
class RowGraph:
    """What the comparison needs to know about a row's compiled nodes."""

    classes: set  # op classes
    reordered: bool  # some node sums in another order than NumPy
    precision: str  # float32 when any value is float32 (its rounding reaches float64 outputs)


def _row_graph(f, first_out, n_outs) -> RowGraph:
    nodes = toposort(f.outputs[first_out : first_out + n_outs])
    dtypes = {v.dtype for node in nodes for v in node.inputs + node.outputs}
    return RowGraph(
        {type(node.op) for node in nodes},
        any(_reorders(node) for node in nodes),
        "float32" if "float32" in dtypes else "float64",
    )


def _where(mask) -> str:
    idx = np.argwhere(mask)
    return ", ".join(str(tuple(int(i) for i in j)) for j in idx[:3]) + (
        " ..." if len(idx) > 3 else ""
    )


def compare_values(got, want, row: RowGraph, scale: float) -> str | None:
    """None if ``got`` (Numba) equals ``want`` (py) under TOLERANCES, else what differs."""
    if got.dtype != want.dtype:
        return f"dtype {got.dtype}, py gives {want.dtype}"
    if got.shape != want.shape:
        return f"shape {got.shape}, py gives {want.shape}"
    if got.dtype.kind != "f":
        if not np.array_equal(got, want):
            bad = got != want
            return f"values differ at {_where(bad)}: {got[bad][:3]} vs py {want[bad][:3]}"
        return None
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    if (nan_g != nan_w).any():
        bad = nan_g != nan_w
        return f"NaN differs at {_where(bad)}: {got[bad][:3]} vs py {want[bad][:3]}"
    inf = np.isinf(got) | np.isinf(want)
    if (inf & (got != want)).any():
        bad = inf & (got != want)
        return f"inf differs at {_where(bad)}: {got[bad][:3]} vs py {want[bad][:3]}"
    finite = np.isfinite(want)
    if not finite.any():
        return None
    g, w = got[finite].astype("float64"), want[finite].astype("float64")
    precision = "float32" if got.dtype.name == "float32" else row.precision
    rtol, atol_factor, rtol_reordered = TOLERANCES[precision]
    scale = max(scale, float(np.abs(w).max()))
    if row.reordered:
        bound = rtol_reordered * (np.abs(w) + scale)
    else:
        bound = rtol * np.abs(w) + atol_factor * scale
    err = np.abs(g - w)
    if (err > bound).any():
        k = int(np.argmax(err - bound))
        rel = err[k] / max(abs(w[k]), np.finfo(got.dtype).tiny)
        kind = ("reordered " if row.reordered else "elementwise ") + precision
        return (
            f"values differ ({kind} tolerance): {float(g[k])!r} vs py {float(w[k])!r} "
            f"(abs err {err[k]:.3g}, rel err {rel:.3g}, {int((err > bound).sum())} of "
            f"{err.size} elements)"
        )
    return None


def _aliasing(outputs, args) -> list:
    """(output index, what it shares memory with) for Numba outputs that alias an argument
    or another output."""
    spans = []
    for tag, group in (("output", outputs), ("argument", args)):
        for k, a in enumerate(group):
            if isinstance(a, np.ndarray) and a.size and a.itemsize:
                lo, hi = byte_bounds(a)
                spans.append((lo, hi, tag, k, a))
    spans.sort(key=lambda s: s[0])
    found, active = [], []
    for span in spans:
        active = [s for s in active if s[1] > span[0]]
        for other in active:
            if "output" in (span[2], other[2]) and np.shares_memory(span[4], other[4]):
                out, peer = (span, other) if span[2] == "output" else (other, span)
                found.append((out[3], f"{peer[2]} {peer[3]}"))
                if peer[2] == "output":
                    found.append((peer[3], f"output {out[3]}"))
        active.append(span)
    return found


def check_batch_call(batch: Batch, f_numba, f_py, layout: str, op_info: dict) -> dict:
    """Call both functions on one layout of the arguments; per row, the list of failures."""
    failures: dict = {r: [] for r in batch.spans}
    args = _arguments(batch, layout)
    copies = [a.copy() for a in args]
    with _quiet():
        got = f_numba(*args)
        want = f_py(*[a.copy() for a in args])
        _compare_rows(batch, layout, args, copies, got, want, op_info, failures)
    return failures


def _compare_rows(batch, layout, args, copies, got, want, op_info, failures):
    owner_out, owner_arg = {}, {}
    for r, (a0, na, o0, no) in batch.spans.items():
        owner_arg.update(dict.fromkeys(range(a0, a0 + na), r))
        owner_out.update(dict.fromkeys(range(o0, o0 + no), r))
    for k, (a, c) in enumerate(zip(args, copies)):
        if not np.array_equal(a, c, equal_nan=a.dtype.kind == "f"):
            failures[owner_arg[k]].append(f"[{layout}] argument {k} was mutated")
    for k, what in _aliasing(got, args):
        failures[owner_out[k]].append(f"[{layout}] output {k} shares memory with {what}")
    cases = table(batch.job.table)
    for r, (a0, na, o0, no) in batch.spans.items():
        floats = [np.abs(x[np.isfinite(x)]) for x in args[a0 : a0 + na] if x.dtype.kind == "f"]
        scale = max((float(x.max()) for x in floats if x.size), default=0.0)
        results = [np.asarray(x) for x in got[o0 : o0 + no]]
        for j in range(no):
            problem = compare_values(results[j], np.asarray(want[o0 + j]), op_info[r], scale)
            if problem:
                failures[r].append(f"[{layout}] output {j}: {problem}")
        try:
            check_static(batch.outputs[o0 : o0 + no], results, f"{cases[r].id} [{layout}]")
        except AssertionError as exc:
            failures[r].append(f"[{layout}] {exc}")


def _attempt(job: Job, rows) -> tuple:
    """Compile and call a sub-batch: (failures per row, op info per row); raises if the
    compile or a call raises."""
    batch = build_batch(job, rows)
    f_numba = _compile(batch, "numba")
    f_py = _compile(batch, "py")
    op_info = {r: _row_graph(f_numba, o0, no) for r, (_, _, o0, no) in batch.spans.items()}
    failures = {r: [] for r in batch.spans}
    for layout in call_layouts(job):
        for r, problems in check_batch_call(batch, f_numba, f_py, layout, op_info).items():
            failures[r] += problems
    return failures, op_info


RAISED = "compile or call raised"


def _bisect(job: Job, rows) -> tuple:
    """Run ``rows``, splitting them until the parts whose compile or call raises are single
    rows: (failures per row, with the exception for those rows; op info per row)."""
    try:
        return _attempt(job, rows)
    except Exception as exc:
        text = "".join(traceback.format_exception_only(exc)).strip()[:2000]
        if len(rows) == 1:
            return {rows[0]: [f"{RAISED} {text}"]}, {}
    half = len(rows) // 2
    failures, op_info = _bisect(job, rows[:half])
    more_failures, more_info = _bisect(job, rows[half:])
    failures, op_info = {**failures, **more_failures}, {**op_info, **more_info}
    if not any(p.startswith(RAISED) for problems in failures.values() for p in problems):
        ids = ", ".join(table(job.table)[r].id for r in rows)
        failures[rows[0]] = failures.get(rows[0], []) + [
            f"{RAISED} {text} as a batch of the rows {ids}, though each half runs"
        ]
    return failures, op_info


def run_batch(job: Job) -> tuple:
    """(failures per row id, op classes of the compiled graphs)."""
    failures, op_info = _bisect(job, job.rows)
    cases = table(job.table)
    classes = set().union(*(info.classes for info in op_info.values()))
    return {cases[r].id: problems for r, problems in failures.items() if problems}, classes


def run_raising_row(job: Job) -> tuple:
    """A row that raises at run time: the compiled code raises the py backend's exception
    class, and the Function the interpreter's detailed message."""
    case = table(job.table)[job.rows[0]]
    batch = build_batch(job)
    f_numba = _compile(batch, "numba")
    f_py = _compile(batch, "py")
    classes = {type(node.op) for node in f_numba.graph.toposort()}
    problems = []
    with _quiet():
        try:
            f_py(*batch.args)
            return {case.id: ["the py backend did not raise"]}, classes
        except Exception as exc:
            want = exc
        if not isinstance(want, case.raises):
            problems.append(f"py raised {type(want).__name__}, the row expects {case.raises}")
        try:
            f_numba.njit(*batch.args)
            problems.append(f"the compiled code did not raise (py: {type(want).__name__})")
        except Exception as exc:
            if type(exc) is not type(want):
                problems.append(
                    f"the compiled code raised {type(exc).__name__}({exc}), "
                    f"py {type(want).__name__}"
                )
        try:
            f_numba(*batch.args)
            problems.append("the Function did not raise")
        except Exception as exc:
            if type(exc) is not type(want) or str(exc) != str(want):
                problems.append(
                    f"the Function raised {type(exc).__name__}: {exc!s:.300}; "
                    f"py {type(want).__name__}: {want!s:.300}"
                )
            elif not re.search(r"\(\w+\) failed: ", str(want)):
                problems.append(f"the message does not name the op: {want}")
    return ({case.id: problems} if problems else {}), classes


def settle(failures: dict, what: str) -> None:
    """Fail with every unexpected failure; xfail when only KNOWN_BUGS rows failed; fail
    when a KNOWN_BUGS row of this unit passed."""
    unexpected = {rid: p for rid, p in failures.items() if rid not in KNOWN_BUGS}
    fixed = [rid for rid in KNOWN_BUGS if rid in _unit_rows(what) and rid not in failures]
    lines = [f"{rid}: " + "\n    ".join(p) for rid, p in sorted(unexpected.items())]
    lines += [f"{rid}: listed in KNOWN_BUGS but passes now; remove the entry" for rid in fixed]
    if lines:
        pytest.fail(f"{what}: {len(lines)} row(s) disagree:\n" + "\n".join(lines), pytrace=False)
    if failures:
        pytest.xfail("known bugs: " + "; ".join(f"{r}: {KNOWN_BUGS[r]}" for r in failures))


_UNIT_ROWS: dict = {}


def _unit_rows(what: str) -> set:
    return _UNIT_ROWS.get(what, set())


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def runner(request):
    """The Runner of the selected tests' jobs, with a private disk cache (and its helper
    process, stopped at the end)."""
    base = tempfile.mkdtemp(prefix="fusegraph-differential-")
    selected = set()
    for item in request.session.items:
        if item.module is not request.module:
            continue
        params = getattr(item, "callspec", None) and item.callspec.params
        if params and "key" in params:
            selected.add(params["key"])
        elif params and "keys" in params:
            selected.update(params["keys"])
        elif item.name == "test_every_op_class_is_exercised":
            selected.update(JOBS)
    keys = [job.key for job in PLAN if job.key in selected]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUSEGRAPH_CACHE_DIR", os.path.join(base, "cache"))
        mp.delenv("NUMBA_CACHE_DIR", raising=False)
        before = set(sys.modules)
        plan_dir = Path(base) / "plan"
        plan_dir.mkdir()
        r = Runner(plan_dir, keys)
        try:
            yield r
        finally:
            r.close()
            if os.environ.get("FUSEGRAPH_DIFF_STATS"):  # seconds per job, for tuning
                helper = {
                    path.name: json.loads(path.read_text())["seconds"]
                    for path in (plan_dir / "done").iterdir()
                    if not path.name.startswith(".")
                }
                stats = {"tests": r.seconds, "helper": helper}
                Path(os.environ["FUSEGRAPH_DIFF_STATS"]).write_text(json.dumps(stats, indent=1))
            for name in set(sys.modules) - before:
                if name.startswith(cache.PREFIX):
                    del sys.modules[name]
    shutil.rmtree(base, ignore_errors=True)


def _params(kind):
    jobs = [job for job in PLAN if job.kind == kind]
    if kind == "rows":  # the units where KNOWN_BUGS rows must fail
        for job in jobs:
            _UNIT_ROWS[job.key] = {table(job.table)[r].id for r in job.rows}
    return [pytest.param(job.key, id=job.key.split("-", 1)[1]) for job in jobs]


# ------------------------------------------------------------------------------ the tests


def test_every_op_class_has_a_numba_implementation():
    """Elementwise classes go through ``loops``; every other op class needs a kernel. The
    forward identities (stop_gradient ...) never reach a backend: ``fg.function`` removes
    them (checked here too)."""
    classes = set()
    for info in pkgutil.iter_modules(ops.__path__):
        module = importlib.import_module(f"fusegraph.ops.{info.name}")
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, Op) and obj.__module__ == module.__name__:
                classes.add(obj)
    exported = {
        obj
        for obj in vars(ops).values()
        if inspect.isclass(obj)
        and issubclass(obj, Op)
        and obj.__module__.startswith("fusegraph.ops")
    }
    assert exported <= classes
    concrete = {c for c in classes if not c.__name__.startswith("_")}
    identities = {c for c in concrete if issubclass(c, grad_ops._ForwardIdentity)}
    loops = {c for c in concrete if issubclass(c, loops_module.LOOP_OPS)}
    missing = sorted(c.__name__ for c in concrete - identities - loops if c not in kernels.KERNELS)
    assert not missing, f"op classes without a Numba kernel: {missing}"
    assert identities == {ops.StopGradient, ops.ZeroGrad, ops.GradClip, ops.GradScale}
    x = fg.vector("x")
    outs = [fg.stop_gradient(x), fg.zero_grad(x * 2), fg.grad_clip(x, -1, 1), fg.grad_scale(x, 2)]
    f = fg.function([x], outs, mode="py")
    left = {type(n.op).__name__ for n in f.graph.toposort() if type(n.op) in identities}
    assert not left, f"forward identities left in a compiled graph: {left}"


@pytest.mark.parametrize("key", _params("rows"))
def test_rows(runner, key):
    """Every row, unknown static shapes, each row in its assigned layout."""
    failures, _ = runner.run(JOBS[key])
    settle(failures, key)


@pytest.mark.parametrize("key", _params("calls"))
def test_argument_layouts(runner, key):
    """A sample of rows called with C, Fortran-ordered and strided arguments."""
    failures, _ = runner.run(JOBS[key])
    settle(failures, key)


@pytest.mark.parametrize("key", _params("known"))
def test_known_static_shapes(runner, key):
    """A sample of rows compiled with fully known static shapes."""
    failures, _ = runner.run(JOBS[key])
    settle(failures, key)


def _raise_params():
    params = []
    for name in TABLES:
        keys = [job.key for job in PLAN if job.kind == "raises" and job.table == name]
        if keys:
            _UNIT_ROWS[f"raises-{name}"] = {
                table(name)[JOBS[k].rows[0]].id for k in keys
            }  # fmt: skip
            params.append(pytest.param(tuple(keys), id=name))
    return params


@pytest.mark.parametrize("keys", _raise_params())
def test_raising_rows(runner, keys):
    """Every row with ``raises``, one function per row (an exception ends a call)."""
    failures = {}
    for key in keys:
        failures.update(runner.run(JOBS[key])[0])
    settle(failures, f"raises-{JOBS[keys[0]].table}")


def test_every_op_class_is_exercised(runner):
    """Every op class with a Numba implementation appears in some compiled batch."""
    if SHARDED:
        pytest.skip("FUSEGRAPH_DIFF_SHARD: this shard compiles part of the batches only")
    seen = set()
    for job in PLAN:
        seen |= runner.run(job)[1]
    # Draws need generator states threaded through the batch: tests/test_random.py checks
    # both backends' draws against NumPy's Generator instead. fg.as_op's PythonOp runs its
    # users' functions: tests/test_extending.py checks it in both backends.
    wanted = set(kernels.KERNELS) | set(loops_module.LOOP_OPS)
    wanted -= {RandomVariable, PythonOp}
    missing = sorted(c.__name__ for c in wanted - seen)
    assert not missing, f"op classes no differential batch compiles: {missing}"
