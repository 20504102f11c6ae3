"""Fit the float64 polynomials of ``vecmath.py``: ``python fit64.py exp log sin atan tan``
prints each polynomial's coefficients and its maximum weighted error."""

import sys

from remez import mp, remez


def show(name, c, e):
    print(f"# {name}: max rel err {float(e):.3g} = {float(e) / 2**-53:.3g} ulp(0.5)")
    print(f"{name} = ({', '.join(repr(float(x)) for x in c)})")


which = sys.argv[1:]
L = mp.log(2) / 2 * mp.mpf(1.01)
if "exp" in which:
    for n in (9, 10):
        c, e = remez(
            lambda t: (mp.exp(t) - 1 - t) / (t * t), lambda t: mp.exp(t) / (t * t), -L, L, n
        )
        show(f"EXP{n}", c, e)
if "expm1" in which:
    for n in (9, 10):
        c, e = remez(
            lambda t: (mp.exp(t) - 1 - t) / (t * t), lambda t: mp.expm1(t) / (t * t), -L, L, n
        )
        show(f"EXPM1{n}", c, e)
if "log" in which:
    S = (3 - 2 * mp.sqrt(2)) * mp.mpf(1.001)
    # Q(z) = (2atanh(s) - 2s)/(s z), z = s^2, tolerance 2atanh(s)/(s z)
    for n in (5, 6, 7):
        c, e = remez(
            lambda z: (2 * mp.atanh(mp.sqrt(z)) - 2 * mp.sqrt(z)) / (mp.sqrt(z) * z),
            lambda z: 2 * mp.atanh(mp.sqrt(z)) / (mp.sqrt(z) * z),
            mp.mpf(10) ** -30,
            S * S,
            n,
        )
        show(f"LOG{n}", c, e)
if "sin" in which:
    P = mp.pi / 2 * mp.mpf(1.0001)
    for n in (7, 8, 9):
        c, e = remez(
            lambda z: (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)),
            lambda z: mp.sin(mp.sqrt(z)) / (z * mp.sqrt(z)),
            mp.mpf(10) ** -30,
            P * P,
            n,
        )
        show(f"SIN{n}", c, e)
if "atan" in which:
    T = mp.tan(mp.pi / 8) * mp.mpf(1.001)
    for n in (9, 10, 11):
        c, e = remez(
            lambda z: (mp.atan(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)),
            lambda z: mp.atan(mp.sqrt(z)) / (z * mp.sqrt(z)),
            mp.mpf(10) ** -30,
            T * T,
            n,
        )
        show(f"ATAN{n}", c, e)
if "tan" in which:
    P = mp.pi / 4 * mp.mpf(1.001)
    for n in (5, 6):
        c, e = remez(
            lambda z: (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)),
            lambda z: mp.sin(mp.sqrt(z)) / (z * mp.sqrt(z)),
            mp.mpf(10) ** -30,
            P * P,
            n,
        )
        show(f"SIN4_{n}", c, e)
    # cos(r) = 1 - z/2 + z^2 * C(z)
    for n in (5, 6):
        c, e = remez(
            lambda z: (mp.cos(mp.sqrt(z)) - 1 + z / 2) / (z * z),
            lambda z: mp.cos(mp.sqrt(z)) / (z * z),
            mp.mpf(10) ** -30,
            P * P,
            n,
        )
        show(f"COS4_{n}", c, e)
