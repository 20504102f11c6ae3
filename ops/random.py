"""Random draws: the ``RandomVariable`` op, one draw from a distribution with an explicit
generator state.

A state is a ``uint64`` vector of ``STATE_WORDS`` words holding a PCG64 generator (NumPy's
default bit generator): the 128-bit state, the 128-bit increment, and NumPy's buffered
32-bit half-word. A draw takes a state and returns the advanced state with the values, so
graphs stay functional: rewrites see two draws from two states as different nodes, never
fold one (a state is a shared variable, never a constant), and a function that draws
assigns the advanced state back (``fg.RandomStream`` arranges that). ``impl`` draws with
NumPy's ``Generator``; the Numba backend runs NumPy's PCG64 and NumPy's samplers
(``backends/numba/rng.py``), so both backends give the same numbers from the same state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusegraph.graph import Apply, NullGrad, Op, as_tensor
from fusegraph.ops.shape_ops import _int_vector, _target_entries
from fusegraph.types import TensorType, is_float, is_int

#: Words of a generator state: state (high, low), increment (high, low), has_uint32,
#: uinteger (NumPy's buffered half of a 64-bit output).
STATE_WORDS = 6
_MASK = (1 << 64) - 1

#: kind -> (parameter names, dtype of the draw). Every draw has the shape of its ``size``
#: input; parameters are 0-d or already broadcast to that shape.
KINDS = {
    "uniform": ((), "float64"),  # [0, 1)
    "normal": ((), "float64"),  # standard normal
    "bernoulli": (("p",), "int64"),
    "binomial": (("n", "p"), "int64"),
    "integers": (("low", "high"), "int64"),  # [low, high)
    "choice": (("n",), "int64"),  # indices into range(n), uniformly
    "weighted_choice": (("n", "p"), "int64"),  # indices into range(n) with probabilities p
    "permutation": (("n",), "int64"),  # a permutation of range(n); size is [n]
}
#: The parameters that are vectors of their own length (one probability per element of the
#: population), not 0-d or of the draw's shape.
VECTOR_PARAMS = {("weighted_choice", "p")}


def state_array(seed) -> np.ndarray:
    """A fresh state from ``seed`` (an int, a ``SeedSequence`` or None for OS entropy)."""
    return _pack(np.random.PCG64(seed).state)


def _pack(state: dict) -> np.ndarray:
    s, inc = state["state"]["state"], state["state"]["inc"]
    words = [s >> 64, s & _MASK, inc >> 64, inc & _MASK, state["has_uint32"], state["uinteger"]]
    return np.array(words, dtype="uint64")


def generator(state: np.ndarray) -> np.random.Generator:
    """A NumPy ``Generator`` positioned at ``state`` (a copy: ``state`` is not changed)."""
    w = [int(v) for v in state]
    bit_generator = np.random.PCG64()
    bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4],
        "uinteger": w[5],
    }
    return np.random.Generator(bit_generator)


@dataclass(frozen=True)
class RandomVariable(Op):
    """``(state, size, *params) -> (new state, draw)``: a draw of shape ``size`` (an int64
    vector of static length) from the distribution ``kind`` (see ``KINDS``); ``replace``
    says whether a ``choice`` may repeat an index."""

    kind: str
    replace: bool = True
    vjp_without_grads = True  # integer draws leave their parameters' gradient undefined

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"RandomVariable: unknown kind {self.kind!r}; one of {list(KINDS)}")

    def make_node(self, state, size, *params) -> Apply:
        names, dtype = KINDS[self.kind]
        state, size = as_tensor(state), _int_vector(self, size)
        if state.dtype != "uint64" or state.ndim != 1:
            raise TypeError(f"{self}: the state must be a uint64 vector, got {state.type}")
        if len(params) != len(names):
            raise TypeError(f"{self}: takes parameters {names}, got {len(params)}")
        shape = _target_entries(self, size)
        params = [as_tensor(p) for p in params]
        for name, p in zip(names, params):
            ndims = (1,) if (self.kind, name) in VECTOR_PARAMS else (0, len(shape))
            if not (is_int(p.dtype) or is_float(p.dtype)) or p.ndim not in ndims:
                raise TypeError(
                    f"{self}: parameter {name} must be a number with {' or '.join(map(str, ndims))}"
                    f" dims, got {p.type}"
                )
        outputs = [TensorType("uint64", (STATE_WORDS,)), TensorType(dtype, shape)]
        return Apply(self, [state, size, *params], outputs)

    def impl(self, state, size, *params):
        gen = generator(state)
        shape = tuple(int(s) for s in size)
        if self.kind == "uniform":
            value = gen.random(shape)
        elif self.kind == "normal":
            value = gen.standard_normal(shape)
        elif self.kind == "bernoulli":
            value = gen.binomial(1, params[0], shape)
        elif self.kind == "binomial":
            value = gen.binomial(*params, shape)
        elif self.kind == "integers":
            value = gen.integers(params[0], params[1], shape, dtype=np.int64)
        elif self.kind == "choice":
            value = gen.choice(int(params[0]), shape, self.replace)
        elif self.kind == "weighted_choice":
            value = gen.choice(int(params[0]), shape, self.replace, params[1])
        else:  # permutation
            value = gen.permutation(int(params[0]))
        new_state = _pack(gen.bit_generator.state)
        return new_state, np.asarray(value, dtype=KINDS[self.kind][1]).reshape(shape)

    def vjp(self, inputs, outputs, grads):
        """None for the state and size; NullGrad for the parameters: a draw is not a
        differentiable function of them (``RandomStream.normal``/``uniform`` are, written
        as ``loc + scale * z``)."""
        reason = f"{self}: a draw is not differentiable w.r.t. its parameters"
        return [None, None] + [NullGrad(reason)] * (len(inputs) - 2)


__all__ = ["KINDS", "STATE_WORDS", "VECTOR_PARAMS", "RandomVariable", "generator", "state_array"]
