"""Shape ops the glue runs as code of its own instead of linked kernels.

In a large graph (``glue``) every node runs a linked kernel, and each kernel costs a Numba
compile: about 30-400 ms of typing, lowering and LLVM, even for a node that only reads an
array's shape, stacks a few integers or fills a new array. The nodes of ``Shape``,
``ShapeI``, ``MakeVector``, ``Reshape`` (of a C-typed array) and ``Alloc`` (of a 0-d value)
-- the plumbing of symbolic shapes and of gradients -- are instead functions the glue's
module defines itself, written here as LLVM IR in Numba's calling convention, so the glue
calls them like any kernel, through the adapter of their signature, and no Numba compile
takes place. They check what their kernels check and raise the same exceptions (the
interpreter then explains them, as for any kernel).

:func:`name_of` names such a node's function (its signature declared, as a kernel's is)
and :func:`define` writes it into the module being compiled.
"""

from __future__ import annotations

import hashlib

import numba
from llvmlite import ir
from numba.core import cgutils
from numba.np import arrayobj

from fusegraph.backends.numba import arrays, link
from fusegraph.ops.creation import Alloc
from fusegraph.ops.shape_ops import MakeVector, Reshape, Shape, ShapeI

_PREFIX = "fusegraph_native_"
#: name -> (op, signature) of the functions named so far in this process
_specs: dict = {}


def _shape_of(context, builder, typ, value) -> list:
    array = context.make_array(typ)(context, builder, value)
    return cgutils.unpack_tuple(builder, array.shape, typ.ndim)


def _vector(context, builder, typ, items):
    """A new array of Numba type ``typ`` (1-d, or 0-d for one item) holding ``items``."""
    shape = [context.get_constant(numba.types.intp, len(items))] if typ.ndim else []
    array = arrayobj._empty_nd_impl(context, builder, typ, shape)
    for k, item in enumerate(items):
        builder.store(item, cgutils.gep_inbounds(builder, array.data, k))
    return array._getvalue()


def _emit_shape(context, builder, op, signature, values):
    (typ,), (value,) = signature.args, values
    return _vector(context, builder, signature.return_type, _shape_of(context, builder, typ, value))


def _emit_shape_i(context, builder, op, signature, values):
    (typ,), (value,) = signature.args, values
    item = _shape_of(context, builder, typ, value)[op.i]
    return _vector(context, builder, signature.return_type, [item])


def _emit_make_vector(context, builder, op, signature, values):
    items = [
        builder.load(context.make_array(typ)(context, builder, value).data)
        for typ, value in zip(signature.args, values)
    ]
    return _vector(context, builder, signature.return_type, items)


def _raise_if(context, builder, condition, message: str) -> None:
    with cgutils.if_unlikely(builder, condition):
        context.call_conv.return_user_exc(builder, ValueError, (message,))


def _read_dims(context, builder, typ, value, n: int) -> list:
    """The ``n`` entries (as intp) of the int vector ``value`` of type ``typ``, checked to
    be ``n``."""
    array = context.make_array(typ)(context, builder, value)
    (length,) = cgutils.unpack_tuple(builder, array.shape, 1)
    wrong = builder.icmp_signed("!=", length, _intp(n))
    _raise_if(context, builder, wrong, "the shape vector has the wrong length")
    dims = []
    for k in range(n):
        pointer = cgutils.get_item_pointer(context, builder, typ, array, [_intp(k)])
        dims.append(context.cast(builder, builder.load(pointer), typ.dtype, numba.types.intp))
    return dims


def _check_size(context, builder, dims, itemsize: int, message: str) -> None:
    """ValueError unless an array of ``dims`` (non-negative) and ``itemsize`` could exist:
    the product of its nonzero dims times the item size fits in int64 (``kernels.base``)."""
    nbytes, big = _intp(itemsize), cgutils.false_bit
    for d in dims:
        d = builder.add(d, builder.zext(builder.icmp_signed("==", d, _intp(0)), d.type))
        big = builder.or_(big, builder.icmp_signed(">", nbytes, builder.sdiv(_intp(2**63 - 1), d)))
        nbytes = builder.mul(nbytes, d)
    _raise_if(context, builder, big, message)


def _emit_alloc(context, builder, op, signature, values):
    """A new array of the shape vector's dims, each element the 0-d value."""
    (value_type, shape_type), out = signature.args, signature.return_type
    dims = _read_dims(context, builder, shape_type, values[1], out.ndim)
    for d in dims:
        negative = builder.icmp_signed("<", d, _intp(0))
        _raise_if(context, builder, negative, "negative dimensions are not allowed")
    _check_size(
        context,
        builder,
        dims,
        context.get_abi_sizeof(context.get_data_type(out.dtype)),
        "array is too big",
    )
    fill = builder.load(context.make_array(value_type)(context, builder, values[0]).data)
    array = arrayobj._empty_nd_impl(context, builder, out, dims)
    with cgutils.for_range(builder, array.nitems) as loop:
        builder.store(fill, builder.gep(array.data, [loop.index]))
    return array._getvalue()


def _emit_reshape(context, builder, op, signature, values):
    """The C view of a C-contiguous array in the shape vector's dims, one of which may be
    negative (inferred), checked as NumPy's ``reshape``."""
    (x_type, shape_type), out = signature.args, signature.return_type
    x = context.make_array(x_type)(context, builder, values[0])
    dims = _read_dims(context, builder, shape_type, values[1], out.ndim)
    zero, one = _intp(0), _intp(1)
    known, free, unknown = one, _intp(-1), zero
    for k, d in enumerate(dims):
        negative = builder.icmp_signed("<", d, zero)
        free = builder.select(negative, _intp(k), free)
        unknown = builder.add(unknown, builder.zext(negative, unknown.type))
        known = builder.select(negative, known, builder.mul(known, d))
    many = builder.icmp_signed(">", unknown, one)
    _raise_if(context, builder, many, "can only specify one unknown dimension")
    size = x.nitems
    inferred = builder.icmp_signed(">=", free, zero)
    with builder.if_then(inferred):
        safe = builder.select(builder.icmp_signed("==", known, zero), one, known)
        bad = builder.or_(
            builder.icmp_signed("==", known, zero),
            builder.icmp_signed("!=", builder.srem(size, safe), zero),
        )
        _raise_if(context, builder, bad, "cannot reshape")
    message = "cannot reshape array into the requested shape"
    mismatch = builder.and_(builder.not_(inferred), builder.icmp_signed("!=", known, size))
    _raise_if(context, builder, mismatch, message)
    # the inferred entry (known is nonzero where it is used)
    quotient = builder.sdiv(
        size, builder.select(builder.icmp_signed("==", known, zero), one, known)
    )
    dims = [
        builder.select(builder.icmp_signed("==", free, _intp(k)), quotient, d)
        for k, d in enumerate(dims)
    ]
    _check_size(
        context, builder, dims, context.get_abi_sizeof(context.get_data_type(out.dtype)), message
    )
    return arrays._view(context, builder, out, x, dims)


def _intp(value: int):
    return ir.Constant(cgutils.intp_t, value)


#: op class -> its emitter ``(context, builder, op, signature, argument values) -> result``
EMITTERS = {
    Shape: _emit_shape,
    ShapeI: _emit_shape_i,
    MakeVector: _emit_make_vector,
    Reshape: _emit_reshape,
    Alloc: _emit_alloc,
}
#: The emitters whose code runs loops worth LLVM's optimisation (the others are compiled
#: ``optnone``: a few loads and stores)
OPTIMISED = {Alloc}


def name_of(op, in_types, out_types) -> str | None:
    """The name of the function running ``op`` on values of ``in_types`` natively (its
    signature declared, ``link.declare``), or None if the op needs a kernel: one not in
    ``EMITTERS``, or a ``MakeVector`` that casts."""
    if type(op) not in EMITTERS:
        return None
    if isinstance(op, MakeVector) and any(t.dtype != op.dtype for t in in_types):
        return None
    if (isinstance(op, Reshape) and op.ndim == 0) or (isinstance(op, Alloc) and in_types[0].ndim):
        return None  # a reshape to 0-d copies; an alloc of an array value broadcasts it
    layouts = ["C" if isinstance(op, Reshape) else "A"] + ["A"] * (len(in_types) - 1)
    argtypes = tuple(link.parameter_type(t, lay) for t, lay in zip(in_types, layouts))
    signature = link.result_type(out_types)(*argtypes)
    digest = hashlib.sha256(f"{op!r} {signature}".encode()).hexdigest()[:32]
    name = _PREFIX + digest
    if name not in _specs:
        _specs[name] = (op, signature)
        link.declare(name, signature)
    return name


def is_native(name: str) -> bool:
    """Whether ``name`` is a function :func:`name_of` gave (not a kernel module)."""
    return name.startswith(_PREFIX)


def define(context, module, name: str) -> ir.Function:
    """The function ``name`` (:func:`name_of`) in ``module``, written there if it is not
    yet: it takes and returns values as a Numba function of its signature does."""
    try:
        return module.get_global(name)
    except KeyError:
        pass
    op, signature = _specs[name]
    call_conv = context.call_conv
    fn = ir.Function(
        module, call_conv.get_function_type(signature.return_type, signature.args), name
    )
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    if type(op) not in OPTIMISED:
        fn.attributes.add("optnone")
    call_conv.decorate_function(fn, [f"a{k}" for k in range(len(signature.args))], signature.args)
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    packer = context.get_arg_packer(signature.args)
    values = packer.from_arguments(builder, call_conv.get_arguments(fn))
    result = EMITTERS[type(op)](context, builder, op, signature, values)
    call_conv.return_value(builder, result)
    return fn


__all__ = ["EMITTERS", "OPTIMISED", "define", "is_native", "name_of"]
