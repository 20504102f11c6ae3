"""Numba intrinsics on arrays for the generated code: fresh C-contiguous arrays and views of
them, written straight into the caller's LLVM code. ``np.empty`` and ``reshape`` do the same
through helpers that Numba compiles once per signature (30-150 ms each, in a cold compile);
these cost nothing beyond the instructions they emit."""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import _empty_nd_impl, _parse_shape, make_array, populate_array

#: The import line of a generated module that uses them.
IMPORTS = (
    "from fusegraph.backends.numba.arrays import c_view, copy_c, empty_c, flat_view, permuted\n"
)


@intrinsic
def is_contiguous(typingctx, arr, order):
    """Whether ``arr`` is contiguous at run time in ``order``, a constant ``"C"`` or
    ``"F"``, by NumPy's rule (axes of length 1 have any stride; an empty array is
    contiguous). ``arr.flags`` costs about 0.1 s to compile per signature."""
    if not isinstance(arr, types.Array) or not isinstance(order, types.StringLiteral):
        return None
    if order.literal_value not in ("C", "F"):
        return None
    axes = range(arr.ndim - 1, -1, -1) if order.literal_value == "C" else range(arr.ndim)

    def codegen(context, builder, sig, args):
        ary = make_array(sig.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, ary.shape)
        strides = cgutils.unpack_tuple(builder, ary.strides)
        one = shape[0].type(1) if shape else None
        ok, expected = cgutils.true_bit, ary.itemsize
        for d in axes:
            same = builder.icmp_signed("==", strides[d], expected)
            ok = builder.and_(ok, builder.or_(same, builder.icmp_signed("==", shape[d], one)))
            expected = builder.mul(expected, shape[d])
        empty = builder.icmp_signed("==", ary.nitems, ary.nitems.type(0))
        return builder.or_(ok, empty)

    return types.boolean(arr, order), codegen


@intrinsic
def copy_c(typingctx, arr):
    """A fresh C-contiguous copy of ``arr`` (any layout): ``arr.copy()``, whose
    implementation Numba compiles per signature at about 0.2 s."""
    if not isinstance(arr, types.Array):
        return None
    out_type = arr.copy(layout="C", readonly=False)

    def codegen(context, builder, sig, args):
        ary = make_array(sig.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, ary.shape)
        out = _empty_nd_impl(context, builder, out_type, shape)
        out_strides = cgutils.unpack_tuple(builder, out.strides)
        strides = cgutils.unpack_tuple(builder, ary.strides)
        with cgutils.loop_nest(builder, shape, cgutils.intp_t) as index:
            source = cgutils.get_item_pointer2(
                context, builder, ary.data, shape, strides, sig.args[0].layout, index
            )
            target = cgutils.get_item_pointer2(
                context, builder, out.data, shape, out_strides, "C", index
            )
            builder.store(builder.load(source), target)
        return out._getvalue()

    return out_type(arr), codegen


@intrinsic
def reversed_c(typingctx, arr):
    """The view of ``arr`` with its axes reversed (``arr.T``), typed C: the caller
    guarantees that ``arr`` is F-contiguous."""
    if not isinstance(arr, types.Array):
        return None
    view_type = arr.copy(layout="C")

    def codegen(context, builder, sig, args):
        ary = make_array(sig.args[0])(context, builder, args[0])
        dims = cgutils.unpack_tuple(builder, ary.shape)[::-1]
        return _view(context, builder, view_type, ary, dims)

    return view_type(arr), codegen


@intrinsic
def empty_c(typingctx, shape, dtype):
    """``np.empty(shape, dtype)``: a fresh C-contiguous array; ``shape`` is an int or a
    tuple of ints (a negative one raises ValueError, as NumPy), ``dtype`` a NumPy scalar type
    such as ``np.float32``."""
    if isinstance(shape, types.Integer):
        ndim = 1
    elif isinstance(shape, types.BaseTuple) and all(isinstance(t, types.Integer) for t in shape):
        ndim = len(shape)
    else:
        return None
    if not isinstance(dtype, types.NumberClass | types.DType):
        return None
    ret = types.Array(dtype.dtype, ndim, "C")

    def codegen(context, builder, sig, args):
        dims = _parse_shape(context, builder, sig.args[0], args[0])
        return _empty_nd_impl(context, builder, sig.return_type, dims)._getvalue()

    return ret(shape, dtype), codegen


@intrinsic
def flat_view(typingctx, arr):
    """The 1-d C-layout view of a C-contiguous array of any static layout (Numba types
    ``reshape`` out for non-C layouts); the caller checks contiguity at run time."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        ary = make_array(sig.args[0])(context, builder, args[0])
        return _view(context, builder, sig.return_type, ary, [ary.nitems])

    return arr.copy(ndim=1, layout="C")(arr), codegen


@intrinsic
def c_view(typingctx, arr, shape):
    """The C-layout view of shape ``shape`` (a tuple of ints) of a C-contiguous array of as
    many elements: ``reshape`` without its checks, whose helper Numba compiles per
    signature; the caller guarantees both."""
    if not isinstance(arr, types.Array) or not isinstance(shape, types.BaseTuple):
        return None
    if not all(isinstance(t, types.Integer) for t in shape):
        return None

    def codegen(context, builder, sig, args):
        ary = make_array(sig.args[0])(context, builder, args[0])
        dims = [
            context.cast(builder, d, t, types.intp)
            for d, t in zip(cgutils.unpack_tuple(builder, args[1]), sig.args[1])
        ]
        return _view(context, builder, sig.return_type, ary, dims)

    return arr.copy(ndim=len(shape), layout="C")(arr, shape), codegen


@intrinsic
def permuted(typingctx, arr, order):
    """``arr.transpose(order)`` (``order`` a constant string such as ``"0,2,1"``): the view
    whose axis ``k`` is ``arr``'s axis ``order[k]``, typed layout A. Numba's own
    ``transpose`` with an axes tuple costs about 2.5 s to compile per signature."""
    if not isinstance(arr, types.Array) or not isinstance(order, types.StringLiteral):
        return None
    perm = [int(k) for k in order.literal_value.split(",")] if order.literal_value else []
    if sorted(perm) != list(range(arr.ndim)):
        return None
    view_type = arr.copy(layout="A")

    def codegen(context, builder, sig, args):
        ary = make_array(sig.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, ary.shape)
        strides = cgutils.unpack_tuple(builder, ary.strides)
        out = make_array(view_type)(context, builder)
        populate_array(
            out,
            data=ary.data,
            shape=[shape[k] for k in perm],
            strides=[strides[k] for k in perm],
            itemsize=ary.itemsize,
            meminfo=ary.meminfo,
            parent=ary.parent,
        )
        return impl_ret_borrowed(context, builder, view_type, out._getvalue())

    return view_type(arr, order), codegen


def _view(context, builder, view_type, ary, dims):
    """A C-contiguous view of ``dims`` sharing the data (and the owner) of ``ary``."""
    out = make_array(view_type)(context, builder)
    strides, stride = [], ary.itemsize
    for d in reversed(dims):
        strides.insert(0, stride)
        stride = builder.mul(stride, d)
    populate_array(
        out,
        data=ary.data,
        shape=dims,
        strides=strides,
        itemsize=ary.itemsize,
        meminfo=ary.meminfo,
        parent=ary.parent,
    )
    return impl_ret_borrowed(context, builder, view_type, out._getvalue())
