"""The benchmark suite runs every workload once at tiny size (so that it cannot rot): each
variant's result passed its check against NumPy, and the table shows every workload."""

import importlib.util
import sys

import numpy as np
import pytest

from benchmarks import suite

# PyTensor's C mode, installed from PyPI, warns that it found no BLAS to link to.
pytestmark = pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS:UserWarning")


@pytest.fixture(scope="module")
def smoke():
    """The smoke run, its peers (if installed) measured in another process, as with
    ``--peer-python``."""
    return suite.run("smoke", peer_python=sys.executable)


def test_smoke_run_covers_every_workload_and_variant(smoke):
    names = [r.workload for r in smoke]
    assert [n.split(",")[0].split(" SGD")[0] for n in names[:4]] == [
        "fused elementwise",
        "logistic regression cost + gradient",
        "MLP 12-8-3",
        "call overhead",
    ]
    assert sum(n.startswith("compile") for n in names) == 4
    for r in smoke[:4]:
        assert {"fusegraph numba", "fusegraph py", "NumPy"} <= set(r.seconds)
        assert all(t > 0 for t in r.seconds.values())
    for r in smoke[4:]:
        parts = r.parts["fusegraph numba"]
        assert parts["total"] == r.seconds["fusegraph numba"] > 0
        assert np.isclose(parts["imports"] + parts["rewrite"] + parts["codegen"] + parts["compile"],
                          parts["total"])  # fmt: skip
    text = suite.table(smoke)
    assert all(f"### {n}" in text for n in names) and "/ fusegraph py" in text


@pytest.mark.skipif(not importlib.util.find_spec("pytensor"), reason="PyTensor is not installed")
def test_pytensor_is_a_peer_in_every_workload_in_both_modes(smoke):
    for r in smoke:
        assert set(suite.PYTENSOR) <= set(r.seconds), r.workload
    assert {"PyTensor C, trust_input", "PyTensor NUMBA, trust_input"} <= set(smoke[3].seconds)
    for r in smoke[4:]:
        assert all(r.parts[name]["compile"] > 0 for name in suite.PYTENSOR)


def test_mlp_reference_step_matches_finite_differences():
    """The NumPy MLP step the suite checks fusegraph against is itself right."""
    params, x, t = suite._mlp_data((5, 4, 3, 6))
    params = [p.astype("float64") for p in params]
    x = x.astype("float64")
    loss, new = suite.mlp_numpy_step(params, x, t, lr=1.0)
    eps = 1e-6
    for k, p in enumerate(params):
        flat = p.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 5)):
            old = flat[i]
            flat[i] = old + eps
            up = suite.mlp_numpy_step(params, x, t)[0]
            flat[i] = old - eps
            down = suite.mlp_numpy_step(params, x, t)[0]
            flat[i] = old
            grad = (p - new[k]).reshape(-1)[i]
            np.testing.assert_allclose(grad, (up - down) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_compile_scaling_judges_targets_on_the_median_of_per_round_ratios():
    from benchmarks import compile_scaling as cs

    def result(label, seconds):
        row = dict(
            function="f",
            seconds=seconds,
            nodes=1,
            kernels=1,
            rewrite=0.0,
            codegen=0.0,
            typing=0.0,
            llvm=0.0,
            other=0.0,
            units=dict(compiled=1, memory=0, disk=0),
        )
        run = dict(imports=0.5, rows=[row])
        return dict(label=label, cold=run, warm=run, jax=None)

    ref, hess = "logistic regression", "10x10 Hessian"  # target: at most 2x
    rounds = [
        [result(ref, 1.5), result(hess, 2.5)],  # (2.5 + 0.5) / (1.5 + 0.5) = 1.5x
        [result(ref, 1.0), result(hess, 4.5)],  # 5.0 / 1.5 = 3.33x
        [result(ref, 1.5), result(hess, 3.0)],  # 3.5 / 2.0 = 1.75x
    ]
    text = cs.table(rounds)
    assert "| 1.50×, 3.33×, 1.75× | 1.75× | yes |" in text
    # the rows are each workload's median round: the reference's 1.5 s, the Hessian's 3.0 s
    assert "| logistic regression | f | 1 | 1 | 1 / 0 | 2.00 |" in text
    assert "| 10x10 Hessian | f | 1 | 1 | 1 / 0 | 3.50 |" in text
