"""Fit the shorter polynomials of ``vecmath.py``'s float32 functions; prints coefficients
and maximum relative errors."""

from remez import mp, remez


def show(name, c, e):
    print(f"# {name}: max rel err {float(e):.3g} = 2^{float(mp.log(e, 2)):.1f}")
    print(f"{name} = ({', '.join(repr(float(x)) for x in c)})")


L = mp.log(2) / 2 * mp.mpf(1.01)
for n in (3, 4, 5):
    c, e = remez(lambda t: (mp.exp(t) - 1 - t) / (t * t), lambda t: mp.exp(t) / (t * t), -L, L, n)
    show(f"EXP32_{n}", c, e)
for n in (4, 5, 6):
    c, e = remez(lambda t: (mp.exp(t) - 1 - t) / (t * t), lambda t: mp.expm1(t) / (t * t), -L, L, n)
    show(f"EXPM1_32_{n}", c, e)
S = (3 - 2 * mp.sqrt(2)) * mp.mpf(1.001)
for n in (2, 3):
    c, e = remez(
        lambda z: (2 * mp.atanh(mp.sqrt(z)) - 2 * mp.sqrt(z)) / (mp.sqrt(z) * z),
        lambda z: 2 * mp.atanh(mp.sqrt(z)) / (mp.sqrt(z) * z),
        mp.mpf(10) ** -30,
        S * S,
        n,
    )
    show(f"LOG32_{n}", c, e)
P = mp.pi / 4 * mp.mpf(1.001)
for n in (2, 3):
    c, e = remez(
        lambda z: (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)),
        lambda z: mp.sin(mp.sqrt(z)) / (z * mp.sqrt(z)),
        mp.mpf(10) ** -30,
        P * P,
        n,
    )
    show(f"SIN32_{n}", c, e)
    c, e = remez(
        lambda z: (mp.cos(mp.sqrt(z)) - 1 + z / 2) / (z * z),
        lambda z: mp.cos(mp.sqrt(z)) / (z * z),
        mp.mpf(10) ** -30 * mp.mpf(1.1),
        P * P,
        n,
    )
    show(f"COS32_{n}", c, e)
T = mp.tan(mp.pi / 8) * mp.mpf(1.001)
for n in (4, 5, 6):
    c, e = remez(
        lambda z: (mp.atan(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)),
        lambda z: mp.atan(mp.sqrt(z)) / (z * mp.sqrt(z)),
        mp.mpf(10) ** -30,
        T * T,
        n,
    )
    show(f"ATAN32_{n}", c, e)
t0 = mp.mpf(0.84)
for n in (4, 5, 6):
    c, e = remez(
        lambda z: (mp.erf(mp.sqrt(z)) - mp.sqrt(z)) / mp.sqrt(z),
        lambda z: mp.erf(mp.sqrt(z)) / mp.sqrt(z),
        mp.mpf(10) ** -30,
        t0 * t0 * mp.mpf(1.0001),
        n,
    )
    show(f"ERF32_{n}", c, e)
K = mp.mpf(3)
hi = mp.mpf(4)
A = lambda t: K * (1 + t) / (1 - t)
g = lambda t: mp.erfc(A(t)) * mp.exp(A(t) ** 2)
for n in (6, 7, 8, 9):
    c, e = remez(
        g,
        lambda t: min(mp.erf(A(t)) * mp.exp(A(t) ** 2), mp.mpf(1e3) * g(t)),
        (t0 - K) / (t0 + K),
        (hi - K) / (hi + K),
        n,
    )
    show(f"ERFC32_{n}", c, e)
