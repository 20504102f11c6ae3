"""The benchmark suite runs every workload once at tiny size (so that it cannot rot): each
variant's result passed its check against NumPy, and the table shows every workload."""

import numpy as np

from benchmarks import suite


def test_smoke_run_covers_every_workload_and_variant():
    results = suite.run("smoke")
    names = [r.workload for r in results]
    assert [n.split(",")[0].split(" SGD")[0] for n in names[:4]] == [
        "fused elementwise",
        "logistic regression cost + gradient",
        "MLP 12-8-3",
        "call overhead",
    ]
    assert sum(n.startswith("compile") for n in names) == 4
    for r in results[:4]:
        assert {"fusegraph numba", "fusegraph py", "NumPy"} <= set(r.seconds)
        assert all(t > 0 for t in r.seconds.values())
    for r in results[4:]:
        parts = r.seconds
        assert parts["total"] > 0
        assert np.isclose(parts["imports"] + parts["rewrite"] + parts["codegen"] + parts["numba"],
                          parts["total"])  # fmt: skip
    text = suite.table(results)
    assert all(f"### {n}" in text for n in names) and "/ fusegraph py" in text


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
