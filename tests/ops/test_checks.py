"""check_parameter against NumPy: the input passes through unchanged while the condition
holds (any shapes, dtypes and layouts), ValueError with the message when it fails anywhere;
the gradient flows to the input only."""

import numpy as np
import pytest
from harness import Case, check_case, rng

import fusegraph as fg

R = rng(11)


def _check(x, s):
    return fg.check_parameter(x, fg.ge(s, 0), "scale < 0")


def _scaled(x, s):
    return _check(x, s) * 2.0


CASES = [
    Case("check-holds", ["check_parameter"], _check, lambda x, s: x,
         [R.normal(size=(3, 4)), np.abs(R.normal(size=(4,)))]),
    Case("check-holds-int", ["check_parameter"], _check, lambda x, s: x,
         [R.integers(-5, 5, (2, 3)), np.array([0, 3], "int32")]),
    Case("check-holds-scalar-condition", ["check_parameter"], _check, lambda x, s: x,
         [R.normal(size=(5,)).astype("float32"), np.array(0.5)]),
    Case("check-holds-empty", ["check_parameter"], _check, lambda x, s: x,
         [np.zeros((0, 3)), np.zeros((0,))]),
    Case("check-holds-empty-condition", ["check_parameter"], _check, lambda x, s: x,
         [R.normal(size=(2, 2)), np.array([-1.0])[:0]]),
    Case("check-then-scale", ["check_parameter"], _scaled, lambda x, s: x * 2.0,
         [R.normal(size=(3,)), np.ones((2, 2))]),
    Case("check-fails", ["check_parameter"], _check, None,
         [R.normal(size=(3,)), np.array([1.0, -1e-300, 2.0])], raises=ValueError),
    Case("check-fails-nan", ["check_parameter"], _check, None,
         [R.normal(size=(3,)), np.array([np.nan])], raises=ValueError),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_checks(case):
    check_case(case)


def test_message_type_rule_and_gradient():
    x, s = fg.vector("x"), fg.vector("s")
    y = fg.check_parameter(x, fg.ge(s, 0), "scale < 0")  # the line the error points at
    assert y.type == x.type
    with pytest.raises(TypeError, match="condition 0 must be bool, not float64"):
        fg.check_parameter(x, s, "m")
    f = fg.function([x, s], [y, fg.grad((y * y).sum(), x)], mode="py")
    with pytest.raises(ValueError) as info:
        f(np.ones(2), np.array([1.0, -1.0]))
    assert "scale < 0" in str(info.value) and "y = fg.check_parameter(x" in str(info.value)
    out, g = f(np.array([1.0, 2.0]), np.ones(3))
    np.testing.assert_array_equal(g, [2.0, 4.0])
    with pytest.raises(fg.DisconnectedInputError):  # the condition is a comparison
        fg.grad(y.sum(), s)
