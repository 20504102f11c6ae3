"""Vectorisable transcendental functions for Numba: branch-free scalar kernels (range
reduction + minimax polynomials, exponent arithmetic through bit casts) that LLVM can
auto-vectorise when they are inlined into a loop, unlike calls to the scalar libm."""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# ----------------------------------------------------------------------------------------
# Bit casts


@intrinsic
def _bits64(typingctx, x):
    """The bits of a float64 as an int64."""
    if x == types.float64:

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.IntType(64))

        return types.int64(x), codegen
    return None


@intrinsic
def _f64(typingctx, i):
    """The float64 whose bits are the (low 64 bits of the) integer ``i``."""
    if isinstance(i, types.Integer):

        def codegen(context, builder, sig, args):
            v = args[0]
            if i.bitwidth < 64:
                v = builder.sext(v, ir.IntType(64)) if i.signed else builder.zext(v, ir.IntType(64))
            elif i.bitwidth > 64:
                v = builder.trunc(v, ir.IntType(64))
            return builder.bitcast(v, ir.DoubleType())

        return types.float64(i), codegen
    return None


_jit = numba.njit(inline="always")

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
_EXP_P = (
    0.5000000000000012,
    0.16666666666666385,
    0.04166666666651915,
    0.008333333333507659,
    0.001388888894691993,
    0.00019841269486167685,
    2.4801489352274887e-05,
    2.7557597180154805e-06,
    2.763168735060401e-07,
    2.499899500371943e-08,
)
# expm1(r) = r + r**2 * P(r), same interval, rel. error 3e-18
_EXPM1_P = (
    0.5000000000000001,
    0.1666666666666667,
    0.04166666666665111,
    0.008333333333325565,
    0.0013888888896005712,
    0.00019841269876804337,
    2.4801574024847775e-05,
    2.755725289882649e-06,
    2.756813816602346e-07,
    2.5106251043335047e-08,
    1.7688182876181336e-09,
)
# log1p(f) = 2 atanh(s), s = f / (2 + f): (2 atanh(s) - 2 s) / s = z * P(z), z = s**2,
# |s| <= 1.001 * (3 - 2 sqrt(2)) (Remez, rel. error 1e-18)
_LOG_P = (
    0.6666666666666735,
    0.399999999994092,
    0.28571428743765637,
    0.22222198416375055,
    0.18183573232944045,
    0.15313804237661757,
    0.14798590609859294,
)
# sin(r) = r + r * z * P(z) and cos(r) = 1 - z / 2 + z**2 * Q(z), z = r**2, on
# |r| <= 1.001 * pi / 4 (Remez, rel. errors 4e-18 and 2e-19)
_SIN_P = (
    -0.1666666666666663,
    0.008333333333322005,
    -0.00019841269829495482,
    2.7557313587616264e-06,
    -2.5050742307534794e-08,
    1.5895904723782227e-10,
)
_COS_P = (
    0.04166666666666665,
    -0.0013888888888882636,
    2.4801587294465025e-05,
    -2.755731568324949e-07,
    2.0875889333287553e-09,
    -1.1367511336274246e-11,
)
# arctan(u) = u + u * z * P(z), z = u**2, |u| <= 1.001 * tan(pi/8) (Remez, rel. error 1e-18)
_ATAN_P = (
    -0.3333333333333319,
    0.19999999999952386,
    -0.1428571428007559,
    0.1111111077741986,
    -0.09090897584311404,
    0.07692057133733182,
    -0.06663069040229394,
    0.058476344752289716,
    -0.0503815528706848,
    0.03803531280080312,
    -0.01787511896532434,
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
# pi/2 in four parts; the first three have 29 bits so that q * part is exact for |q| < 2**24
_PIO2_A = 1.570796325802803
_PIO2_B = 9.920935774287987e-10
_PIO2_C = 2.2517417706346578e-18
_PIO2_D = 3.5215598651832e-27
_TWO_OVER_PI = 0.6366197723675814
_SIN_LIMIT = 2.0**24  # |x| below which the Cody-Waite reduction is accurate


@_jit
def _horner(x, c):
    """c[0] + c[1] * x + ... + c[-1] * x**(len(c) - 1), fully unrolled by LLVM."""
    acc = c[len(c) - 1]
    for i in range(len(c) - 2, -1, -1):
        acc = acc * x + c[i]
    return acc


@_jit
def _pow2(k):
    """2.0**k for integer -1022 <= k <= 1023."""
    return _f64((k + 1023) << 52)


@_jit
def _int_to_f64(k):
    """float(k) for |k| < 2**51 without a (slow without AVX-512) int64 -> float64 convert."""
    return _f64(k + _SHIFT_BITS) - _SHIFT


# ----------------------------------------------------------------------------------------
# float64


@_jit
def exp_f64(x):
    """exp(x) for float64."""
    # Clamping keeps the exponent arithmetic in range; NaN falls through both selects.
    xc = 710.0 if x > 710.0 else x
    xc = -746.0 if xc < -746.0 else xc
    kf = np.rint(xc * _LOG2E)
    k = _bits64(kf + _SHIFT) - _SHIFT_BITS
    hi = xc - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    c = (hi - r) - lo  # rounding error of r: exp(r + c) ~ exp(r) * (1 + c)
    h = 1.0 + r
    p = h + (((1.0 - h) + r) + ((r * r) * _horner(r, _EXP_P) + c))  # Fast2Sum of 1 + r
    # Two factors so that 2**k may overflow or be subnormal; the last product rounds once.
    k1 = k >> 1
    return (p * _pow2(k1)) * _pow2(k - k1)


@_jit
def expm1_f64(x):
    """exp(x) - 1 for float64, accurate near 0."""
    xc = 710.0 if x > 710.0 else x
    xc = -50.0 if xc < -50.0 else xc
    kf = np.rint(xc * _LOG2E)
    k = _bits64(kf + _SHIFT) - _SHIFT_BITS
    hi = xc - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    c = (hi - r) - lo  # rounding error of r: expm1(r + c) ~ expm1(r) + c * exp(r)
    p = (r * r) * _horner(r, _EXPM1_P)  # expm1(r) = r + p
    tail = p + c * (1.0 + (r + p))
    # exp(x) - 1 = 2 * ((s - 1/2) + s * expm1(r)) with s = 2**(k-1); s - 1/2 and s * r are
    # exact and their sum is kept as h + lo (Fast2Sum: |s - 1/2| >= |s * r| unless s = 1/2).
    s = _pow2(k - 1)
    a = s - 0.5
    b = s * r
    h = a + b
    lo = (a - h) + b
    y = 2.0 * (h + (lo + s * tail))
    return x if abs(x) < 2.0**-54 else y


@_jit
def _log_reduce(ix):
    """Split positive normal float bits ``ix`` as 2**e * m, m in [sqrt(1/2), sqrt(2))."""
    e = (ix - _SQRT_HALF_BITS) >> 52
    m = _f64(ix - (e << 52))
    return e, m


@_jit
def _log1p_kernel(f):
    """log1p(f) for f in [sqrt(1/2) - 1, sqrt(2) - 1] as (f - hfsq) + t, t small."""
    s = f / (2.0 + f)
    z = s * s
    hfsq = 0.5 * f * f
    return hfsq, s * (hfsq + z * _horner(z, _LOG_P))


@_jit
def _log_specials(x, y):
    """Fix up log-like results: NaN for x < 0, -inf at 0, inf at inf, NaN stays NaN."""
    y = y if x < _INF else x
    y = _NAN if x < 0.0 else y
    return -_INF if x == 0.0 else y


@_jit
def log_f64(x):
    """Natural logarithm for float64."""
    sub = x < _TINY  # subnormal: scale into the normal range first
    xs = x * 18014398509481984.0 if sub else x
    e, m = _log_reduce(_bits64(xs))
    e = e - 54 if sub else e
    ef = _int_to_f64(e)
    f = m - 1.0
    hfsq, t = _log1p_kernel(f)
    y = ef * _LN2_HI + (f - (hfsq - (t + ef * _LN2_LO)))
    return _log_specials(x, y)


@_jit
def log1p_f64(x):
    """log(1 + x) for float64, accurate near 0."""
    u = 1.0 + x
    # c = (1 + x) - u exactly (Sterbenz), so that 1 + x = u + c.
    c = (1.0 - (u - x)) if x > 1.0 else (x - (u - 1.0))
    e, m = _log_reduce(_bits64(u))
    # m - 1 is exact; adding c * 2**-e makes f the (rounded) reduced argument of 1 + x.
    # (c * 2**-e is negligible for large e, where the clamp keeps 2**-e finite.)
    f = (m - 1.0) + c * _pow2(-e if e < 1000 else -1000)
    ef = _int_to_f64(e)
    hfsq, t = _log1p_kernel(f)
    y = ef * _LN2_HI + (f - (hfsq - (t + ef * _LN2_LO)))
    y = _log_specials(x + 1.0, y)
    return x if abs(x) < 2.0**-54 else y


@_jit
def _log_parts(x):
    """(ef, hi, lo) with log(x) = ef * ln(2) + hi + lo for positive normal or subnormal x,
    ef integer-valued and hi holding at most 21 significant bits."""
    sub = x < _TINY
    xs = x * 18014398509481984.0 if sub else x
    e, m = _log_reduce(_bits64(xs))
    e = e - 54 if sub else e
    f = m - 1.0
    hfsq, t = _log1p_kernel(f)
    hi = _f64(_bits64(f - hfsq) & -4294967296)  # clear the low 32 bits
    lo = ((f - hi) - hfsq) + t
    return _int_to_f64(e), hi, lo


@_jit
def log2_f64(x):
    """Base-2 logarithm for float64."""
    ef, hi, lo = _log_parts(x)
    vhi = hi * _INVLN2_HI  # exact
    vlo = (lo + hi) * _INVLN2_LO + lo * _INVLN2_HI
    w = ef + vhi
    y = w + (vlo + ((ef - w) + vhi))  # Fast2Sum: |ef| >= |vhi| unless ef == 0
    return _log_specials(x, y)


@_jit
def log10_f64(x):
    """Base-10 logarithm for float64."""
    ef, hi, lo = _log_parts(x)
    vhi = hi * _INVLN10_HI
    vlo = (lo + hi) * _INVLN10_LO + lo * _INVLN10_HI
    e_hi = ef * _LOG10_2_HI  # exact
    w = e_hi + vhi
    y = w + (vlo + (ef * _LOG10_2_LO + ((e_hi - w) + vhi)))
    return _log_specials(x, y)


@_jit
def _sincos_reduced(x):
    """(q, sin(r), cos(r)) with x = q * pi/2 + r, |r| <= pi/4 and q integer-valued.

    The reduction is a double-double Cody-Waite one, accurate for |x| < 2**24 (q * part
    is exact for the first three parts of pi/2)."""
    q = np.rint(x * _TWO_OVER_PI)
    a = x - q * _PIO2_A  # exact (Sterbenz)
    b = q * _PIO2_B
    h = a - b
    lo = (a - h) - b if abs(a) >= abs(b) else (-b - h) + a  # Fast2Sum error of a - b
    c = q * _PIO2_C
    h2 = h - c
    lo = lo + ((h - h2) - c) - q * _PIO2_D
    r = h2 + lo
    lo = lo - (r - h2)  # sin/cos(r + lo): lo is below half an ulp of r
    z = r * r
    sin_t = lo * (1.0 - 0.5 * z) + (r * z) * _horner(z, _SIN_P)
    sin_r = r + sin_t
    hz = 0.5 * z
    w = 1.0 - hz
    cos_t = ((1.0 - w) - hz) + ((z * z) * _horner(z, _COS_P) - r * lo)
    cos_r = w + cos_t
    # The rounding errors of both sums (Fast2Sum), for callers wanting more precision.
    return q, sin_r, (r - sin_r) + sin_t, cos_r, (w - cos_r) + cos_t


@_jit
def _flip(y, k):
    """y with its sign flipped when bit 1 of the integer k is set (quadrants 2 and 3)."""
    return _f64(_bits64(y) ^ ((k & 2) << 62))


@_jit
def sin_f64(x):
    """Sine for float64."""
    q, s, s_lo, c, c_lo = _sincos_reduced(x)
    k = _bits64(q + _SHIFT)
    y = _flip(c if k & 1 else s, k)
    return x if abs(x) < 2.0**-26 else y


@_jit
def cos_f64(x):
    """Cosine for float64."""
    q, s, s_lo, c, c_lo = _sincos_reduced(x)
    k = _bits64(q + _SHIFT)
    return _flip(s if k & 1 else c, k + 1)


@_jit
def tan_f64(x):
    """Tangent for float64."""
    q, s, s_lo, c, c_lo = _sincos_reduced(x)
    odd = _bits64(q + _SHIFT) & 1
    num, num_lo = (-c, -c_lo) if odd else (s, s_lo)
    den, den_lo = (s, s_lo) if odd else (c, c_lo)
    t = num / den
    y = t + (num_lo - t * den_lo) / den  # (num + num_lo) / (den + den_lo) to first order
    return x if abs(x) < 2.0**-27 else y


@_jit
def arctan_f64(x):
    """Inverse tangent for float64."""
    # arctan(a) = base + arctan(u): u = a (base 0), (a - 1) / (a + 1) (pi/4), -1/a (pi/2).
    a = abs(x)
    big = a > _TAN_3PIO8
    mid = a > _TAN_PIO8
    num = -1.0 if big else (a - 1.0 if mid else a)
    den = a if big else (a + 1.0 if mid else 1.0)
    u = num / den
    base_hi = _PIO2_HI if big else (_PIO4_HI if mid else 0.0)
    base_lo = _PIO2_LO if big else (_PIO4_LO if mid else 0.0)
    z = u * u
    y = base_hi + (u + (base_lo + (u * z) * _horner(z, _ATAN_P)))
    return math.copysign(y, x)


@_jit
def tanh_f64(x):
    """Hyperbolic tangent for float64."""
    a = abs(x)
    em = expm1_f64(2.0 * (a if a < 20.0 else 20.0))  # tanh(20) rounds to 1
    d = em + 2.0
    d_lo = (2.0 - d) + em if em < 2.0 else (em - d) + 2.0  # Fast2Sum error of em + 2
    t = em / d
    return math.copysign(t - t * (d_lo / d), x)  # em / (d + d_lo) to first order


@_jit
def sigmoid_f64(x):
    """Logistic sigmoid 1 / (1 + exp(-x)) for float64, without overflow."""
    e = exp_f64(-abs(x))
    d = 1.0 + e
    d_lo = (1.0 - d) + e  # Fast2Sum error of 1 + e
    t = (1.0 if x >= 0.0 else e) / d
    return t - t * (d_lo / d)  # n / (d + d_lo) to first order


@_jit
def softplus_f64(x):
    """log(1 + exp(x)) for float64, without overflow."""
    return log1p_f64(exp_f64(-abs(x))) + (x if x > 0.0 else 0.0)
