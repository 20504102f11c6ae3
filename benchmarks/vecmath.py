"""Vectorisable math kernels against NumPy's ufuncs and against Numba loops calling libm
(``math.*``), per function and in the fused expression exp(-x**2) * sin(y) + log1p(z*z).

    python -m benchmarks.vecmath [--n 10000000] [--repeat 7] [--dtype float64 float32]

Prints median wall times (ms) over the repeats; "vec" is the SIMD width LLVM chose for the
loop calling the vecmath function (0: not vectorised).
"""

from __future__ import annotations

import argparse
import math
import re
import statistics

import numba
import numpy as np

from benchmarks.timing import wall_times
from fusegraph.backends.numba import vecmath as vm

JIT = {"error_model": "numpy"}  # needed: the Python error model checks every division


@numba.njit(inline="always")
def _stable_sigmoid(x):
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


@numba.njit(inline="always")
def _stable_softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def _np_sigmoid(x, out):
    z = np.exp(-np.abs(x))
    return np.divide(np.where(x >= 0, 1, z), 1 + z, out=out)


def _np_softplus(x, out):
    return np.add(np.log1p(np.exp(-np.abs(x))), np.maximum(x, 0), out=out)


#: name -> (NumPy eager (x, out), scalar libm function for a Numba loop, input range)
FUNCTIONS = {
    "exp": (np.exp, math.exp, (-20, 20)),
    "expm1": (np.expm1, math.expm1, (-5, 5)),
    "log": (np.log, math.log, (1e-3, 1e3)),
    "log1p": (np.log1p, math.log1p, (-0.9, 1e3)),
    "log2": (np.log2, math.log2, (1e-3, 1e3)),
    "log10": (np.log10, math.log10, (1e-3, 1e3)),
    "sin": (np.sin, math.sin, (-100, 100)),
    "cos": (np.cos, math.cos, (-100, 100)),
    "tan": (np.tan, math.tan, (-100, 100)),
    "arctan": (np.arctan, math.atan, (-10, 10)),
    "tanh": (np.tanh, math.tanh, (-10, 10)),
    "sigmoid": (_np_sigmoid, _stable_sigmoid, (-20, 20)),
    "softplus": (_np_softplus, _stable_softplus, (-20, 20)),
    "erf": (None, math.erf, (-4, 4)),
}


def unary_loop(fn, parallel=False):
    """An njit loop out[i] = fn(x[i]) (prange when parallel)."""
    loop = numba.prange if parallel else range

    def kernel(x, out):
        for i in loop(x.shape[0]):
            out[i] = fn(x[i])

    return numba.njit(parallel=parallel, **JIT)(kernel)


def fused_loop(exp, sin, log1p, parallel=False):
    """An njit loop for exp(-x**2) * sin(y) + log1p(z*z) built from the given functions."""
    loop = numba.prange if parallel else range

    def kernel(x, y, z, out):
        for i in loop(x.shape[0]):
            xi, zi = x[i], z[i]
            out[i] = exp(-(xi * xi)) * sin(y[i]) + log1p(zi * zi)

    return numba.njit(parallel=parallel, **JIT)(kernel)


def fused_loop_checked(exp, sin, log1p):
    """fused_loop with the kernel-level slow path for huge sin arguments: the vectorised
    loop ORs vm.trig_needs_slow_path into a flag, and only when it is set a scalar loop
    recomputes the flagged elements with libm."""

    def kernel(x, y, z, out):
        slow = False
        for i in range(x.shape[0]):
            xi, yi, zi = x[i], y[i], z[i]
            out[i] = exp(-(xi * xi)) * sin(yi) + log1p(zi * zi)
            slow |= vm.trig_needs_slow_path(yi)
        if slow:
            for i in range(x.shape[0]):
                if vm.trig_needs_slow_path(y[i]):
                    xi, zi = x[i], z[i]
                    out[i] = math.exp(-(xi * xi)) * math.sin(y[i]) + math.log1p(zi * zi)

    return numba.njit(**JIT)(kernel)


def numpy_fused(x, y, z, out):
    """The expression evaluated eagerly by NumPy (temporaries and all)."""
    return np.add(np.exp(-(x**2)) * np.sin(y), np.log1p(z * z), out=out)


def vector_width(dispatcher):
    """The widest <N x double|float> in the compiled loop's LLVM IR (0: scalar only)."""
    llvm = dispatcher.inspect_llvm(dispatcher.signatures[0])
    return max((int(n) for n in re.findall(r"<(\d+) x (?:double|float)>", llvm)), default=0)


def median_ms(fn, args, repeat):
    """Median wall time of fn(*args) in milliseconds, after one warm-up call."""
    return 1e3 * statistics.median(wall_times(fn, args, repeat))


def bench_functions(n, dtype, repeat, rng):
    suffix = "_f64" if dtype == np.float64 else "_f32"
    out = np.empty(n, dtype)
    print(f"\n{np.dtype(dtype).name}, n = {n:.0e}: median ms over {repeat} runs")
    print(f"{'function':10s} {'numpy':>8s} {'numba+math':>11s} {'numba+vecmath':>14s} {'vec':>4s}")
    for name, (np_fn, libm, (lo, hi)) in FUNCTIONS.items():
        x = rng.uniform(lo, hi, n).astype(dtype)
        t_np = median_ms(np_fn, (x, out), repeat) if np_fn is not None else math.nan
        fast = unary_loop(getattr(vm, name + suffix))
        t_libm = median_ms(unary_loop(libm), (x, out), repeat)
        t_vm = median_ms(fast, (x, out), repeat)
        print(f"{name:10s} {t_np:8.1f} {t_libm:11.1f} {t_vm:14.1f} {vector_width(fast):4d}")


def bench_fused(n, dtype, repeat, rng):
    x, y, z = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    y_huge = y.copy()
    y_huge[::10_000] = 1e9  # one argument in 10**4 beyond vm.TRIG_LIMIT
    out = np.empty(n, dtype)
    suffix = "_f64" if dtype == np.float64 else "_f32"
    fast = [getattr(vm, f + suffix) for f in ("exp", "sin", "log1p")]
    libm = (math.exp, math.sin, math.log1p)
    checked = fused_loop_checked(*fast)
    rows = [("numpy eager", numpy_fused, (x, y, z, out))]
    for label, fns in (("math", libm), ("vecmath", fast)):
        for parallel in (False, True):
            tag = f"numba+{label}" + (" prange" if parallel else "")
            rows.append((tag, fused_loop(*fns, parallel=parallel), (x, y, z, out)))
    rows.append(("numba+vecmath checked", checked, (x, y, z, out)))
    rows.append(("  same, 1e-4 huge args", checked, (x, y_huge, z, out)))
    print(f"\nexp(-x**2) * sin(y) + log1p(z*z), {np.dtype(dtype).name}, n = {n:.0e}")
    for tag, fn, args in rows:
        t = median_ms(fn, args, repeat)
        width = f"vec {vector_width(fn)}" if hasattr(fn, "inspect_llvm") else ""
        print(f"{tag:24s} {t:8.1f} ms  {width}")
    print(f"(threads: {numba.get_num_threads()})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    for name in args.dtype:
        dtype = np.dtype(name).type
        bench_functions(args.n, dtype, args.repeat, rng)
        bench_fused(args.n, dtype, args.repeat, rng)


if __name__ == "__main__":
    main()
