"""Fusion: maximal convex groups of elementwise nodes, and one reduction over a group's
result, become one ``FusedElemwise`` node (see ``fuse`` for how groups are chosen)."""

from __future__ import annotations

from dataclasses import dataclass

from fusegraph.graph import Apply, Constant, rebuild, toposort
from fusegraph.ops.elemwise import Elemwise
from fusegraph.ops.fused import FusedElemwise, Reduction, ScalarConstant, Step
from fusegraph.ops.reduction import Reduce
from fusegraph.rewrites.engine import RewriteError, check_type

#: A fused node reads at most this many inputs and writes at most this many outputs;
#: wider groups are split, which keeps the generated kernels' argument lists (and their
#: compile time) bounded. LLVM's loop vectoriser checks every pair of arrays for overlap,
#: so a kernel's compile grows with the square of its inputs: a sum of 8, 16, 32 and 50
#: matrices compiles in 0.37, 0.78, 2.6 and 9.2 s (a 50-step RNN's gradient sums 50).
MAX_INPUTS = 16
MAX_OUTPUTS = 64
#: The reductions that fuse into the group computing their input.
FUSABLE_REDUCTIONS = frozenset({"sum", "prod", "mean", "max", "min", "all", "any"})


@dataclass(frozen=True, eq=False)
class FusionGroup:
    """A group found by the fusion pass: elementwise ``nodes`` in topological order and the
    ``Reduce`` node fused after them (or None)."""

    nodes: tuple
    reduce: Apply | None = None


def fuse(outputs, max_inputs: int = MAX_INPUTS, max_outputs: int = MAX_OUTPUTS) -> list:
    """Return ``outputs`` rebuilt with each fusion group replaced by one ``FusedElemwise``.

    Groups grow from the outputs towards the inputs (a producer joins the groups of its
    consumers, merging them), so the elementwise work of a gradient joins the backward
    expression that uses it. A merge is refused if contracting the group would make a
    cycle, if the node would read more than ``max_inputs`` inputs or write more than
    ``max_outputs`` outputs, or if the nodes differ in ndim or in their statically known
    length-1 dims (so one loop shape fits the group and no work is repeated per broadcast
    element). Reachability is kept in bitsets, so the pass is near-linear in graph size.
    A ``Reduce`` whose input is computed in a group, and read by nothing else, joins it.

    Args:
        outputs: the graph's output variables.
        max_inputs: the most inputs one fused node may read.
        max_outputs: the most outputs one fused node may have.
    """
    outputs = list(outputs)
    _, clients, groups = _plan(outputs, max_inputs, max_outputs)
    if not groups:
        return outputs
    return _rebuild(outputs, clients, groups)


def fusion_groups(
    outputs, max_inputs: int = MAX_INPUTS, max_outputs: int = MAX_OUTPUTS
) -> list[FusionGroup]:
    """The groups ``fuse`` would replace: every group of two or more elementwise nodes,
    and single nodes that absorb a reduction."""
    return _plan(list(outputs), max_inputs, max_outputs)[2]


# --------------------------------------------------------------------------- grouping


class _Group:
    """A group while it grows. ``mask`` holds its bits (one per group merged into it);
    ``ext`` the bits of every group reachable from it through a consumer outside it (a
    merge with any of them would make a cycle); ``feeders`` are the visited nodes outside
    the group that read its reach (they feed it)."""

    __slots__ = ("key", "members", "mask", "ext", "inputs", "n_outputs", "feeders", "reduce")

    def __init__(self, key, node, bit, ext, inputs):
        self.key = key
        self.members = [node]
        self.mask = bit
        self.ext = ext
        self.inputs = inputs
        self.n_outputs = 1
        self.feeders = []
        self.reduce = None

    @property
    def reach(self) -> int:
        return self.mask | self.ext


def _embedded(var) -> bool:
    """0-d constants become steps of the scalar graph instead of inputs."""
    return isinstance(var, Constant) and var.ndim == 0


def _key(node: Apply):
    out = node.outputs[0]
    return out.ndim, out.type.broadcastable


def _plan(outputs, max_inputs, max_outputs):
    order = toposort(outputs)
    clients: dict = {}
    for node in order:
        for var in node.inputs:
            clients.setdefault(var, []).append(node)
    output_set = set(outputs)
    planner = _Planner(max_inputs, max_outputs, output_set)
    for node in reversed(order):
        planner.visit(node, clients)
    group_of = planner.group_of
    for node in order:
        if isinstance(node.op, Reduce) and node.op.kind in FUSABLE_REDUCTIONS:
            var = node.inputs[0]
            group = group_of.get(var.owner)
            if group is None or group.reduce is not None or len(group.inputs) > max_inputs:
                continue
            if len(clients[var]) == 1 and var not in output_set:
                group.reduce = node
    position = {node: i for i, node in enumerate(order)}
    groups, seen = [], set()
    for node in order:
        group = group_of.get(node)
        if group is None or id(group) in seen:
            continue
        seen.add(id(group))
        if len(group.members) > 1 or group.reduce is not None:
            nodes = tuple(sorted(group.members, key=position.__getitem__))
            groups.append(FusionGroup(nodes, group.reduce))
    return order, clients, groups


class _Planner:
    """Visits nodes from the outputs towards the inputs, assigning elementwise nodes to
    groups. Each new group gets a bit. Invariant: the reach of every visited unit (a group,
    or another node) holds a bit of each group it reaches in the graph where groups are
    contracted, so a merge test is one AND of two bitsets. (The node being visited needs no
    bit of its own: nothing visited before it can reach it.)"""

    def __init__(self, max_inputs, max_outputs, output_set):
        self.max_inputs = max_inputs
        self.max_outputs = max_outputs
        self.output_set = output_set
        self.group_of: dict = {}
        self.reach: dict = {}  # non-elementwise node -> reach bits
        self.feeders: dict = {}  # non-elementwise node -> visited nodes that read its reach
        self.n_bits = 0

    def unit(self, node):
        return self.group_of.get(node, node)

    def unit_reach(self, unit) -> int:
        return unit.reach if isinstance(unit, _Group) else self.reach[unit]

    def visit(self, node, clients):
        units = {}
        for out in node.outputs:
            for c in clients.get(out, ()):
                unit = self.unit(c)
                units[id(unit)] = unit
        units = list(units.values())
        if isinstance(node.op, Elemwise):
            own = self.join(node, units)
        else:
            own = node
            bits = 0
            for unit in units:
                bits |= self.unit_reach(unit)
            self.reach[node] = bits
            self.feeders[node] = []
        for unit in units:
            if unit is not own:
                (unit.feeders if isinstance(unit, _Group) else self.feeders[unit]).append(node)

    def join(self, node, units) -> _Group:
        """Put the elementwise ``node`` into a group: the largest merge of its consumers'
        groups (of its key) that stays acyclic and narrow enough, or a new group."""
        key = _key(node)
        out = node.outputs[0]
        own_inputs = {v for v in node.inputs if not _embedded(v)}
        candidates, others = [], 0
        for u in units:
            if isinstance(u, _Group) and u.key == key:
                candidates.append(u)
            else:
                others |= self.unit_reach(u)
        candidates.sort(key=lambda g: -len(g.members))
        # The node is an output of the group if anything outside the group reads it.
        read_outside = len(candidates) < len(units) or out in self.output_set
        # suffix[i]: what candidates i, i+1, ... reach if they stay outside the group.
        suffix = [0] * (len(candidates) + 1)
        for i in range(len(candidates) - 1, -1, -1):
            suffix[i] = suffix[i + 1] | candidates[i].reach
        chosen, rejected = [], 0
        ext, mask, inputs, n_outputs = 0, 0, set(), 0
        for i, g in enumerate(candidates):
            # Candidates not (yet) chosen count as outside: the test is exact for the last
            # one chosen and only stricter before it.
            trial_ext = ext | g.ext | others | rejected | suffix[i + 1]
            trial_mask = mask | g.mask
            ok = not trial_ext & trial_mask
            if ok:
                parts = chosen + [g]
                trial_inputs = {
                    v
                    for v in inputs | g.inputs | own_inputs
                    if v is not out and self.group_of.get(v.owner) not in parts
                }
                outside = read_outside or i + 1 < len(candidates)
                trial_outputs = n_outputs + g.n_outputs + outside
                ok = len(trial_inputs) <= self.max_inputs and trial_outputs <= self.max_outputs
            if ok:
                chosen.append(g)
                ext |= g.ext
                mask = trial_mask
                inputs = trial_inputs
                n_outputs += g.n_outputs
            else:
                rejected |= g.reach
                read_outside = True
        if not chosen:
            group = _Group(key, node, 1 << self.n_bits, others | suffix[0], own_inputs)
            self.n_bits += 1
            self.group_of[node] = group
            return group
        ext |= others | rejected
        old = [(g.ext, list(g.feeders)) for g in chosen]
        group = chosen[0]
        for other in chosen[1:]:
            for m in other.members:
                self.group_of[m] = group
            group.members.extend(other.members)
            group.feeders.extend(other.feeders)
        group.members.append(node)
        group.mask, group.ext, group.inputs = mask, ext, inputs
        group.n_outputs = n_outputs + read_outside
        self.group_of[node] = group
        for old_ext, feeders in old:
            if ext & ~old_ext:
                self.spread(feeders, ext & ~old_ext, group)
        return group

    def spread(self, feeders, bits, group):
        """Add ``bits`` (what ``group`` newly reaches) to the reach of the visited nodes
        that feed it, and on to their feeders, stopping where nothing is new."""
        todo = [(w, bits) for w in feeders]
        while todo:
            w, new = todo.pop()
            unit = self.unit(w)
            if unit is group:
                continue
            if isinstance(unit, _Group):
                new &= ~unit.reach
                if new:
                    unit.ext |= new
                    todo.extend((f, new) for f in unit.feeders)
            else:
                new &= ~self.reach[unit]
                if new:
                    self.reach[unit] |= new
                    todo.extend((f, new) for f in self.feeders[unit])


# --------------------------------------------------------------------------- rebuilding


def _rebuild(outputs, clients, groups):
    """Rebuild the graph with each group as one node, visiting groups and other nodes in
    an order where every unit comes after the units it reads."""
    unit_of: dict = {}
    for group in groups:
        for node in group.nodes:
            unit_of[node] = group
        if group.reduce is not None:
            unit_of[group.reduce] = group
    output_set = set(outputs)
    memo: dict = {}
    state: dict = {}  # unit -> False while on the stack, True once built

    def unit_inputs(unit):
        if isinstance(unit, FusionGroup):
            return _external_inputs(unit)
        return unit.inputs

    for var in outputs:
        if var.owner is None:
            continue
        root = unit_of.get(var.owner, var.owner)
        if root in state:
            continue
        state[root] = False
        stack = [(root, iter(unit_inputs(root)))]
        while stack:
            unit, pending = stack[-1]
            for v in pending:
                if v.owner is None:
                    continue
                dep = unit_of.get(v.owner, v.owner)
                done = state.get(dep)
                if done is None:
                    state[dep] = False
                    stack.append((dep, iter(unit_inputs(dep))))
                    break
                if not done:
                    raise RewriteError(f"fusion: grouping {unit} would create a cycle")
            else:
                stack.pop()
                state[unit] = True
                if isinstance(unit, FusionGroup):
                    _build_group(unit, memo, clients, output_set)
                else:
                    new_inputs = [memo.get(v, v) for v in unit.inputs]
                    if any(a is not b for a, b in zip(new_inputs, unit.inputs)):
                        memo.update(zip(unit.outputs, rebuild(unit, new_inputs)))
    return [memo.get(v, v) for v in outputs]


def _external_inputs(group: FusionGroup) -> list:
    inside = {node.outputs[0] for node in group.nodes}
    result, seen = [], set()
    for node in group.nodes:
        for v in node.inputs:
            if v not in inside and v not in seen and not _embedded(v):
                seen.add(v)
                result.append(v)
    return result


def _build_group(group: FusionGroup, memo, clients, output_set):
    """Make the ``FusedElemwise`` node of ``group`` and record its outputs in ``memo``."""
    members = set(group.nodes)
    inputs = _external_inputs(group)
    nin = len(inputs)
    refs = {v: i for i, v in enumerate(inputs)}
    constants: dict = {}
    steps, traces = [], []

    def ref(v):
        if v in refs:
            return refs[v]
        key = v.signature()
        if key not in constants:
            steps.append(Step(ScalarConstant.of(v.data), ()))
            traces.append(None)
            constants[key] = nin + len(steps) - 1
        return constants[key]

    for node in group.nodes:
        args = tuple(ref(v) for v in node.inputs)
        steps.append(Step(node.op.scalar_op, args))
        traces.append(node.trace)
        refs[node.outputs[0]] = nin + len(steps) - 1
    reduced = group.reduce.inputs[0] if group.reduce is not None else None
    out_refs, old_outputs, reduction = [], [], None
    for node in group.nodes:
        var = node.outputs[0]
        if var is reduced:
            op = group.reduce.op
            reduction = Reduction(len(out_refs), op.kind, op.axis, op.keepdims)
            old_outputs.append(group.reduce.outputs[0])
        elif var in output_set or any(c not in members for c in clients.get(var, ())):
            old_outputs.append(var)
        else:
            continue
        out_refs.append(refs[var])
    op = FusedElemwise(nin, tuple(steps), tuple(out_refs), reduction, tuple(traces))
    node = op.make_node(*(memo.get(v, v) for v in inputs))
    last = group.reduce if group.reduce is not None else group.nodes[-1]
    node.trace = last.trace
    for old, new in zip(old_outputs, node.outputs, strict=True):
        check_type(old, new, "fusion")
        new.name = old.name
        memo[old] = new
