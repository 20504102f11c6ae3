"""The graph IR: types, variables, constants, immutability, source lines and graph walks."""

import numpy as np
import pytest

import fusegraph as fg
from fusegraph.graph import ancestors, clone_replace, graph_inputs, toposort
from fusegraph.types import TensorType, broadcast_static


def test_tensor_type_normalises_and_prints():
    t = TensorType("float64", [None, 3])
    assert t.shape == (None, 3) and t.ndim == 2
    assert t == TensorType(np.float64, (None, 3))
    assert hash(t) == hash(TensorType("float64", (None, 3)))
    assert str(t) == "float64 matrix (?, 3)"
    assert str(TensorType("int32", ())) == "int32 scalar"
    assert TensorType("float16", ()).dtype == "float32"
    assert t.broadcastable == (False, False)
    with pytest.raises(TypeError, match="complex128"):
        TensorType("complex128", ())
    with pytest.raises(ValueError, match=">= 0"):
        TensorType("float64", (-1,))


def test_broadcast_static_rules():
    assert broadcast_static([(3, 1), (4,)]) == (3, 4)
    assert broadcast_static([(None, 1), (1, 5)]) == (None, 5)
    assert broadcast_static([(None,), (1,)]) == (None,)
    assert broadcast_static([(0,), (1,)]) == (0,)
    assert broadcast_static([(None,), (4,)]) == (4,)
    with pytest.raises(ValueError, match=r"op: shapes \(3,\) and \(4,\) cannot be broadcast"):
        broadcast_static([(3,), (4,)], "op")


def test_constructors():
    assert fg.scalar("a").type == TensorType("float64", ())
    assert fg.vector("v", dtype="int32").type == TensorType("int32", (None,))
    assert fg.matrix(shape=(2, None)).type.shape == (2, None)
    assert fg.tensor3().ndim == 3 and fg.tensor4().ndim == 4
    assert fg.tensor("t", dtype="float32", shape=(None, 3)).type.shape == (None, 3)
    with pytest.raises(ValueError, match="shape of length 2"):
        fg.matrix(shape=(3,))


def test_variables_compare_and_hash_by_identity():
    x, y = fg.vector("x"), fg.vector("x")
    assert x == x and x != y
    d = {x: 1, y: 2}
    assert d[x] == 1 and d[y] == 2


def test_graph_is_immutable_but_names_are_labels():
    x = fg.vector("x")
    z = x + 1
    with pytest.raises(AttributeError, match="immutable"):
        z.owner = None
    with pytest.raises(AttributeError, match="immutable"):
        z.type = x.type
    z.name = "z"
    assert repr(z) == "z"
    assert isinstance(z.owner.inputs, tuple) and isinstance(z.owner.outputs, tuple)


def test_constants_are_read_only_copies():
    data = np.array([1.0, 2.0])
    c = fg.constant(data)
    data[0] = 5.0
    assert c.data[0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        c.data[0] = 3.0
    assert fg.constant(3).dtype == "int64"
    assert fg.constant(3, dtype="float32").dtype == "float32"
    assert fg.constant(np.float16(1)).dtype == "float32"
    assert fg.as_tensor(x := fg.vector()) is x
    assert c.signature() == fg.constant([1.0, 2.0]).signature()
    with pytest.raises(TypeError, match="cannot convert"):
        fg.as_tensor("text")


def test_nodes_record_the_user_line():
    x = fg.vector("x")
    y = fg.exp(x)  # built here
    trace = y.owner.trace
    assert trace.filename == __file__
    assert trace.function == "test_nodes_record_the_user_line"
    assert trace.line == "y = fg.exp(x)  # built here"
    assert "test_graph.py" in str(trace)


def test_toposort_ancestors_and_inputs():
    x, y = fg.vector("x"), fg.vector("y")
    a = x + y
    b = fg.exp(a)
    c = a * b
    order = toposort([c])
    assert order == [a.owner, b.owner, c.owner]
    assert set(graph_inputs([c])) == {x, y}
    assert {x, y, a, b, c} <= set(ancestors([c]))


def test_toposort_deep_graph_is_not_recursive():
    x = fg.scalar("x")
    y = x
    for _ in range(5000):
        y = y + 1
    assert len(toposort([y])) == 5000


def test_clone_replace_rebuilds_and_keeps_trace():
    x, y = fg.vector("x"), fg.vector("y", shape=(3,))
    z = fg.exp(x) + 1  # original line
    (new,) = clone_replace([z], {x: y})
    assert new is not z
    assert new.type.shape == (3,)
    assert new.owner.trace == z.owner.trace
    assert set(graph_inputs([new])) == {y, new.owner.inputs[1]}
    assert x not in set(ancestors([new]))
    with pytest.raises(TypeError, match="changed its output from float64 vector to float32"):
        clone_replace([z], {x: fg.vector("f", dtype="float32")})
    (same,) = clone_replace([z], {fg.vector(): y})
    assert same is z


def test_numpy_scalars_defer_to_variables():
    x = fg.vector("x")
    z = np.float64(2.0) * x
    assert isinstance(z, fg.Variable)
    f = fg.function([x], z)
    np.testing.assert_array_equal(f([1.0, 2.0]), [2.0, 4.0])
