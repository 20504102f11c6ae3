"""The ``fg.function`` contract: outputs, updates, givens, input validation and errors."""

import re

import numpy as np
import pytest

import fusegraph as fg


def test_single_output_returns_array_and_list_returns_list():
    x = fg.vector("x")
    f = fg.function([x], x * 2)
    g = fg.function([x], [x * 2, x + 1])
    out = f(np.array([1.0, 2.0]))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [2.0, 4.0])
    a, b = g([1.0, 2.0])
    np.testing.assert_array_equal(a, [2.0, 4.0])
    np.testing.assert_array_equal(b, [2.0, 3.0])


def test_updates_are_simultaneous():
    a = fg.shared(np.array([1.0, 2.0]), "a")
    b = fg.shared(np.array([10.0, 20.0]), "b")
    swap = fg.function([], [a + b], updates={a: b, b: a})
    (s,) = swap()
    np.testing.assert_array_equal(s, [11.0, 22.0])
    np.testing.assert_array_equal(a.get_value(), [10.0, 20.0])
    np.testing.assert_array_equal(b.get_value(), [1.0, 2.0])


def test_update_list_of_pairs_and_output_sees_old_value():
    w = fg.shared(np.zeros(2), "w")
    x = fg.vector("x")
    step = fg.function([x], w, updates=[(w, w + x)])
    np.testing.assert_array_equal(step([1.0, 1.0]), [0.0, 0.0])
    np.testing.assert_array_equal(step([1.0, 1.0]), [1.0, 1.0])
    np.testing.assert_array_equal(w.get_value(), [2.0, 2.0])


def test_failed_call_keeps_shared_values():
    w = fg.shared(np.ones(3), "w")
    x = fg.vector("x")
    f = fg.function([x], w * x, updates={w: w * x})
    with pytest.raises(ValueError, match="could not be broadcast"):
        f(np.ones(4))
    np.testing.assert_array_equal(w.get_value(), np.ones(3))
    np.testing.assert_array_equal(f(np.full(3, 2.0)), np.full(3, 2.0))
    np.testing.assert_array_equal(w.get_value(), np.full(3, 2.0))


def test_givens_substitute_input_and_intermediate():
    x = fg.vector("x")
    y = fg.vector("y")
    h = fg.exp(x)
    out = h + 1
    f = fg.function([y], out, givens={x: y * 2})
    np.testing.assert_allclose(f([0.0, 1.0]), np.exp([0.0, 2.0]) + 1)
    g = fg.function([y], out, givens=[(h, y)])
    np.testing.assert_array_equal(g([1.0, 2.0]), [2.0, 3.0])


def test_givens_type_mismatch():
    x = fg.vector("x")
    m = fg.matrix("m")
    with pytest.raises(TypeError, match="same dtype and ndim"):
        fg.function([m], x + 1, givens={x: m})


def test_unused_input_raise_warn_ignore():
    x, y = fg.vector("x"), fg.vector("y")
    with pytest.raises(fg.UnusedInputError, match=r"input 1 \(y\) is not used"):
        fg.function([x, y], x + 1)
    with pytest.warns(UserWarning, match="not used"):
        fg.function([x, y], x + 1, on_unused_input="warn")
    f = fg.function([x, y], x + 1, on_unused_input="ignore")
    np.testing.assert_array_equal(f([1.0], [5.0, 6.0]), [2.0])


def test_missing_input_names_the_variable():
    x, y = fg.vector("x"), fg.vector("y")
    with pytest.raises(fg.MissingInputError, match=r"depend on y"):
        fg.function([x], x + y)


def test_inputs_must_be_roots_and_not_shared():
    x = fg.vector("x")
    w = fg.shared(np.zeros(2), "w")
    with pytest.raises(TypeError, match="computed from other variables"):
        fg.function([x * 2], x)
    with pytest.raises(TypeError, match="shared variable"):
        fg.function([w], w * 2)
    with pytest.raises(ValueError, match="twice"):
        fg.function([x, x], x)


def test_wrong_argument_count_names_function_and_inputs():
    x, y = fg.vector("x"), fg.vector("y")
    f = fg.function([x, y], x + y, name="adder")
    with pytest.raises(TypeError, match=r"function 'adder': expected 2 arguments \(x, y\), got 1"):
        f([1.0])


def test_lossy_dtype_is_rejected_with_names():
    x = fg.vector("x", dtype="int32")
    f = fg.function([x], x + 1, name="inc")
    with pytest.raises(TypeError, match=r"'inc': argument 0 \(x\) expects int32, got float64"):
        f(np.array([1.5]))
    with pytest.raises(TypeError, match="int32, got int64"):
        f(np.array([1], dtype="int64"))


def test_lossless_conversions_are_accepted():
    x = fg.vector("x", dtype="float32")
    f = fg.function([x], x * 2)
    out = f(np.array([1, 2], dtype="int8"))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(f([1.5, 2.0]), np.array([3.0, 4.0], dtype="float32"))
    i = fg.scalar("i", dtype="int16")
    g = fg.function([i], i + 1)
    assert g(7) == 8 and g(7).dtype == np.int16
    with pytest.raises(TypeError, match="int16"):
        g(70000)


def test_ndim_and_static_shape_checks():
    x = fg.tensor("x", shape=(None, 3))
    f = fg.function([x], x + 1, name="f")
    with pytest.raises(ValueError, match=r"argument 0 \(x\) expects a 2-d array"):
        f(np.ones(3))
    with pytest.raises(ValueError, match=r"expects shape \(\?, 3\), got \(2, 4\) \(axis 1\)"):
        f(np.ones((2, 4)))


def test_keyword_arguments():
    x, y = fg.scalar("x"), fg.scalar("y")
    f = fg.function([x, y], x - y)
    assert f(y=1.0, x=3.0) == 2.0
    assert f(3.0, y=1.0) == 2.0
    # The compiled function's __call__ takes the inputs' names as parameters, so Python
    # itself reports a wrong keyword there (naming the function); the interpreter says so
    # in its own words.
    for g in (f, fg.function([x, y], x - y, mode="py")):
        with pytest.raises(TypeError, match="no input named 'z'|unexpected keyword argument 'z'"):
            g(1.0, z=2.0)
        with pytest.raises(TypeError, match="by position and by name|multiple values for .*'x'"):
            g(1.0, x=2.0)
        with pytest.raises(TypeError, match="built at .*test_function.py"):
            g(1.0, 2.0, 3.0)
    with pytest.raises(TypeError, match="missing input y|y"):
        f(1.0)


def test_trust_input_skips_validation():
    x = fg.vector("x")
    f = fg.function([x], x + 1, trust_input=True)
    np.testing.assert_array_equal(f(np.array([1.0])), [2.0])


def test_outputs_never_alias_inputs_or_shared_values():
    x = fg.vector("x")
    w = fg.shared(np.array([1.0, 2.0]), "w")
    f = fg.function([x], [x, w, fg.constant(np.array([5.0])), x])
    arg = np.array([3.0, 4.0])
    a, b, c, d = f(arg)
    a[0] = b[0] = c[0] = -1.0
    assert d[0] == 3.0
    assert arg[0] == 3.0
    assert w.get_value()[0] == 1.0
    assert f(arg)[2][0] == 5.0


def test_run_time_error_names_op_shapes_and_user_line():
    x, y = fg.vector("x"), fg.vector("y")
    z = x * y  # the line the error must point at
    f = fg.function([x, y], z)
    with pytest.raises(ValueError) as info:
        f(np.ones(2), np.ones(3))
    message = str(info.value)
    assert "mul (Elemwise) failed" in message
    assert "(2,) float64, (3,) float64" in message
    assert "test_function.py" in message
    assert "z = x * y  # the line the error must point at" in message


def test_update_type_errors():
    w = fg.shared(np.zeros(2, dtype="float32"), "w")
    x = fg.vector("x")
    with pytest.raises(
        TypeError, match=r"update of shared variable w .*float64.*astype\('float32'\)"
    ):
        fg.function([x], [], updates={w: w + x})
    with pytest.raises(TypeError, match="not a shared variable"):
        fg.function([x], [], updates={x: x})
    f = fg.function([], [], updates={w: [1, 2]})
    f()
    np.testing.assert_array_equal(w.get_value(), [1.0, 2.0])


def test_shared_variable_copy_semantics():
    value = np.array([1.0, 2.0])
    w = fg.shared(value, "w")
    value[0] = 100.0
    assert w.get_value()[0] == 1.0
    got = w.get_value()
    got[1] = 100.0
    assert w.get_value()[1] == 2.0
    inner = w.get_value(borrow=True)
    inner[1] = 7.0
    assert w.get_value()[1] == 7.0
    new = np.array([3.0, 4.0])
    w.set_value(new)
    new[0] = 0.0
    assert w.get_value()[0] == 3.0
    w.set_value(new, borrow=True)
    new[0] = 9.0
    assert w.get_value()[0] == 9.0


def test_shared_set_value_validation():
    w = fg.shared(np.zeros(3, dtype="float32"), "w")
    with pytest.raises(
        TypeError, match=re.escape("shared variable w expects float32, got float64")
    ):
        w.set_value(np.zeros(3))
    with pytest.raises(ValueError, match="shared variable w expects a 1-d array"):
        w.set_value(np.zeros((2, 2), dtype="float32"))
    w.set_value([1.5, 2.5])
    assert w.get_value().dtype == np.float32
    w.set_value(np.zeros(5, dtype="float32"))
    assert w.get_value().shape == (5,)


def test_constant_and_empty_outputs():
    f = fg.function([], fg.constant(3.0) * 2)
    assert f() == 6.0 and f().shape == ()
    assert fg.function([], [])() == []


def test_unknown_mode():
    x = fg.vector("x")
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        fg.function([x], x, mode="fast")
    f = fg.function([x], x + 1, mode=fg.Mode(backend="py"))
    np.testing.assert_array_equal(f([1.0]), [2.0])


def test_unused_input_bad_option():
    x, y = fg.vector("x"), fg.vector("y")
    with pytest.raises(ValueError, match="on_unused_input"):
        fg.function([x, y], x, on_unused_input="maybe")


def test_function_attributes():
    x = fg.vector("x")
    w = fg.shared(np.zeros(1), "w")
    f = fg.function([x], x + w, updates={w: w + 1}, name="f")
    assert f.inputs == (x,)
    assert len(f.outputs) == 1
    assert f.graph.inputs == (x, w)
    assert len(f.graph.toposort()) == 2
    assert f.name == "f"
