"""Fit erf's tail ``erfc(a) * exp(a**2)`` as a polynomial in ``t = (a - K) / (a + K)``:
``python fit_erf5.py T0 DEGREES K CAP`` (see ``vecmath.py`` for the values used)."""

import sys

from remez import mp, remez


def show(name, c, e):
    print(f"# {name}: max weighted err {float(e):.3g} = {float(e) / 2**-53:.3g} ulp(0.5)")
    print(f"{name} = ({', '.join(repr(float(x)) for x in c)})")


t0 = mp.mpf(sys.argv[1])
hi = mp.mpf(6)
K = mp.mpf(sys.argv[3])
cap = mp.mpf(sys.argv[4])
A = lambda t: K * (1 + t) / (1 - t)
lo_t = (t0 - K) / (t0 + K)
hi_t = (hi - K) / (hi + K)
g = lambda t: mp.erfc(A(t)) * mp.exp(A(t) ** 2)
for n in map(int, sys.argv[2].split(",")):
    c, e = remez(g, lambda t: min(mp.erf(A(t)) * mp.exp(A(t) ** 2), cap * g(t)), lo_t, hi_t, n)
    show(f"ERF_K{n}", c, e)
