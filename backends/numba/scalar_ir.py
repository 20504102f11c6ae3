"""Straight-line scalar functions traced into LLVM IR, callable from njit code.

``vecmath`` writes its functions as ordinary Python over ``Value``s: arithmetic operators,
comparisons and the few primitives below (``select``, ``horner``, bit casts, ...). A
``ScalarFunction`` wraps such a function for njit code: at each call site Numba types the
call from the declared parameter types alone and the lowering runs the Python function on
the call's LLVM values, so its instructions land inline in the caller, where LLVM optimises
and vectorises them with the loop. Nothing of the function itself goes through Numba's
typing, lowering or a separate compile -- that cost, about 65 ms per function and process
when they were njit functions, was half the compile of a kernel of many transcendentals.

The traced code has no branches and no calls other than LLVM intrinsics, and it follows
Python's float semantics as Numba compiles them with ``error_model="numpy"``: IEEE
operations without fast-math flags, ordered comparisons (``!=`` unordered), arithmetic
right shifts."""

from __future__ import annotations

import inspect
from functools import partialmethod

from llvmlite import ir
from numba.core import types
from numba.core.extending import lower_builtin, type_callable

F64, F32, I64, BOOL = ir.DoubleType(), ir.FloatType(), ir.IntType(64), ir.IntType(1)
_NUMBA = {"f64": types.float64, "f32": types.float32}
_LLVM = {"f64": F64, "f32": F32}
_FROM_LLVM = {F64: types.float64, F32: types.float32, I64: types.int64, BOOL: types.boolean}


def _is_float(ty) -> bool:
    return isinstance(ty, (ir.DoubleType, ir.FloatType))


class Value:
    """An LLVM scalar (double, float, i64 or i1) being traced into ``builder``. Python
    numbers combine with it as constants of its type; two Values must have the same type."""

    __slots__ = ("builder", "ir")

    def __init__(self, builder: ir.IRBuilder, value: ir.Value):
        self.builder = builder
        self.ir = value

    @property
    def type(self):
        return self.ir.type

    def _coerce(self, other) -> ir.Value:
        if isinstance(other, Value):
            if other.type != self.type:
                raise TypeError(f"mixed scalar types {self.type} and {other.type}")
            return other.ir
        if isinstance(other, bool) or not isinstance(other, (int, float)):
            raise TypeError(f"cannot combine {type(other).__name__} with a traced {self.type}")
        if isinstance(other, float) and not _is_float(self.type):
            raise TypeError(f"float constant {other!r} with a traced {self.type}")
        return ir.Constant(self.type, float(other) if _is_float(self.type) else int(other))

    def _new(self, value) -> Value:
        return Value(self.builder, value)

    def _arith(self, other, fop, iop, reverse=False):
        a, b = self.ir, self._coerce(other)
        if reverse:
            a, b = b, a
        if _is_float(self.type):
            return self._new(getattr(self.builder, fop)(a, b))
        if iop is None:
            raise TypeError(f"{fop} of a traced {self.type}")
        return self._new(getattr(self.builder, iop)(a, b))

    # the float and the integer LLVM instruction of each arithmetic operator
    __add__ = partialmethod(_arith, fop="fadd", iop="add")
    __radd__ = partialmethod(_arith, fop="fadd", iop="add", reverse=True)
    __sub__ = partialmethod(_arith, fop="fsub", iop="sub")
    __rsub__ = partialmethod(_arith, fop="fsub", iop="sub", reverse=True)
    __mul__ = partialmethod(_arith, fop="fmul", iop="mul")
    __rmul__ = partialmethod(_arith, fop="fmul", iop="mul", reverse=True)
    __truediv__ = partialmethod(_arith, fop="fdiv", iop=None)
    __rtruediv__ = partialmethod(_arith, fop="fdiv", iop=None, reverse=True)

    def _bits(self, other, op):
        if _is_float(self.type):
            raise TypeError(f"bitwise {op} of a traced {self.type}")
        return self._new(getattr(self.builder, op)(self.ir, self._coerce(other)))

    __and__ = partialmethod(_bits, op="and_")
    __or__ = partialmethod(_bits, op="or_")
    __xor__ = partialmethod(_bits, op="xor")
    __lshift__ = partialmethod(_bits, op="shl")
    __rshift__ = partialmethod(_bits, op="ashr")

    def __neg__(self):
        if _is_float(self.type):
            return self._new(self.builder.fneg(self.ir))
        return self._new(self.builder.neg(self.ir))

    def __abs__(self):
        return self._new(_call_intrinsic(self.builder, "llvm.fabs", [self.ir]))

    def _compare(self, other, op):
        b = self._coerce(other)
        if _is_float(self.type):
            cmp = self.builder.fcmp_unordered if op == "!=" else self.builder.fcmp_ordered
            return self._new(cmp(op, self.ir, b))
        return self._new(self.builder.icmp_signed(op, self.ir, b))

    __lt__ = partialmethod(_compare, op="<")
    __le__ = partialmethod(_compare, op="<=")
    __gt__ = partialmethod(_compare, op=">")
    __ge__ = partialmethod(_compare, op=">=")
    __eq__ = partialmethod(_compare, op="==")
    __ne__ = partialmethod(_compare, op="!=")
    __hash__ = None

    def __bool__(self):
        raise TypeError("a traced value has no truth value: use select(), & and |")


def _call_intrinsic(builder, name, args):
    ty = args[0].type
    fn = builder.module.declare_intrinsic(name, [ty], ir.FunctionType(ty, [ty] * len(args)))
    return builder.call(fn, args)


def _pair(cond: Value, a, b) -> tuple[Value, Value]:
    """The operands of ``select`` as Values of one type; two Python constants become
    doubles (or i64s, both being ints)."""
    ref = a if isinstance(a, Value) else b
    if not isinstance(ref, Value):
        ty = I64 if isinstance(a, int) and isinstance(b, int) else F64
        ref = cond._new(ir.Constant(ty, None))
    return ref._new(ref._coerce(a)), ref._new(ref._coerce(b))


# ----------------------------------------------------------------------------------------
# Primitives


def select(cond: Value, a, b) -> Value:
    """``a if cond else b`` as one LLVM ``select``: no branch for the vectoriser."""
    a, b = _pair(cond, a, b)
    return cond._new(cond.builder.select(cond.ir, a.ir, b.ir))


def horner(x: Value, coeffs: tuple) -> Value:
    """c[0] + c[1] * x + ... for constant coefficients, by Horner's rule with
    ``llvm.fmuladd`` (fused where the CPU has FMA)."""
    acc = ir.Constant(x.type, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = _call_intrinsic(x.builder, "llvm.fmuladd", [acc, x.ir, ir.Constant(x.type, c)])
    return x._new(acc)


def rint(x: Value) -> Value:
    """Round to the nearest integer, ties to even (``np.rint``)."""
    return x._new(_call_intrinsic(x.builder, "llvm.rint", [x.ir]))


def copysign(y: Value, x: Value) -> Value:
    """|y| with the sign of x (``math.copysign``)."""
    return y._new(_call_intrinsic(y.builder, "llvm.copysign", [y.ir, y._coerce(x)]))


def bits(x: Value) -> Value:
    """The bits of a double as an i64."""
    return x._new(x.builder.bitcast(x.ir, I64))


def from_bits(i: Value) -> Value:
    """The double whose bits are the i64 ``i``."""
    return i._new(i.builder.bitcast(i.ir, F64))


def pow2(k: Value) -> Value:
    """2.0**k for an i64 -1022 <= k <= 1023 (exponent bits, no conversion)."""
    return from_bits((k + 1023) << 52)


def int_to_f64(k: Value) -> Value:
    """float(k) for an i64 |k| < 2**51, through the bits of 2**52 + 2**51 + k (x86 has no
    vector int64 -> double conversion before AVX-512DQ)."""
    return from_bits(k + 0x4338000000000000) - 6755399441055744.0


def flip(y: Value, k: Value) -> Value:
    """y with its sign flipped when bit 1 of the i64 k is set (quadrants 2 and 3)."""
    return from_bits(bits(y) ^ ((k & 2) << 62))


def to_f64(x: Value) -> Value:
    """x as a double (exact)."""
    return x if x.type == F64 else x._new(x.builder.fpext(x.ir, F64))


def to_f32(x: Value) -> Value:
    """The double x rounded once to float."""
    return x._new(x.builder.fptrunc(x.ir, F32))


# ----------------------------------------------------------------------------------------
# Binding to njit code


class ScalarFunction:
    """A traced scalar function callable from njit code (and, on Values, from other traced
    functions). ``params`` names each parameter's type, "f64" or "f32"; a call casts its
    arguments to them. The result is a float, a bool or a tuple of floats."""

    def __init__(self, fn, params: tuple[str, ...]):
        self.fn = fn
        self.params = params
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self._result_type = None
        _register(self)

    def __call__(self, *args):
        if not any(isinstance(a, Value) for a in args):
            raise TypeError(f"{self.__name__} is traced into njit code: call it from there")
        return self.fn(*args)

    def __repr__(self):
        return f"<traced scalar function {self.__name__}({', '.join(self.params)})>"

    def emit(self, builder, args):
        """Trace the function at ``builder``'s position on LLVM values of the parameter
        types; returns a Value, or a tuple of Values and constants."""
        return self.fn(*(Value(builder, a) for a in args))

    def result_type(self):
        """The Numba type of the result, found by tracing into a scratch function once."""
        if self._result_type is None:
            params = [_LLVM[p] for p in self.params]
            fn = ir.Function(ir.Module(), ir.FunctionType(ir.VoidType(), params), "scratch")
            builder = ir.IRBuilder(fn.append_basic_block())
            out = self.emit(builder, fn.args)
            if isinstance(out, tuple):
                self._result_type = types.Tuple([_result_numba(v) for v in out])
            else:
                self._result_type = _result_numba(out)
        return self._result_type


def _result_numba(v):
    return types.float64 if isinstance(v, float) else _FROM_LLVM[v.type]


def _register(sf: ScalarFunction):
    """Typing and lowering of calls to ``sf`` in njit code."""

    @type_callable(sf)
    def typer(context):
        def typed(*args):
            if len(args) == len(sf.params) and all(isinstance(a, types.Number) for a in args):
                return sf.result_type()
            return None

        typed.__signature__ = inspect.signature(sf.fn)  # Numba folds arguments by it
        return typed

    @lower_builtin(sf, types.VarArg(types.Any))
    def lower(context, builder, sig, args):
        vals = [
            context.cast(builder, v, ty, _NUMBA[p]) for v, ty, p in zip(args, sig.args, sf.params)
        ]
        out = sf.emit(builder, vals)
        if not isinstance(out, tuple):
            return out.ir
        items = [ir.Constant(F64, v) if isinstance(v, float) else v.ir for v in out]
        return context.make_tuple(builder, sig.return_type, items)


class GenericFunction:
    """A name for njit code that calls the float32 or float64 ScalarFunction by the type of
    its one argument (``vecmath.exp(x)``)."""

    def __init__(self, name: str, f32: ScalarFunction, f64: ScalarFunction):
        self.__name__ = name
        self.variants = {types.float32: f32, types.float64: f64}

        @type_callable(self)
        def typer(context):
            def typed(x):
                sf = self.variants.get(x)
                return sf.result_type() if sf is not None else None

            return typed

        @lower_builtin(self, types.Float)
        def lower(context, builder, sig, args):
            return self.variants[sig.args[0]].emit(builder, args).ir

    def __call__(self, x):
        if not isinstance(x, Value):
            raise TypeError(f"{self.__name__} is traced into njit code: call it from there")
        return self.variants[types.float32 if x.type == F32 else types.float64](x)

    def __repr__(self):
        return f"<traced scalar function {self.__name__} (float32 or float64)>"
