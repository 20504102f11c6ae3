"""Numba kernels for the ops that are not fused elementwise loops: ``kernel_source(op, in_types,
out_types, name)`` renders one njit function computing exactly what ``op.impl`` computes."""

# Conventions of a kernel (the module generator relies on them):
# - ``def <name>(i0, i1, ...)`` takes the node's inputs as arrays (0-d inputs are 0-d arrays,
#   read with ``i[()]``) and returns the output array (0-d outputs are 0-d arrays), or a tuple
#   for several outputs. It is specialised on the static ``in_types``/``out_types`` (ndim,
#   dtype, static dims) and needs the globals of ``IMPORTS``.
# - Errors raise NumPy's exception class with a constant message; the Function wrapper re-runs
#   the py backend to build the detailed one.
# - Results may be views of inputs where NumPy's are (DimShuffle, Subtensor, BroadcastTo,
#   Reshape of a C-contiguous input); otherwise they are new arrays.
#
# dot on transposed operands: Numba's np.dot calls BLAS (gemm/gemv/dot) directly on operands
# whose Numba type has layout C or F, passing a transpose flag for F. A DimShuffle that
# transposes a 2-d C array renders as ``x.T``, typed F-layout, so a following Dot calls gemm
# with transa/transb set and copies nothing. Only operands typed "A" (non-contiguous: strided
# slices, higher-d transposes) are copied to C first, by ``blas_operand``, explicitly rather
# than inside np.dot (which would warn NumbaPerformanceWarning) -- as NumPy copies them too.
# Integer and bool products have no BLAS: they run explicit loops over any layout (no copies),
# accumulating in int64/uint64 and wrapping to the output dtype as NumPy's loops do.

from __future__ import annotations

import functools
import importlib

import numpy as np
from numba.extending import overload

from fusegraph.backends.numba import scalar_code
from fusegraph.backends.numba.scalar_code import cast_expr
from fusegraph.ops import creation, grad_ops, indexing, linalg, nn, reduction
from fusegraph.ops.indexing import SYMBOLIC

# ``fusegraph.ops.shape`` is also the name of a function re-exported by ``fusegraph.ops``.
shape = importlib.import_module("fusegraph.ops.shape")

__all__ = ["IMPORTS", "SUPPORTED", "DECORATOR", "kernel_source", "blas_operand", "as_c"]

DECORATOR = '@numba.njit(cache=__fusegraph_cacheable__, nogil=True, error_model="numpy")'

#: The import lines a module holding kernels needs.
IMPORTS = (
    "import numba\n"
    + scalar_code.IMPORTS
    + "from fusegraph.backends.numba.kernels import as_c, blas_operand\n"
)


# ----------------------------------------------------------------------------------------
# njit helpers used by kernels (resolved on the argument's layout when typing)


def blas_operand(a):
    """``a`` if its layout is C or F (BLAS takes it as is), else a C copy."""
    return a if a.flags.c_contiguous or a.flags.f_contiguous else np.ascontiguousarray(a)


def as_c(a):
    """``a`` if C-contiguous, else a C copy (``reshape`` needs C layout in Numba)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


@overload(blas_operand)
def _blas_operand(a):
    if a.layout in "CF":
        return lambda a: a
    return lambda a: np.ascontiguousarray(a)


@overload(as_c)
def _as_c(a):
    if a.layout == "C":
        return lambda a: a
    return lambda a: np.ascontiguousarray(a)


# ----------------------------------------------------------------------------------------
# rendering helpers


@functools.singledispatch
def kernel_source(op, in_types, out_types, name) -> str:
    """The source of one njit function ``name`` computing ``op`` on the given types.

    Args:
        op: the op (its class selects the kernel).
        in_types: the TensorTypes of the node's inputs.
        out_types: the TensorTypes of the node's outputs.
        name: the function's name.

    Raises:
        NotImplementedError: when the op class has no kernel.
    """
    raise NotImplementedError(f"no Numba kernel for {type(op).__name__}")


#: The op classes with a kernel (filled by ``_register``).
SUPPORTED: set = set()


def _register(*classes):
    def deco(fn):
        for cls in classes:
            kernel_source.register(cls)(fn)
            SUPPORTED.add(cls)
        return fn

    return deco


class _Code:
    """Lines of Python with an indentation level."""

    def __init__(self, name, n_inputs):
        args = ", ".join(f"i{k}" for k in range(n_inputs))
        self.lines = [DECORATOR, f"def {name}({args}):"]
        self.level = 1

    def __call__(self, *texts):
        for text in texts:
            self.lines.append("    " * self.level + text)

    def block(self, header):
        self(header)
        self.level += 1
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.level -= 1

    def loop(self, var, stop):
        return self.block(f"for {var} in range({stop}):")

    def text(self):
        return "\n".join(self.lines) + "\n"


def _np(dtype: str) -> str:
    return "np.bool_" if dtype == "bool" else f"np.{dtype}"


def _tup(items) -> str:
    items = list(items)
    return "(" + "".join(f"{i}, " for i in items) + ")" if items else "()"


def _at(items) -> str:
    """An index expression for an n-d array (``()`` for a 0-d one)."""
    items = list(items)
    return ", ".join(items) if items else "()"


def _raise(code, cond, exc, msg):
    with code.block(f"if {cond}:"):
        code(f'raise {exc}("{msg}")')


def _shape_vars(code, arr, prefix, ndim):
    names = [f"{prefix}{k}" for k in range(ndim)]
    for k, n in enumerate(names):
        code(f"{n} = {arr}.shape[{k}]")
    return names


def _new(code, var, shape, dtype):
    code(f"{var} = np.empty({_tup(shape)}, dtype={_np(dtype)})")


def _loops(code, bounds, prefix):
    """Open nested loops; returns the index names (close with ``_close``)."""
    names = []
    for k, b in enumerate(bounds):
        names.append(f"{prefix}{k}")
        code.block(f"for {prefix}{k} in range({b}):")
    return names


def _close(code, n):
    code.level -= n


def _int_scalar(arg: str) -> str:
    return f"np.int64({arg}[()])"


# ----------------------------------------------------------------------------------------
# shape ops


@_register(shape.Shape)
def _shape(op, in_types, out_types, name):
    code = _Code(name, 1)
    nd = len(in_types[0].shape)
    _new(code, "out", [str(nd)], "int64")
    for k in range(nd):
        code(f"out[{k}] = i0.shape[{k}]")
    code("return out")
    return code.text()


@_register(shape.ShapeI)
def _shape_i(op, in_types, out_types, name):
    code = _Code(name, 1)
    _new(code, "out", [], "int64")
    code(f"out[()] = i0.shape[{op.i}]", "return out")
    return code.text()


@_register(shape.MakeVector)
def _make_vector(op, in_types, out_types, name):
    code = _Code(name, len(in_types))
    _new(code, "out", [str(len(in_types))], op.dtype)
    for k, t in enumerate(in_types):
        code(f"out[{k}] = {cast_expr(f'i{k}[()]', t.dtype, op.dtype)}")
    code("return out")
    return code.text()


def _read_shape_vector(code, arg, n):
    """Bind ``s0..`` to the entries of a shape vector input of static length ``n``."""
    _raise(code, f"{arg}.shape[0] != {n}", "ValueError", "the shape vector has the wrong length")
    names = [f"s{k}" for k in range(n)]
    for k, s in enumerate(names):
        code(f"{s} = np.int64({arg}[{k}])")
    return names


@_register(shape.Reshape)
def _reshape(op, in_types, out_types, name):
    code = _Code(name, 2)
    dims = _read_shape_vector(code, "i1", op.ndim)
    code("size = i0.size", "known = 1", "free = -1")
    for k, s in enumerate(dims):
        # NumPy takes any negative entry as the unknown one
        with code.block(f"if {s} < 0:"):
            _raise(code, "free >= 0", "ValueError", "can only specify one unknown dimension")
            code(f"free = {k}")
        with code.block("else:"):
            code(f"known *= {s}")
    with code.block("if free >= 0:"):
        _raise(code, "known == 0 or size % known != 0", "ValueError", "cannot reshape")
        for k, s in enumerate(dims):
            code(f"{s} = size // known if free == {k} else {s}")
    with code.block("elif known != size:"):
        code('raise ValueError("cannot reshape array into the requested shape")')
    if op.ndim == 0:
        _new(code, "out", [], out_types[0].dtype)
        code("out[()] = as_c(i0).reshape(1)[0]", "return out")
    else:
        code(f"return as_c(i0).reshape({_tup(dims)})")
    return code.text()


@_register(shape.DimShuffle)
def _dimshuffle(op, in_types, out_types, name):
    code = _Code(name, 1)
    for a in op.dropped:
        _raise(code, f"i0.shape[{a}] != 1", "ValueError", "cannot drop an axis of length != 1")
    kept = [a for a in op.new_order if a != "x"]
    perm = kept + list(op.dropped)
    y = "i0"
    if perm == list(reversed(range(op.input_ndim))) and op.input_ndim > 1:
        y = "i0.T"  # typed F-layout for a C input: BLAS takes it without a copy
    elif perm != list(range(op.input_ndim)):
        y = f"i0.transpose({_tup(perm)})"
    items = ["None" if a == "x" else ":" for a in op.new_order] + ["0"] * len(op.dropped)
    if not out_types[0].shape:
        _new(code, "out", [], out_types[0].dtype)
        code(f"out[()] = {y}[{_at(items)}]", "return out")
    elif "x" in op.new_order or op.dropped:
        code(f"return {y}[{', '.join(items)}]")
    else:
        code(f"return {y}")
    return code.text()


def _check_broadcast_to(code, src_ndim, dims):
    """ValueError unless an array ``i0`` of ``src_ndim`` dims broadcasts to ``dims``."""
    lead = len(dims) - src_ndim
    for s in dims:
        _raise(code, f"{s} < 0", "ValueError", "negative dimensions are not allowed")
    for k in range(src_ndim):
        d = dims[lead + k]
        cond = f"i0.shape[{k}] != 1 and i0.shape[{k}] != {d}"
        _raise(code, cond, "ValueError", "operands could not be broadcast to the shape")


@_register(shape.BroadcastTo)
def _broadcast_to(op, in_types, out_types, name):
    code = _Code(name, 2)
    dims = _read_shape_vector(code, "i1", len(out_types[0].shape))
    _check_broadcast_to(code, len(in_types[0].shape), dims)
    if not in_types[0].shape:
        code(f"return np.full({_tup(dims)}, i0[()], dtype={_np(in_types[0].dtype)})")
    else:
        code(f"return np.broadcast_to(i0, {_tup(dims)})")
    return code.text()


@_register(shape.Join)
def _join(op, in_types, out_types, name):
    code = _Code(name, len(in_types))
    nd, ax = len(out_types[0].shape), op.axis
    dims = _shape_vars(code, "i0", "n", nd)
    code(f"total = n{ax}")
    for k in range(1, len(in_types)):
        for d in range(nd):
            if d != ax:
                cond = f"i{k}.shape[{d}] != n{d}"
                _raise(code, cond, "ValueError", "input array dimensions must match")
        code(f"total += i{k}.shape[{ax}]")
    dims[ax] = "total"
    _new(code, "out", dims, out_types[0].dtype)
    code("start = 0")
    for k in range(len(in_types)):
        stop = f"start + i{k}.shape[{ax}]"
        key = [":"] * ax + [f"start:{stop}"]
        code(f"out[{', '.join(key)}] = i{k}", f"start = {stop}")
    code("return out")
    return code.text()


# ----------------------------------------------------------------------------------------
# creation


@_register(creation.Alloc)
def _alloc(op, in_types, out_types, name):
    code = _Code(name, 2)
    out = out_types[0]
    dims = _read_shape_vector(code, "i1", len(out.shape))
    src_nd = len(in_types[0].shape)
    _check_broadcast_to(code, src_nd, dims)
    _new(code, "out", dims, out.dtype)
    if src_nd == 0:
        code("v = i0[()]")
    idx = _loops(code, dims, "j")
    lead = len(dims) - src_nd
    src = [f"0 if i0.shape[{k}] == 1 else j{lead + k}" for k in range(src_nd)]
    code(f"out[{_at(idx)}] = " + ("v" if src_nd == 0 else f"i0[{_at(src)}]"))
    _close(code, len(dims))
    code("return out")
    return code.text()


@_register(creation.ARange)
def _arange(op, in_types, out_types, name):
    # NumPy: length = ceil((stop - start) / step), out[0] = start, out[1] = start + step (both
    # cast to dtype), then out[i] = out[0] + i * (out[1] - out[0]) in dtype.
    code = _Code(name, 3)
    dt = op.dtype
    for k, v in enumerate(("start", "stop", "step")):
        t = in_types[k].dtype
        code(f"{v} = " + (f"np.int64(i{k}[()])" if t == "bool" else f"i{k}[()]"))
    _raise(code, "step == 0", "ZeroDivisionError", "division by zero")
    code("q = (stop - start) / step")
    _raise(code, "not math.isfinite(q)", "ValueError", "arange: cannot compute the length")
    code("n = max(0, int(math.ceil(q)))")
    _new(code, "out", ["n"], dt)
    if dt == "bool":
        _raise(code, "n > 2", "TypeError", "arange() of booleans has at most length 2")
    src = scalar_code.as_dtype(np.result_type(*(t.dtype for t in in_types)))
    first = cast_expr("start", src, dt)
    second = cast_expr("(start + step)", src, dt)
    with code.block("if n > 0:"):
        code(f"out[0] = {first}")
    with code.block("if n > 1:"):
        code(f"out[1] = {second}")
    if dt != "bool":
        code("delta = out[1] - out[0] if n > 1 else out[0]")
        with code.loop("i", "2, n"):
            code(f"out[i] = out[0] + {_np(dt)}(i) * delta")
    code("return out")
    return code.text()


@_register(creation.Eye)
def _eye(op, in_types, out_types, name):
    code = _Code(name, 3)
    code("n = np.int64(i0[()])", "m = np.int64(i1[()])", "k = np.int64(i2[()])")
    _raise(code, "n < 0 or m < 0", "ValueError", "negative dimensions are not allowed")
    code(f"out = np.zeros((n, m), dtype={_np(op.dtype)})")
    with code.loop("i", "max(0, -k), min(n, m - k)"):
        code(f"out[i, i + k] = {_np(op.dtype)}(1)")
    code("return out")
    return code.text()


# ----------------------------------------------------------------------------------------
# linear algebra


def _mul_acc_exprs(dtype):
    """(accumulator init, update of ``acc`` with ``a * b``, final cast) for a loop dtype."""
    if dtype == "bool":
        return "False", "acc = acc or (ea and eb)", "acc"
    if dtype.startswith("uint"):
        return "np.uint64(0)", "acc += np.uint64(ea) * np.uint64(eb)", f"np.{dtype}(acc)"
    return "np.int64(0)", "acc += np.int64(ea) * np.int64(eb)", f"np.{dtype}(acc)"


def _float_dot(code, a, b, ta, tb, out):
    """``out_var = np.dot(a, b)`` through BLAS for 1-d/2-d float operands."""
    ca = f"{a}.astype({_np(out.dtype)})" if ta.dtype != out.dtype else f"blas_operand({a})"
    cb = f"{b}.astype({_np(out.dtype)})" if tb.dtype != out.dtype else f"blas_operand({b})"
    return f"np.dot({ca}, {cb})"


def _loop_dot(code, out_var, a, b, nda, ndb, dtype):
    """Explicit loops for ``np.dot`` of int/bool operands (1-d or 2-d) into ``out_var``."""
    init, update, final = _mul_acc_exprs(dtype)
    rows = ["i"] if nda == 2 else []
    cols = ["j"] if ndb == 2 else []
    if nda == 2:
        code.block(f"for i in range({a}.shape[0]):")
    if ndb == 2:
        code.block(f"for j in range({b}.shape[1]):")
    code(f"acc = {init}")
    with code.loop("p", f"{a}.shape[{nda - 1}]"):
        code(f"ea = {a}[{_at(rows + ['p'])}]", f"eb = {b}[{_at(['p'] + cols)}]", update)
    code(f"{out_var}[{_at(rows + cols)}] = {final}")
    _close(code, (nda == 2) + (ndb == 2))


def _dot2(code, a, b, ta, tb, out, out_var):
    """``out_var`` (already allocated, shape checked) = dot of 1-d/2-d ``a`` and ``b``."""
    nda, ndb = len(ta.shape), len(tb.shape)
    if out.dtype in ("float32", "float64"):
        expr = _float_dot(code, a, b, ta, tb, out)
        if nda == ndb == 1:
            code(f"{out_var}[()] = {expr}")
        else:
            code(expr[:-1] + f", {out_var})")  # np.dot(a, b, out): BLAS writes in place
    else:
        _loop_dot(code, out_var, a, b, nda, ndb, out.dtype)


@_register(linalg.Dot)
def _dot(op, in_types, out_types, name):
    code = _Code(name, 2)
    ta, tb = in_types
    out = out_types[0]
    nda, ndb = len(ta.shape), len(tb.shape)
    if nda == 0 or ndb == 0:
        return _scaled(code, ta, tb, out)
    if nda > 2 or ndb > 2:
        # np.dot(a, b)[i.., j.., k] = sum(a[i.., :] * b[j.., :, k]): a C copy of each, made
        # 2-d, is one BLAS/loop product: (M, K) x (K, rest of b moved after its K axis).
        axes_b = [k for k in range(ndb) if k != max(ndb - 2, 0)] if ndb > 1 else []
        return _tensordot(code, ta, tb, out, (nda - 1,), (max(ndb - 2, 0),), axes_b)
    kb = "i1.shape[0]"
    _raise(code, f"i0.shape[{nda - 1}] != {kb}", "ValueError", "shapes not aligned")
    if out.dtype in ("float32", "float64"):
        expr = _float_dot(code, "i0", "i1", ta, tb, out)
        if nda == ndb == 1:
            _new(code, "out", [], out.dtype)
            code(f"out[()] = {expr}", "return out")
        else:
            code(f"return {expr}")
        return code.text()
    dims = (["i0.shape[0]"] if nda == 2 else []) + (["i1.shape[1]"] if ndb == 2 else [])
    _new(code, "out", dims, out.dtype)
    _loop_dot(code, "out", "i0", "i1", nda, ndb, out.dtype)
    code("return out")
    return code.text()


def _scaled(code, ta, tb, out):
    """Dot with a 0-d operand: ``np.multiply(a, b, dtype=out)``."""
    big, small, tbig, tsmall = ("i1", "i0", tb, ta) if len(ta.shape) == 0 else ("i0", "i1", ta, tb)
    nd = len(tbig.shape)
    dims = _shape_vars(code, big, "n", nd)
    code(f"s = {cast_expr(f'{small}[()]', tsmall.dtype, out.dtype)}")
    _new(code, "out", dims, out.dtype)
    idx = _loops(code, dims, "j")
    v = cast_expr(f"{big}[{_at(idx)}]", tbig.dtype, out.dtype)
    pair = ("s", v) if len(ta.shape) == 0 else (v, "s")
    op = scalar_code.ScalarOp("mul")
    expr = scalar_code.scalar_expr(op, (out.dtype, out.dtype), out.dtype, list(pair))
    code(f"out[{_at(idx)}] = {expr}")
    _close(code, nd)
    code("return out")
    return code.text()


@_register(linalg.MatMul)
def _matmul(op, in_types, out_types, name):
    code = _Code(name, 2)
    ta, tb = in_types
    out = out_types[0]
    nda, ndb = len(ta.shape), len(tb.shape)
    ka = f"i0.shape[{nda - 1}]"
    kb = f"i1.shape[{0 if ndb == 1 else ndb - 2}]"
    _raise(code, f"{ka} != {kb}", "ValueError", "matmul: mismatch in its core dimension")
    nbatch = max(nda, ndb) - 2
    bdims = []
    for k in range(nbatch):
        # batch axis k, right-aligned in each operand's batch dims
        da = nda - 2 - nbatch + k
        db = ndb - 2 - nbatch + k
        sa = f"i0.shape[{da}]" if da >= 0 else "1"
        sb = f"i1.shape[{db}]" if db >= 0 else "1"
        code(f"b{k} = {sa} if {sa} != 1 else {sb}")
        cond = f"({sa} != 1 and {sa} != b{k}) or ({sb} != 1 and {sb} != b{k})"
        _raise(code, cond, "ValueError", "matmul: batch dims cannot be broadcast")
        bdims.append(f"b{k}")
    core = ([f"i0.shape[{nda - 2}]"] if nda >= 2 else []) + (
        [f"i1.shape[{ndb - 1}]"] if ndb >= 2 else []
    )
    if nbatch <= 0:
        _new(code, "out", core, out.dtype)
        _dot2(code, "i0", "i1", ta, tb, out, "out")
        code("return out")
        return code.text()
    _new(code, "out", bdims + core, out.dtype)
    idx = _loops(code, bdims, "j")
    for arr, nd, var in (("i0", nda, "a"), ("i1", ndb, "b")):
        sel = []
        for k in range(nd - 2):
            axis_in_batch = nbatch - (nd - 2) + k
            sel.append(f"0 if {arr}.shape[{k}] == 1 else j{axis_in_batch}")
        code(f"{var} = {arr}[{', '.join(sel)}]" if sel else f"{var} = {arr}")
    sub_a = type(ta)(ta.dtype, ta.shape[-2:]) if nda >= 2 else ta
    sub_b = type(tb)(tb.dtype, tb.shape[-2:]) if ndb >= 2 else tb
    code(f"o = out[{', '.join(idx)}]")
    _dot2(code, "a", "b", sub_a, sub_b, type(out)(out.dtype, (None,) * len(core)), "o")
    _close(code, nbatch)
    code("return out")
    return code.text()


def _tensordot(code, ta, tb, out, axes_a, axes_b, perm_b_free=None):
    """``np.tensordot``: move the summed axes of ``a`` last and of ``b`` first, make both
    C-contiguous 2-d matrices (copies, as NumPy), one dot, then reshape."""
    nda, ndb = len(ta.shape), len(tb.shape)
    free_a = [k for k in range(nda) if k not in axes_a]
    free_b = (
        [k for k in range(ndb) if k not in axes_b] if perm_b_free is None else list(perm_b_free)
    )
    for pa, pb in zip(axes_a, axes_b):
        _raise(code, f"i0.shape[{pa}] != i1.shape[{pb}]", "ValueError", "shape-mismatch for sum")
    code("kk = 1", "ma = 1", "nb = 1")
    for pa in axes_a:
        code(f"kk *= i0.shape[{pa}]")
    for k in free_a:
        code(f"ma *= i0.shape[{k}]")
    for k in free_b:
        code(f"nb *= i1.shape[{k}]")
    dt = _np(out.dtype)
    for arr, t, perm, shape2 in (
        ("i0", ta, free_a + list(axes_a), "(ma, kk)"),
        ("i1", tb, list(axes_b) + free_b, "(kk, nb)"),
    ):
        moved = arr if perm == list(range(len(perm))) else f"{arr}.transpose({_tup(perm)})"
        if not perm:
            moved = f"{arr}.reshape(1)"
        cast = f".astype({dt})" if t.dtype != out.dtype else ""
        code(f"m{arr[1]} = as_c({moved}){cast}.reshape({shape2})")
    two = type(out)(out.dtype, (None, None))
    _new(code, "o2", ["ma", "nb"], out.dtype)
    _dot2(code, "m0", "m1", two, two, two, "o2")
    dims = [f"i0.shape[{k}]" for k in free_a] + [f"i1.shape[{k}]" for k in free_b]
    if dims:
        code(f"return o2.reshape({_tup(dims)})")
    else:
        _new(code, "out", [], out.dtype)
        code("out[()] = o2[0, 0]", "return out")
    return code.text()


@_register(linalg.TensorDot)
def _tensordot_kernel(op, in_types, out_types, name):
    code = _Code(name, 2)
    return _tensordot(code, *in_types, out_types[0], op.axes_a, op.axes_b)


# ----------------------------------------------------------------------------------------
# reductions


def _is_float(dtype):
    return dtype in ("float32", "float64")


def _reduce_init(kind, dtype):
    if kind in ("sum", "mean"):
        return f"{_np(dtype)}(0)" if dtype != "bool" else "False"
    if kind == "prod":
        return f"{_np(dtype)}(1)"
    if kind == "all":
        return "True"
    if kind == "any":
        return "False"
    if dtype == "bool":
        return "False" if kind == "max" else "True"
    if _is_float(dtype):
        return f"{_np(dtype)}({'-' if kind == 'max' else ''}np.inf)"
    info = np.iinfo(dtype)
    return f"{_np(dtype)}({info.min if kind == 'max' else info.max})"


def _reduce_update(kind, src, dtype):
    """Lines updating ``acc`` with the element ``v`` (dtype ``src``; acc has ``dtype``)."""
    if kind in ("sum", "mean"):
        return [f"acc = acc + {cast_expr('v', src, dtype)}"]
    if kind == "prod":
        return [f"acc = acc * {cast_expr('v', src, dtype)}"]
    if kind == "all":
        return [f"acc = acc and {cast_expr('v', src, 'bool')}"]
    if kind == "any":
        return [f"acc = acc or {cast_expr('v', src, 'bool')}"]
    if dtype == "bool":
        return ["acc = acc or v" if kind == "max" else "acc = acc and v"]
    cmp = ">" if kind == "max" else "<"
    nan = " or v != v" if _is_float(dtype) else ""
    return [f"if v {cmp} acc{nan}:", "    acc = v"]


def _reduced_index(idx, axes, keepdims):
    return [("0" if keepdims else None) if k in axes else j for k, j in enumerate(idx)]


@_register(reduction.Reduce)
def _reduce(op, in_types, out_types, name):
    # Iterate the input in C order; from the first axis after which every axis is reduced,
    # accumulate in a local (one load/store of the output per inner block).
    code = _Code(name, 1)
    src, dt = in_types[0].dtype, out_types[0].dtype
    nd = len(in_types[0].shape)
    axes = set(op.axis)
    dims = _shape_vars(code, "i0", "n", nd)
    count = " * ".join(dims[k] for k in sorted(axes)) or "1"
    code(f"count = {count}")
    if op.kind in ("max", "min"):
        _raise(code, "count == 0", "ValueError", "zero-size array to reduction operation")
    out_dims = ["1" if k in axes else d for k, d in enumerate(dims) if op.keepdims or k not in axes]
    code(f"out = np.full({_tup(out_dims)}, {_reduce_init(op.kind, dt)}, dtype={_np(dt)})")
    tail = nd
    while tail > 0 and tail - 1 in axes:
        tail -= 1
    idx = [f"j{k}" for k in range(nd)]
    oidx = _at(j for j in _reduced_index(idx, axes, op.keepdims) if j is not None)
    for k in range(nd + 1):
        if k == tail:
            code(f"acc = out[{oidx}]")
        if k < nd:
            code.block(f"for j{k} in range(n{k}):")
    code(f"v = i0[{_at(idx)}]", *_reduce_update(op.kind, src, dt))
    _close(code, nd - tail)
    code(f"out[{oidx}] = acc")
    _close(code, tail)
    if op.kind == "mean":
        code(f"c = {_np(dt)}(count)")
        if out_dims:
            code("flat = out.reshape(out.size)")
            with code.loop("j", "flat.size"):
                code("flat[j] = flat[j] / c")
        else:
            code("out[()] = out[()] / c")
    code("return out")
    return code.text()


def _grouped(code, nd, axes):
    """Bind ``y`` to ``i0`` with the kept axes first and the ``axes`` last; returns
    (kept dims, reduced dims, perm)."""
    kept = [k for k in range(nd) if k not in axes]
    perm = kept + sorted(axes)
    code("y = i0" if perm == list(range(nd)) else f"y = i0.transpose({_tup(perm)})")
    dims = _shape_vars(code, "y", "n", nd)
    return dims[: len(kept)], dims[len(kept) :], perm


@_register(reduction.ArgReduce)
def _arg_reduce(op, in_types, out_types, name):
    code = _Code(name, 1)
    src = in_types[0].dtype
    nd = len(in_types[0].shape)
    better = {"argmax": ">", "argmin": "<"}[op.kind]
    if src == "bool":
        test = "v and not best" if op.kind == "argmax" else "best and not v"
    elif _is_float(src):
        test = f"v {better} best or (v != v and best == best)"
    else:
        test = f"v {better} best"
    if op.axis is None:
        code("y = i0.ravel()" if nd else "y = i0.reshape(1)")
        outer, inner = [], ["y.shape[0]"]
        yidx = lambda j: j  # noqa: E731
        out_dims = ["1"] * nd if op.keepdims else []
    else:
        outer, inner, _ = _grouped(code, nd, {op.axis})
        yidx = lambda j: _at([f"o{k}" for k in range(len(outer))] + [j])  # noqa: E731
        out_dims = list(outer)
        if op.keepdims:
            out_dims.insert(op.axis, "1")
    _raise(code, f"{inner[0]} == 0", "ValueError", "attempt to get argmax of an empty sequence")
    _new(code, "out", out_dims, "int64")
    oidx = _loops(code, outer, "o")
    code(f"best = y[{yidx('0')}]", "arg = 0")
    with code.loop("t", f"1, {inner[0]}"):
        code(f"v = y[{yidx('t')}]")
        with code.block(f"if {test}:"):
            code("best = v", "arg = t")
    if op.keepdims and op.axis is not None:
        oidx.insert(op.axis, "0")
    elif op.keepdims:
        oidx = ["0"] * nd
    code(f"out[{_at(oidx)}] = arg")
    _close(code, len(outer))
    code("return out")
    return code.text()


def _group_max(code, inner, dt, src, yidx):
    """``top``: the NaN-propagating max of the group (-inf when empty)."""
    code(f"top = {_np(dt)}(-np.inf)")
    idx = _loops(code, inner, "r")
    code(f"v = {cast_expr(f'y[{yidx(idx)}]', src, dt)}")
    with code.block("if v > top or v != v:"):
        code("top = v")
    _close(code, len(inner))
    return idx


@_register(reduction.LogSumExp)
def _logsumexp(op, in_types, out_types, name):
    code = _Code(name, 1)
    src, dt = in_types[0].dtype, out_types[0].dtype
    nd = len(in_types[0].shape)
    axes = set(op.axis)
    outer, inner, _ = _grouped(code, nd, axes)
    kept_it = iter(outer)
    out_dims = [
        "1" if k in axes else next(kept_it) for k in range(nd) if op.keepdims or k not in axes
    ]
    _new(code, "out", out_dims, dt)
    oidx = _loops(code, outer, "o")

    def yidx(r):
        return _at(oidx + r)

    _group_max(code, inner, dt, src, yidx)
    code(f"shift = top if math.isfinite(top) else {_np(dt)}(0)", f"total = {_np(dt)}(0)")
    idx = _loops(code, inner, "r")
    code(f"total += vecmath.exp({cast_expr(f'y[{yidx(idx)}]', src, dt)} - shift)")
    _close(code, len(inner))
    it = iter(oidx)
    full = ["0" if k in axes else next(it) for k in range(nd) if op.keepdims or k not in axes]
    code(f"out[{_at(full)}] = vecmath.log(total) + shift")
    _close(code, len(outer))
    code("return out")
    return code.text()


@_register(nn.Softmax, nn.LogSoftmax)
def _softmax(op, in_types, out_types, name):
    code = _Code(name, 1)
    src, dt = in_types[0].dtype, out_types[0].dtype
    nd = len(in_types[0].shape)
    outer, inner, perm = _grouped(code, nd, set(op.axis))
    _new(code, "out", [f"i0.shape[{k}]" for k in range(nd)], dt)
    code("ot = out" if perm == list(range(nd)) else f"ot = out.transpose({_tup(perm)})")
    oidx = _loops(code, outer, "o")

    def yidx(r):
        return _at(oidx + r)

    _group_max(code, inner, dt, src, yidx)
    code(f"total = {_np(dt)}(0)")
    idx = _loops(code, inner, "r")
    v = f"{cast_expr(f'y[{yidx(idx)}]', src, dt)} - top"
    if isinstance(op, nn.Softmax):
        code(f"e = vecmath.exp({v})", f"ot[{yidx(idx)}] = e", "total += e")
    else:
        code(f"s = {v}", f"ot[{yidx(idx)}] = s", "total += vecmath.exp(s)")
    _close(code, len(inner))
    if isinstance(op, nn.LogSoftmax):
        code("total = vecmath.log(total)")
    idx = _loops(code, inner, "r")
    code(
        f"ot[{yidx(idx)}] = ot[{yidx(idx)}] "
        + ("/" if isinstance(op, nn.Softmax) else "-")
        + " total"
    )
    _close(code, len(inner) + len(outer))
    code("return out")
    return code.text()


@_register(nn.CrossentropyCategorical1Hot)
def _crossentropy(op, in_types, out_types, name):
    code = _Code(name, 2)
    tc, tt = in_types
    dt = out_types[0].dtype
    nd = len(tt.shape)
    for k in range(nd):
        _raise(code, f"i0.shape[{k}] != i1.shape[{k}]", "ValueError", "true_dist shape mismatch")
    code(f"kk = i0.shape[{nd}]")
    dims = [f"i1.shape[{k}]" for k in range(nd)]
    _new(code, "out", dims, dt)
    idx = _loops(code, dims, "j")
    code(f"c = {cast_expr(f'i1[{_at(idx)}]', tt.dtype, 'int64')}")
    _raise(code, "c < 0 or c >= kk", "IndexError", "class index out of range")
    picked = "i0[" + _at([*idx, "c"]) + "]"
    code(f"p = {cast_expr(picked, tc.dtype, dt)}")
    code(f"out[{_at(idx)}] = " + ("-p" if op.log_input else "-vecmath.log(p)"))
    _close(code, nd)
    code("return out")
    return code.text()


@_register(grad_ops.SumTo)
def _sum_to(op, in_types, out_types, name):
    code = _Code(name, 2)
    dt = in_types[0].dtype
    ndg, ndo = len(in_types[0].shape), len(out_types[0].shape)
    lead = ndg - ndo
    dims = _read_shape_vector(code, "i1", ndo)
    for k, s in enumerate(dims):
        cond = f"{s} != 1 and i0.shape[{lead + k}] != {s}"
        _raise(code, cond, "ValueError", "cannot sum down to the shape")
    code(f"out = np.zeros({_tup(dims)}, dtype={_np(dt)})")
    idx = _loops(code, [f"i0.shape[{k}]" for k in range(ndg)], "j")
    oidx = [f"0 if {s} == 1 else j{lead + k}" for k, s in enumerate(dims)]
    o = _at(oidx)
    if dt == "bool":
        code(f"out[{o}] = out[{o}] or i0[{_at(idx)}]")
    else:
        code(f"out[{o}] += i0[{_at(idx)}]")
    _close(code, ndg)
    code("return out")
    return code.text()


# ----------------------------------------------------------------------------------------
# indexing


def _index_fields(code, idx, first_input):
    """Bind each symbolic field to a local; returns (entries with fields resolved to
    expressions, name of the next unused input index)."""
    pos = first_input
    resolved = []
    for e in idx:
        fields = []
        for f in e[1:]:
            if f == SYMBOLIC:
                fields.append(_int_scalar(f"i{pos}"))
                pos += 1
            else:
                fields.append(None if f is None else str(f))
        arr = None
        if e[0] in ("array", "mask"):
            arr = f"i{pos}"
            pos += 1
        resolved.append((e[0], fields, arr))
    return resolved


def _expand(resolved, x_ndim, in_types):
    """Replace the ellipsis by whole-dim slices, and add them for the dims left over."""
    whole = ("slice", [None, None, None], None)
    widths = [
        len(in_types[int(arr[1:])].shape)
        if kind == "mask"
        else int(kind in ("int", "slice", "array"))
        for kind, _, arr in resolved
    ]
    rest = x_ndim - sum(widths)
    out = []
    for entry in resolved:
        out += [whole] * rest if entry[0] == "ellipsis" else [entry]
    if not any(kind == "ellipsis" for kind, _, _ in resolved):
        out += [whole] * rest
    return out


def _bounded_int(code, var, value, axis):
    code(f"{var} = {value}", f"d = i0.shape[{axis}]")
    _raise(code, f"{var} < -d or {var} >= d", "IndexError", "index out of bounds")
    code(f"{var} = {var} + d if {var} < 0 else {var}")


def _index_loops(code, idx, in_types, first_input):
    """Emit the set-up of ``x[idx]`` (``x`` is ``i0``) by NumPy's rules, with explicit
    loops. Returns (output dim exprs, body) where ``body(emit)`` opens the loops over the
    output and calls ``emit(output index, x index)`` inside them."""
    x_ndim = len(in_types[0].shape)
    entries = _expand(_index_fields(code, idx, first_input), x_ndim, in_types)
    advanced = any(kind in ("array", "mask") for kind, _, _ in entries)
    pieces = []  # per entry producing output dims: ("dims", [(dim, slice no.)]) or ("adv",)
    xindex = []  # per x dim: ("expr", text), ("slice", n) or ("adv", array name)
    adv = []  # (shape exprs, array name or None, x axis)
    axis = 0
    for n, (kind, fields, arr) in enumerate(entries):
        if kind == "newaxis":
            pieces.append(("dims", [("1", None)]))
            continue
        rank = len(in_types[int(arr[1:])].shape) if arr else 0
        if kind == "int" or (kind == "array" and rank == 0):
            _bounded_int(code, f"k{n}", fields[0] if kind == "int" else _int_scalar(arr), axis)
            xindex.append(("expr", f"k{n}"))
            if advanced:
                pieces.append(("adv",))
                adv.append(([], None, axis))
            axis += 1
        elif kind == "slice":
            start, stop, step = fields
            if step is not None:
                _raise(code, f"{step} == 0", "ValueError", "slice step cannot be zero")
            s = ":".join("" if f is None else f for f in fields)
            code(f"m{n} = np.arange(i0.shape[{axis}])[{s}]")
            pieces.append(("dims", [(f"m{n}.shape[0]", n)]))
            xindex.append(("slice", n))
            axis += 1
        elif kind == "array":
            adv.append(([f"{arr}.shape[{k}]" for k in range(rank)], arr, axis))
            pieces.append(("adv",))
            xindex.append(("adv", f"a{axis}"))
            axis += 1
        elif rank == 0:  # a 0-d mask: a new axis of length 1 (True) or 0 (False)
            code(f"c{n} = 1 if {arr}[()] else 0")
            adv.append(([f"c{n}"], None, None))
            pieces.append(("adv",))
        else:
            for k in range(rank):
                cond = f"{arr}.size > 0 and {arr}.shape[{k}] != i0.shape[{axis + k}]"
                _raise(code, cond, "IndexError", "boolean index did not match indexed array")
            code(f"nz{n} = np.nonzero({arr})")
            for k in range(rank):
                adv.append(([f"nz{n}[{k}].shape[0]"], f"nz{n}[{k}]", axis + k))
                xindex.append(("adv", f"a{axis + k}"))
            pieces.append(("adv",))
            axis += rank
    bdims = _adv_setup(code, adv) if advanced else []
    adv_at = [k for k, p in enumerate(pieces) if p[0] == "adv"]
    split = adv_at[0] if adv_at else len(pieces)
    before = [d for p in pieces[:split] if p[0] == "dims" for d in p[1]]
    after = [d for p in pieces[split:] if p[0] == "dims" for d in p[1]]
    bpart = [(b, "b") for b in bdims]
    if adv_at and adv_at[-1] - adv_at[0] + 1 != len(adv_at):
        out = bpart + before + after  # advanced indices not adjacent: their dims go first
    else:
        out = before + bpart + after

    def body(emit):
        names = _loops(code, [d for d, _ in out], "q")
        bnames = [q for q, (_, tag) in zip(names, out) if tag == "b"]
        of_slice = {tag: q for q, (_, tag) in zip(names, out) if isinstance(tag, int)}
        xi = []
        for axis, (kind, what) in enumerate(xindex):
            if kind == "expr":
                xi.append(what)
            elif kind == "slice":
                xi.append(f"m{what}[{of_slice[what]}]")
            else:
                code(f"p{axis} = np.int64({what}[{_at(bnames)}])")
                code(f"p{axis} = p{axis} + i0.shape[{axis}] if p{axis} < 0 else p{axis}")
                xi.append(f"p{axis}")
        emit(names, _at(xi))
        _close(code, len(names))

    return [d for d, _ in out], body


def _adv_setup(code, adv):
    """Broadcast the advanced indices together (IndexError if they cannot) and check the
    bounds of the index arrays (when the broadcast is not empty, as NumPy). Binds
    ``a<axis>`` to each broadcast array; returns the broadcast dims."""
    rank = max((len(shape) for shape, _, _ in adv), default=0)
    bdims = [f"b{k}" for k in range(rank)]
    for b in bdims:
        code(f"{b} = 1")
    for shape, _, _ in adv:
        for k, s in enumerate(shape):
            b = bdims[rank - len(shape) + k]
            with code.block(f"if {s} != 1:"):
                cond = f"{b} != 1 and {b} != {s}"
                _raise(code, cond, "IndexError", "shape mismatch: indexing arrays")
                code(f"{b} = {s}")
    code("bsize = " + (" * ".join(bdims) or "1"))
    for _, arr, axis in adv:
        if arr is None:
            continue
        with code.block("if bsize > 0:"):
            with code.block(f"for v in {arr}.ravel():"):
                code(f"d = i0.shape[{axis}]")
                _raise(code, "v < -d or v >= d", "IndexError", "index out of bounds")
        code(f"a{axis} = np.broadcast_to({arr}, {_tup(bdims)})")
    return bdims


@_register(indexing.Subtensor)
def _subtensor(op, in_types, out_types, name):
    code = _Code(name, len(in_types))
    resolved = _index_fields(code, op.idx, 1)
    key, axis = [], 0
    for n, (kind, fields, _arr) in enumerate(resolved):
        if kind == "int":
            code(f"k{n} = {fields[0]}", f"d = i0.shape[{axis}]")
            _raise(code, f"k{n} < -d or k{n} >= d", "IndexError", "index out of bounds")
            code(f"k{n} = k{n} + d if k{n} < 0 else k{n}")
            key.append(f"k{n}")
            axis += 1
        elif kind == "slice":
            if fields[2] is not None:
                _raise(code, f"{fields[2]} == 0", "ValueError", "slice step cannot be zero")
            key.append(":".join("" if f is None else f for f in fields))
            axis += 1
        elif kind == "newaxis":
            key.append("None")
        else:
            consumed = sum(k in ("int", "slice") for k, _, _ in resolved)
            key += [":"] * (len(in_types[0].shape) - consumed)
    if not out_types[0].shape:
        _new(code, "out", [], out_types[0].dtype)
        code(f"out[()] = i0[{_at(k for k in key if k != ':')}]", "return out")
    elif key:
        code(f"return i0[{', '.join(key)}]")
    else:
        code("return i0")
    return code.text()


@_register(indexing.AdvancedSubtensor)
def _advanced_subtensor(op, in_types, out_types, name):
    code = _Code(name, len(in_types))
    dims, body = _index_loops(code, op.idx, in_types, 1)
    _new(code, "out", dims, out_types[0].dtype)
    body(lambda o, x: code(f"out[{_at(o)}] = i0[{x}]"))
    code("return out")
    return code.text()


@_register(indexing.IncSubtensor)
def _inc_subtensor(op, in_types, out_types, name):
    code = _Code(name, len(in_types))
    dt = out_types[0].dtype
    ty = in_types[1]
    dims, body = _index_loops(code, op.idx, in_types, 2)
    nd, ndy = len(dims), len(ty.shape)
    if ndy > nd:
        code('raise ValueError("y cannot be broadcast to x[idx]")')
    for k in range(min(ndy, nd)):
        d = dims[nd - ndy + k]
        cond = f"i1.shape[{k}] != 1 and i1.shape[{k}] != {d}"
        _raise(code, cond, "ValueError", "y cannot be broadcast to x[idx]")
    code("out = i0.copy()")
    if ndy == 0:
        code(f"yv = {cast_expr('i1[()]', ty.dtype, dt)}")

    def emit(o, x):
        if ndy == 0:
            v = "yv"
        else:
            names = o[nd - ndy :]
            yi = [f"0 if i1.shape[{k}] == 1 else {q}" for k, q in enumerate(names)]
            v = cast_expr(f"i1[{_at(yi)}]", ty.dtype, dt)
        if op.set_instead_of_inc:
            code(f"out[{x}] = {v}")
        elif dt == "bool":
            code(f"out[{x}] = out[{x}] or {v}")
        else:
            code(f"out[{x}] += {v}")

    if ndy <= nd:
        body(emit)
    code("return out")
    return code.text()


def unsupported(op_classes) -> list:
    """The classes among ``op_classes`` that have no kernel."""
    return [cls for cls in op_classes if cls not in SUPPORTED]
