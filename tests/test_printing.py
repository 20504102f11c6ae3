"""Graph printing: golden text of ``dprint`` trees and ``pprint`` expressions, and the
structure of ``to_dot`` output (a valid digraph whose edges all join declared nodes)."""

import io
import re
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest

import fusegraph as fg


@dataclass(frozen=True)
class Split(fg.Op):
    """A two-output op, to print ``op.0`` / ``op.1``."""

    def make_node(self, x):
        x = fg.as_tensor(x)
        return fg.Apply(self, [x], [x.type, x.type])

    def impl(self, x):
        return x.copy(), -x


def _dprint(obj):
    buf = io.StringIO()
    text = fg.dprint(obj, file=buf)
    assert buf.getvalue() == text
    return text


def _lines(*lines):
    return "".join(line + "\n" for line in lines)


# ----------------------------------------------------------------------------- dprint


def test_dprint_tree_golden():
    x, y = fg.vector("x"), fg.vector("y")
    z = x + 2.0 * fg.exp(y)
    z.name = "z"
    assert _dprint(z) == _lines(
        "add [id A] <float64 vector> 'z'",
        " |x [id B] <float64 vector>",
        " |mul [id C] <float64 vector>",
        "   |2.0 [id D] <float64 scalar>",
        "   |exp [id E] <float64 vector>",
        "     |y [id F] <float64 vector>",
    )


def test_dprint_nested_non_last_children_keep_the_bar():
    x = fg.tensor("x", shape=(2, 3), dtype="float32")
    y = fg.vector("y", dtype="int64")
    out = fg.maximum(x * x, 0) - y
    assert _dprint(out) == _lines(
        "sub [id A] <float64 matrix (2, 3)>",
        " |maximum [id B] <float32 matrix (2, 3)>",
        " | |mul [id C] <float32 matrix (2, 3)>",
        " | | |x [id D] <float32 matrix (2, 3)>",
        " | | |x [id D] <float32 matrix (2, 3)>",
        " | |0.0 [id E] <float32 scalar>",
        " |y [id F] <int64 vector>",
    )


def test_dprint_shared_subgraph_is_expanded_once():
    x = fg.vector("x")
    e = fg.exp(fg.log(x))
    out = e * e + e
    text = _dprint(out)
    assert text == _lines(
        "add [id A] <float64 vector>",
        " |mul [id B] <float64 vector>",
        " | |exp [id C] <float64 vector>",
        " | | |log [id D] <float64 vector>",
        " | |   |x [id E] <float64 vector>",
        " | |exp [id C] <float64 vector> (see above)",
        " |exp [id C] <float64 vector> (see above)",
    )
    assert text.count("log") == 1


def test_dprint_multi_output_node_shares_one_id():
    x = fg.vector("x")
    first, second = Split()(x)
    assert _dprint(second - first) == _lines(
        "sub [id A] <float64 vector>",
        " |Split.1 [id B] <float64 vector>",
        " | |x [id C] <float64 vector>",
        " |Split.0 [id B] <float64 vector> (see above)",
    )


def test_dprint_list_constants_and_unnamed_inputs():
    k = fg.vector(dtype="int8")
    big = fg.constant(np.zeros((3, 4)))
    named = fg.constant(2, dtype="int8", name="two")
    text = _dprint([k * named, big + 1])
    assert text == _lines(
        "mul [id A] <int8 vector>",
        " |<unnamed> [id B] <int8 vector>",
        " |two [id C] <int8 scalar>",
        "add [id D] <float64 matrix (3, 4)>",
        " |Constant [id E] <float64 matrix (3, 4)>",
        " |1.0 [id F] <float64 scalar>",
    )


def test_dprint_function_marks_inputs_outputs_shared_and_updates():
    x = fg.tensor("x", shape=(3,))
    w = fg.shared(np.zeros(3), name="w")
    step = fg.shared(np.int64(0), name="step")
    loss = fg.dot(x, w)
    loss.name = "loss"
    f = fg.function(
        [x],
        [loss, x * 2],
        updates=[(w, w - 0.1 * x), (step, step + 1)],
        mode=fg.Mode("py", exclude=("fusion",)),
    )
    expected = _lines(
        "Dot [id A] <float64 scalar> 'loss' (output 0)",
        " |x [id B] <float64 vector (3,)> (input 0)",
        " |w [id C] <float64 vector> (shared)",
        "mul [id D] <float64 vector (3,)> (output 1)",
        " |x [id B] <float64 vector (3,)> (input 0)",
        " |2.0 [id E] <float64 scalar>",
        "sub [id F] <float64 vector (3,)> (update of w)",
        " |w [id C] <float64 vector> (shared)",
        " |mul [id G] <float64 vector (3,)>",
        "   |0.1 [id H] <float64 scalar>",
        "   |x [id B] <float64 vector (3,)> (input 0)",
        "add [id I] <int64 scalar> (update of step)",
        " |step [id J] <int64 scalar> (shared)",
        " |1 [id K] <int64 scalar>",
    )
    assert _dprint(f) == expected
    buf = io.StringIO()
    assert f.dprint(file=buf) == expected
    assert buf.getvalue() == expected
    assert f.updates == [(w, f.graph.outputs[2]), (step, f.graph.outputs[3])]


def test_dprint_function_output_that_is_an_input():
    x = fg.vector("x")
    f = fg.function([x], [x, fg.exp(x)], mode="py")
    assert _dprint(f) == _lines(
        "x [id A] <float64 vector> (input 0, output 0)",
        "exp [id B] <float64 vector> (output 1)",
        " |x [id A] <float64 vector> (input 0, output 0)",
    )


def test_dprint_writes_to_stdout_by_default(capsys):
    x = fg.scalar("x")
    text = fg.dprint(-x)
    assert (
        capsys.readouterr().out
        == text
        == _lines(
            "neg [id A] <float64 scalar>",
            " |x [id B] <float64 scalar>",
        )
    )


def test_dprint_ids_continue_past_z():
    x = fg.scalar("x")
    out = x
    for _ in range(30):
        out = fg.exp(out)
    lines = _dprint(out).splitlines()
    assert [line.split("[id ")[1].split("]")[0] for line in lines[25:28]] == ["Z", "AA", "AB"]


def test_dprint_rejects_other_objects():
    with pytest.raises(TypeError, match="cannot print a dict"):
        fg.dprint({})


# ----------------------------------------------------------------------------- pprint

X, Y, Z = fg.vector("x"), fg.vector("y"), fg.vector("z")
A, B = fg.matrix("A"), fg.matrix("B")
I = fg.scalar("i", dtype="int64")
F32 = fg.vector("f", dtype="float32")
K = fg.vector("k", dtype="int64")

PPRINT = [
    (X + 2.0 * fg.exp(Y), "x + 2.0 * exp(y)"),
    ((X + Y) * Z, "(x + y) * z"),
    (X - (Y - Z), "x - (y - z)"),
    ((X - Y) - Z, "x - y - z"),
    (X / Y // Z % X, "x / y // z % x"),
    (-(X**2), "-(x ** 2.0)"),
    ((-X) ** 2, "(-x) ** 2.0"),
    (fg.neg(-X), "-(-x)"),
    (-(X + Y), "-(x + y)"),
    (2 * -X, "2.0 * -x"),
    (2**-X, "2.0 ** (-x)"),
    (X ** fg.constant(-1.0), "x ** (-1.0)"),
    (fg.constant(-1.0) ** X, "(-1.0) ** x"),
    (~(X < Y) & (X > 1), "~(x < y) & (x > 1.0)"),
    ((X <= Y) | (X >= Y), "(x <= y) | (x >= y)"),
    (fg.eq(X, Y), "x == y"),
    (fg.neq(X, Y), "x != y"),
    (fg.maximum(X, 0), "maximum(x, 0.0)"),
    (fg.where(X > 0, X, 0.0), "where(x > 0.0, x, 0.0)"),
    (fg.sigmoid(X * 2), "sigmoid(x * 2.0)"),
    (abs(X), "abs(x)"),
    (X.astype("int32"), "cast{int32}(x)"),
    (fg.clip(X, 0, 1), "clip(x, 0.0, 1.0)"),
    (fg.dot(A, X), "Dot(A, x)"),
    (A @ X + 1, "A @ x + 1.0"),
    (-A @ X, "-A @ x"),
    (fg.tensordot(A, B, 1), "TensorDot{axes_a=(1,), axes_b=(0,)}(A, B)"),
    (A.T, "A.dimshuffle(1, 0)"),
    ((-X).dimshuffle(0, "x"), "(-x).dimshuffle(0, 'x')"),
    (X.shape, "x.shape"),
    (fg.shape_i(A, 1), "A.shape[1]"),
    (fg.constant([1, 2]) + K, "[1, 2] + k"),
    (fg.constant(0.1, dtype="float32") * F32, "0.1 * f"),
    (fg.constant(np.array([[1.5, -2.0], [0.0, np.inf]])) @ A, "[[1.5, -2.0], [0.0, inf]] @ A"),
    (fg.constant(np.zeros((3, 4))) + 1, "Constant{float64 matrix (3, 4)} + 1.0"),
    (fg.constant(3.0, name="c") * X, "c * x"),
    (fg.logical_and(X < 1, fg.constant(True)), "(x < 1.0) & True"),
    (fg.vector() + 1, "<float64 vector> + 1.0"),
    (X, "x"),
    (fg.constant(np.nan), "nan"),
]


@pytest.mark.parametrize("var, expected", PPRINT, ids=[e for _, e in PPRINT])
def test_pprint_golden(var, expected):
    assert fg.pprint(var) == expected


def test_pprint_expands_named_intermediates_and_wraps_numbers():
    h = fg.exp(X)
    h.name = "h"
    assert fg.pprint(h + 1) == "exp(x) + 1.0"
    assert fg.pprint(3) == "3"


def test_pprint_multi_output_op_uses_call_form():
    first, second = Split()(X)
    assert fg.pprint(first * second) == "Split.0(x) * Split.1(x)"


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda: X[1:3], "x[1:3]"),
        (lambda: X[I], "x[i]"),
        (lambda: X[-1], "x[-1]"),
        (lambda: A[::2, I:], "A[::2, i:]"),
        (lambda: A[:, 0], "A[:, 0]"),
        (lambda: X[None], "x[None]"),
        (lambda: X[K], "x[k]"),
        (lambda: X[X > 0], "x[x > 0.0]"),
        (lambda: (-X)[0], "(-x)[0]"),
        (lambda: X.shape[0], "x.shape[0]"),
        (lambda: fg.set_subtensor(X[0], 1.0), "set_subtensor(x[0], 1.0)"),
        (lambda: fg.inc_subtensor(X[K], 2.0), "inc_subtensor(x[k], 2.0)"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_pprint_indexing(build, expected):
    assert fg.pprint(build()) == expected


# ----------------------------------------------------------------------------- to_dot

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_DECL = re.compile(r"^\s*(\w+) \[(.*)\];$")
_EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?;$")


def _parse_dot(text):
    """Check the shape of DOT text; return (declared node ids, edges as (src, dst, attrs))."""
    assert text.startswith("digraph fusegraph {\n") and text.endswith("}\n")
    bare = _QUOTED.sub('""', text)
    assert bare.count("{") == bare.count("}") == 1
    assert bare.count('"') % 2 == 0
    declared, edges = {}, []
    for line in text.splitlines()[1:-1]:
        if line.lstrip().startswith(("node ", "edge ", "label=")):
            continue
        if match := _EDGE.match(line):
            edges.append(match.groups())
        elif match := _DECL.match(line):
            assert match.group(1) not in declared, f"{match.group(1)} declared twice"
            declared[match.group(1)] = match.group(2)
        else:
            raise AssertionError(f"unexpected DOT line {line!r}")
    for src, dst, _ in edges:
        assert src in declared and dst in declared, f"edge {src} -> {dst} to undeclared node"
    return declared, edges


def _node(declared, label_start):
    hits = [k for k, attrs in declared.items() if attrs.startswith(f'label="{label_start}')]
    assert len(hits) == 1, (label_start, declared)
    return hits[0]


def test_to_dot_structure_and_input_positions():
    x, y = fg.vector("x"), fg.vector("y")
    out = x - fg.exp(y)
    declared, edges = _parse_dot(fg.to_dot(out))
    sub, exp = _node(declared, "sub"), _node(declared, "exp")
    vx, vy = _node(declared, "x\\n"), _node(declared, "y\\n")
    assert (vx, sub, 'label="0"') in edges
    assert (vy, exp, 'label="0"') in edges
    exp_out = [dst for src, dst, _ in edges if src == exp]
    assert len(exp_out) == 1 and (exp_out[0], sub, 'label="1"') in edges
    assert len(declared) == 6 and len(edges) == 5  # 4 variables, 2 applies


def test_to_dot_shared_subgraph_appears_once():
    x = fg.vector("x")
    e = fg.exp(x)
    declared, edges = _parse_dot(fg.to_dot([e * e, e + 1]))
    assert sum(a.startswith('label="exp"') for a in declared.values()) == 1
    mul = _node(declared, "mul")
    assert sorted(attrs for _, dst, attrs in edges if dst == mul) == ['label="0"', 'label="1"']


def test_to_dot_multi_output_edges_are_labelled():
    first, second = Split()(fg.vector("x"))
    declared, edges = _parse_dot(fg.to_dot(first + second))
    split = _node(declared, "Split")
    assert sorted(attrs for src, _, attrs in edges if src == split) == ['label="0"', 'label="1"']


def test_to_dot_escapes_quotes_backslashes_and_newlines():
    x = fg.vector('a"b\\c\nd')
    text = fg.to_dot(fg.exp(x))
    declared, _ = _parse_dot(text)
    assert 'label="a\\"b\\\\c\\nd\\nfloat64 vector"' in text
    assert len(declared) == 3


def test_to_dot_function_marks_roles_and_updates():
    x = fg.vector("x")
    w = fg.shared(np.zeros(3), name="w")
    c = fg.shared(np.float64(0.0), name="c")
    f = fg.function(
        [x], fg.dot(x, w), updates=[(w, w + x), (c, np.float64(1.0))], mode="py", name="step"
    )
    text = fg.to_dot(f)
    declared, edges = _parse_dot(text)
    assert 'label="step";' in text
    vw, vc = _node(declared, "w\\n"), _node(declared, "c\\n")
    assert declared[_node(declared, "x\\n")].startswith('label="x\\nfloat64 vector\\ninput 0"')
    assert "shared" in declared[vw] and "lightyellow" in declared[vw]
    out = _node(declared, "float64 scalar\\noutput 0")
    assert "lightblue" in declared[out]
    updates = [(src, dst) for src, dst, attrs in edges if "update" in (attrs or "")]
    new_w = _node(declared, "float64 vector\\nupdate of w")
    new_c = _node(declared, "1.0\\nfloat64 scalar\\nupdate of c")
    assert sorted(updates) == sorted([(new_w, vw), (new_c, vc)])


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_to_dot_is_accepted_by_graphviz():
    x = fg.vector('q"x')
    w = fg.shared(np.zeros(3), name="w")
    f = fg.function([x], [fg.dot(x, w), fg.cast(x, "int32")], updates={w: w + x}, mode="py")
    result = subprocess.run(
        ["dot", "-Tsvg"], input=fg.to_dot(f), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout


# ----------------------------------------------------------------------------- deep graphs


def test_printers_handle_graphs_deeper_than_the_recursion_limit():
    x = fg.scalar("x")
    out = x
    for _ in range(3000):
        out = out + 1
    assert _dprint(out).count("\n") == 6001
    assert fg.pprint(out) == "x" + " + 1.0" * 3000
    declared, edges = _parse_dot(fg.to_dot(out))
    assert len(declared) == 3000 * 3 + 1 and len(edges) == 3000 * 3
