"""The kernel of ``RandomVariable``: copy the state, fill the draw with a sampler of
``backends/numba/rng.py`` (parameters flattened to 1-d), return both."""

from __future__ import annotations

from fusegraph.backends.numba import rng
from fusegraph.backends.numba.kernels.base import _function, _new, _raise, register_kernel
from fusegraph.ops import random

#: kind -> the sampler's call on the flat output ``flat``, formatted with the parameters'
#: names ``p``, the op's ``replace`` and ``atol`` (NumPy's tolerance on probabilities' sum).
_CALLS = {
    "uniform": "rng.fill_uniform(st, flat)",
    "normal": "rng.fill_normal(st, flat)",
    "bernoulli": "rng.fill_bernoulli(st, {p[0]}, flat)",
    "binomial": "rng.fill_binomial(st, {p[0]}, {p[1]}, flat)",
    "integers": "rng.fill_integers(st, {p[0]}, {p[1]}, flat)",
    "choice": "rng.fill_choice(st, {p[0]}[0], {replace}, flat)",
    "weighted_choice": "rng.fill_weighted_choice(st, {p[0]}[0], {p[1]}, {replace}, {atol}, flat)",
    "permutation": "rng.fill_permutation(st, flat)",
}


@register_kernel(random.RandomVariable)
def _random_variable(op, in_types, out_types, name):
    code = _function(name, len(in_types))
    out = out_types[1]
    _raise(code, f"i0.shape[0] != {random.STATE_WORDS}", "ValueError", "bad generator state")
    code("st = copy_c(i0)")
    dims = [f"i1[{k}]" for k in range(out.ndim)]
    for d in dims:
        _raise(code, f"{d} < 0", "ValueError", "negative dimensions are not allowed")
    _new(code, "out", dims, out.dtype)
    code("flat = out.reshape(out.size)")
    params = []
    for k, pname in enumerate(random.KINDS[op.kind][0], start=2):
        vector = (op.kind, pname) in random.VECTOR_PARAMS
        if 0 < in_types[k].ndim == out.ndim and not vector:
            _raise(code, f"i{k}.shape != out.shape", "ValueError", "shape mismatch in a parameter")
        params.append(f"p{k}")
        code(f"p{k} = i{k}.flatten()")
    atol = rng.CHOICE_ATOL.get(in_types[-1].dtype)
    code(_CALLS[op.kind].format(p=params, replace=op.replace, atol=atol), "return st, out")
    return code.text()
