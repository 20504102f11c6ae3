"""Extending fusegraph: the op contract (``fg.Op``'s hooks), ``fg.as_op``, ops without a Numba
kernel (object-mode calls), and third-party backends (``fusegraph.backends``)."""

import pickle
import runpy
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import fusegraph as fg
from fusegraph import backends
from fusegraph.backends.numba import kernels, pycall

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
VEC = fg.TensorType("float64", (None,))
MAT = fg.TensorType("float64", (None, None))


def test_custom_op_example_runs_and_checks_itself(capsys):
    runpy.run_path(str(EXAMPLES / "custom_op.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "all checks passed" in out
    assert out.count("gradient and row count match") == 4  # two ops x two backends


# ------------------------------------------------------------------------------- as_op


def _cube_grad(inputs, output_grads):
    return [output_grads[0] * 3 * inputs[0] ** 2]


@fg.as_op([VEC], [VEC], grad=_cube_grad)
def cube(x):
    return x**3


@fg.as_op([MAT, VEC], [VEC, fg.TensorType("int64", ())])
def row_sums_and_count(m, w):
    """Two outputs, one of them 0-d and integer."""
    return m @ w, np.int64(m.shape[0])


@pytest.mark.parametrize("mode", ["py", "numba", "debug"])
def test_as_op_runs_and_differentiates_in_every_backend(mode):
    x = fg.vector("x")
    y = fg.sum(fg.exp(cube(x) * 0.5))
    f = fg.function([x], [y, fg.grad(y, x)], mode=mode)
    a = np.linspace(-1.2, 1.1, 7)
    got_y, got_g = f(a)
    np.testing.assert_allclose(got_y, np.exp(0.5 * a**3).sum(), rtol=1e-13)
    np.testing.assert_allclose(got_g, np.exp(0.5 * a**3) * 1.5 * a**2, rtol=1e-13)
    fg.verify_grad(lambda v: fg.sum(fg.sin(cube(v))), [a], rng=np.random.default_rng(0))


@pytest.mark.parametrize("mode", ["py", "numba"])
def test_as_op_with_several_outputs_and_a_0d_integer_one(mode):
    m, w = fg.matrix("m"), fg.vector("w")
    s, n = row_sums_and_count(m, w)
    f = fg.function([m, w], [s * 2.0, n + 1], mode=mode)
    am, aw = np.arange(12.0).reshape(4, 3), np.array([1.0, -1.0, 0.5])
    got_s, got_n = f(am, aw)
    np.testing.assert_array_equal(got_s, 2 * (am @ aw))
    assert got_n.dtype == np.int64 and got_n.shape == () and got_n == 5
    # an undefined gradient is reported only when it is needed
    with pytest.raises(fg.NullTypeGradError, match="no gradient"):
        fg.grad(fg.sum(s), m)


def test_as_op_in_a_large_graph_runs_inside_the_glue():
    """Beyond ``codegen.LINK_NODES`` nodes every kernel is linked and run by the glue; the
    object-mode kernel is one of them."""
    x = fg.vector("x")
    y = x
    for k in range(40):
        y = cube(fg.sin(y) + k * 0.01) if k % 10 == 0 else fg.cos(y) * (1 + 0.001 * k)
    f = fg.function([x], y, mode=fg.Mode(exclude=("fusion",)))
    assert "_glue" in f.source and "objmode" in f.source
    ref = fg.function([x], y, mode="py")
    a = np.linspace(0, 1, 9)
    np.testing.assert_allclose(f(a), ref(a), rtol=1e-12)


@pytest.mark.parametrize("mode", ["py", "numba"])
def test_as_op_results_are_checked_and_errors_propagate(mode):
    @fg.as_op([VEC], [VEC])
    def wrong_ndim(x):
        return x.reshape(1, -1)

    @fg.as_op([VEC], [VEC])
    def fails(x):
        raise ArithmeticError("the user's function failed")

    @fg.as_op([VEC], [VEC])
    def aliases(x):
        return x  # its input itself: the output must still be a fresh array

    x = fg.vector("x")
    a = np.arange(3.0)
    with pytest.raises(TypeError, match="wrong_ndim"):
        fg.function([x], wrong_ndim(x) + 1, mode=mode)(a)
    # the interpreter's error (the Numba backend re-runs the call in it to explain)
    with pytest.raises(RuntimeError, match=r"fails\) \(PythonOp\) failed: the user's fun"):
        fg.function([x], fails(x) + 1, mode=mode)(a)
    out = fg.function([x], aliases(x), mode=mode)(a)
    out[0] = 99.0
    assert a[0] == 0.0


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_functions_with_as_op_ops_pickle(protocol):
    """A decorated function's op pickles by the name the decorator took; an op around a
    function kept under its own name (``np.negative``), by its fields."""
    x = fg.vector("x")
    negate = fg.as_op([VEC], [VEC])(np.negative)
    f = fg.function([x], [cube(x) + 1, negate(x)])  # the Numba backend: object-mode calls
    g = pickle.loads(pickle.dumps(f, protocol=protocol))
    a = np.arange(3.0)
    np.testing.assert_array_equal(g(a)[0], a**3 + 1)
    np.testing.assert_array_equal(g(a)[1], -a)
    assert pickle.loads(pickle.dumps(cube, protocol=protocol)) is cube


def test_as_op_rejects_bad_declarations_and_inputs():
    with pytest.raises(TypeError, match=r"itypes\[0\] must be an fg.TensorType"):
        fg.as_op(["float64"], [VEC])
    with pytest.raises(TypeError, match="grad must be callable"):
        fg.as_op([VEC], [VEC], grad=3)
    with pytest.raises(TypeError, match=r"expected 1 inputs, got 2"):
        cube(fg.vector(), fg.vector())
    with pytest.raises(TypeError, match=r"input 0 .* expected"):
        cube(fg.matrix())

    @fg.as_op([fg.TensorType("float32", (None,))], [VEC])
    def widen(x):
        return x.astype("float64")

    with pytest.raises(TypeError, match=r"astype\('float32'\)") as info:
        widen(fg.vector())
    assert "as_op(" in str(info.value) and "widen" in str(info.value)
    # a safe cast is made for the user: int32 -> float64
    f = fg.function([v := fg.vector("v", dtype="int32")], cube(v), mode="py")
    np.testing.assert_array_equal(f(np.array([2], "int32")), [8.0])


def test_as_op_infer_shape_gives_the_shape_without_running_the_function():
    calls = []

    def shape_fn(fgraph, node, input_shapes):
        return [(input_shapes[0][0],)]

    @fg.as_op([VEC], [VEC], infer_shape=shape_fn)
    def counted(x):
        calls.append(1)
        return x * 2

    x = fg.vector("x")
    f = fg.function([x], counted(x).shape[0], mode="py")
    assert f(np.arange(5.0)) == 5 and not calls
    assert not any(isinstance(n.op, type(counted)) for n in f.graph.toposort())


# ------------------------------------------------------------------ ops without kernels


class _Unary(fg.Op):
    """The type rule of the test ops below: one input, an output of its type."""

    def make_node(self, x):
        x = fg.as_tensor(x)
        return fg.Apply(self, [x], [x.type])


@dataclass(frozen=True)
class Twice(_Unary):
    def impl(self, x):
        return 2 * x

    def vjp(self, inputs, outputs, grads):
        return [2 * grads[0]]


def test_an_op_without_kernel_runs_through_object_mode_until_its_kernel_is_registered(
    monkeypatch,
):
    """One warning names the op and shows the registration call; registered as it says
    (the built-in ops use the same call), the op runs its compiled kernel."""
    monkeypatch.setattr(kernels.base, "KERNELS", dict(kernels.KERNELS))  # undone after
    monkeypatch.setattr(pycall, "_WARNED", set())
    x = fg.vector("x")
    y = Twice()(x) + 1.0
    with pytest.warns(UserWarning, match=r"register_kernel\(Twice\)") as record:
        f = fg.function([x], [y, fg.grad(fg.sum(y * y), x)])
        fg.function([x], Twice()(x) * 3.0)  # warned once per class
    assert len([w for w in record if "Twice" in str(w.message)]) == 1
    assert "objmode" in f.source
    a = np.arange(4.0)
    np.testing.assert_array_equal(f(a)[0], 2 * a + 1)
    np.testing.assert_array_equal(f(a)[1], 4 * (2 * a + 1))

    @fg.backends.numba.register_kernel(Twice)
    def _twice(op, in_types, out_types, name):
        return f"{fg.backends.numba.DECORATOR}\ndef {name}(i0):\n    return i0 * 2\n"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = fg.function([x], Twice()(x) + 1.0)
    assert "objmode" not in g.source
    np.testing.assert_array_equal(g(a), 2 * a + 1)


def test_object_mode_keys_tell_equal_looking_ops_apart():
    @dataclass(frozen=True, eq=False)
    class Scale(_Unary):
        factor: float

        def impl(self, x):
            return x * self.factor

    x = fg.vector("x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fs = [fg.function([x], Scale(2.0)(x) + 0.0), fg.function([x], Scale(2.0)(x) + 0.0)]
        f3 = fg.function([x], Scale(3.0)(x) + 0.0)
    np.testing.assert_array_equal(fs[0](np.ones(2)), [2.0, 2.0])
    np.testing.assert_array_equal(fs[1](np.ones(2)), [2.0, 2.0])
    np.testing.assert_array_equal(f3(np.ones(2)), [3.0, 3.0])


# --------------------------------------------------------------------------- jvp hook


@dataclass(frozen=True)
class SquareWithJvp(_Unary):
    """x**2 with a forward rule but no reverse one: Rop must use ``jvp``."""

    def impl(self, x):
        return x * x

    def jvp(self, inputs, outputs, tangents):
        return [2 * inputs[0] * tangents[0]]


def test_rop_uses_an_ops_jvp_and_derives_the_others_from_vjp():
    x, v = fg.vector("x"), fg.vector("v")
    f = fg.exp(SquareWithJvp()(fg.sin(x)))
    rop = fg.Rop(f, x, v)
    with pytest.raises(fg.NullTypeGradError):
        fg.grad(fg.sum(f), x)
    run = fg.function([x, v], rop, mode="py")
    a, t = np.linspace(-1, 1, 5), np.linspace(0.5, -0.3, 5)
    want = np.exp(np.sin(a) ** 2) * 2 * np.sin(a) * np.cos(a) * t
    np.testing.assert_allclose(run(a, t), want, rtol=1e-13)


def test_rop_matches_finite_differences_through_many_ops():
    x, v = fg.vector("x"), fg.vector("v")
    m = fg.reshape(fg.concatenate([x, x[::-1]]), (2, -1))
    f = [fg.softmax(m * 1.5)[1] * fg.tanh(x), fg.logsumexp(m, axis=0), fg.sum(x * x) * x]
    rop = fg.Rop(f, x, v)
    run = fg.function([x, v], rop)
    value = fg.function([x], f)
    a, t, eps = np.linspace(-1, 2, 6), np.linspace(1, -1, 6), 1e-6
    for got, up, down in zip(run(a, t), value(a + eps * t), value(a - eps * t)):
        np.testing.assert_allclose(got, (up - down) / (2 * eps), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------- backends


class _Counting:
    """A toy third-party backend: runs the interpreter and counts the nodes it ran."""

    wants_unrewritten = False

    def __init__(self):
        self.nodes_run = 0

    def compile(self, fgraph, options):
        from fusegraph.backends import py

        order = fgraph.toposort()
        run = py.compile_graph(fgraph)

        def counted(*values):
            self.nodes_run += len(order)
            return run(*values)

        return py.Interpreted(counted, options.single)


def test_a_third_party_backend_registers_and_runs(monkeypatch):
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))  # undone after
    toy = _Counting()
    backends.register_backend("toy", toy)
    assert "toy" in backends.backend_names()
    x = fg.vector("x")
    f = fg.function([x], fg.exp(x) * 2, mode="toy")
    g = fg.function([x], [fg.exp(x), x + 1], mode=fg.Mode(backend="toy"))
    a = np.arange(3.0)
    np.testing.assert_allclose(f(a), np.exp(a) * 2)
    np.testing.assert_allclose(g(a)[1], a + 1)
    assert toy.nodes_run > 0 and repr(f).startswith("<Function  toy")
    with pytest.raises(AttributeError, match="'toy' generates no source"):
        _ = f.source
    with pytest.raises(ValueError, match="already registered"):
        backends.register_backend("toy", toy)
    with pytest.raises(TypeError, match="compile"):
        backends.register_backend("other", object())
    with pytest.raises(ValueError, match="unknown backend 'tyo'.*toy"):
        fg.Mode(backend="tyo")
