"""The examples run and their internal checks (against hand-written NumPy) pass."""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_demo_runs_and_matches_numpy(capsys):
    runpy.run_path(str(EXAMPLES / "demo.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "all checks passed" in out
    assert "training accuracy" in out
