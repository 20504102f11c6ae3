"""Random draws in njit code: NumPy's PCG64 generator on a state vector (the layout of
``fusegraph.ops.random``) and samplers that fill a flat output array.

Every sampler is NumPy's own algorithm, consuming the generator as NumPy does, so a draw
gives the same numbers as ``numpy.random.Generator(PCG64)`` from the same state and leaves
the state where NumPy leaves it:

* ``next_double``: ``Generator.random``; ``next32``: NumPy's ``next_uint32``, which keeps
  the unused half of a 64-bit output in the state (words 4 and 5);
* normal: the ziggurat of ``random_standard_normal``, on the tables Numba ships;
* binomial and bernoulli: ``random_binomial``, inversion where ``n * min(p, 1 - p) <= 30``,
  Kachitvichyanukul and Schmeiser's BTPE beyond;
* integers: ``random_bounded_uint64``, Lemire's multiply-and-reject on 32-bit outputs for
  ranges below ``2**32`` and on 64-bit ones above;
* choice: ``Generator.choice``: bounded integers with replacement; without, Floyd's
  sampling on a hash set then a shuffle of the sample, or a shuffle of the population's tail
  when the sample is large; with probabilities, the inverse of their cumulative sum, in
  rounds that zero the probabilities already drawn when without replacement;
* permutation: ``Generator.shuffle`` of ``arange(n)`` (a Fisher-Yates shuffle drawing by
  masked rejection, ``random_interval``).

Two details changed between NumPy versions, and the installed NumPy's are used: the
inversion's ``(1 - p) ** n`` is computed with ``log1p`` from NumPy 2.4, and BTPE's
Stirling correction was fixed in NumPy 2.5.

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
_MAX64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_U32 = np.uint64(32)
_U11 = np.uint64(11)
_U58 = np.uint64(58)
_U63 = np.uint64(63)
_U64 = np.uint64(64)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_TO_DOUBLE = 1.0 / 9007199254740992.0  # 2**-53
# NumPy's ziggurat tables for the standard normal (256 strips), as Numba ships them
_ZIG_K = _zig.ki_double
_ZIG_W = _zig.wi_double
_ZIG_F = _zig.fi_double
_ZIG_R = _zig.ziggurat_nor_r
_ZIG_INV_R = _zig.ziggurat_nor_inv_r
_NUMPY = tuple(int(part) for part in np.__version__.split(".")[:2])
#: NumPy >= 2.4 computes the inversion's (1 - p) ** n as exp(n * log1p(-p)), before with log.
_INVERSION_LOG1P = _NUMPY >= (2, 4)
#: NumPy >= 2.5 subtracts BTPE's last two Stirling terms with the paper's 13860; before, it
#: added all four with 13680.
_STIRLING_FIXED = _NUMPY >= (2, 5)
_STIRLING_C = 13860.0 if _STIRLING_FIXED else 13680.0
_STIRLING_SIGN = -1.0 if _STIRLING_FIXED else 1.0
#: Generator.choice's tolerance on the sum of float64 probabilities (sqrt of eps)
CHOICE_ATOL = {
    "float64": float(np.sqrt(np.finfo(np.float64).eps)),
    "float32": float(np.sqrt(np.finfo(np.float32).eps)),
}


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
def next32(st):
    """NumPy's ``next_uint32`` for PCG64: the low half of a 64-bit output, whose high half
    the state keeps (words 4 and 5) for the next call."""
    if st[4] != _ZERO:
        st[4] = _ZERO
        return st[5]
    x = next64(st)
    st[4] = _ONE
    st[5] = x >> _U32
    return x & _LOW32


@_jit
def _mask(n):
    """The smallest all-ones bit mask >= n."""
    n |= n >> np.uint64(1)
    n |= n >> np.uint64(2)
    n |= n >> np.uint64(4)
    n |= n >> np.uint64(8)
    n |= n >> np.uint64(16)
    n |= n >> _U32
    return n


@_jit
def _lemire32(st, rng):
    """A uniform integer in [0, rng] for rng < 2**32 - 1, from 32-bit outputs."""
    excl = rng + _ONE
    m = next32(st) * excl
    if m & _LOW32 < excl:
        threshold = (_LOW32 - rng) % excl
        while m & _LOW32 < threshold:
            m = next32(st) * excl
    return m >> _U32


@_jit
def _lemire64(st, rng):
    """A uniform integer in [0, rng] for rng < 2**64 - 1, from 64-bit outputs."""
    excl = rng + _ONE
    high, low = _mul64(next64(st), excl)
    if low < excl:
        threshold = (_MAX64 - rng) % excl
        while low < threshold:
            high, low = _mul64(next64(st), excl)
    return high


@_jit
def bounded(st, rng):
    """A uniform uint64 in [0, rng] (``random_bounded_uint64``): no output consumed for
    rng 0, one 32-bit output for rng below 2**32, one 64-bit output for 2**64 - 1."""
    if rng == _ZERO:
        return _ZERO
    if rng < _LOW32:
        return _lemire32(st, rng)
    if rng == _LOW32:
        return next32(st)
    if rng == _MAX64:
        return next64(st)
    return _lemire64(st, rng)


@_jit
def _interval(st, n):
    """A uniform uint64 in [0, n] by masked rejection (``random_interval``)."""
    if n == _ZERO:
        return _ZERO
    mask = _mask(n)
    if n <= _LOW32:
        value = next32(st) & mask
        while value > n:
            value = next32(st) & mask
    else:
        value = next64(st) & mask
        while value > n:
            value = next64(st) & mask
    return value


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
def _inversion(st, n, p):
    """Binomial(n, p) for p <= 0.5 and n * p <= 30 (``random_binomial_inversion``)."""
    q = 1.0 - p
    qn = math.exp(n * math.log1p(-p)) if _INVERSION_LOG1P else math.exp(n * math.log(q))
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
def _stirling(x, x2):
    """BTPE's Stirling-series term of the log factorial at ``x`` (``x2 = x * x``)."""
    return (_STIRLING_C - (462.0 - (132.0 - (99.0 - 140.0 / x2) / x2) / x2) / x2) / x / 166320.0


@_jit
def _btpe(st, n, p):
    """Binomial(n, p) for p <= 0.5 and n * p > 30 by Kachitvichyanukul and Schmeiser's
    BTPE (``random_binomial_btpe``): a triangle, two parallelograms and two exponential
    tails under the distribution, accepted by an exact or a squeezed ratio test."""
    r = min(p, 1.0 - p)
    q = 1.0 - r
    fm = n * r + r
    m = math.floor(fm)
    p1 = math.floor(2.195 * math.sqrt(n * r * q) - 4.6 * q) + 0.5
    xm = m + 0.5
    xl = xm - p1
    xr = xm + p1
    c = 0.134 + 20.5 / (15.3 + m)
    a = (fm - xl) / (fm - xl * r)
    laml = a * (1.0 + a / 2.0)
    a = (xr - fm) / (xr * q)
    lamr = a * (1.0 + a / 2.0)
    p2 = p1 * (1.0 + 2.0 * c)
    p3 = p2 + c / laml
    p4 = p3 + c / lamr
    nrq = n * r * q
    while True:
        u = next_double(st) * p4
        v = next_double(st)
        if u <= p1:  # the triangle: accepted at once
            return math.floor(xm - p1 * v + u)
        if u <= p2:  # the parallelograms
            x = xl + (u - p1) / c
            v = v * c + 1.0 - abs(m - x + 0.5) / p1
            if v > 1.0:
                continue
            y = math.floor(x)
        elif u <= p3:  # the left tail (v == 0 is rejected: its log is -inf)
            if v == 0.0:
                continue
            y = math.floor(xl + math.log(v) / laml)
            if y < 0:
                continue
            v = v * (u - p2) * laml
        else:  # the right tail
            if v == 0.0:
                continue
            y = math.floor(xr - math.log(v) / lamr)
            if y > n:
                continue
            v = v * (u - p3) * lamr
        k = abs(y - m)
        if not (k > 20 and k < nrq / 2.0 - 1):  # the exact ratio f(y) / f(m)
            s = r / q
            a = s * (n + 1)
            f = 1.0
            if m < y:
                for i in range(m + 1, y + 1):
                    f *= a / i - s
            elif m > y:
                for i in range(y + 1, m + 1):
                    f /= a / i - s
            if v > f:
                continue
            return y
        # squeezes around log(f(y) / f(m)), then its Stirling approximation
        rho = (k / nrq) * ((k * (k / 3.0 + 0.625) + 0.16666666666666666) / nrq + 0.5)
        t = -k * k / (2 * nrq)
        big_a = math.log(v)
        if big_a < t - rho:
            return y
        if big_a > t + rho:
            continue
        x1 = float(y) + 1.0
        f1 = float(m) + 1.0
        z = float(n) + 1.0 - float(m)
        w = float(n) - float(y) + 1.0
        bound = (
            xm * math.log(f1 / x1)
            + (n - m + 0.5) * math.log(z / w)
            + (y - m) * math.log(w * r / (x1 * q))
            + _stirling(f1, f1 * f1)
            + _stirling(z, z * z)
            + _STIRLING_SIGN * _stirling(x1, x1 * x1)
            + _STIRLING_SIGN * _stirling(w, w * w)
        )
        if big_a > bound:
            continue
        return y


@_jit
def _binomial(st, n, p):
    """Binomial(n, p) as NumPy's ``random_binomial``: for min(p, 1 - p), inversion where
    n * min(p, 1 - p) <= 30, else BTPE."""
    if n == 0 or p == 0.0:
        return 0
    small = p if p <= 0.5 else 1.0 - p
    x = _inversion(st, n, small) if small * n <= 30.0 else _btpe(st, n, small)
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
    """Integers uniform on [low, high) (``Generator.integers``, int64)."""
    sl = 1 if low.size > 1 else 0
    sh = 1 if high.size > 1 else 0
    for k in range(out.size):
        lo, hi = low[k * sl], high[k * sh]
        if lo >= hi:
            raise ValueError("low >= high")
        rng = np.uint64(hi - 1) - np.uint64(lo)
        out[k] = np.int64(np.uint64(lo) + bounded(st, rng))


@_jit
def _shuffle(st, data, n, first):
    """Shuffle ``data[first - 1:n]`` to its end by Fisher-Yates with bounded draws, as
    NumPy's ``_shuffle_int`` (``first = 1`` shuffles all of it)."""
    for i in range(n - 1, first - 1, -1):
        j = bounded(st, np.uint64(i))
        data[i], data[j] = data[j], data[i]


@_jit
def fill_choice(st, n, replace, out):
    """Indices into range(n), uniform (``Generator.choice(n, size, replace)``)."""
    size = out.size
    if n <= 0 and size != 0:
        raise ValueError("a must be a positive integer unless no samples are taken")
    if replace:
        for k in range(size):
            out[k] = np.int64(bounded(st, np.uint64(n - 1)))
        return
    if size > n:
        raise ValueError("Cannot take a larger sample than population when replace is False")
    if n > 10000 and size > n // 50:  # a large sample: shuffle the population's tail
        pool = np.arange(n)
        _shuffle(st, pool, n, max(n - size, 1))
        out[:] = pool[n - size :]
        return
    # Floyd's sampling, members kept in an open-addressing hash set, then a shuffle
    mask = _mask(np.uint64(1.2 * size))
    members = np.full(np.int64(mask) + 1, _MAX64, np.uint64)
    for j in range(n - size, n):
        val = bounded(st, np.uint64(j))
        loc = val & mask
        while members[loc] != _MAX64 and members[loc] != val:
            loc = (loc + _ONE) & mask
        if members[loc] == _MAX64:
            members[loc] = val
            out[j - n + size] = val
        else:  # val is taken: take j, which no earlier step could draw
            loc = np.uint64(j) & mask
            while members[loc] != _MAX64:
                loc = (loc + _ONE) & mask
            members[loc] = j
            out[j - n + size] = j
    _shuffle(st, out, size, 1)


@_jit
def fill_weighted_choice(st, n, p, replace, atol, out):
    """Indices into range(n) drawn with probabilities ``p`` (``Generator.choice(n, size,
    replace, p)``; ``atol`` is its tolerance on their sum)."""
    size = out.size
    if n <= 0 and size != 0:
        raise ValueError("a must be a positive integer unless no samples are taken")
    if p.size != n:
        raise ValueError("a and p must have same size")
    w = p.astype(np.float64)
    total, err = 0.0, 0.0  # Kahan's compensated sum, as NumPy checks it
    if n > 0:
        total = w[0]
        for j in range(1, n):
            y = w[j] - err
            t = total + y
            err = (t - total) - y
            total = t
    if np.isnan(total):
        raise ValueError("Probabilities contain NaN")
    for j in range(n):
        if w[j] < 0.0:
            raise ValueError("Probabilities are not non-negative")
    if abs(total - 1.0) > atol:
        raise ValueError("Probabilities do not sum to 1")
    if replace:
        cdf = np.cumsum(w)
        cdf /= cdf[-1]
        for k in range(size):
            out[k] = np.searchsorted(cdf, next_double(st), side="right")
        return
    if size > n:
        raise ValueError("Cannot take a larger sample than population when replace is False")
    if np.count_nonzero(w > 0.0) < size:
        raise ValueError("Fewer non-zero entries in p than size")
    found = 0
    while found < size:  # rounds: draw the rest, keep the new indices in order
        u = np.empty(size - found)
        for k in range(u.size):
            u[k] = next_double(st)
        for k in range(found):
            w[out[k]] = 0.0
        cdf = np.cumsum(w)
        cdf /= cdf[-1]
        seen = np.zeros(n, np.bool_)
        added = 0
        for k in range(u.size):
            j = np.searchsorted(cdf, u[k], side="right")
            if not seen[j]:
                seen[j] = True
                out[found + added] = j
                added += 1
        found += added


@_jit
def fill_permutation(st, out):
    """A permutation of range(out.size) (``Generator.permutation(n)``)."""
    for k in range(out.size):
        out[k] = k
    for i in range(out.size - 1, 0, -1):
        j = _interval(st, np.uint64(i))
        out[i], out[j] = out[j], out[i]


__all__ = [
    "CHOICE_ATOL",
    "bounded",
    "fill_bernoulli",
    "fill_binomial",
    "fill_choice",
    "fill_integers",
    "fill_normal",
    "fill_permutation",
    "fill_uniform",
    "fill_weighted_choice",
    "next32",
    "next64",
    "next_double",
]
