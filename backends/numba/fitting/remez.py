"""Minimax polynomial fitting by the Remez exchange algorithm, in mpmath (60 digits).

Used by the fit*.py scripts beside it to derive the coefficients in ``vecmath.py``."""

import mpmath as mp

mp.mp.dps = 60


def remez(g, w, a, b, n, iters=30, samples=4000, verbose=False):
    """Find p of degree n minimising max |(p(t) - g(t)) / w(t)| on [a, b]."""
    a, b = mp.mpf(a), mp.mpf(b)
    m = n + 2
    # Chebyshev extremal nodes
    xs = [
        (a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * (i + 0.01 * (i > 0 and i < m - 1)) / (m - 1))
        for i in range(m)
    ]
    grid = [a + (b - a) * (1 - mp.cos(mp.pi * i / (samples - 1))) / 2 for i in range(samples)]
    gg = [g(t) for t in grid]
    ww = [w(t) for t in grid]
    best = None
    for it in range(iters):
        # solve sum c_j x_i^j + (-1)^i E w(x_i) = g(x_i)
        A = mp.matrix(m, m)
        rhs = mp.matrix(m, 1)
        for i, x in enumerate(xs):
            for j in range(n + 1):
                A[i, j] = x**j
            A[i, n + 1] = (-1) ** i * w(x)
            rhs[i] = g(x)
        sol = mp.lu_solve(A, rhs)
        c = [sol[j] for j in range(n + 1)]
        E = sol[n + 1]

        def err(i):
            t = grid[i]
            return (mp.polyval(c[::-1], t) - gg[i]) / ww[i]

        es = [err(i) for i in range(samples)]
        # find alternating extrema
        ext = []
        i = 0
        # local extrema of |e| with sign segments
        segs = []
        cur = [0]
        for i in range(1, samples):
            if (es[i] >= 0) == (es[cur[0]] >= 0):
                cur.append(i)
            else:
                segs.append(cur)
                cur = [i]
        segs.append(cur)
        pts = [max(s, key=lambda i: abs(es[i])) for s in segs]
        # reduce to m points keeping alternation, drop smallest
        while len(pts) > m:
            # remove smallest at either end or merge
            vals = [abs(es[i]) for i in pts]
            if vals[0] < vals[-1]:
                pts = pts[1:]
            else:
                pts = pts[:-1]
        maxerr = max(abs(e) for e in es)
        if verbose:
            print(it, mp.nstr(abs(E), 5), mp.nstr(maxerr, 5), len(segs))
        best = (c, maxerr)
        if len(pts) < m:
            break
        xs = [grid[i] for i in pts]
        if maxerr - abs(E) < abs(E) * mp.mpf("1e-6"):
            break
    return best


def to_double(c):
    return [float(x) for x in c]
