"""The vectorisable math kernels (float64 and float32): ulp error against mpmath and NumPy,
special values, overflow/underflow thresholds, vectorisation. One kernel per dtype runs
every function, so the module compiles twice."""

import functools
import math
import re

import mpmath
import numba
import numpy as np
import pytest

from fusegraph.backends.numba import vecmath as vm

DTYPES = (np.float64, np.float32)
UFUNCS = {n: getattr(np, n) for n in vm.NAMES if n not in ("sigmoid", "softplus", "erf")}
TRIG = ("sin", "cos", "tan")
#: max ulp error against the correctly rounded result (f64 measured on 1e6+ samples)
MAX_ULP = 1
#: max ulp distance to NumPy: its own error (f64: < 1 ulp; f32 SIMD: up to 3) plus ours
MAX_ULP_NUMPY = {np.float64: 2, np.float32: 4}
_vec_erf = np.vectorize(math.erf, otypes=["float64"])


def _kernel(dtype):
    suffix = "_f64" if dtype == np.float64 else "_f32"
    lines = [f"        out[{j}, i] = vm.{n}{suffix}(v)" for j, n in enumerate(vm.NAMES)]
    src = "def kernel(x, out):\n    for i in range(x.shape[0]):\n        v = x[i]\n"
    namespace = {"vm": vm}
    exec(src + "\n".join(lines), namespace)
    return numba.njit(error_model="numpy")(namespace["kernel"])


@pytest.fixture(scope="module")
def kernels():
    ks = {dt: _kernel(dt) for dt in DTYPES}
    for dt, k in ks.items():
        k(np.zeros(1, dt), np.zeros((len(vm.NAMES), 1), dt))
    return ks


def evaluate(kernels, x):
    """{name: result array} for the input array x."""
    out = np.empty((len(vm.NAMES), x.size), x.dtype)
    kernels[x.dtype.type](x, out)
    return dict(zip(vm.NAMES, out))


def ordered(a):
    """Float bits mapped to integers that are monotone in the float value."""
    info = {4: (np.int32, 0x7FFFFFFF), 8: (np.int64, 0x7FFFFFFFFFFFFFFF)}
    ity, mask = info[a.dtype.itemsize]
    i = a.view(ity).astype(np.int64)
    return np.where(i < 0, -(i & mask), i)


def ulps(a, b):
    """Ulp distance between float arrays; 0 for NaN against NaN, inf for NaN against not."""
    d = np.abs(ordered(a) - ordered(b)).astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    d[nan_a & nan_b] = 0
    d[nan_a ^ nan_b] = np.inf
    return d


def _bits(dtype, n, rng):
    """Random finite bit patterns of both signs."""
    if dtype == np.float64:
        raw = rng.integers(0, 0x7FF0000000000000, n, dtype=np.int64).view(np.float64)
    else:
        raw = rng.integers(0, 0x7F800000, n, dtype=np.int32).view(np.float32)
    return raw * rng.choice(np.array([-1, 1], dtype), n)


def _around(values, dtype, k=8):
    """The values and their k nearest floats on either side."""
    v = np.asarray(values, dtype)
    ity = np.int64 if dtype == np.float64 else np.int32
    steps = np.arange(-k, k + 1, dtype=ity)
    return (v.view(ity)[:, None] + steps[None, :]).ravel().view(dtype)


def delicate(dtype):
    """The points where some function is delicate, and their 8 neighbours on each side:
    reduction boundaries, branch points and clamps, overflow and underflow thresholds."""
    fi = np.finfo(dtype)
    k = np.arange(-40, 41)
    points = [
        (k + 0.5) * math.log(2),  # exp/expm1 reduction boundaries
        [0.34657, 0.75, 0.84, 4.0, 6.0, 10.0, 19.06, 20.0, 37.43, 50.0],  # branch points
        [709.782712893384, 710.0, 745.1332191019411, 746.0, 708.3964185322641],
        [88.72283, 90.0, 103.972, 110.0, 87.33655],
        [0.29289, 0.41421356, 2.41421356, 1.0, 2.0, math.sqrt(0.5), math.sqrt(2.0)],
        np.arange(1, 200) * (math.pi / 4),  # quadrant boundaries, zeros of sin/cos/tan
        2.0 ** np.arange(-20, 26) * math.pi,
        [vm.TRIG_LIMIT, float(fi.smallest_normal), float(fi.max)],
    ]
    points = np.concatenate([np.asarray(p, np.float64) for p in points])
    points = _around(np.concatenate([points, -points]).astype(dtype), dtype)
    return points[np.isfinite(points)]


def samples(dtype, seed=0):
    """Dense samples over the whole range: random bit patterns, log-uniform magnitudes,
    uniform values around 0 and near 0, and the delicate points."""
    rng = np.random.default_rng(seed)
    fi = np.finfo(dtype)
    lo, hi = math.log(float(fi.smallest_subnormal)), math.log(float(fi.max))
    mag = np.exp(rng.uniform(lo, hi, 6000)) * rng.choice([-1, 1], 6000)
    return np.concatenate(
        [
            _bits(dtype, 6000, rng),
            mag.astype(dtype),
            rng.uniform(-12, 12, 4000).astype(dtype),
            rng.uniform(-1, 1, 2000).astype(dtype) * dtype(1e-3),
            delicate(dtype),
        ]
    )


def reference(name, x):
    """The value NumPy (or math.erf, or the stable formulas) gives, in x's dtype."""
    with np.errstate(all="ignore"):
        if name in UFUNCS:
            return UFUNCS[name](x)
        xd = x.astype(np.float64)
        if name == "erf":
            y = _vec_erf(xd)
        elif name == "sigmoid":
            z = np.exp(-np.abs(xd))
            y = np.where(xd >= 0, 1 / (1 + z), z / (1 + z))
        else:
            y = np.log1p(np.exp(-np.abs(xd))) + np.maximum(xd, 0)
        return y.astype(x.dtype)


_MP = {
    "exp": mpmath.exp,
    "expm1": mpmath.expm1,
    "log": mpmath.log,
    "log1p": mpmath.log1p,
    "log2": lambda v: mpmath.log(v, 2),
    "log10": mpmath.log10,
    "sin": mpmath.sin,
    "cos": mpmath.cos,
    "tan": mpmath.tan,
    "arctan": mpmath.atan,
    "tanh": mpmath.tanh,
    "sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)),
    "softplus": lambda v: mpmath.log1p(mpmath.exp(v)),
    "erf": mpmath.erf,
}


def _round(r, dtype):
    """Round the mpmath value r to dtype correctly, subnormals included."""
    p, emin = (53, -1074) if dtype == np.float64 else (24, -149)
    if mpmath.isinf(r) or r == 0:
        return float(r)
    if abs(r) < mpmath.mpf(2) ** (emin + p - 1):
        return float(mpmath.nint(r * mpmath.mpf(2) ** -emin) * mpmath.mpf(2) ** emin)
    with mpmath.workprec(p):
        r = +r
    return math.inf if abs(r) > float(np.finfo(dtype).max) else float(r)


def correctly_rounded(name, x):
    """mpmath's value of ``name`` at each element of x, correctly rounded to x's dtype."""
    with mpmath.workprec(120):
        out = [_round(_MP[name](mpmath.mpf(float(v))), x.dtype.type) for v in x]
    return np.array(out).astype(x.dtype)


def _domain(name, x):
    """Finite nonzero arguments inside the domain (where an ulp error means something)."""
    keep = np.isfinite(x) & (x != 0)
    if name in ("log", "log2", "log10"):
        keep &= x > 0
    elif name == "log1p":
        keep &= x > -1
    elif name in TRIG:
        keep &= np.abs(x) < vm.TRIG_LIMIT
    return keep


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_vectorised(kernels, dtype):
    """The loop calling every function is vectorised (no scalar libm call left)."""
    k = kernels[dtype]
    llvm = k.inspect_llvm(k.signatures[0])
    scalar = "double" if dtype == np.float64 else "float"
    assert re.search(rf"<\d+ x {scalar}>", llvm), "loop not vectorised"
    for name in ("exp", "log", "sin", "cos", "tan", "atan", "tanh", "erf", "expm1", "log1p"):
        assert not re.search(rf"call [^\n]*@{name}f?\(", llvm), f"libm {name} called"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_against_mpmath(kernels, dtype):
    """Within MAX_ULP of the correctly rounded result, on 500 delicate and 500 other points
    per function."""
    x = np.concatenate([delicate(dtype), samples(dtype, seed=1)])
    n_delicate = delicate(dtype).size
    got = evaluate(kernels, x)
    rng = np.random.default_rng(2)
    for name in vm.NAMES:
        ok = _domain(name, x)
        pts = [np.flatnonzero(ok[:n_delicate]), n_delicate + np.flatnonzero(ok[n_delicate:])]
        pts = np.concatenate([rng.choice(p, min(p.size, 500), replace=False) for p in pts])
        want = correctly_rounded(name, x[pts])
        d = ulps(got[name][pts], want)
        worst = np.argmax(d)
        assert d[worst] <= MAX_ULP, (name, x[pts][worst], got[name][pts][worst], want[worst])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_against_numpy(kernels, dtype):
    """Close to NumPy (or the reference formula) everywhere, NaN exactly where it is NaN;
    trig functions beyond TRIG_LIMIT are NaN (the caller's slow path takes over)."""
    x = np.concatenate([samples(dtype, seed=3), _bits(dtype, 100_000, np.random.default_rng(4))])
    got = evaluate(kernels, x)
    for name in vm.NAMES:
        want = reference(name, x)
        if name in TRIG:
            beyond = np.abs(x) >= vm.TRIG_LIMIT
            assert np.isnan(got[name][beyond]).all()
            want = np.where(beyond, np.nan, want)
        d = ulps(got[name], want)
        worst = np.argmax(d)
        assert d[worst] <= MAX_ULP_NUMPY[dtype], (name, x[worst], got[name][worst], want[worst])


def _specials(dtype):
    fi = np.finfo(dtype)
    v = [0.0, fi.smallest_subnormal, fi.smallest_normal / 2, fi.smallest_normal, 1e-30, 0.5]
    v += [1.0, 2.0, 30.0, 100.0, 1e10, fi.max, np.inf, np.nan]
    v = np.array(v, dtype)
    return np.concatenate([v, -v])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_specials(kernels, dtype):
    """Bit-for-bit NumPy's answer on zeros (with their sign), subnormals, inf and NaN, up to
    one ulp on finite nonzero values (NumPy itself is not correctly rounded)."""
    x = _specials(dtype)
    got = evaluate(kernels, x)
    for name in vm.NAMES:
        y, want = got[name], reference(name, x)
        if name in TRIG:
            want = np.where(np.abs(x) >= vm.TRIG_LIMIT, np.nan, want)
        exact = (want == 0) | ~np.isfinite(want) | ~np.isfinite(x) | (x == 0)
        assert np.array_equal(y[exact], want[exact], equal_nan=True), name
        assert (np.signbit(y) == np.signbit(want))[~np.isnan(want)].all(), name
        assert ulps(y, want).max() <= MAX_ULP_NUMPY[dtype], name


def _flips(f, x):
    """Indices i where the boolean f(x[i]) != f(x[i + 1])."""
    b = f(x)
    return np.flatnonzero(b[:-1] != b[1:])


def _bisect(f, a, b):
    """The smallest float in (a, b] where the monotone boolean f is f(b) != f(a)."""
    ity = np.int64 if a.dtype == np.float64 else np.int32
    ia, ib = int(ordered(np.array([a]))[0]), int(ordered(np.array([b]))[0])
    fa = f(np.array([a]))[0]

    def val(i):
        raw = i if i >= 0 else -i - (1 << (8 * a.itemsize - 1))  # sign bit set
        return np.array([raw], ity).view(a.dtype)

    while ib - ia > 1:
        mid = (ia + ib) // 2
        if f(val(mid))[0] == fa:
            ia = mid
        else:
            ib = mid
    return val(ib)[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_thresholds(kernels, dtype):
    """Overflow to inf, underflow to 0 and saturation at +-1 happen where they do for the
    correctly rounded function, and overflow and underflow where they do in NumPy, within
    one ulp of the argument. (NumPy's tanh saturates early: tanh(18.9904) is 1 - 2**-53.)"""
    grid = np.linspace(-800, 800, 1601).astype(dtype)
    conditions = {"inf": np.isinf, "zero": lambda a: a == 0, "one": lambda a: np.abs(a) == 1}
    cases = {
        "exp": ("inf", "zero"),
        "expm1": ("inf", "one"),
        "sigmoid": ("zero", "one"),
        "softplus": ("zero",),
        "tanh": ("one",),
        "erf": ("one",),
    }
    for name, labels in cases.items():
        refs = [("mpmath", lb) for lb in labels]
        refs += [("numpy", lb) for lb in labels if name in UFUNCS and lb != "one"]
        for source, label in refs:
            cond = conditions[label]
            if source == "mpmath":
                ref = functools.partial(correctly_rounded, name)
            else:
                ref = functools.partial(reference, name)

            def want(v, ref=ref, cond=cond):
                return cond(ref(v))

            flips = _flips(want, grid)
            assert flips.size, (name, label, source)
            for i in flips:
                t = _bisect(want, grid[i], grid[i + 1])  # the reference threshold
                window = _around([t], dtype, k=16)
                ours = cond(evaluate(kernels, window)[name])
                assert (ours[:15] == want(window)[:15]).all(), (name, label, source, t)
                assert (ours[18:] == want(window)[18:]).all(), (name, label, source, t)


def test_exact_values(kernels):
    """Values that are exact in floating point come out exact."""
    x = np.array([1.0, 2.0, 1024.0, 0.5, 2.0**-1074, 10.0, 1e22, 0.0, -0.0])
    got = evaluate(kernels, x)
    assert list(got["log2"][:5]) == [0.0, 1.0, 10.0, -1.0, -1074.0]
    assert list(got["log10"][5:7]) == [1.0, 22.0]
    assert got["log"][0] == 0.0 and got["exp"][7] == 1.0 and got["cos"][7] == 1.0
    assert got["sigmoid"][7] == 0.5 and got["softplus"][8] == math.log(2.0)


def test_shared_exponential_gives_the_same_sigmoid_and_softplus(kernels):
    """``sigmoid_from``/``softplus_from`` on the ``exp_neg_abs`` of ``x`` or of ``-x`` equal
    ``sigmoid``/``softplus`` of ``x`` bit for bit (kernels share that exponential)."""

    def kernel(s):
        exp_neg_abs, plog = getattr(vm, f"exp_neg_abs_{s}"), getattr(vm, f"softplus_log_{s}")
        sig_from, soft_from = getattr(vm, f"sigmoid_from_{s}"), getattr(vm, f"softplus_from_{s}")

        @numba.njit(error_model="numpy")
        def shared(x):
            out = np.empty((4, x.shape[0]), x.dtype)
            for i in range(x.shape[0]):
                for row in range(2):
                    e, lo = exp_neg_abs(x[i] if row == 0 else -x[i])
                    out[row, i] = sig_from(x[i], e, lo)
                    out[2 + row, i] = soft_from(x[i], e, lo, plog(e))
            return out

        return shared

    for dt in DTYPES:
        x = np.array([-800.0, -40, -1.5, -0.0, 0.0, 1e-300, 0.3, 2, 40, 800, math.inf, -math.inf])
        x = np.concatenate([x, np.linspace(-30, 30, 601)]).astype(dt)
        got = kernel("f64" if dt == np.float64 else "f32")(x)
        direct = evaluate(kernels, x)
        sig, soft = direct["sigmoid"], direct["softplus"]
        for row, want in enumerate((sig, sig, soft, soft)):
            np.testing.assert_array_equal(got[row], want)


def test_slow_path_predicate():
    """trig_needs_slow_path flags exactly the finite arguments beyond TRIG_LIMIT."""
    lim = vm.TRIG_LIMIT
    cases = [(0.0, False), (lim / 2, False), (lim, True), (-1e300, True), (math.inf, False)]
    cases += [(math.nan, False), (np.float32(lim), True), (np.float32(-1.0), False)]
    flags = numba.njit(lambda v: vm.trig_needs_slow_path(v))
    for v, flag in cases:
        assert flags(v) is flag, v


def test_trace_rejects_mixed_types():
    """Tracing keeps Numba's types explicit: no implicit int/float mixing, no truth value."""
    from llvmlite import ir

    from fusegraph.backends.numba import scalar_ir as sir

    fn = ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), [sir.F64, sir.I64]), "f")
    builder = ir.IRBuilder(fn.append_basic_block())
    x, k = (sir.Value(builder, a) for a in fn.args)
    assert (x * 2 + 1.5).type == sir.F64 and (k >> 1 & 3).type == sir.I64
    assert sir.select(x < 0.0, 1.0, 2.0).type == sir.F64
    for bad in (lambda: x + k, lambda: k + 0.5, lambda: k / 2, lambda: x & 1, lambda: bool(x)):
        with pytest.raises(TypeError):
            bad()


def test_called_from_python():
    """The functions are traced into njit code; a call from Python says so."""
    with pytest.raises(TypeError, match="exp_f64 is traced into njit code"):
        vm.exp_f64(1.0)


def test_generic_dispatch():
    """The dtype-generic names pick the kernel for the argument's dtype inside njit code."""

    @numba.njit(error_model="numpy")
    def k(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = vm.exp(x[i])
        return out

    for dt in DTYPES:
        x = np.linspace(-3, 3, 7).astype(dt)
        y = k(x)
        assert y.dtype == dt
        assert ulps(y, np.exp(x.astype(np.float64)).astype(dt)).max() <= 1
    assert vm.FUNCTIONS["tanh"]["float32"] is vm.tanh_f32


def test_slow_path_pattern():
    """The kernel-level slow path of the module docstring: the loop stays vectorised and
    huge arguments get libm's answer."""

    @numba.njit(error_model="numpy")
    def k(x, out):
        slow = False
        for i in range(x.shape[0]):
            out[i] = vm.sin_f64(x[i])
            slow |= vm.trig_needs_slow_path(x[i])
        if slow:
            for i in range(x.shape[0]):
                if vm.trig_needs_slow_path(x[i]):
                    out[i] = math.sin(x[i])

    x = np.array([0.5, -3.0, vm.TRIG_LIMIT, -1e22, 1e300, np.inf, np.nan, 2.0**60])
    out = np.empty_like(x)
    k(x, out)
    with np.errstate(invalid="ignore"):
        assert np.array_equal(out, np.sin(x), equal_nan=True)
    assert re.search(r"<\d+ x double>", k.inspect_llvm(k.signatures[0]))
