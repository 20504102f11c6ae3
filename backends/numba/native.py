"""Shape ops the glue runs as code of its own instead of linked kernels.

In a large graph (``glue``) every node runs a linked kernel, and each kernel costs a Numba
compile: about 30-250 ms of typing, lowering and LLVM, even for a node that only reads
an array's shape or stacks a few integers. The nodes of ``Shape``, ``ShapeI`` and
``MakeVector`` (the plumbing of symbolic shapes that every gradient has) are instead
functions the glue's module defines itself, written here as LLVM IR in Numba's calling
convention, so the glue calls them like any kernel, through the adapter of their
signature, and no Numba compile takes place.

:func:`name_of` names such a node's function (its signature declared, as a kernel's is)
and :func:`define` writes it into the module being compiled.
"""

from __future__ import annotations

import hashlib

import numba
from llvmlite import ir
from numba.core import cgutils
from numba.np import arrayobj

from fusegraph.backends.numba import link
from fusegraph.ops.shape import MakeVector, Shape, ShapeI

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


#: op class -> its emitter ``(context, builder, op, signature, argument values) -> result``
EMITTERS = {
    Shape: _emit_shape,
    ShapeI: _emit_shape_i,
    MakeVector: _emit_make_vector,
}


def name_of(op, in_types, out_types) -> str | None:
    """The name of the function running ``op`` on values of ``in_types`` natively (its
    signature declared, ``link.declare``), or None if the op needs a kernel: one not in
    ``EMITTERS``, or a ``MakeVector`` that casts."""
    if type(op) not in EMITTERS:
        return None
    if isinstance(op, MakeVector) and any(t.dtype != op.dtype for t in in_types):
        return None
    argtypes = tuple(link.parameter_type(t, "A") for t in in_types)
    signature = link.result_type(out_types)(*argtypes)
    digest = hashlib.sha256(f"{op!r} {signature}".encode()).hexdigest()[:32]
    name = _PREFIX + digest
    if name not in _specs:
        _specs[name] = (op, signature)
        link.declare(name, signature)
    return name


def is_native(name: str) -> bool:
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
    for attribute in ("noinline", "optnone"):  # a few loads and stores: not worth LLVM's passes
        fn.attributes.add(attribute)
    call_conv.decorate_function(fn, [f"a{k}" for k in range(len(signature.args))], signature.args)
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    packer = context.get_arg_packer(signature.args)
    values = packer.from_arguments(builder, call_conv.get_arguments(fn))
    result = EMITTERS[type(op)](context, builder, op, signature, values)
    call_conv.return_value(builder, result)
    return fn


__all__ = ["EMITTERS", "define", "is_native", "name_of"]
