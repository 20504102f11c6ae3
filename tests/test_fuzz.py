"""The bounded, derandomized part of the differential fuzzer (``tests/fuzz.py``): hypothesis
draws batches of random programs, each batch compiled once per mode; a failing batch is
shrunk and printed as the JSON that ``python -m tests.fuzz --replay`` takes."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import fuzz


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.data())
def test_random_programs_agree_across_modes_and_with_finite_differences(data):
    ch = fuzz.HypothesisChooser(data)
    progs = [fuzz.draw_program(ch) for _ in range(ch.integer(1, 6))]
    seed = ch.integer(0, 2**31 - 1)
    problems = fuzz.check_batch(progs, seed)
    record = {"seed": seed, "programs": [json.loads(p.to_json()) for p in progs]}
    assert not problems, "\n".join(problems) + "\nreplay: " + json.dumps(record)


def test_the_checker_catches_a_wrong_kernel(monkeypatch):
    """The comparison is not vacuous: a Numba backend whose float products are one ulp off
    fails it (products are correctly rounded: exact programs must agree bit for bit)."""
    from fusegraph.backends.numba import loops

    original = loops.scalar_expr

    def skewed(op, in_dtypes, out, args):
        text = original(op, in_dtypes, out, args)
        return f"np.nextafter({text}, np.inf)" if op.name == "mul" and out == "float64" else text

    monkeypatch.setattr(loops, "scalar_expr", skewed)
    prog = fuzz.Program([("float64", (3,), "C")], [("binary", [0, 0], "mul")])
    problems = fuzz.check_batch([prog], seed=0)
    assert any(p.startswith("program 0, numba: not equal") for p in problems), problems
