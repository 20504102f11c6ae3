"""Differential fuzzing of whole graphs.

A *program* is a random graph of 1-12 ops over the public API (elementwise math and
arithmetic, comparisons, ``where``, casts, reductions, reversing slices, ``dot``) on 1-3
inputs of random dtypes (float64, float32, int64, bool) and shapes (0-size, length-1 and
broadcast dims, scalars), each input C-ordered, Fortran-ordered or strided (made inside the
graph from a transposed or doubled argument, so one compile covers every layout). A batch of
programs compiles once per mode, and the modes must agree:

* ``numba`` against ``py`` (each op's NumPy ``impl``) and against ``py`` without rewrites:
  same dtypes and shapes; ints and bools equal; floats equal where the program is *exact*
  (only correctly rounded operations: arithmetic, max/min, casts, selections), else within
  ``RTOL`` (float64 1e-9, float32 1e-4) of ``max(1, max|reference|)`` -- vectorised
  transcendental functions may differ from NumPy's by an ulp or two, and a later
  subtraction can magnify that relative to the result but not to the operands' scale;
  NaN, inf and -inf at the same places;
* gradients of the float64 programs made of smooth ops (the sum of their outputs, with
  respect to their float64 inputs): ``numba`` against ``py`` (within ``RTOL``), and ``py``
  against central finite differences along a random direction (within ``FD_RTOL`` = 1e-5).

Discontinuous ops (comparisons, float -> int casts, ``where`` conditions) only take exact
operands, so that an ulp cannot flip a branch.

``tests/test_fuzz.py`` runs a bounded, derandomized part with hypothesis (which shrinks a
failing batch). ``python -m tests.fuzz --minutes N [--seed S] [--out DIR]`` runs longer with
a random seed per batch and writes every failing batch as ``DIR/fuzz-<seed>.json``;
``python -m tests.fuzz --replay FILE`` runs one again.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import fusegraph as fg

RTOL = {"float64": 1e-9, "float32": 1e-4}
FD_RTOL = 1e-5
NO_REWRITES = fg.Mode(
    "py",
    exclude=("merge", "constant_folding", "canonicalize", "stabilize", "specialize", "fusion"),
)
BASES = [(3, 4), (0, 4), (1, 5), (4, 1), (2, 3), (5,), (0,), (1,)]
DTYPES = ["float64", "float64", "float32", "int64", "bool"]

# name -> (exact-preserving, smooth); ints and bools are promoted by the float functions
UNARY = {
    "exp": (False, True), "log1p": (False, True), "sin": (False, True), "tanh": (False, True),
    "sigmoid": (False, True), "softplus": (False, True), "arctan": (False, True),
    "erf": (False, True), "sqrt": (False, True), "log": (False, True),
    "neg": (True, True), "abs": (True, False), "square": (True, True),
}  # fmt: skip
BINARY = {
    "add": (True, True), "sub": (True, True), "mul": (True, True), "true_div": (True, True),
    "maximum": (True, False), "minimum": (True, False),
}  # fmt: skip
COMPARE = ("lt", "gt", "eq")
REDUCE = ("sum", "mean", "max", "min")


# ---------------------------------------------------------------------------------------
# choices: from Python's random (long runs) or from hypothesis (which shrinks failures)


class RandomChooser:
    def __init__(self, seed):
        self.rng = random.Random(seed)

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def integer(self, lo, hi):
        return self.rng.randint(lo, hi)


class HypothesisChooser:
    def __init__(self, data):
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def pick(self, seq):
        return seq[self.data.draw(self.st.integers(0, len(seq) - 1))]

    def integer(self, lo, hi):
        return self.data.draw(self.st.integers(lo, hi))


# ---------------------------------------------------------------------------------------
# programs


@dataclass
class Program:
    """Inputs ``(dtype, shape, layout)``, then ops ``(kind, operand indices, param)``: the
    values are the inputs, then the ops' results in order; the last value is the output. A
    ``dot`` multiplies by the program's square float64 matrix ``S``, one more input."""

    inputs: list = field(default_factory=list)
    ops: list = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"inputs": self.inputs, "ops": self.ops})

    @staticmethod
    def from_json(data) -> Program:
        inputs = [(d, tuple(s), lay) for d, s, lay in data["inputs"]]
        ops = [(k, list(a), tuple(p) if isinstance(p, list) else p) for k, a, p in data["ops"]]
        return Program(inputs, ops)


def _inputs(prog: Program, static: bool, prefix: str = ""):
    """The symbolic inputs and the values the ops read (``x.T`` of an F-ordered input's
    transposed argument, ``x[..., ::2]`` of a strided one's doubled argument)."""
    inputs, values = [], []
    for j, (dtype, shape, layout) in enumerate(prog.inputs):
        arg = tuple(reversed(shape)) if layout == "F" else shape
        if layout == "strided":
            arg = arg[:-1] + (2 * arg[-1],)
        v = fg.tensor(f"{prefix}x{j}", dtype=dtype, shape=arg if static else (None,) * len(shape))
        inputs.append(v)
        values.append(v.T if layout == "F" else v[..., ::2] if layout == "strided" else v)
    return inputs, values


def _apply(kind, xs, param, matrix):
    if kind == "unary":
        return getattr(fg, param)(xs[0])
    if kind in ("binary", "compare"):
        return getattr(fg, param)(xs[0], xs[1])
    if kind == "where":
        return fg.where(*xs)
    if kind == "cast":
        return fg.cast(xs[0], param)
    if kind == "reduce":
        how, axis = param
        return getattr(fg, how)(xs[0], axis=axis, keepdims=axis == -1)
    if kind == "flip":
        index = [slice(None)] * xs[0].ndim
        index[param] = slice(None, None, -1)
        return xs[0][tuple(index)]
    return fg.dot(fg.cast(xs[0], "float64"), matrix)


def draw_program(ch) -> Program:
    """A random program (typed while drawn, with static shapes, to pick valid ops); a
    third of them keep to float64 inputs and smooth ops, so that gradients are checked."""
    base = ch.pick(BASES)
    shapes = [base, base[-1:], ()] + ([(1, base[1]), (base[0], 1)] if len(base) == 2 else [])
    smooth = ch.integer(0, 2) == 0  # a third are smooth float64 programs: gradients checked
    prog = Program()
    for _ in range(ch.integer(1, 3)):
        dtype, shape = "float64" if smooth else ch.pick(DTYPES), ch.pick(shapes)
        layouts = ["C", "F", "strided"] if len(shape) == 2 else ["C", "strided"] if shape else ["C"]
        prog.inputs.append((dtype, shape, ch.pick(layouts)))
    _, values = _inputs(prog, static=True)
    flags = [(True, v.dtype.startswith("float")) for v in values]  # (exact, smooth)
    matrix = fg.tensor("S", dtype="float64", shape=(base[-1], base[-1]))
    for _ in range(ch.integer(1, 12)):
        op = _draw_op(ch, values, flags, base)
        if op is None or (smooth and not _flags(op, flags)[1]):
            continue
        kind, args, param = op
        try:
            y = _apply(kind, [values[i] for i in args], param, matrix)
        except (TypeError, ValueError):  # not defined for these dtypes (bool - bool ...)
            continue
        prog.ops.append(op)
        values.append(y)
        flags.append(_flags(op, flags))
    return prog


def _draw_op(ch, values, flags, base):
    kind = ch.pick(
        ["unary", "binary", "binary", "compare", "where", "cast", "reduce", "flip", "dot"]
    )
    last = len(values) - 1
    a = ch.pick([last, last, ch.integer(0, last)])  # mostly build on the latest value
    b = ch.integer(0, last)
    shape = values[a].type.shape
    if kind == "unary":
        return ("unary", [a], ch.pick(sorted(UNARY)))
    if kind == "binary":
        return ("binary", [a, b], ch.pick(sorted(BINARY)))
    if kind == "compare" and flags[a][0] and flags[b][0]:
        return ("compare", [a, b], ch.pick(COMPARE))
    if kind == "where":
        conds = [i for i, v in enumerate(values) if v.dtype == "bool" and flags[i][0]]
        if conds:
            return ("where", [ch.pick(conds), a, b], None)
    if kind == "cast":
        return (
            "cast",
            [a],
            ch.pick(["float64", "float32"] + (["int64", "bool"] if flags[a][0] else [])),
        )
    if kind == "reduce" and shape:
        axis = ch.pick([None, 0] + ([-1] if len(shape) == 2 else []))
        how = ch.pick(REDUCE)
        if how in ("max", "min") and 0 in (shape if axis is None else (shape[axis],)):
            return None  # no identity: NumPy raises
        return ("reduce", [a], (how, axis))
    if kind == "flip" and shape:
        return ("flip", [a], ch.integer(0, len(shape) - 1))
    if kind == "dot" and len(base) == 2 and shape == base:
        return ("dot", [a], None)
    return None


def _flags(op, flags):
    """(exact, smooth) of an op's result from its operands'."""
    kind, args, param = op
    exact = all(flags[i][0] for i in args)
    smooth = all(flags[i][1] for i in args)
    if kind in ("unary", "binary"):
        keeps, smooth_op = (UNARY if kind == "unary" else BINARY)[param]
        return exact and keeps, smooth and smooth_op
    if kind == "compare":
        return True, False
    if kind == "where":
        return exact, False
    if kind == "cast":
        return exact, smooth and param.startswith("float")
    if kind == "reduce":
        return exact and param[0] in ("max", "min"), smooth and param[0] in ("sum", "mean")
    if kind == "flip":
        return exact, smooth
    return False, smooth  # dot


def build(prog: Program, prefix: str = ""):
    """(symbolic inputs, output, exact, smooth, float32 on the way) of a program, with
    shapes left dynamic; the inputs' names start with ``prefix``."""
    inputs, values = _inputs(prog, static=False, prefix=prefix)
    flags = [(True, v.dtype.startswith("float")) for v in values]
    matrix = fg.matrix(prefix + "S")
    for op in prog.ops:
        kind, args, param = op
        values.append(_apply(kind, [values[i] for i in args], param, matrix))
        flags.append(_flags(op, flags))
    if any(kind == "dot" for kind, _, _ in prog.ops):
        inputs.append(matrix)
    single = any(v.dtype == "float32" for v in values)  # float32 somewhere on the way
    return inputs, values[-1], flags[-1][0], flags[-1][1], single


def arguments(prog: Program, rng) -> list:
    """Arrays for ``build(prog)``'s inputs (the transposed or doubled ones as it reads them)."""
    out = []
    for dtype, shape, layout in prog.inputs:
        value = _values(dtype, shape, rng)
        if layout == "F":
            value = np.ascontiguousarray(value.T)
        elif layout == "strided":
            value = np.repeat(value, 2, axis=-1)
        out.append(value)
    if any(kind == "dot" for kind, _, _ in prog.ops):
        n = next(s[1] for _, s, _ in prog.inputs if len(s) == 2)
        out.append(rng.uniform(-1, 1, (n, n)))
    return out


def _values(dtype, shape, rng):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "int64":
        v = rng.integers(-5, 6, shape)
        if v.size and rng.random() < 0.2:
            v.flat[0] = 2**62 + 3  # wrap-around in products and sums
        return v
    v = rng.uniform(-2, 2, shape)
    if v.size and rng.random() < 0.2:  # edge values at a few places
        specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-300, 1e300]
        v.flat[rng.integers(0, v.size, 2)] = rng.choice(specials, 2)
    with np.errstate(over="ignore"):  # 1e300 is inf in float32
        return v.astype(dtype)


# ---------------------------------------------------------------------------------------
# checking a batch


def _compare(label, got, want, exact, single=False) -> str | None:
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"{label}: {got.dtype}{got.shape} against {want.dtype}{want.shape}"
    if want.dtype.kind != "f" or exact:
        same = np.array_equal(got, want, equal_nan=want.dtype.kind == "f")
        return None if same else f"{label}: not equal\n  got  {got!r}\n  want {want!r}"
    finite = np.isfinite(want)
    if (
        not np.array_equal(finite, np.isfinite(got))
        or not np.array_equal(np.isnan(want), np.isnan(got))
        or not np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    ):
        return f"{label}: NaN/inf differ\n  got  {got!r}\n  want {want!r}"
    rtol = RTOL["float32" if single else want.dtype.name]
    scale = max(1.0, float(np.abs(want[finite]).max(initial=0.0)))
    err = float(np.abs(got[finite].astype(float) - want[finite]).max(initial=0.0))
    if err > rtol * scale:
        bound = f"{rtol} x {scale:.3g}"
        return f"{label}: error {err:.3g} > {bound}\n  got  {got!r}\n  want {want!r}"
    return None


def _call(f, args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return f(*[a.copy() for a in args]), None
        except Exception as exc:  # noqa: BLE001 - compared between the modes
            return None, exc


def check_batch(progs, seed) -> list:
    """Run the programs as one function per mode and compare; the problems found."""
    rng = np.random.default_rng(seed)
    built = [build(p, prefix=f"p{k}_") for k, p in enumerate(progs)]
    inputs = [v for b in built for v in b[0]]
    outputs = [b[1] for b in built]
    args = [a for p in progs for a in arguments(p, rng)]
    modes = {"py": "py", "py without rewrites": NO_REWRITES, "numba": "numba"}
    results = {
        name: _call(fg.function(inputs, outputs, mode=mode, on_unused_input="ignore"), args)
        for name, mode in modes.items()
    }
    want, error = results.pop("py")
    problems = []
    for name, (got, exc) in results.items():
        if error is not None or exc is not None:
            if type(error) is not type(exc):
                problems.append(f"{name} raised {exc!r}, py raised {error!r}")
            continue
        for k, b in enumerate(built):
            problem = _compare(f"program {k}, {name}", got[k], want[k], b[2], b[4])
            if problem:
                problems.append(problem)
    if error is None:
        problems += _check_gradients(progs, built, args, rng)
    return problems


def _check_gradients(progs, built, args, rng) -> list:
    """Gradients of the smooth float64 programs: numba against py, py against finite
    differences along a random direction."""
    terms, wrt = [], []
    inputs = [v for b in built for v in b[0]]
    for b in built:
        if b[3] and b[1].dtype == "float64" and not b[4]:
            terms.append(b[1].sum())
            wrt += [v for v in b[0] if v.dtype == "float64" and v not in wrt]
    if not terms:
        return []
    cost = terms[0]
    for t in terms[1:]:
        cost = cost + t
    grads = fg.grad(cost, wrt, disconnected_inputs="ignore")
    f_cost = fg.function(inputs, cost, mode="py", on_unused_input="ignore")
    (g_py, e_py), (g_nb, e_nb) = (
        _call(fg.function(inputs, grads, mode=m, on_unused_input="ignore"), args)
        for m in ("py", "numba")
    )
    if e_py is not None or e_nb is not None:
        return [] if type(e_py) is type(e_nb) else [f"gradient: numba {e_nb!r}, py {e_py!r}"]
    problems = [
        p for k, (a, b) in enumerate(zip(g_nb, g_py))
        if (p := _compare(f"gradient {k} (wrt {wrt[k]})", a, b, False))
    ]  # fmt: skip
    position = {v: i for i, v in enumerate(inputs)}
    at = [args[position[v]] for v in wrt]
    if not all(np.isfinite(g).all() for g in g_py) or any(
        np.abs(a).max(initial=0) > 1e3 for a in at
    ):
        return problems  # no finite differences through edge values (h would vanish)
    direction = [rng.normal(size=np.shape(args[position[v]])) for v in wrt]
    h = 1e-6

    def cost_at(sign):
        moved = list(args)
        for v, d in zip(wrt, direction):
            moved[position[v]] = args[position[v]] + sign * h * d
        return float(_call(f_cost, moved)[0])

    numeric = (cost_at(1) - cost_at(-1)) / (2 * h)
    analytic = sum(float((g * d).sum()) for g, d in zip(g_py, direction))
    scale = sum(float(np.abs(g * d).sum()) for g, d in zip(g_py, direction)) + 1e-8
    if math.isfinite(numeric) and abs(numeric - analytic) > FD_RTOL * (scale + abs(analytic)):
        problems.append(f"gradient: finite differences {numeric!r}, analytic {analytic!r}")
    return problems


# ---------------------------------------------------------------------------------------
# command line


def _batch(seed, size):
    return [draw_program(RandomChooser(seed * 1000 + k)) for k in range(size)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None, help="first batch seed (default: random)")
    parser.add_argument("--batch", type=int, default=6, help="programs per compiled function")
    parser.add_argument("--out", default="fuzz-failures", help="where failing batches go")
    parser.add_argument("--replay", default=None, help="run the batch of a failure file again")
    opts = parser.parse_args(argv)
    if opts.replay:
        data = json.loads(Path(opts.replay).read_text())
        problems = check_batch([Program.from_json(p) for p in data["programs"]], data["seed"])
        print("\n".join(problems) or "no problem")
        return 1 if problems else 0
    seed = opts.seed if opts.seed is not None else random.randrange(2**31)
    deadline, batches, programs, failures = time.time() + 60 * opts.minutes, 0, 0, 0
    while time.time() < deadline:
        progs = _batch(seed, opts.batch)
        problems = check_batch(progs, seed)
        batches, programs = batches + 1, programs + len(progs)
        if problems:
            failures += 1
            out = Path(opts.out)
            out.mkdir(parents=True, exist_ok=True)
            record = {
                "seed": seed,
                "programs": [json.loads(p.to_json()) for p in progs],
                "problems": problems,
            }
            path = out / f"fuzz-{seed}.json"
            path.write_text(json.dumps(record, indent=1))
            print(f"seed {seed}: {len(problems)} problem(s); python -m tests.fuzz --replay {path}")
        seed += 1
    print(f"{batches} batches, {programs} programs, {failures} failing batches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
