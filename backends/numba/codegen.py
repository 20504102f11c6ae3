"""The module generator: renders a whole ``FunctionGraph`` as the source of one Python module
-- one kernel per distinct node (``loops`` for elementwise nodes, ``kernels`` for the rest)
and one njit entry point that runs every node in topological order.

In a graph of up to ``LINK_NODES`` nodes, a small kernel is written into the entry at every
node that runs it (``inline``); a larger one is *linked* (``link``: a module of its own,
compiled once per process and machine, called through a pointer) when this process has it
already; otherwise one that one node runs is written in, and one that several run is a
dispatcher of the module. In a larger graph every kernel is linked (the shape plumbing
runs as the glue's own code instead, ``native``), and the entry runs them through one
intrinsic whose IR is generated from the module's plan (``glue``)."""

# Layout of a generated module (see ``Function.source`` for real ones):
#
#     <imports>
#     _c0 = np.array([...], dtype=np.float64)      # small constants as literals
#     _c1 = __fusegraph_constants__["_c1"]         # large ones injected, their sha256 noted
#     _k2_fusedelemwise = __fusegraph_kernels__['fusegraph_cache_<digest>']  # linked kernels
#     <shared kernels: _k1_dot, ...>               # run by several nodes
#     @numba.njit(cache=..., nogil=True)
#     def entry(x, W, b):                          # the inputs, then the shared variables
#         <static shape checks of the inputs>
#         # n0: Dot                               # each node's comment, then its code:
#         _v0 = _k1_dot(x, W)                      # a call of a shared or linked kernel
#         # n1: Fused{tanh(i0)}
#         _n1_n0 = _v0.shape[0] ...                # or the kernel's body, locals renamed
#         ...
#         return (_v3, np.copy(_v4), _v5)          # outputs, then update values
#
# A linked module holds one function, ``kernel`` (named so wherever it runs, so that the same
# kernel is the same module). In a large graph the entry's body is one call instead,
#
#     _glue = glue.body(3, (_c0, ), (             # inputs, constants, then per node:
#         ('fusegraph_cache_<digest>', (0, 1), (4,)),  # n0: Dot   (kernel, slots in, out)
#         ...), (9, 11))                           # the slots returned
#     def entry(x, W, b):
#         _st, _ex, _v5, _v7, = _glue(x, W, b)   # an error code, then the outputs
#         return (_v5, np.copy(_v7))
#
# Outputs never alias the inputs, constants or each other: an output that is a root, the
# result of an op whose kernel may return a view, or a repeat of an earlier output is copied.
# Global arrays are frozen into the machine code by Numba, so the module's text (which names
# every constant's content or digest) determines the code, as the disk cache requires.

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import keyword
import re
import typing

import numba
import numpy as np

from fusegraph.backends.numba import cache, inline, kernels, link, loops, native, pycall
from fusegraph.backends.numba.cache import ENTRY_DECORATOR, KERNEL_DECORATOR, LINKED_DECORATOR
from fusegraph.backends.numba.codebuilder import Code, Function, tuple_trailing
from fusegraph.backends.numba.scalar_code import np_dtype
from fusegraph.graph import Constant, FunctionGraph, constant
from fusegraph.ops import indexing, linalg, shape_ops

#: The global through which ``cache.load_module`` injects the large constants.
CONSTANTS = "__fusegraph_constants__"
#: The global through which ``runtime`` injects the linked kernels' intrinsics, by module name.
KERNELS = "__fusegraph_kernels__"
#: Graphs of more nodes link every kernel (``link``): compiled once as a unit of its own, it
#: serves every node, function and later process that runs it, and the entry runs them
#: through ``glue``. A smaller graph links only the kernels this process has loaded already
#: and compiles the others as one function with its entry, which takes less time in all
#: than separate units.
LINK_NODES = 32
#: Constants with at most this many elements are written into the source as literals.
LITERAL_LIMIT = 64
#: The message of the ValueError the entry raises when an input's shape contradicts its type.
SHAPE_ERROR = "an input's shape differs from its static type"


def _is_view(op) -> bool:
    """Whether ``op``'s kernel may return a view of an input (``register_kernel``)."""
    kernel = kernels.kernel_of(type(op))
    return kernel is not None and kernel.may_return_view


class Linked(typing.NamedTuple):
    """A linked module (``link``): its source, and the Numba signature (return type
    included) of the function ``kernel`` it defines."""

    source: str
    signature: object


def _identifier(name, taken) -> str:
    base = re.sub(r"\W", "_", name or "")
    if not base or base[0].isdigit() or keyword.iskeyword(base) or base.startswith("_"):
        base = "a_" + base if base else "a"
    candidate, k = base, 1
    while candidate in taken:
        candidate = f"{base}_{k}"
        k += 1
    taken.add(candidate)
    return candidate


def _literal(data: np.ndarray) -> str:
    return f"np.array({data.tolist()!r}, dtype={np_dtype(data.dtype.name)})"


def _op_label(op, n) -> str:
    text = f"{op}"
    return f"{n}: {text if len(text) <= 70 else text[:67] + '...'}"


class Module:
    """The rendering of one graph: ``source`` (the module's text), ``constants`` (arrays to
    inject as ``__fusegraph_constants__``) and ``node_names`` (node -> its label ``n<k>``).

    The entry returns the tuple of the graph's outputs, or with ``single=True`` the one
    output itself."""

    def __init__(self, fgraph: FunctionGraph, parallel: bool = False, single: bool = False):
        self.fgraph = fgraph
        self.single = single
        self.parallel = parallel
        self.constants: dict[str, np.ndarray] = {}
        #: the linked modules, in the order they load: name -> ``Linked``
        self.linked: dict[str, Linked] = {}
        self._kernel_modules: dict = {}  # (key, layout) -> (source, signature)
        self.node_names: dict = {}
        self._n_constants = 0
        self.glue_plan = None
        taken = _imported_names() | {"glue"}  # the module's code reads these globals
        self.names = {v: _identifier(v.name, taken) for v in fgraph.inputs}
        order = fgraph.toposort()
        entry = Function("entry", [self.names[v] for v in fgraph.inputs], ENTRY_DECORATOR)
        self._shape_checks(entry)
        if len(order) > LINK_NODES:
            self._glue(order, entry)
        else:
            self._inline(order, entry)
        entry(f"return {self._returns()}")
        header = f"# fusegraph: {len(order)} nodes, {self._n_kernels} kernels\n"
        self.source = header + self._prelude + entry.text()

    def _inline(self, order, entry: Code) -> None:
        """Render a small graph: its kernels written into the entry or defined in the
        module, linked only when this process has them already; the nodes' code goes to
        ``entry``."""
        keys = [
            (node.op, tuple(v.type for v in node.inputs), tuple(v.type for v in node.outputs))
            for node in order
        ]
        uses = collections.Counter(keys)
        globals_, kernel_src = [], []
        kernel_names: dict = {}
        inlinable: dict = {}  # key -> the kernel's definition, for kernels written inline
        # Generated names start with "_" (kernels ``_k<j>_<op>``, node outputs ``_v<k>``,
        # locals of inlined kernels ``_n<k>_<name>``, constants ``_c<j>``), which
        # ``_identifier`` never gives an input: no clash.
        for k, (node, key) in enumerate(zip(order, keys)):
            globals_ += self._name_values(node, node.inputs, k)
            outs = [self.names[v] for v in node.outputs]
            args = [self.names[v] for v in node.inputs]
            if key not in kernel_names:
                kname = f"_k{len(kernel_names)}_{type(node.op).__name__.lower()}"
                kernel_names[key] = kname
                src = self._kernel(key, node.trace, kname)
                # A small kernel is written into the entry at every node that runs it. A
                # larger one is linked (compiled once as a module of its own and called
                # through a pointer, ``link``) when this process has it already; otherwise,
                # and for view ops other than Reshape (whose results would lose their
                # layouts; a reshaped view is C), one that one node runs is written in and
                # one that several run compiles once as a dispatcher.
                found = inline.kernel_function(src, kname)
                linkable = not _is_view(node.op) or isinstance(node.op, shape_ops.Reshape)
                linking = linkable and self._loaded(node, key)
                if linking and _blas_product(node, key):
                    globals_.append(f"{kname} = {KERNELS}[{self._linked_product(node, key)!r}]")
                    src = ""
                elif found is not None and (
                    inline.is_small(found[0]) or (uses[key] == 1 and not linking)
                ):
                    inlinable[key], src = found
                elif linking:
                    globals_.append(f"{kname} = {KERNELS}[{self._linked(node, key)!r}]")
                    src = ""
                elif uses[key] > 1:
                    src = src.replace(KERNEL_DECORATOR, ENTRY_DECORATOR, 1)
                if src:
                    kernel_src.append(src)
            if key in inlinable:
                call = inline.inline_body(inlinable[key], f"_n{k}_", args, outs)
            else:
                call = [f"{', '.join(outs)} = {kernel_names[key]}({', '.join(args)})"]
            entry(f"# {_op_label(node.op, f'n{k}')}")
            entry(*(line for text in call for line in text.split("\n")))
        globals_ += self._new_constants(self.fgraph.outputs)
        self._n_kernels = len(kernel_names)
        self._prelude = (
            _imports()
            + ("\n" + "\n".join(globals_) + "\n" if globals_ else "")
            + "\n\n"
            + "\n\n".join(kernel_src)
            + "\n\n"
        )

    def _glue(self, order, entry: Code) -> None:
        """Render a large graph: every node runs a linked kernel, and the entry runs them
        all through one ``glue`` intrinsic, whose plan the module spells out (index ops take
        their constant indices as arguments, so that the nodes of ``x[:, 0:32]`` and
        ``x[:, 32:64]`` run one kernel); the entry's code goes to ``entry``."""
        globals_, steps, kernels = [], [], set()
        inputs = [_parameterised(node) for node in order]
        typed_c = set(self.fgraph.inputs)  # values most likely typed C (the entry's are)
        for k, (node, node_inputs) in enumerate(zip(order, inputs)):
            globals_ += self._name_values(node, node_inputs, k)
            key = (
                _op_of(node, node_inputs),
                tuple(v.type for v in node_inputs),
                tuple(v.type for v in node.outputs),
            )
            layout = _view_layout(node, typed_c)
            if layout == "C":
                typed_c.update(node.outputs)
            name = native.name_of(*key)  # the glue's own code for shape plumbing
            if name is None and _blas_product(node, key):
                name = self._linked_product(node, key)
            elif name is None:
                name = self._linked(node, key, layout)
            kernels.add(name)
            steps.append((name, node_inputs, node.outputs, _op_label(node.op, f"n{k}")))
        constants = [v for v in self.names if isinstance(v, Constant)]
        globals_ += self._new_constants(self.fgraph.outputs)
        slots = {v: j for j, v in enumerate(self.fgraph.inputs)}
        slots.update({v: len(slots) + j for j, v in enumerate(constants)})
        plan, lines = [], []
        for name, node_inputs, outputs, label in steps:
            for var in outputs:
                slots[var] = len(slots)
            plan.append(
                (name, tuple(slots[v] for v in node_inputs), tuple(slots[v] for v in outputs))
            )
            lines.append(f"    {plan[-1]!r},  # {label}")
        #: (inputs, constants, steps) of the entry's ``glue.body``
        self.glue_plan = (
            len(self.fgraph.inputs),
            tuple(v.data.copy(order="C") for v in constants),
            tuple(plan),
        )
        results = list(dict.fromkeys(v for v in self.fgraph.outputs if v.owner is not None))
        consts = "".join(f"{self.names[v]}, " for v in constants)
        globals_ += [
            f"_glue = glue.body({len(self.fgraph.inputs)}, ({consts}), (",
            *lines,
            f"), {tuple(slots[v] for v in results)})",
        ]
        self._n_kernels = len(kernels)
        self._prelude = _imports() + "from fusegraph.backends.numba import glue\n\n"
        self._prelude += "\n".join(globals_) + "\n\n\n"
        args = ", ".join(self.names[v] for v in self.fgraph.inputs)
        unpacked = "".join(f"{self.names[v]}, " for v in results)
        # a failed kernel call comes back as an error code, passed on once the entry has
        # released its references to the inputs (as a raise does)
        entry(f"_st, _ex, {unpacked}= _glue({args})")
        with entry.block("if _st:"):
            entry("glue.propagate(_st, _ex)")

    def _name_values(self, node, inputs, k) -> list:
        """Name the outputs of ``node`` (the ``k``-th), and the constants among its
        ``inputs`` not seen before; returns the global lines defining those constants."""
        self.node_names[node] = f"n{k}"
        for j, var in enumerate(node.outputs):
            self.names[var] = f"_v{k}" if len(node.outputs) == 1 else f"_v{k}_{j}"
        return self._new_constants(inputs)

    def _new_constants(self, variables) -> list:
        """Name the constants among ``variables`` not seen before; the global lines defining
        them."""
        return [
            self._constant(var)
            for var in dict.fromkeys(variables)
            if isinstance(var, Constant) and var not in self.names
        ]

    def _link(self, source, signature) -> str:
        """Add the module ``source``, whose function ``kernel`` has ``signature``, to
        ``self.linked``; returns its name."""
        name = cache.module_name(source)
        self.linked[name] = Linked(source, signature)
        return name

    def _linked(self, node, key, layout="C") -> str:
        """Render the kernel of ``key`` as a module of its own, its array parameters of
        ``layout``; returns the module's name."""
        return self._link(*self._kernel_module(node, key, layout))

    def _linked_product(self, node, key) -> str:
        """Render the BLAS product of ``key`` as a linked module whose ``kernel(m0, t0, m1,
        t1)`` multiplies ``m0`` (or ``m0.T`` when ``t0``) by ``m1`` (or ``m1.T``): its call
        sites pass each operand as such a pair (``link``), so transposed operands are not
        copied and the module depends on the graph alone. Written into every node that runs
        it, a product costs more to compile than the call. Returns the module's name."""
        argtypes = tuple(x for t in key[1] for x in (link.parameter_type(t), numba.types.boolean))
        signature = link.result_type(key[2])(*argtypes)
        src = self._kernel(key, node.trace, "product")
        kernel = Function("kernel", ["i0", "t0", "i1", "t1"], LINKED_DECORATOR)
        flips = [i for i, t in enumerate(key[1]) if t.ndim == 2]  # 1-d operands are C
        for mask in itertools.product((True, False), repeat=len(flips)):
            if not any(mask):  # the last case, plain operands
                break
            test = " and ".join(f"t{i}" if m else f"not t{i}" for i, m in zip(flips, mask))
            operands = [f"i{i}.T" if (i, True) in zip(flips, mask) else f"i{i}" for i in (0, 1)]
            with kernel.block(f"if {test}:"):
                kernel(f"return product({', '.join(operands)})")
        kernel("return product(i0, i1)")
        header = f"# fusegraph kernel: {key[0]} (BLAS)\n# signature: {signature}\n"
        source = f"{header}{_imports()}\n\n{src}\n\n{kernel.text()}"
        return self._link(source, signature)

    def _loaded(self, node, key) -> bool:
        """Whether this process has loaded the linked kernel of ``key`` already."""
        return link.is_loaded(cache.module_name(self._kernel_module(node, key)[0]))

    def _kernel_module(self, node, key, layout="C") -> tuple:
        """The source of the linked module of ``key``'s kernel, and its signature (rendered
        once: ``_loaded`` asks for it before ``_linked`` does)."""
        if (key, layout) not in self._kernel_modules:
            argtypes = tuple(link.parameter_type(t, layout) for t in key[1])
            readonly = isinstance(key[0], shape_ops.BroadcastTo)  # np.broadcast_to: read-only
            signature = link.result_type(key[2], layout, readonly)(*argtypes)
            # named "kernel" wherever it runs, so that the same kernel is the same module
            if layout == "C" and isinstance(key[0], shape_ops.DimShuffle):
                src = kernels.shape.dimshuffle_c_view(*key, "kernel")
            else:
                src = self._kernel(key, node.trace, "kernel", contiguous=layout == "C")
            src = src.replace(KERNEL_DECORATOR, LINKED_DECORATOR, 1)
            header = f"# fusegraph kernel: {key[0]}\n# signature: {signature}\n"
            self._kernel_modules[key, layout] = f"{header}{_imports()}\n\n{src}", signature
        return self._kernel_modules[key, layout]

    def _constant(self, var: Constant) -> str:
        name = f"_c{self._n_constants}"
        self._n_constants += 1
        self.names[var] = name
        data = var.data.copy(order="C")  # (ascontiguousarray would make 0-d 1-d)
        if data.size <= LITERAL_LIMIT:
            return f"{name} = {_literal(data)}.reshape({tuple(data.shape)!r})"
        self.constants[name] = data
        digest = hashlib.sha256(data.tobytes()).hexdigest()
        return f"{name} = {CONSTANTS}[{name!r}]  # {data.dtype.name} {data.shape}, sha256 {digest}"

    def _kernel(self, key, trace, kname, contiguous=False) -> str:
        op, in_types, out_types = key
        if isinstance(op, loops.LOOP_OPS):
            return loops.kernel_source(op, in_types, out_types, kname, self.parallel, contiguous)
        if kernels.kernel_of(type(op)) is None:
            pycall.warn_unregistered(op, trace)
            return pycall.render(op, in_types, out_types, kname)
        return kernels.kernel_source(op, in_types, out_types, kname)

    def _shape_checks(self, entry: Code) -> None:
        """The entry's check of its inputs' static dims: one ``raise`` (each costs Numba
        more to compile than the test)."""
        tests = [
            f"{self.names[var]}.shape[{axis}] != {dim}"
            for var in self.fgraph.inputs
            for axis, dim in enumerate(var.type.shape)
            if dim is not None
        ]
        if tests:
            with entry.block(f"if {' or '.join(tests)}:"):
                entry(f"raise ValueError({SHAPE_ERROR!r})")

    def _returns(self) -> str:
        items, seen = [], set()
        for var in self.fgraph.outputs:
            name = self.names[var]
            fresh = var.owner is not None and not _is_view(var.owner.op) and var not in seen
            seen.add(var)
            items.append(name if fresh else f"np.copy({name})")
        return items[0] if self.single else tuple_trailing(items)


def _parameterised(node) -> list:
    """The inputs of ``node``, with the constant integers of an index op's entries as
    inputs of their own (0-d int64 constants); ``_op_of`` gives the op that takes them."""
    op = node.op
    if not isinstance(op, (indexing.Subtensor, indexing.IncSubtensor, indexing.AdvancedSubtensor)):
        return list(node.inputs)
    first = 2 if isinstance(op, indexing.IncSubtensor) else 1
    inputs, rest = list(node.inputs[:first]), iter(node.inputs[first:])
    for entry in op.idx:
        for field in entry[1:]:
            if field == indexing.SYMBOLIC:
                inputs.append(next(rest))
            elif isinstance(field, int):
                inputs.append(constant(np.int64(field)))
        if entry[0] in ("array", "mask"):
            inputs.append(next(rest))
    return inputs


def _op_of(node, inputs):
    """The op that computes ``node`` from ``inputs`` (``_parameterised``)."""
    op = node.op
    if len(inputs) == len(node.inputs):
        return op
    idx = tuple(
        (entry[0], *(indexing.SYMBOLIC if isinstance(f, int) else f for f in entry[1:]))
        for entry in op.idx
    )
    return dataclasses.replace(op, idx=idx)


def _view_layout(node, typed_c) -> str:
    """The layout of the array parameters of ``node``'s linked kernel in a large graph: C,
    except for views, which take any layout ("A") so as to stay views of what they are
    given. But a view typed C is worth more (the kernels reading it need no conversion),
    and a reshape, a DimShuffle that keeps the axes' order, and integer indexing give one
    when their input is C (``typed_c``: the values likely typed C, which this extends)."""
    op = node.op
    if not _is_view(op):
        return "C"
    c_view = (
        isinstance(op, shape_ops.Reshape)
        or (isinstance(op, shape_ops.DimShuffle) and kernels.shape.keeps_order(op))
        or (isinstance(op, indexing.Subtensor) and all(e[0] == "int" for e in op.idx))
    )
    if c_view and (isinstance(op, shape_ops.Reshape) or node.inputs[0] in typed_c):
        return "C"
    return "A"


def _blas_product(node, key) -> bool:
    """Whether the node is a float ``dot`` of 1-d or 2-d operands (a BLAS call)."""
    return (
        type(node.op) is linalg.Dot
        and all(t.dtype in ("float32", "float64") for t in key[1] + key[2])
        and all(1 <= t.ndim <= 2 for t in key[1])
        and key[1][0].dtype == key[1][1].dtype
    )


def _imported_names() -> set:
    """The global names the module's imports bind (inputs must not shadow them)."""
    names = set()
    for line in _imports().splitlines():
        bound = line.split(" import ", 1)[1] if line.startswith("from ") else line[7:]
        names.update(n.split(" as ")[-1].strip() for n in bound.split(","))
    return names


def _imports() -> str:
    lines = []
    for text in (loops.IMPORTS, kernels.IMPORTS):
        for line in text.splitlines():
            if line not in lines:
                lines.append(line)
    return "\n".join(lines) + "\n"


__all__ = [
    "CONSTANTS",
    "KERNELS",
    "LINK_NODES",
    "LITERAL_LIMIT",
    "SHAPE_ERROR",
    "Linked",
    "Module",
]
