"""Random draws in njit code: NumPy's PCG64 generator on a state vector (the layout of
``fusegraph.ops.random``) and samplers that fill a flat output array.

The generator is NumPy's exactly (``next_double`` gives what ``Generator.random`` gives
from the same state), and so are the normal sampler (NumPy's ziggurat, on the tables Numba
ships) and the binomial and bernoulli ones where NumPy inverts (``n * min(p, 1 - p) <=
30``). The other samplers are simple exact methods of our own, so their draws differ from
NumPy's while following the same distributions:

* binomial beyond that: inversion (Kachitvichyanukul and Schmeiser's BINV) for
  ``min(p, 1 - p)``, in chunks of trials small enough that ``(1 - p) ** chunk`` never
  underflows (NumPy uses BTPE);
* integers: rejection of the top ``2**64 mod range`` outputs, then ``mod range``;
* choice: ``integers`` with replacement, a partial Fisher-Yates shuffle without; with
  probabilities, the inverse of their cumulative sum, and without replacement the keys
  ``log(u) / p`` largest first (Efraimidis and Spirakis: successive weighted sampling).

Parameters arrive flat, of size 1 (one value for all draws) or of the output's size. Bad
parameters raise ``ValueError`` as NumPy does.
"""

from __future__ import annotations

import math

import numba
import numba.np.random._constants as _zig
import numpy as np

_jit = numba.njit(nogil=True, error_model="numpy")

_MUL_HI = np.uint64(2549297995355413924)  # PCG's default 128-bit multiplier
_MUL_LO = np.uint64(4865540595714422341)
_LOW32 = np.uint64(0xFFFFFFFF)
_U32 = np.uint64(32)
_U11 = np.uint64(11)
_U58 = np.uint64(58)
_U63 = np.uint64(63)
_U64 = np.uint64(64)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_TO_DOUBLE = 1.0 / 9007199254740992.0  # 2**-53
#: Binomial trials per BINV chunk are at most this over p (so (1-p)**chunk > 1e-14).
_BINV_MEAN = 14.0
# NumPy's ziggurat tables for the standard normal (256 strips), as Numba ships them
_ZIG_K = _zig.ki_double
_ZIG_W = _zig.wi_double
_ZIG_F = _zig.fi_double
_ZIG_R = _zig.ziggurat_nor_r
_ZIG_INV_R = _zig.ziggurat_nor_inv_r


@_jit
def _mul64(a, b):
    """The high and low 64-bit words of the 128-bit product of the uint64s a and b."""
    a_lo, a_hi = a & _LOW32, a >> _U32
    b_lo, b_hi = b & _LOW32, b >> _U32
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    cross = (lo_lo >> _U32) + (hi_lo & _LOW32) + lo_hi
    high = a_hi * b_hi + (hi_lo >> _U32) + (cross >> _U32)
    return high, (cross << _U32) | (lo_lo & _LOW32)


@_jit
def next64(st):
    """Advance the PCG64 state ``st`` (state high, low, increment high, low, ...) and
    return its next 64-bit output (XSL-RR of the new state)."""
    hi, lo = st[0], st[1]
    p_hi, p_lo = _mul64(lo, _MUL_LO)
    p_hi += lo * _MUL_HI + hi * _MUL_LO
    n_lo = p_lo + st[3]
    carry = _ONE if n_lo < p_lo else _ZERO
    n_hi = p_hi + st[2] + carry
    st[0] = n_hi
    st[1] = n_lo
    x = n_hi ^ n_lo
    rot = n_hi >> _U58
    return (x >> rot) | (x << ((_U64 - rot) & _U63))


@_jit
def next_double(st):
    """A uniform double in [0, 1), as NumPy's ``Generator.random``."""
    return np.float64(next64(st) >> _U11) * _TO_DOUBLE


@_jit
def _bounded(st, n):
    """A uniform integer in [0, n) for a uint64 n > 0."""
    threshold = (_ZERO - n) % n
    x = next64(st)
    while x < threshold:
        x = next64(st)
    return x % n


@_jit
def fill_uniform(st, out):
    for k in range(out.size):
        out[k] = next_double(st)


@_jit
def _standard_normal(st):
    """One standard normal draw by NumPy's ziggurat (``random_standard_normal``): the same
    outputs of the generator consumed the same way, so the same numbers as
    ``Generator.standard_normal`` from the same state."""
    while True:
        r = next64(st)
        idx = r & np.uint64(0xFF)
        r >>= np.uint64(8)
        rabs = (r >> _ONE) & np.uint64(0x000FFFFFFFFFFFFF)
        x = rabs * _ZIG_W[idx]
        if r & _ONE:
            x = -x
        if rabs < _ZIG_K[idx]:
            return x
        if idx == 0:  # the tail beyond the base strip
            while True:
                xx = -_ZIG_INV_R * math.log1p(-next_double(st))
                yy = -math.log1p(-next_double(st))
                if yy + yy > xx * xx:
                    return -(_ZIG_R + xx) if (rabs >> np.uint64(8)) & _ONE else _ZIG_R + xx
        elif (_ZIG_F[idx - 1] - _ZIG_F[idx]) * next_double(st) + _ZIG_F[idx] < math.exp(
            -0.5 * x * x
        ):
            return x


@_jit
def fill_normal(st, out):
    for k in range(out.size):
        out[k] = _standard_normal(st)


@_jit
def _check_p(p):
    for k in range(p.size):
        if not (0.0 <= p[k] <= 1.0):
            raise ValueError("p < 0, p > 1 or p is NaN")


@_jit
def _binv(st, n, p):
    """Binomial(n, p) for p <= 0.5 by inversion, in chunks of trials."""
    if p == 0.0 or n == 0:
        return 0
    chunk = max(1, int(_BINV_MEAN / p))
    q = 1.0 - p
    s = p / q
    total, left = 0, n
    while left > 0:
        m = min(left, chunk)
        left -= m
        a = (m + 1) * s
        r = q**m
        u = next_double(st)
        x = 0
        while u > r and x < m:
            u -= r
            x += 1
            r *= a / x - s
        total += x
    return total


@_jit
def _inversion(st, n, p):
    """Binomial(n, p) for p <= 0.5 and n * p <= 30 as NumPy draws it
    (``random_binomial_inversion``): the same uniforms, the same arithmetic."""
    q = 1.0 - p
    qn = math.exp(n * math.log(q))
    mean = n * p
    bound = int(min(n, mean + 10.0 * math.sqrt(mean * q + 1)))
    x, px, u = 0, qn, next_double(st)
    while u > px:
        x += 1
        if x > bound:
            x, px, u = 0, qn, next_double(st)
        else:
            u -= px
            px = ((n - x + 1) * p * px) / (x * q)
    return x


@_jit
def _binomial(st, n, p):
    """Binomial(n, p): NumPy's draw (``random_binomial``) where it inverts, n * min(p, 1 - p)
    <= 30; beyond, chunked inversion of our own (NumPy uses BTPE there)."""
    if n == 0 or p == 0.0:
        return 0
    small = min(p, 1.0 - p)
    if small * n <= 30.0:
        x = _inversion(st, n, small)
    else:
        x = _binv(st, n, small)
    return x if p <= 0.5 else n - x


@_jit
def fill_bernoulli(st, p, out):
    _check_p(p)
    sp = 1 if p.size > 1 else 0
    for k in range(out.size):
        out[k] = _binomial(st, 1, p[k * sp])


@_jit
def fill_binomial(st, n, p, out):
    _check_p(p)
    sn = 1 if n.size > 1 else 0
    sp = 1 if p.size > 1 else 0
    for k in range(out.size):
        nk = n[k * sn]
        if nk < 0:
            raise ValueError("n < 0")
        out[k] = _binomial(st, nk, p[k * sp])


@_jit
def fill_integers(st, low, high, out):
    sl = 1 if low.size > 1 else 0
    sh = 1 if high.size > 1 else 0
    for k in range(out.size):
        lo, hi = low[k * sl], high[k * sh]
        if lo >= hi:
            raise ValueError("low >= high")
        span = np.uint64(hi) - np.uint64(lo)
        out[k] = np.int64(np.uint64(lo) + _bounded(st, span))


@_jit
def fill_choice(st, n, replace, out):
    if n <= 0:
        raise ValueError("a must be a positive integer unless no samples are taken")
    if replace:
        for k in range(out.size):
            out[k] = np.int64(_bounded(st, np.uint64(n)))
        return
    if out.size > n:
        raise ValueError("Cannot take a larger sample than population when replace is False")
    pool = np.arange(n)
    for k in range(out.size):
        j = k + np.int64(_bounded(st, np.uint64(n - k)))
        pool[k], pool[j] = pool[j], pool[k]
        out[k] = pool[k]


@_jit
def fill_weighted_choice(st, n, p, replace, out):
    if p.size != n:
        raise ValueError("a and p must have same size")
    total = 0.0
    for j in range(n):
        if not (p[j] >= 0.0):
            raise ValueError("probabilities are not non-negative")
        total += p[j]
    if abs(total - 1.0) > 1e-8:
        raise ValueError("probabilities do not sum to 1")
    if replace:
        cdf = np.cumsum(p) / total
        for k in range(out.size):
            out[k] = min(np.searchsorted(cdf, next_double(st), side="right"), n - 1)
        return
    keys = np.empty(n)
    nonzero = 0
    for j in range(n):
        if p[j] > 0.0:
            keys[j] = math.log(1.0 - next_double(st)) / p[j]
            nonzero += 1
        else:
            keys[j] = -np.inf
    if out.size > nonzero:
        raise ValueError("Fewer non-zero entries in p than size")
    order = np.argsort(-keys)
    for k in range(out.size):
        out[k] = order[k]


@_jit
def fill_permutation(st, out):
    for k in range(out.size):
        out[k] = k
    for k in range(out.size - 1, 0, -1):
        j = np.int64(_bounded(st, np.uint64(k + 1)))
        out[k], out[j] = out[j], out[k]


__all__ = [
    "fill_bernoulli",
    "fill_binomial",
    "fill_choice",
    "fill_integers",
    "fill_normal",
    "fill_permutation",
    "fill_uniform",
    "fill_weighted_choice",
    "next64",
    "next_double",
]
