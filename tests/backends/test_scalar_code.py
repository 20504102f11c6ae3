"""``scalar_expr`` against the NumPy reference: every scalar op, ``Cast`` and
``ScalarConstant`` over bool, int8/32/64, uint8/64 and float32/64 inputs with special values.
All ops of one input-dtype combination run in one generated kernel, to keep compiling short."""

import itertools
import platform

import numba
import numpy as np
import pytest

from fusegraph.backends.numba import scalar_code as sc
from fusegraph.ops.fused import ScalarConstant
from fusegraph.ops.scalar import OPS, Cast, ScalarOp

DTYPES = ("bool", "int8", "int32", "int64", "uint8", "uint64", "float32", "float64")
FLOATS = ("float32", "float64")
#: Ops compared within a few ulp (and NaN where NumPy is NaN) instead of exactly.
TRANSCENDENTAL = frozenset(
    "pow exp expm1 log log1p log2 log10 sin cos tan arcsin arccos arctan arctan2 sinh cosh "
    "tanh erf erfc gammaln psi sigmoid softplus".split()
)
#: ulp tolerance: 2, plus NumPy's own float32 SIMD error for the vecmath functions (as in
#: test_vecmath, up to 3 ulp).
MAX_ULP = {"float64": 2, "float32": 2}
MAX_ULP_F32_VECMATH = 4
#: The reference gammaln is CPython's math.lgamma (its own Lanczos sum), Numba calls libm's
#: lgamma. Both lose relative accuracy near the zeros and poles of lgamma (at 1, 2, -2.457,
#: ...), where they differ by ~1e6 ulp of the result but by <= 10 ulp of 1 (measured on 4e5
#: random points), so gammaln is compared within GAMMALN_ULP ulp of max(|y|, 1).
GAMMALN_ULP = 10

_BINARY = tuple(n for n, record in OPS.items() if record.nin == 2)
_UNARY = tuple(n for n, record in OPS.items() if record.nin == 1)


def _accepts(op, dtypes) -> bool:
    try:
        op.output_dtype(*dtypes)
    except TypeError:
        return False
    return True


# ----------------------------------------------------------------------------------------
# Input values


def _specials(dtype: str, small: bool = False) -> np.ndarray:
    """Special values of ``dtype``: zeros, +-1, limits, NaN/inf, denormals, rounding ties."""
    if dtype == "bool":
        return np.array([False, True])
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        vals = [0, 1, -1, 2, -2, 3, -3, 7, -7, info.min, info.max, info.max - 1]
        if not small:
            vals += [5, -8, 10, 100, -100, info.min + 1, info.max // 2, info.max // 3 + 1]
        return np.array(sorted({v for v in vals if info.min <= v <= info.max}), dtype=dtype)
    fi = np.finfo(dtype)
    vals = [0.0, -0.0, 1.0, -1.0, 2.5, -1.5, np.nan, np.inf, -np.inf, 7.0, -0.5]
    if not small:
        vals += [0.5, 1.5, -2.5, 3.0, -3.0, -7.0, 0.49999999999999994, 1e-3, 10.0, 100.0]
        vals += [
            1e10,
            -1e20,
            float(fi.max),
            -float(fi.max),
            float(fi.tiny),
            float(fi.smallest_subnormal),
        ]
        vals += [-float(fi.smallest_subnormal) * 3, 2.0**53 + 2, 1e300, -1e-310, 0.1, -6.25]
    with np.errstate(all="ignore"):
        return np.array(vals, dtype=dtype)


def _unary_values(dtype: str) -> np.ndarray:
    """Specials plus random values over the ranges the functions care about."""
    rng = np.random.default_rng(42)
    spec = _specials(dtype)
    if dtype == "bool":
        return spec
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        rand = rng.integers(info.min, info.max, size=64, dtype=dtype, endpoint=True)
        small = rng.integers(max(info.min, -40), min(info.max, 40), size=64).astype(dtype)
        return np.concatenate([spec, rand, small])
    ties = np.arange(-6, 6) + 0.5
    near = np.concatenate([np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf)])
    scales = np.array([0.01, 1.0, 4.0, 30.0, 1e3, 1e9])
    rand = (rng.standard_normal((len(scales), 40)) * scales[:, None]).ravel()
    unit = rng.uniform(-1.0, 1.0, 60)
    return np.concatenate(
        [spec, ties.astype(dtype), near.astype(dtype), rand.astype(dtype), unit.astype(dtype)]
    )


def _product(*dtypes, small=False):
    """Arrays holding every combination of the special values of each dtype."""
    grids = itertools.product(*(_specials(d, small) for d in dtypes))
    cols = list(zip(*grids))
    return [np.array(c, dtype=d) for c, d in zip(cols, dtypes)]


# ----------------------------------------------------------------------------------------
# Kernels


def _build(cases, in_dtypes):
    """Compile one kernel evaluating every case (op, arg positions) with ``scalar_expr``.

    The kernel stores each expression in a variable ``v<k>`` (whose Numba type is checked
    against the op's output dtype) before writing it out; trig ops get their slow path.
    """
    n = len(in_dtypes)
    outs = [f"o{k}" for k in range(len(cases))]
    lines = [f"def kernel({', '.join([f'x{j}' for j in range(n)] + outs)}):"]
    lines.append(f"    for i in range({'x0.shape[0]' if n else 'o0.shape[0]'}):")
    lines += [f"        a{j} = x{j}[i]" for j in range(n)]
    if not lines[-1].startswith("        "):
        lines.append("        pass")
    for k, (op, pos) in enumerate(cases):
        dts = tuple(in_dtypes[p] for p in pos)
        args = [f"a{p}" for p in pos]
        out = op.output_dtype(*dts)
        lines.append(f"        v{k} = {sc.scalar_expr(op, dts, out, args)}")
        if op.name in sc.trig_ops():
            slow = sc.slow_path_expr(op, dts, out, args)
            cond = sc.slow_path_condition(op, dts, args)
            lines.append(f"        w{k} = {slow} if {cond} else v{k}")
            lines.append(f"        o{k}[i] = w{k}")
        else:
            lines.append(f"        o{k}[i] = v{k}")
    src = "\n".join(lines) + "\n"
    namespace = sc.namespace()
    exec(compile(src, "<scalar_code test kernel>", "exec"), namespace)
    return numba.njit(error_model="numpy")(namespace["kernel"]), src


def _run(cases, arrays):
    """Run the generated kernel on ``arrays``; return the outputs, checking variable types."""
    in_dtypes = tuple(a.dtype.name for a in arrays)
    kernel, src = _build(cases, in_dtypes)
    size = len(arrays[0]) if arrays else 1
    out_dtypes = [op.output_dtype(*(in_dtypes[p] for p in pos)) for op, pos in cases]
    outs = [np.empty(size, dtype=d) for d in out_dtypes]
    kernel(*arrays, *outs)
    typemap = kernel.overloads[kernel.signatures[0]].fndesc.typemap
    for k, d in enumerate(out_dtypes):
        expected = numba.from_dtype(np.dtype(d))
        assert typemap[f"v{k}"] == expected, (cases[k][0], typemap[f"v{k}"], d, src)
    return outs


# ----------------------------------------------------------------------------------------
# Comparison


def _ulp_ok(got, ref, max_ulp, floor=0.0):
    both_nan = np.isnan(got) & np.isnan(ref)
    same = (got == ref) | both_nan
    with np.errstate(all="ignore"):
        scale = np.maximum(np.maximum(np.abs(got), np.abs(ref)), floor).astype(got.dtype)
        close = np.abs(got.astype("float64") - ref.astype("float64")) <= max_ulp * np.spacing(scale)
    finite = np.isfinite(got) & np.isfinite(ref)
    return same | (close & finite)


def _compare(label, got, ref, tol_ulp=0, inputs=(), floor=0.0):
    assert got.dtype == ref.dtype, (label, got.dtype, ref.dtype)
    if got.dtype.kind == "f" and tol_ulp:
        ok = _ulp_ok(got, ref, tol_ulp, floor)
    elif got.dtype.kind == "f":
        ok = (got == ref) & (np.signbit(got) == np.signbit(ref)) | (np.isnan(got) & np.isnan(ref))
    else:
        ok = got == ref
    if not ok.all():
        bad = np.flatnonzero(~ok)[:8]
        detail = [(tuple(x[i] for x in inputs), got[i], ref[i]) for i in bad]
        pytest.fail(f"{label}: {(~ok).sum()} mismatches (inputs, got, NumPy): {detail}")


def _tolerance(name, in_dtypes, out):
    if name not in TRANSCENDENTAL or out not in FLOATS:
        return 0
    if out == "float32" and name in sc.trig_ops() | {"exp", "expm1", "log", "log1p", "log2"}:
        return MAX_ULP_F32_VECMATH
    if out == "float32" and name in ("log10", "arctan", "tanh", "sigmoid", "softplus"):
        return MAX_ULP_F32_VECMATH
    return MAX_ULP[out]


def _reference(op, arrays):
    with np.errstate(all="ignore"):
        return np.asarray(op.impl(*arrays))


def _check_cases(cases, arrays):
    # Negative integer exponents raise ValueError (both backends, as NumPy; tested in
    # test_reliability): integer powers run in a kernel of their own, exponents >= 0.
    pows = [
        c
        for c in cases
        if c[0].name == "pow" and arrays[c[1][1]].dtype.kind == "i" and (arrays[c[1][1]] < 0).any()
    ]
    if pows:
        clipped = list(arrays)
        for _, pos in pows:
            clipped[pos[1]] = np.maximum(arrays[pos[1]], 0)
        _check_cases(pows, clipped)
        cases = [c for c in cases if c not in pows]
        if not cases:
            return
    outs = _run(cases, arrays)
    for (op, pos), got in zip(cases, outs):
        args = [arrays[p] for p in pos]
        dts = tuple(a.dtype.name for a in args)
        mask = np.ones(len(got), dtype=bool)
        if op.name == "gammaln":
            # The reference's math.lgamma raises OverflowError beyond ~2.5e305 (libm: inf).
            mask = ~(np.abs(args[0].astype("float64")) > 1e305)
        sub = [a[mask] for a in args]
        ref = _reference(op, sub)
        assert ref.dtype.name == op.output_dtype(*dts), (op, dts, ref.dtype)
        tol = _tolerance(op.name, dts, ref.dtype.name)
        floor = 1.0 if op.name == "gammaln" else 0.0
        tol = GAMMALN_ULP if op.name == "gammaln" and tol else tol
        _compare(f"{op}{dts}", got[mask], ref, tol, sub, floor)


# ----------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_and_casts(dtype):
    ops = [ScalarOp(n) for n in _UNARY if _accepts(ScalarOp(n), (dtype,))]
    ops += [Cast(dtype=d) for d in DTYPES]
    _check_cases([(op, (0,)) for op in ops], [_unary_values(dtype)])


#: Every unordered pair of DTYPES, plus some reversed ones (the mixed int64/uint64 compares
#: take a different helper for each order).
_PAIRS = list(itertools.combinations_with_replacement(DTYPES, 2))
_PAIRS += [("uint64", "int64"), ("uint64", "int8"), ("float64", "int64"), ("uint8", "int8")]


@pytest.mark.parametrize("pair", _PAIRS, ids="-".join)
def test_binary(pair):
    cases = [(ScalarOp(n), (0, 1)) for n in _BINARY if _accepts(ScalarOp(n), pair)]
    _check_cases(cases, _product(*pair))


_TERNARY = [
    ("bool", "float64", "float64"),
    ("float32", "int8", "int64"),
    ("int8", "uint8", "int8"),
    ("bool", "int64", "uint64"),
    ("uint64", "uint64", "uint64"),
    ("float32", "float32", "float32"),
    ("bool", "bool", "bool"),
]


@pytest.mark.parametrize("dtypes", _TERNARY, ids="-".join)
def test_clip_and_where(dtypes):
    cases = [(ScalarOp(n), (0, 1, 2)) for n in ("clip", "where")]
    cases = [c for c in cases if _accepts(c[0], dtypes)]
    _check_cases(cases, _product(*dtypes, small=True))


def test_constants_exact():
    values = [np.array(v, dtype=d) for d in DTYPES for v in _specials(d)]
    consts = [ScalarConstant.of(v) for v in values]
    outs = _run([(c, ()) for c in consts], [])
    for c, got in zip(consts, outs):
        assert got.dtype == c.dtype
        assert got.tobytes() == c.impl().tobytes() or (np.isnan(got[0]) and np.isnan(c.value))


def test_exact_int64_uint64_comparison():
    # 2**63 - 1 and 2**63 differ, though both round to 2.0**63 in float64.
    a = np.array([2**63 - 1, -1, 0], dtype="int64")
    b = np.array([2**63, 2**64 - 1, 0], dtype="uint64")
    lt, eq = _run([(ScalarOp("lt"), (0, 1)), (ScalarOp("eq"), (0, 1))], [a, b])
    assert lt.tolist() == [True, True, False]
    assert eq.tolist() == [False, False, True]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="C casts differ")
def test_out_of_range_float_to_int_casts_match_numpy_on_x86():
    x = np.array([-1.0, -3.7, 300.0, -129.5, 70000.0, -(2.0**40), 2.0**63 + 2.0**12], "float64")
    for d in ("uint8", "int8", "uint64", "uint32", "int16"):
        sel = x if d == "uint64" else x[np.abs(x) < 2.0**31]
        (got,) = _run([(Cast(dtype=d), (0,))], [sel])
        _compare(f"cast{{{d}}}", got, sel.astype(d), 0, [sel])


def test_negative_integer_power_raises():
    a = np.array([1, -1, 2], dtype="int32")
    b = np.array([3, -3, 2], dtype="int32")
    with pytest.raises(ValueError, match="negative integer powers"):
        _run([(ScalarOp("pow"), (0, 1))], [a, b])


def test_expression_text_and_namespace():
    op = ScalarOp("add")
    assert sc.scalar_expr(op, ("float32", "float32"), "float32", ["x", "y"]) == "np.float32(x + y)"
    assert sc.scalar_expr(op, ("bool", "bool"), "bool", ["x", "y"]) == "(x | y)"
    assert sc.trig_ops() == {"sin", "cos", "tan"}
    with pytest.raises(TypeError, match="gives float32"):
        sc.scalar_expr(op, ("float32", "float32"), "float64", ["x", "y"])
    with pytest.raises(TypeError, match="takes 2 args"):
        sc.scalar_expr(op, ("float32",), "float32", ["x"])
    imported = {}
    exec(sc.IMPORTS, imported)
    assert set(sc.namespace()) <= set(imported)
    assert all(imported[name] is fn for name, fn in sc.HELPERS.items())
    assert len(sc.SOURCE_HASH) == 16


def test_every_table_op_is_covered():
    assert set(_UNARY) | set(_BINARY) | {"clip", "where"} == set(OPS)


def test_renderings_match_the_records():
    """One rendering per scalar op record, checked at import; a rendering needs a record."""
    assert set(sc.RENDERINGS) == set(OPS)
    sc.check_renderings()
    with pytest.raises(ValueError, match="there is no scalar op 'tahn'"):
        sc.register_rendering("tahn", sc.RENDERINGS["tanh"])
    with pytest.raises(ValueError, match="'tanh' has a rendering already"):
        sc.register_rendering("tanh", sc.RENDERINGS["tanh"])
    rule = sc.RENDERINGS.pop("tanh")
    try:
        with pytest.raises(RuntimeError, match=r"no rendering for the ops \['tanh'\]"):
            sc.check_renderings()
        with pytest.raises(NotImplementedError, match="'tanh' has no Numba rendering"):
            sc.scalar_expr(ScalarOp("tanh"), ("float64",), "float64", ["x"])
    finally:
        sc.RENDERINGS["tanh"] = rule
