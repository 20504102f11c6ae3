"""The table-driven op test: one ``Case`` per row, checked by ``check_case``.

A case builds a graph from symbolic inputs and names a NumPy reference. ``check_case``
compiles it, compares values, dtype and shape against the reference, checks that the
static type agrees with the real result (with unknown and with fully known input shapes),
that inputs are not mutated, and repeats the comparison on non-contiguous copies of the
inputs (strided and Fortran-ordered).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import fusegraph as fg

MODES = ("py",)


@dataclass
class Case:
    """One row of an op table.

    Args:
        id: the test id, e.g. ``"add-broadcast-int"``.
        covers: names of the public ``fg`` functions this row exercises.
        build: takes symbolic inputs, returns one output variable or a list.
        ref: takes NumPy arrays, returns the expected array (or list of arrays).
        inputs: the concrete input arrays.
        static: per input, its static shape for the symbolic variable, or None for the
            value's broadcastable pattern (1 where the value's dim is 1, unknown elsewhere,
            as only dims of static length 1 broadcast). The check runs with these and with
            fully known shapes.
        rtol, atol: tolerance for float results (ints and bools compare exactly).
        raises: an exception class expected at run time instead of a result.
        grad: also check the gradient with ``fg.verify_grad`` (w.r.t. every float input,
            at this row's inputs) when the row allows it: finite float inputs, float
            outputs. Set False for rows at points where the function is not smooth.
    """

    id: str
    covers: Sequence[str]
    build: Callable
    ref: Callable | None
    inputs: Sequence[np.ndarray]
    static: Sequence | None = None
    rtol: float = 1e-12
    atol: float = 0.0
    raises: type | None = None
    check_static_known: bool = True
    grad: bool = True


def symbols(inputs, static=None):
    """Symbolic variables matching ``inputs`` (names x0, x1, ...); an input without a
    static shape gets its value's broadcastable pattern."""
    static = static or [None] * len(inputs)
    return [
        fg.tensor(f"x{i}", dtype=a.dtype.name, shape=s if s is not None else pattern(a))
        for i, (a, s) in enumerate(zip(inputs, static))
    ]


def pattern(a: np.ndarray) -> tuple:
    """The broadcastable pattern of ``a`` as a static shape: 1 where a's dim is 1."""
    return tuple(1 if d == 1 else None for d in np.shape(a))


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def noncontiguous(a: np.ndarray) -> np.ndarray:
    """The same values as ``a`` in a non-contiguous layout (strided view)."""
    if a.ndim == 0:
        return a
    doubled = np.repeat(a, 2, axis=-1)
    view = doubled[..., ::2]
    assert not view.flags.c_contiguous or a.shape[-1] <= 1 or a.size == 0
    return view


def fortran(a: np.ndarray) -> np.ndarray:
    """The same values in Fortran (column-major) order; 0-d and 1-d arrays unchanged."""
    return np.asfortranarray(a) if a.ndim >= 2 else a


def assert_same(got, expected, rtol, atol, what):
    """Strict comparison: same dtype, same shape, values equal (floats within tolerance,
    NaN where NumPy has NaN)."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype}, NumPy gives {expected.dtype}"
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, NumPy gives {expected.shape}"
    if got.dtype.kind == "f":
        np.testing.assert_allclose(
            got, expected, rtol=rtol, atol=atol, equal_nan=True, err_msg=what
        )
    else:
        np.testing.assert_array_equal(got, expected, err_msg=what)


def check_static(outputs, results, what):
    for var, value in zip(outputs, results):
        assert var.dtype == value.dtype.name, f"{what}: static dtype {var.dtype} vs {value.dtype}"
        assert var.ndim == value.ndim, f"{what}: static ndim {var.ndim} vs {value.ndim}"
        for want, got in zip(var.type.shape, value.shape):
            assert want is None or want == got, (
                f"{what}: static shape {var.type.shape} vs {value.shape}"
            )


def check_case(case: Case, mode: str = "py"):
    inputs = [np.asarray(a) for a in case.inputs]
    originals = [a.copy() for a in inputs]
    variants = [("unknown shapes", case.static)]
    if case.check_static_known:
        variants.append(("known shapes", [a.shape for a in inputs]))
    for label, static in variants:
        syms = symbols(inputs, static)
        outputs = _as_list(case.build(*syms))
        f = fg.function(syms, outputs, mode=mode, on_unused_input="ignore")
        what = f"{case.id} [{mode}, {label}]"
        if case.raises is not None:
            try:
                f(*inputs)
            except case.raises:
                continue
            raise AssertionError(f"{what}: expected {case.raises.__name__}")
        expected = _as_list(case.ref(*[a.copy() for a in inputs]))
        layouts = [("contiguous", inputs)]
        if static is case.static:
            layouts += [
                ("strided", [noncontiguous(a) for a in inputs]),
                ("fortran", [fortran(a) for a in inputs]),
            ]
        for layout, args in layouts:
            results = f(*args)
            check_static(outputs, results, f"{what} {layout}")
            for i, (got, exp) in enumerate(zip(results, expected)):
                assert_same(got, exp, case.rtol, case.atol, f"{what} {layout} output {i}")
        for a, orig in zip(inputs, originals):
            np.testing.assert_array_equal(a, orig, err_msg=f"{what}: an input was mutated")
    if case.grad and case.raises is None:
        check_grad(case, inputs, mode)


def check_grad(case: Case, inputs, mode: str = "py"):
    """``verify_grad`` of the row's graph w.r.t. its float inputs (the others are held
    constant), when its inputs are finite floats and its outputs are floats."""
    is_float = [a.dtype.kind == "f" for a in inputs]
    if not any(is_float) or any(f and not np.isfinite(a).all() for a, f in zip(inputs, is_float)):
        return
    syms = symbols(inputs)
    outputs = [o for o in _as_list(case.build(*syms)) if o.dtype in ("float32", "float64")]
    if not outputs:
        return

    def fun(*float_vars):
        it = iter(float_vars)
        args = [next(it) if f else fg.constant(a) for a, f in zip(inputs, is_float)]
        outs = [o for o in _as_list(case.build(*args)) if o.dtype in ("float32", "float64")]
        flat = [fg.flatten(o.astype("float64")) if o.ndim else fg.stack([o]) for o in outs]
        return flat[0] if len(flat) == 1 else fg.concatenate([f.astype("float64") for f in flat])

    points = [a for a, f in zip(inputs, is_float) if f]
    fg.verify_grad(fun, points, mode=mode, rng=np.random.default_rng(0))


def rng(seed=0):
    return np.random.default_rng(seed)
