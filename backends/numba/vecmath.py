"""Vectorisable transcendental functions for Numba: branch-free scalar code, within 1 ulp
and NumPy's special-value behaviour, that LLVM vectorises with the loop it is inlined into
(calls to the scalar libm block vectorisation)."""

# Use: ``<name>_f64`` / ``<name>_f32`` for name in NAMES are callable from njit code (their
# arguments are cast to float64 / float32), also reachable as FUNCTIONS[name][dtype name]
# and, in njit code, as the dtype-generic ``<name>``. They are written as plain Python over
# scalar_ir Values and traced into the caller's LLVM IR at each call site, so they cost no
# Numba compile of their own (see scalar_ir). Method: Cody-Waite reduction with split
# constants, Remez minimax polynomials evaluated with llvm.fmuladd, exponent arithmetic
# through bit casts, selects, no branches. The coefficients come from the Remez scripts in
# backends/numba/fitting/ (mpmath). float32 is computed in float64 with shorter polynomials
# and rounded once (< 0.51 ulp).
#
# Kernels must use error_model="numpy": the Python error model checks every division, which
# stops vectorisation. fastmath may hold "contract" and "afn", but not "reassoc" (it folds
# the rounding tricks and compensated sums), "arcp" (2-ulp errors) or "nnan"/"ninf"/"nsz".
#
# sin/cos/tan reduce |x| < TRIG_LIMIT = 2**26 to within an ulp and return NaN beyond. A slow
# path inside the element function would stop vectorisation (an opaque call) or, through the
# speculatable llvm.sin, run libm on every lane; so it belongs to the kernel: OR
# trig_needs_slow_path(arg) into a flag in the vectorised loop and, when it is set,
# recompute the flagged elements with math.sin etc. in a second, scalar loop.

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from fusegraph.backends.numba import scalar_ir
from fusegraph.backends.numba.scalar_ir import (
    GenericFunction,
    ScalarFunction,
    bits,
    copysign,
    flip,
    from_bits,
    horner,
    int_to_f64,
    pow2,
    rint,
    select,
    to_f32,
    to_f64,
)

#: Changes whenever this file or scalar_ir does. Numba's cache does not see code traced
#: into a kernel, so code generators embed it in kernel source to keep cached machine code
#: from going stale.
SOURCE_HASH = hashlib.sha256(
    Path(__file__).read_bytes() + Path(scalar_ir.__file__).read_bytes()
).hexdigest()[:16]


def scalar(*params):
    """Make the function a ScalarFunction with these parameter types ("f64"/"f32")."""
    return lambda fn: ScalarFunction(fn, params)


def _coeffs(text):
    """A tuple of the float literals in ``text`` (a compact way to write coefficients)."""
    return tuple(float(v) for v in text.split())


# ----------------------------------------------------------------------------------------
# float64 constants

_SHIFT = 6755399441055744.0  # 1.5 * 2**52: x + _SHIFT holds round(x) in its low bits
_SHIFT_BITS = 0x4338000000000000
_INF = math.inf
_NAN = math.nan
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # 32 significant bits: k * _LN2_HI is exact for |k| < 2**21
_LN2_LO = 1.9082149292705877e-10
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD
_TINY = 2.2250738585072014e-308  # smallest normal float64

# exp(r) = 1 + r + r**2 * P(r) on |r| <= 1.01 * ln(2) / 2 (Remez, rel. error 4e-18)
_EXP_P = _coeffs(
    "0.5000000000000012 0.16666666666666385 0.04166666666651915 0.008333333333507659 "
    "0.001388888894691993 0.00019841269486167685 2.4801489352274887e-05 "
    "2.7557597180154805e-06 2.763168735060401e-07 2.499899500371943e-08"
)
# expm1(r) = r + r**2 * P(r), same interval, rel. error 3e-18
_EXPM1_P = _coeffs(
    "0.5000000000000001 0.1666666666666667 0.04166666666665111 0.008333333333325565 "
    "0.0013888888896005712 0.00019841269876804337 2.4801574024847775e-05 "
    "2.755725289882649e-06 2.756813816602346e-07 2.5106251043335047e-08 "
    "1.7688182876181336e-09"
)
# log1p(f) = 2 atanh(s), s = f / (2 + f): (2 atanh(s) - 2 s) / s = z * P(z), z = s**2,
# |s| <= 1.001 * (3 - 2 sqrt(2)) (Remez, rel. error 1e-18)
_LOG_P = _coeffs(
    "0.6666666666666735 0.399999999994092 0.28571428743765637 0.22222198416375055 "
    "0.18183573232944045 0.15313804237661757 0.14798590609859294"
)
# sin(r) = r + r * z * P(z) and cos(r) = 1 - z / 2 + z**2 * Q(z), z = r**2, on
# |r| <= 1.001 * pi / 4 (Remez, rel. errors 4e-18 and 2e-19)
_SIN_P = _coeffs(
    "-0.1666666666666663 0.008333333333322005 -0.00019841269829495482 2.7557313587616264e-06 "
    "-2.5050742307534794e-08 1.5895904723782227e-10"
)
_COS_P = _coeffs(
    "0.04166666666666665 -0.0013888888888882636 2.4801587294465025e-05 -2.755731568324949e-07 "
    "2.0875889333287553e-09 -1.1367511336274246e-11"
)
# arctan(u) = u + u * z * P(z), z = u**2, |u| <= 1.001 * tan(pi/8) (Remez, rel. error 1e-18)
_ATAN_P = _coeffs(
    "-0.3333333333333319 0.19999999999952386 -0.1428571428007559 0.1111111077741986 "
    "-0.09090897584311404 0.07692057133733182 -0.06663069040229394 0.058476344752289716 "
    "-0.0503815528706848 0.03803531280080312 -0.01787511896532434"
)
_TAN_PIO8 = 0.41421356237309503
_TAN_3PIO8 = 2.414213562373095
_PIO4_HI = 0.7853981633974483
_PIO4_LO = 3.061616997868383e-17
_PIO2_HI = 1.5707963267948966
_PIO2_LO = 6.123233995736766e-17
_INVLN2_HI = 1.4426950407214463  # 32 bits, so that hi * _INVLN2_HI is exact below
_INVLN2_LO = 1.6751713164886512e-10
_INVLN10_HI = 0.4342944818781689
_INVLN10_LO = 2.5082946711645275e-11
_LOG10_2_HI = 0.3010299955494702  # 32 bits
_LOG10_2_LO = 1.1451100898021838e-10
# erf(x) = x + x * P(x**2) on |x| <= 0.84 (Remez, rel. error 9e-18)
_ERF_P = _coeffs(
    "0.12837916709551256 -0.37612638903183404 0.11283791670935746 -0.02686617064088103 "
    "0.005223977577511199 -0.0008548323861561032 0.00012055202538643308 "
    "-1.4922179817853286e-05 1.6402408018367005e-06 -1.5720155992893041e-07 "
    "1.0744124856016933e-08"
)
# erfc(a) * exp(a**2) = Q(t), t = (a - 3) / (a + 3), 0.84 <= a <= 6 (Remez; the error of
# erf relative to erf is 2e-18, and that of erfc relative to erfc at most 2e-15 so that erf
# reaches 1 at the right argument)
_ERFC_Q = _coeffs(
    "0.17900115118138968 -0.3262335600430277 0.2456038017124261 -0.15011593650193905 "
    "0.07166583718955281 -0.02439249927982476 0.004269136636722224 0.000707746055386101 "
    "-0.0005970670515967272 4.525288075581983e-05 6.409580572579911e-05 "
    "-1.2797466343942361e-05 -8.080399355092012e-06 1.8043537688739572e-06 "
    "1.1421868100009805e-06"
)
# pi/2 in four parts; the first three have at most 27 bits, so q * part is exact for
# |q| < 2**26, and the sum carries 141 bits of pi/2.
_PIO2_A = 1.570796325802803
_PIO2_B = 9.920935739593517e-10
_PIO2_C = 5.721188709663575e-18
_PIO2_D = 1.6446256936324258e-26
#: sin, cos and tan are computed in vectorisable code for |x| < TRIG_LIMIT and are NaN
#: beyond it: such arguments need the scalar slow path (see ``trig_needs_slow_path``).
TRIG_LIMIT = 2.0**26
_TWO_OVER_PI = 0.6366197723675814


# ----------------------------------------------------------------------------------------
# float64


def _reduce_ln2(x, lowest):
    """Cody-Waite reduction of ``x`` clamped to [lowest, 710]: ``(k, r, c)`` with
    x = k ln2 + r + c, ``c`` the rounding error of ``r``. Clamping keeps the exponent
    arithmetic in range; NaN falls through both selects."""
    xc = select(x > 710.0, 710.0, x)
    xc = select(xc < lowest, lowest, xc)
    kf = rint(xc * _LOG2E)
    k = bits(kf + _SHIFT) - _SHIFT_BITS
    hi = xc - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    return k, r, (hi - r) - lo


def _exp_hilo(x):
    """exp(x) as (y, y_lo): y is the rounded result, y_lo an estimate of exp(x) - y."""
    k, r, c = _reduce_ln2(x, -746.0)  # exp(r + c) ~ exp(r) * (1 + c)
    h = 1.0 + r
    tail = ((1.0 - h) + r) + ((r * r) * horner(r, _EXP_P) + c)  # Fast2Sum of 1 + r
    p = h + tail
    p_lo = (h - p) + tail
    # Two factors so that 2**k may overflow or be subnormal; the last product rounds once.
    k1 = k >> 1
    s1 = pow2(k1)
    s2 = pow2(k - k1)
    return (p * s1) * s2, (p_lo * s1) * s2


@scalar("f64")
def exp_f64(x):
    """exp(x) for float64."""
    return _exp_hilo(x)[0]


def _expm1_hilo(x):
    """exp(x) - 1 as (y, y_lo): y is the rounded result, y_lo an estimate of the rest."""
    k, r, c = _reduce_ln2(x, -50.0)  # expm1(r + c) ~ expm1(r) + c * exp(r)
    p = (r * r) * horner(r, _EXPM1_P)  # expm1(r) = r + p
    tail = p + c * (1.0 + (r + p))
    # exp(x) - 1 = 2 * ((s - 1/2) + s * expm1(r)) with s = 2**(k-1). s * r is exact, s - 1/2
    # is a + a_lo (exact below k = -53), and (s - 1/2) + s * r is h + lo (Fast2Sum:
    # |s - 1/2| >= |s * r| unless s = 1/2, where the sum is exact anyway).
    s = pow2(k - 1)
    a = s - 0.5
    a_lo = (-0.5 - a) + s
    b = s * r
    h = a + b
    lo = (a - h) + b
    rest = (lo + a_lo) + s * tail
    y = h + rest
    y_lo = (h - y) + rest  # Fast2Sum: rest is below an ulp of h
    tiny = abs(x) < 2.0**-54  # expm1(x) rounds to x (and keeps the sign of zero)
    return select(tiny, x, 2.0 * y), select(tiny, 0.0, 2.0 * y_lo)


@scalar("f64")
def expm1_f64(x):
    """exp(x) - 1 for float64, accurate near 0."""
    return _expm1_hilo(x)[0]


def _log_reduce(x):
    """(e, f) with x = 2**e * (1 + f), 1 + f in [sqrt(1/2), sqrt(2)) and e integer-valued,
    for positive normal or subnormal x."""
    sub = x < _TINY  # subnormal: scale into the normal range first
    ix = bits(select(sub, x * 18014398509481984.0, x))
    e = (ix - _SQRT_HALF_BITS) >> 52
    f = from_bits(ix - (e << 52)) - 1.0  # exact
    return int_to_f64(select(sub, e - 54, e)), f


def _log1p_kernel(f):
    """log1p(f) for f in [sqrt(1/2) - 1, sqrt(2) - 1] as (f - hfsq) + t, t small."""
    s = f / (2.0 + f)
    z = s * s
    hfsq = 0.5 * f * f
    return hfsq, s * (hfsq + z * horner(z, _LOG_P))


def _log_specials(x, y):
    """Fix up log-like results: NaN for x < 0, -inf at 0, inf at inf, NaN stays NaN."""
    y = select(x < _INF, y, x)
    y = select(x < 0.0, _NAN, y)
    return select(x == 0.0, -_INF, y)


@scalar("f64")
def log_f64(x):
    """Natural logarithm for float64."""
    ef, f = _log_reduce(x)
    hfsq, t = _log1p_kernel(f)
    y = ef * _LN2_HI + (f - (hfsq - (t + ef * _LN2_LO)))
    return _log_specials(x, y)


@scalar("f64")
def log1p_f64(x):
    """log(1 + x) for float64, accurate near 0."""
    u = 1.0 + x
    # c = (1 + x) - u exactly (Sterbenz), so that 1 + x = u + c.
    c = select(x > 1.0, 1.0 - (u - x), x - (u - 1.0))
    iu = bits(u)
    e = (iu - _SQRT_HALF_BITS) >> 52
    m = from_bits(iu - (e << 52))
    # m - 1 is exact; adding c * 2**-e makes f the (rounded) reduced argument of 1 + x.
    # (c * 2**-e is negligible for large e, where the clamp keeps 2**-e finite.)
    f = (m - 1.0) + c * pow2(select(e < 1000, -e, -1000))
    ef = int_to_f64(e)
    hfsq, t = _log1p_kernel(f)
    y = ef * _LN2_HI + (f - (hfsq - (t + ef * _LN2_LO)))
    y = _log_specials(x + 1.0, y)
    return select(abs(x) < 2.0**-54, x, y)


def _log_parts(x):
    """(ef, hi, lo) with log(x) = ef * ln(2) + hi + lo for positive normal or subnormal x,
    ef integer-valued and hi holding at most 21 significant bits."""
    ef, f = _log_reduce(x)
    hfsq, t = _log1p_kernel(f)
    hi = from_bits(bits(f - hfsq) & -4294967296)  # clear the low 32 bits
    lo = ((f - hi) - hfsq) + t
    return ef, hi, lo


@scalar("f64")
def log2_f64(x):
    """Base-2 logarithm for float64."""
    ef, hi, lo = _log_parts(x)
    vhi = hi * _INVLN2_HI  # exact
    vlo = (lo + hi) * _INVLN2_LO + lo * _INVLN2_HI
    w = ef + vhi
    y = w + (vlo + ((ef - w) + vhi))  # Fast2Sum: |ef| >= |vhi| unless ef == 0
    return _log_specials(x, y)


@scalar("f64")
def log10_f64(x):
    """Base-10 logarithm for float64."""
    ef, hi, lo = _log_parts(x)
    vhi = hi * _INVLN10_HI
    vlo = (lo + hi) * _INVLN10_LO + lo * _INVLN10_HI
    e_hi = ef * _LOG10_2_HI  # exact
    w = e_hi + vhi
    y = w + (vlo + (ef * _LOG10_2_LO + ((e_hi - w) + vhi)))
    return _log_specials(x, y)


def _sincos_reduced(x):
    """(q, sin(r), cos(r)) with x = q * pi/2 + r, |r| <= pi/4 and q integer-valued.

    The reduction is a double-double Cody-Waite one, accurate for |x| < TRIG_LIMIT."""
    q = rint(x * _TWO_OVER_PI)
    a = x - q * _PIO2_A  # exact (Sterbenz)
    b = q * _PIO2_B
    h = a - b
    lo = select(abs(a) >= abs(b), (a - h) - b, (-b - h) + a)  # Fast2Sum error of a - b
    c = q * _PIO2_C
    h2 = h - c
    lo = lo + ((h - h2) - c) - q * _PIO2_D
    r = h2 + lo
    lo = lo - (r - h2)  # sin/cos(r + lo): lo is below half an ulp of r
    z = r * r
    sin_t = lo * (1.0 - 0.5 * z) + (r * z) * horner(z, _SIN_P)
    sin_r = r + sin_t
    hz = 0.5 * z
    w = 1.0 - hz
    cos_t = ((1.0 - w) - hz) + ((z * z) * horner(z, _COS_P) - r * lo)
    cos_r = w + cos_t
    # The rounding errors of both sums (Fast2Sum), for callers wanting more precision.
    return q, sin_r, (r - sin_r) + sin_t, cos_r, (w - cos_r) + cos_t


@scalar("f64")
def trig_needs_slow_path(x):
    """Whether sin/cos/tan of the finite float ``x`` is beyond TRIG_LIMIT, where the
    vectorisable functions return NaN and ``math.sin`` etc. must be used instead."""
    a = abs(x)
    return (a >= TRIG_LIMIT) & (a < _INF)  # & rather than a chained "and": no branch


@scalar("f64")
def sin_f64(x):
    """Sine for float64."""
    q, s, s_lo, c, c_lo = _sincos_reduced(x)
    k = bits(q + _SHIFT)
    y = flip(select((k & 1) != 0, c, s), k)
    y = select(abs(x) < TRIG_LIMIT, y, _NAN)
    return select(abs(x) < 2.0**-26, x, y)


@scalar("f64")
def cos_f64(x):
    """Cosine for float64."""
    q, s, s_lo, c, c_lo = _sincos_reduced(x)
    k = bits(q + _SHIFT)
    y = flip(select((k & 1) != 0, s, c), k + 1)
    return select(abs(x) < TRIG_LIMIT, y, _NAN)


@scalar("f64")
def tan_f64(x):
    """Tangent for float64."""
    q, s, s_lo, c, c_lo = _sincos_reduced(x)
    odd = (bits(q + _SHIFT) & 1) != 0
    num = select(odd, -c, s)
    num_lo = select(odd, -c_lo, s_lo)
    den = select(odd, s, c)
    den_lo = select(odd, s_lo, c_lo)
    t = num / den
    y = t + (num_lo - t * den_lo) / den  # (num + num_lo) / (den + den_lo) to first order
    y = select(abs(x) < TRIG_LIMIT, y, _NAN)
    return select(abs(x) < 2.0**-27, x, y)


@scalar("f64")
def arctan_f64(x):
    """Inverse tangent for float64."""
    # arctan(a) = base + arctan(u): u = a (base 0), (a - 1) / (a + 1) (pi/4), -1/a (pi/2).
    a = abs(x)
    big = a > _TAN_3PIO8
    mid = a > _TAN_PIO8
    num = select(big, -1.0, select(mid, a - 1.0, a))
    den = select(big, a, select(mid, a + 1.0, 1.0))
    u = num / den
    base_hi = select(big, _PIO2_HI, select(mid, _PIO4_HI, 0.0))
    base_lo = select(big, _PIO2_LO, select(mid, _PIO4_LO, 0.0))
    z = u * u
    y = base_hi + (u + (base_lo + (u * z) * horner(z, _ATAN_P)))
    return copysign(y, x)


@scalar("f64")
def tanh_f64(x):
    """Hyperbolic tangent for float64."""
    a = abs(x)
    em, em_lo = _expm1_hilo(2.0 * select(a > 20.0, 20.0, a))  # tanh(20) rounds to 1
    d = em + 2.0
    d_lo = select(em < 2.0, (2.0 - d) + em, (em - d) + 2.0) + em_lo  # em + 2 = d + d_lo
    q = d_lo / d
    t = em / d
    # (em + em_lo) / (d + d_lo) to first order; for larger a, 1 - 2 / (d + d_lo) rounds
    # once near 1 (and saturates exactly where tanh does).
    y = select(a > 0.75, 1.0 - (2.0 / d) * (1.0 - q), t + (em_lo - t * d_lo) / d)
    return copysign(y, x)


@scalar("f64")
def sigmoid_f64(x):
    """Logistic sigmoid 1 / (1 + exp(-x)) for float64, without overflow."""
    e, e_lo = _exp_hilo(-abs(x))
    return sigmoid_from_f64(x, e, e_lo)


@scalar("f64")
def softplus_f64(x):
    """log(1 + exp(x)) for float64, without overflow."""
    e, e_lo = _exp_hilo(-abs(x))
    return softplus_from_f64(x, e, e_lo, log1p_f64(e))


# sigmoid and softplus of x and of -x all start from exp(-|x|): ``exp_neg_abs``,
# ``softplus_log`` and the ``*_from`` functions let a kernel that needs several of them
# compute that exponential (and its log1p) once. Same formulas, so the same results.


@scalar("f64")
def exp_neg_abs_f64(x):
    """``exp(-|x|)`` as a float64 pair ``(e, e_lo)`` (value and low-order correction)."""
    return _exp_hilo(-abs(x))


softplus_log_f64 = log1p_f64  # log1p(e) for the e of exp_neg_abs_f64


@scalar("f64", "f64", "f64")
def sigmoid_from_f64(x, e, e_lo):
    """``sigmoid_f64(x)`` given ``exp_neg_abs_f64(x)`` (or of ``-x``)."""
    d = 1.0 + e
    d_lo = ((1.0 - d) + e) + e_lo  # 1 + exp(-|x|) = d + d_lo
    t = e / d
    v = t + (e_lo - t * d_lo) / d  # sigmoid(-|x|) = (e + e_lo) / (d + d_lo), first order
    return select(x >= 0.0, 1.0 - v, v)


@scalar("f64", "f64", "f64", "f64")
def softplus_from_f64(x, e, e_lo, log1p_e):
    """``softplus_f64(x)`` given ``exp_neg_abs_f64(x)`` and ``softplus_log_f64`` of it."""
    # log1p(e + e_lo) ~ log1p(e) + e_lo / (1 + e); a rough 1 / (1 + e) is enough there
    return (log1p_e + e_lo * (1.0 - 0.5 * e)) + select(x > 0.0, x, 0.0)


@scalar("f64")
def erf_f64(x):
    """Error function for float64."""
    small = x + x * horner(x * x, _ERF_P)
    a = abs(x)
    a = select(a > 6.0, 6.0, a)  # erf(6) rounds to 1
    # a**2 = sq + sq_lo exactly (Dekker: a_hi has 26 bits), and exp(-sq - sq_lo) ~
    # exp(-sq) * (1 - sq_lo): erfc keeps its relative accuracy up to a = 6.
    a_hi = from_bits(bits(a) & -134217728)
    a_lo = a - a_hi
    sq = a * a
    sq_lo = ((a_hi * a_hi - sq) + 2.0 * a_hi * a_lo) + a_lo * a_lo
    q = horner((a - 3.0) / (a + 3.0), _ERFC_Q)
    erfc = exp_f64(-sq) * (q - q * sq_lo)
    return select(a < 0.84, small, copysign(1.0 - erfc, x))


# ----------------------------------------------------------------------------------------
# float32: float64 arithmetic with polynomials sized for float32. Before the final rounding
# the relative error is below 2**-32, so results are within 0.51 ulp; float32 subnormals,
# overflow and underflow all come from that one float64 -> float32 rounding.

# Remez fits on the same intervals as the float64 ones (relative errors in the comments)
_EXP32_P = _coeffs(  # 2**-34
    "0.5000000071671608 0.1666666582009114 0.0416662803261746 0.008333503756100749 "
    "0.0013945752237712451 0.0001978926123479094"
)
_EXPM1_32_P = _coeffs(  # 2**-34
    "0.5000000011082646 0.16666666722038867 0.0416665941772222 0.00833329712628225 "
    "0.0013900712196245307 0.00019900403026329965 1.9324181809754575e-05"
)
_LOG32_P = _coeffs(  # 2**-37
    "0.6666666564033549 0.4000033658893692 0.28537206631759976 0.23584305872689526"
)
_SIN32_P = _coeffs(  # 2**-37
    "-0.16666666640588215 0.008333329280525444 -0.0001983930441568401 2.718046472751257e-06"
)
_COS32_P = _coeffs("0.041666645554476606 -0.0013887309866919117 2.4432413012130676e-05")  # 2**-33
_ATAN32_P = _coeffs(  # 2**-35
    "-0.3333333248988348 0.19999903034665892 -0.14281981395376783 0.11044348731508598 "
    "-0.08474265429140182 0.04739728803802256"
)
_ERF32_P = _coeffs(  # 2**-33
    "0.12837916696548027 -0.3761263713045511 0.11283751875034206 -0.02686279537169593 "
    "0.0052102277717862985 -0.0008256887696733719 8.899890026857596e-05"
)
_ERFC32_Q = _coeffs(  # on 0.84 <= a <= 4 (2**-34 relative to erf, 4e-8 relative to erfc)
    "0.17900115773326858 -0.32623356074607707 0.2456024477645164 -0.15012161715615766 "
    "0.07170118018197436 -0.024076901196075917 0.0051785713509885185 0.0018967108206778367"
)
_LN2 = 0.6931471805599453
_INVLN2 = 1.4426950408889634
_INVLN10 = 0.43429448190325176
_LOG10_2 = 0.3010299956639812


def _reduce_ln2_32(x, lowest):
    """``(kf, r)`` with x = kf ln2 + r for ``x`` clamped to [lowest, 90] (beyond float32's
    range either way; NaN passes): the float32 functions' one-constant reduction."""
    xc = select(x > 90.0, 90.0, x)
    xc = select(xc < lowest, lowest, xc)
    kf = rint(xc * _LOG2E)
    return kf, xc - kf * _LN2


def _exp32(x):
    """exp(x) in float64 to 2**-33 for float32-sized arguments."""
    kf, r = _reduce_ln2_32(x, -110.0)
    p = 1.0 + (r + (r * r) * horner(r, _EXP32_P))
    return p * pow2(bits(kf + _SHIFT) - _SHIFT_BITS)


def _expm1_32(x):
    """exp(x) - 1 in float64 to 2**-33 relative, for float32-sized arguments."""
    kf, r = _reduce_ln2_32(x, -20.0)  # expm1(-20) rounds to -1 in float32
    em = r + (r * r) * horner(r, _EXPM1_32_P)
    s = pow2(bits(kf + _SHIFT) - _SHIFT_BITS)
    return select(x == 0.0, x, s * em + (s - 1.0))  # keeps the sign of zero


def _log1p32(f):
    """log(1 + f) in float64 to 2**-37 relative, for f in [sqrt(1/2) - 1, sqrt(2) - 1]."""
    s = f / (2.0 + f)
    z = s * s
    return s * (2.0 + z * horner(z, _LOG32_P))


def _log32(x):
    """(e, log(m)) with x = 2**e * m, m in [sqrt(1/2), sqrt(2)), for positive normal
    float64 x (every float32 is one)."""
    ix = bits(x)
    e = (ix - _SQRT_HALF_BITS) >> 52
    return int_to_f64(e), _log1p32(from_bits(ix - (e << 52)) - 1.0)


def _log1p_core32(x):
    """log(1 + x) in float64 to 2**-36 relative, for float64 x > -1."""
    u = 1.0 + x
    iu = bits(u)
    e = (iu - _SQRT_HALF_BITS) >> 52
    f = select(e == 0, x, from_bits(iu - (e << 52)) - 1.0)  # 1 + x may round; x may not
    y = int_to_f64(e) * _LN2 + _log1p32(f)
    y = _log_specials(u, y)
    return select(x == 0.0, x, y)


def _sincos32(x):
    """(q, sin(r), cos(r)) with x = q * pi/2 + r as in _sincos_reduced, to float32 needs."""
    q = rint(x * _TWO_OVER_PI)
    r = ((x - q * _PIO2_A) - q * _PIO2_B) - q * (_PIO2_C + _PIO2_D)
    z = r * r
    sin_r = r + (r * z) * horner(z, _SIN32_P)
    cos_r = 1.0 - 0.5 * z + (z * z) * horner(z, _COS32_P)
    return q, sin_r, cos_r


@scalar("f32")
def exp_f32(x):
    """exp(x) for float32."""
    return to_f32(_exp32(to_f64(x)))


@scalar("f32")
def expm1_f32(x):
    """exp(x) - 1 for float32, accurate near 0."""
    return to_f32(_expm1_32(to_f64(x)))


@scalar("f32")
def log_f32(x):
    """Natural logarithm for float32."""
    xd = to_f64(x)
    e, lm = _log32(xd)
    return to_f32(_log_specials(xd, e * _LN2 + lm))


@scalar("f32")
def log2_f32(x):
    """Base-2 logarithm for float32."""
    xd = to_f64(x)
    e, lm = _log32(xd)
    return to_f32(_log_specials(xd, e + lm * _INVLN2))


@scalar("f32")
def log10_f32(x):
    """Base-10 logarithm for float32."""
    xd = to_f64(x)
    e, lm = _log32(xd)
    return to_f32(_log_specials(xd, e * _LOG10_2 + lm * _INVLN10))


@scalar("f32")
def log1p_f32(x):
    """log(1 + x) for float32, accurate near 0."""
    return to_f32(_log1p_core32(to_f64(x)))


@scalar("f32")
def sin_f32(x):
    """Sine for float32 (NaN for |x| >= TRIG_LIMIT, like sin_f64)."""
    xd = to_f64(x)
    q, s, c = _sincos32(xd)
    k = bits(q + _SHIFT)
    y = flip(select((k & 1) != 0, c, s), k)
    y = select(abs(xd) < TRIG_LIMIT, y, _NAN)
    return to_f32(select(xd == 0.0, xd, y))


@scalar("f32")
def cos_f32(x):
    """Cosine for float32 (NaN for |x| >= TRIG_LIMIT, like cos_f64)."""
    xd = to_f64(x)
    q, s, c = _sincos32(xd)
    k = bits(q + _SHIFT)
    y = flip(select((k & 1) != 0, s, c), k + 1)
    return to_f32(select(abs(xd) < TRIG_LIMIT, y, _NAN))


@scalar("f32")
def tan_f32(x):
    """Tangent for float32 (NaN for |x| >= TRIG_LIMIT, like tan_f64)."""
    xd = to_f64(x)
    q, s, c = _sincos32(xd)
    odd = (bits(q + _SHIFT) & 1) != 0
    y = select(odd, -c, s) / select(odd, s, c)
    y = select(abs(xd) < TRIG_LIMIT, y, _NAN)
    return to_f32(select(xd == 0.0, xd, y))


@scalar("f32")
def arctan_f32(x):
    """Inverse tangent for float32."""
    xd = to_f64(x)
    a = abs(xd)
    big = a > _TAN_3PIO8
    mid = a > _TAN_PIO8
    u = select(big, -1.0, select(mid, a - 1.0, a)) / select(big, a, select(mid, a + 1.0, 1.0))
    base = select(big, _PIO2_HI, select(mid, _PIO4_HI, 0.0))
    z = u * u
    return to_f32(copysign(base + (u + (u * z) * horner(z, _ATAN32_P)), xd))


@scalar("f32")
def tanh_f32(x):
    """Hyperbolic tangent for float32."""
    xd = to_f64(x)
    a = abs(xd)
    em = _expm1_32(2.0 * select(a > 10.0, 10.0, a))  # tanh(10) rounds to 1
    y = select(a > 0.75, 1.0 - 2.0 / (em + 2.0), em / (em + 2.0))
    return to_f32(copysign(y, xd))


@scalar("f32")
def sigmoid_f32(x):
    """Logistic sigmoid 1 / (1 + exp(-x)) for float32, without overflow."""
    return sigmoid_from_f32(x, _exp32(-abs(to_f64(x))), 0.0)


@scalar("f32")
def softplus_f32(x):
    """log(1 + exp(x)) for float32, without overflow."""
    e = _exp32(-abs(to_f64(x)))
    return softplus_from_f32(x, e, 0.0, _log1p_core32(e))


# The float32 forms of exp_neg_abs & co (see the float64 ones); e_lo is 0, as the float64
# arithmetic is exact enough for a float32 result.


@scalar("f32")
def exp_neg_abs_f32(x):
    """``exp(-|x|)`` in float64 for a float32 ``x``, as the pair ``(e, 0.0)``."""
    return _exp32(-abs(to_f64(x))), 0.0


@scalar("f64")
def softplus_log_f32(e):
    """``log1p(e)`` for the ``e`` of ``exp_neg_abs_f32``."""
    return _log1p_core32(e)


@scalar("f32", "f64", "f64")
def sigmoid_from_f32(x, e, e_lo):
    """``sigmoid_f32(x)`` given ``exp_neg_abs_f32(x)`` (or of ``-x``)."""
    v = e / (1.0 + e)  # sigmoid(-|x|)
    return to_f32(select(to_f64(x) >= 0.0, 1.0 - v, v))


@scalar("f32", "f64", "f64", "f64")
def softplus_from_f32(x, e, e_lo, log1p_e):
    """``softplus_f32(x)`` given ``exp_neg_abs_f32(x)`` and ``softplus_log_f32`` of it."""
    xd = to_f64(x)
    return to_f32(log1p_e + select(xd > 0.0, xd, 0.0))


@scalar("f32")
def erf_f32(x):
    """Error function for float32."""
    xd = to_f64(x)
    small = xd + xd * horner(xd * xd, _ERF32_P)
    a = abs(xd)
    a = select(a > 4.0, 4.0, a)  # erf(4) rounds to 1 in float32
    erfc = _exp32(-(a * a)) * horner((a - 3.0) / (a + 3.0), _ERFC32_Q)
    return to_f32(select(a < 0.84, small, copysign(1.0 - erfc, xd)))


# ----------------------------------------------------------------------------------------
# Registry and dtype-generic entry points

NAMES = (
    "exp",
    "expm1",
    "log",
    "log1p",
    "log2",
    "log10",
    "sin",
    "cos",
    "tan",
    "arctan",
    "tanh",
    "sigmoid",
    "softplus",
    "erf",
)
#: name -> {"float64": f64 function, "float32": f32 function}, for code generators.
FUNCTIONS = {n: {"float64": globals()[n + "_f64"], "float32": globals()[n + "_f32"]} for n in NAMES}


def _generic(name):
    return GenericFunction(name, FUNCTIONS[name]["float32"], FUNCTIONS[name]["float64"])


# The dtype-generic names for njit code
exp = _generic("exp")
expm1 = _generic("expm1")
log = _generic("log")
log1p = _generic("log1p")
log2 = _generic("log2")
log10 = _generic("log10")
sin = _generic("sin")
cos = _generic("cos")
tan = _generic("tan")
arctan = _generic("arctan")
tanh = _generic("tanh")
sigmoid = _generic("sigmoid")
softplus = _generic("softplus")
erf = _generic("erf")
