"""Kernels of the indexing ops: Subtensor, AdvancedSubtensor, IncSubtensor (bounds-checked,
IndexError on out-of-range indices)."""

from __future__ import annotations

from fusegraph.backends.numba.codebuilder import tuple_trailing
from fusegraph.backends.numba.kernels.base import (
    _at,
    _function,
    _int_scalar,
    _new,
    _raise,
    register_kernel,
)
from fusegraph.backends.numba.scalar_code import cast_expr
from fusegraph.ops import indexing
from fusegraph.ops.indexing import SYMBOLIC

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
    """Replace the ellipsis by whole-dim slices, and add them for the dims left over. An
    ellipsis spanning no dims becomes a ``gap`` entry: it still separates advanced indices
    (NumPy's adjacency rule)."""
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
        if entry[0] == "ellipsis":
            out += [whole] * rest if rest else [("gap", [], None)]
        else:
            out.append(entry)
    if not any(kind == "ellipsis" for kind, _, _ in resolved):
        out += [whole] * rest
    return out


def _bounded_int(code, var, value, axis):
    code(f"{var} = {value}", f"d = i0.shape[{axis}]")
    _raise(code, f"{var} < -d or {var} >= d", "IndexError", "index out of bounds")
    code(f"{var} = {var} + d if {var} < 0 else {var}")


def _index_loops(code, idx, in_types, first_input, flat=False):
    """Emit the set-up of ``x[idx]`` (``x`` is ``i0``) by NumPy's rules, with explicit
    loops. Returns (output dim exprs, loop dim exprs, body) where ``body(emit)`` opens the
    loops and calls ``emit(loop indices, x index)`` inside them. The loops run over the
    output's dims, except that with ``flat`` one loop runs over the advanced indices'
    broadcast dims together (which are adjacent in the output: index a C view of it whose
    shape is the loop dims)."""
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
        if kind == "gap":
            pieces.append(("dims", []))
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
            bounds = ", ".join("np.int64(0)" if f is None else f"np.int64({f})" for f in fields[:2])
            flags = f"{start is not None}, {stop is not None}"
            step = "np.int64(1)" if step is None else f"np.int64({step})"
            n_x = f"np.int64(i0.shape[{axis}])"
            code(f"f{n}, s{n}, m{n} = slice_range({n_x}, {bounds}, {step}, {flags})")
            pieces.append(("dims", [(f"m{n}", n)]))
            xindex.append(("slice", n))
            axis += 1
        elif kind == "array":
            adv.append(([f"{arr}.shape[{k}]" for k in range(rank)], arr, axis))
            pieces.append(("adv",))
            xindex.append(("adv", f"P{axis}"))
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
                xindex.append(("adv", f"P{axis + k}"))
            pieces.append(("adv",))
            axis += rank
    bdims = _adv_setup(code, adv) if advanced else []
    adv_at = [k for k, p in enumerate(pieces) if p[0] == "adv"]
    split = adv_at[0] if adv_at else len(pieces)
    before = [d for p in pieces[:split] if p[0] == "dims" for d in p[1]]
    after = [d for p in pieces[split:] if p[0] == "dims" for d in p[1]]
    full = [(b, "b") for b in bdims]
    bpart = [("bsize", "b")] if flat and len(bdims) > 1 else full

    def order(part):
        if adv_at and adv_at[-1] - adv_at[0] + 1 != len(adv_at):
            return part + before + after  # advanced indices not adjacent: their dims go first
        return before + part + after

    dims, loops = [d for d, _ in order(full)], order(bpart)

    def body(emit):
        names = code.loops([d for d, _ in loops], "q")
        bnames = [q for q, (_, tag) in zip(names, loops) if tag == "b"]
        flat_index = bnames[0] if bnames else "0"
        for q, b in zip(bnames[1:], bdims[1:]):
            flat_index = f"({flat_index}) * {b} + {q}"
        of_slice = {tag: q for q, (_, tag) in zip(names, loops) if isinstance(tag, int)}
        xi = []
        for kind, what in xindex:
            if kind == "expr":
                xi.append(what)
            elif kind == "slice":
                xi.append(f"f{what} + s{what} * {of_slice[what]}")
            else:
                xi.append(f"{what}[{flat_index}]")
        emit(names, _at(xi))
        code.dedent(len(names))

    return dims, [d for d, _ in loops], body


def _adv_setup(code, adv):
    """Broadcast the advanced indices together (IndexError if they cannot), and give each
    index array ``a<axis>`` a flat C array ``P<axis>`` of its indices at every position of
    the broadcast (an axis of length 1 read at 0, as through ``np.broadcast_to``), checked
    against the bounds and made non-negative, in one loop over the broadcast. Returns the
    broadcast dims (their product is ``bsize``)."""
    rank = max((len(shape) for shape, _, _ in adv), default=0)
    bdims = [f"b{k}" for k in range(rank)]
    per_dim: list = [[] for _ in bdims]  # the index arrays' dims on each broadcast dim
    for shape, _, _ in adv:
        for k, s in enumerate(shape):
            per_dim[rank - len(shape) + k].append(s)
    for b, dims in zip(bdims, per_dim):
        value = "1"  # the first dim that is not 1
        for s in reversed(dims):
            value = f"{s} if {s} != 1 else {value}"
        code(f"{b} = {value}")
    for b, dims in zip(bdims, per_dim):
        for s in dims:
            _raise(
                code, f"{s} != 1 and {s} != {b}", "IndexError", "shape mismatch: indexing arrays"
            )
    code("bsize = " + (" * ".join(bdims) or "1"))
    arrays = [(shape, arr, axis) for shape, arr, axis in adv if arr is not None]
    for shape, _, axis in arrays:
        code(f"P{axis} = empty_c(bsize, np.int64)", f"d{axis} = i0.shape[{axis}]")
        for k, s in enumerate(shape):
            code(f"u{axis}_{k} = 0 if {s} == 1 else 1")
    if arrays:
        code("k = 0")
        names = code.loops(bdims, "r")
        for shape, arr, axis in arrays:
            at = _at(f"{r} * u{axis}_{k}" for k, r in enumerate(names[rank - len(shape) :]))
            code(f"v{axis} = {arr}[{at}]")
        for _, _, axis in arrays:
            v, d = f"v{axis}", f"d{axis}"
            _raise(code, f"{v} < -{d} or {v} >= {d}", "IndexError", "index out of bounds")
        for _, _, axis in arrays:
            code(f"w = np.int64(v{axis})", f"P{axis}[k] = w + d{axis} if w < 0 else w")
        code("k += 1")
        code.dedent(len(names))
    return bdims


@register_kernel(indexing.Subtensor, may_return_view=True)
def _subtensor(op, in_types, out_types, name):
    code = _function(name, len(in_types))
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
        else:  # the ellipsis: whole dims up to those the entries after it index
            width = len(in_types[0].shape) - sum(k in ("int", "slice") for k, _, _ in resolved)
            key += [":"] * width
            axis += width
    if not out_types[0].shape:
        _new(code, "out", [], out_types[0].dtype)
        code(f"out[()] = i0[{_at(k for k in key if k != ':')}]", "return out")
    elif key:
        code(f"return i0[{', '.join(key)}]")
    else:
        code("return i0")
    return code.text()


@register_kernel(indexing.AdvancedSubtensor)
def _advanced_subtensor(op, in_types, out_types, name):
    code = _function(name, len(in_types))
    dims, loops, body = _index_loops(code, op.idx, in_types, 1, flat=True)
    _new(code, "out", dims, out_types[0].dtype)
    code(f"flat = c_view(out, {tuple_trailing(loops)})" if loops != dims else "flat = out")
    body(lambda o, x: code(f"flat[{_at(o)}] = i0[{x}]"))
    return code.returning("out")


@register_kernel(indexing.IncSubtensor)
def _inc_subtensor(op, in_types, out_types, name):
    code = _function(name, len(in_types))
    dt = out_types[0].dtype
    ty = in_types[1]
    dims, _, body = _index_loops(code, op.idx, in_types, 2)
    nd, ndy = len(dims), len(ty.shape)
    if ndy > nd:
        code('raise ValueError("y cannot be broadcast to x[idx]")')
    for k in range(min(ndy, nd)):
        d = dims[nd - ndy + k]
        cond = f"i1.shape[{k}] != 1 and i1.shape[{k}] != {d}"
        _raise(code, cond, "ValueError", "y cannot be broadcast to x[idx]")
    code("out = copy_c(i0)")
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
    return code.returning("out")
