"""Checking a rewrite rule: the rewritten graph as golden text, and its values equal to
the unrewritten graph's on the ``py`` backend (including at the edges the rule is about)."""

from __future__ import annotations

import numpy as np

import fusegraph as fg
from fusegraph.rewrites.passes import optimize

#: A Mode that runs the graph exactly as built.
NO_REWRITES = fg.Mode(
    "py", exclude=("merge", "constant_folding", "canonicalize", "stabilize", "specialize", "fusion")
)


def rewritten(outputs, include=(), exclude=("fusion",)):
    """The rewritten outputs (fusion off by default, so rule results stay readable)."""
    single = not isinstance(outputs, (list, tuple))
    new, _ = optimize([outputs] if single else list(outputs), include, exclude)
    return new[0] if single else new


def check_rewrite(inputs, output, expected, values, include=(), exclude=("fusion",), rtol=1e-12):
    """Assert that ``output`` rewrites to the text ``expected`` (``fg.pprint``) and that
    both graphs give the same values for each tuple of argument arrays in ``values``."""
    new = rewritten(output, include, exclude)
    assert fg.pprint(new) == expected, f"rewrote to {fg.pprint(new)!r}, expected {expected!r}"
    before = fg.function(inputs, output, mode=NO_REWRITES, on_unused_input="ignore")
    after = fg.function(
        inputs, output, mode=fg.Mode("py", include, exclude), on_unused_input="ignore"
    )
    for args in values:
        a, b = before(*args), after(*args)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=rtol, equal_nan=True)
    return new
