"""``blas_dot(a, b, out)``: the BLAS product of the float ``Dot``/``MatMul``/``TensorDot``
kernels, written straight into the caller's LLVM code.

It computes ``out[...] = a @ b`` for float32/float64 operands of 1 or 2 dims (matrix x matrix
through gemm, matrix x vector and vector x matrix through gemv, vector x vector through dot),
``out`` being C-contiguous of the product's shape, checked by the caller. Operands typed C or
F layout go to BLAS as they are, F ones with the transpose flag (so ``x.T @ g`` costs no
copy); others (strided views) are copied to C first, as NumPy does. An empty contraction
fills ``out`` with zeros. Dims beyond a C int raise OverflowError.

Numba's ``np.dot(a, b, out)`` makes the same BLAS calls (through the same ``_helperlib``
wrappers, ``numba.np.linalg.call_xx*``), but each signature costs a compiled overload and a
compiled argument check (about 0.1 s per signature in a cold compile); this intrinsic costs
only the instructions it emits.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array
from numba.np.linalg import (
    call_xxdot,
    call_xxgemm,
    call_xxgemv,
    ensure_blas,
    make_contiguous,
)

_C_INT_MAX = 2**31 - 1


@intrinsic
def blas_dot(typingctx, a, b, out):
    """``out[...] = a @ b`` through BLAS (see the module docstring); returns None."""
    if not all(isinstance(t, types.Array) for t in (a, b, out)):
        return None
    if a.dtype not in (types.float32, types.float64) or not a.dtype == b.dtype == out.dtype:
        return None
    if not (1 <= a.ndim <= 2 and 1 <= b.ndim <= 2) or out.layout != "C":
        return None
    if out.ndim != (a.ndim - 1) + (b.ndim - 1):
        return None

    def codegen(context, builder, sig, args):
        ensure_blas()
        with make_contiguous(context, builder, sig, args) as (sig, args):
            _emit(context, builder, sig, args)
        return context.get_dummy_value()

    return types.none(a, b, out), codegen


def _emit(context, builder, sig, args):
    ta, tb, to = sig.args
    x, y, o = (make_array(t)(context, builder, v) for t, v in zip(sig.args, args))
    xs, ys = cgutils.unpack_tuple(builder, x.shape), cgutils.unpack_tuple(builder, y.shape)
    big = cgutils.false_bit
    for dim in (*xs, *ys):
        big = builder.or_(big, builder.icmp_signed(">", dim, dim.type(_C_INT_MAX)))
    with builder.if_then(big, likely=False):
        context.call_conv.return_user_exc(
            builder, OverflowError, ("array size too large to fit in C int",)
        )
    k = xs[-1]
    empty = builder.or_(
        builder.icmp_signed("==", k, k.type(0)), builder.icmp_signed("==", o.nitems, k.type(0))
    )
    with builder.if_else(empty, likely=False) as (zero, work):
        with zero:
            cgutils.memset(builder, o.data, builder.mul(o.itemsize, o.nitems), 0)
        with work:
            if ta.ndim == tb.ndim == 2:
                os_ = cgutils.unpack_tuple(builder, o.shape)
                call_xxgemm(context, builder, ta, xs, x.data, tb, ys, y.data, to, os_, o.data)
            elif ta.ndim == 2:  # (m, k) x (k,): transposed for a C matrix (BLAS is column-major)
                call_xxgemv(context, builder, ta.layout == "C", ta, xs, x.data, y.data, o.data)
            elif tb.ndim == 2:  # (k,) x (k, n) = b.T x a: transposed for an F matrix
                call_xxgemv(context, builder, tb.layout == "F", tb, ys, y.data, x.data, o.data)
            else:
                call_xxdot(context, builder, False, ta.dtype, k, x.data, y.data, o.data)


__all__ = ["blas_dot"]
