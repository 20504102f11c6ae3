"""The README's Python examples run as written, and do what the text says."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    # The sampled-gradient example trained a classifier whose first feature decides.
    w = namespace["w"].get_value()
    assert w[0] > 1.0 and np.all(np.abs(w[1:]) < w[0] / 2)
    # The random-stream example trained the same classifier with masks it drew itself.
    theta = namespace["theta"].get_value()
    assert theta[0] > 1.0 and np.all(np.abs(theta[1:]) < theta[0] / 2)
    # The per-sample-weights example builds a gradient graph of w's type.
    assert namespace["gw"].type == namespace["w"].type


def test_the_guarantees_name_tests_that_exist():
    section = README.read_text().split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    refs = re.findall(r"`(tests/[\w/.]+\.py)((?:::\w+)?)`|`::(\w+)`", section)
    assert len(refs) >= 10
    last = None
    for path, name, bare in refs:
        path = path or last
        last = path
        text = (README.parent / path).read_text()
        name = (name or "").removeprefix("::") or bare
        if name:
            assert f"def {name}(" in text, (path, name)
