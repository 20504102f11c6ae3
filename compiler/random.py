"""``fg.RandomStream``: seeded random draws inside compiled functions.

Each draw a stream makes has a generator state of its own: a shared variable (a uint64
vector, see ``fusegraph.ops.random``) whose ``default_update`` is the state the draw
advances it to. A function that computes the draw assigns that update after each
successful call, with no ``updates`` entry needed, so consecutive calls give fresh draws,
and every function using the stream shares its state. The states are seeded in creation
order from one ``SeedSequence``: ``stream.seed(s)`` puts every one of them back where a
stream seeded with ``s`` starts, so the same calls reproduce the same draws.

``normal`` and ``uniform`` are written as ``loc + scale * z`` and ``low + (high - low) * u``
around standard draws, so their gradients w.r.t. the parameters are the reparameterisation
gradients; the other draws' parameters get a ``NullTypeGradError`` from ``fg.grad``.
"""

from __future__ import annotations

import numpy as np

from fusegraph.graph import Variable, as_tensor
from fusegraph.ops.checks import check_parameter
from fusegraph.ops.elemwise import add, cast, ge, mul, sub
from fusegraph.ops.indexing import getitem
from fusegraph.ops.random import KINDS, VECTOR_PARAMS, RandomVariable, state_array
from fusegraph.ops.shape_ops import as_shape_vector, broadcast_to, shape, shape_i
from fusegraph.shared import shared
from fusegraph.types import is_float, is_int


class RandomStream:
    """A source of random draws for graphs, seeded with ``seed`` (an int, or None for
    fresh OS entropy).

    Every method returns a symbolic draw. ``size`` may be None (the parameters' broadcast
    shape, or one value), an int, or a tuple of ints and 0-d int variables such as
    ``x.shape[0]``; parameters may be symbolic and broadcast to ``size``.
    """

    def __init__(self, seed=None):
        self._seed_sequence = np.random.SeedSequence(seed)
        self.states: list = []

    def seed(self, seed) -> None:
        """Reseed every state this stream has made, as a new ``RandomStream(seed)`` making
        the same draws in the same order would."""
        self._seed_sequence = np.random.SeedSequence(seed)
        for var in self.states:
            var.set_value(state_array(self._seed_sequence.spawn(1)[0]))

    # ---------------------------------------------------------------- distributions

    def uniform(self, low=0.0, high=1.0, size=None, dtype="float64"):
        """Draws uniform on ``[low, high)``."""
        low, high = _float(low), _float(high)
        u = self._draw("uniform", self._size(size, "uniform", low, high), ())
        return cast(add(low, mul(sub(high, low), u)), dtype)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype="float64"):
        """Draws from the normal distribution with mean ``loc`` and standard deviation
        ``scale`` (ValueError when run with a negative ``scale``, as NumPy)."""
        loc, scale = _float(loc), _float(scale)
        scale = check_parameter(scale, ge(scale, 0.0), "normal: scale < 0")
        z = self._draw("normal", self._size(size, "normal", loc, scale), ())
        return cast(add(loc, mul(scale, z)), dtype)

    def bernoulli(self, p, size=None):
        """int64 draws that are 1 with probability ``p``, else 0."""
        p = _float(p)
        size = self._size(size, "bernoulli", p)
        return self._draw("bernoulli", size, (p,))

    def binomial(self, n, p, size=None):
        """int64 numbers of successes in ``n`` trials of probability ``p``."""
        n, p = cast(as_tensor(n), "int64"), _float(p)
        size = self._size(size, "binomial", n, p)
        return self._draw("binomial", size, (n, p))

    def integers(self, low, high=None, size=None):
        """int64 draws uniform on ``[low, high)`` (on ``[0, low)`` when ``high`` is None)."""
        if high is None:
            low, high = 0, low
        low, high = cast(as_tensor(low), "int64"), cast(as_tensor(high), "int64")
        size = self._size(size, "integers", low, high)
        return self._draw("integers", size, (low, high))

    def choice(self, a, size=None, replace=True, p=None):
        """Draws from ``a``: an int ``n`` (draw from ``range(n)``) or a tensor (draw its
        entries along axis 0), uniformly or with probabilities ``p``, with or without
        replacement (NumPy's ``Generator.choice``)."""
        a = as_tensor(a)
        n = a if a.ndim == 0 else shape_i(a, 0)
        if not is_int(n.dtype):
            raise TypeError(f"choice: a must be an int or a tensor, got {a.type}")
        size = as_shape_vector((), "choice") if size is None else as_shape_vector(size, "choice")
        if p is None:
            idx = self._draw("choice", size, (cast(n, "int64"),), replace)
        else:
            p = _float(p)
            if p.ndim != 1:
                raise ValueError(f"choice: p must be a vector, got {p.type}")
            idx = self._draw("weighted_choice", size, (cast(n, "int64"), p), replace)
        return idx if a.ndim == 0 else getitem(a, idx)

    def permutation(self, x):
        """A random permutation of ``range(x)`` for an int ``x``, else of ``x`` along
        axis 0."""
        x = as_tensor(x)
        n = cast(x if x.ndim == 0 else shape_i(x, 0), "int64")
        perm = self._draw("permutation", as_shape_vector((n,), "permutation"), (n,))
        return perm if x.ndim == 0 else getitem(x, perm)

    # ---------------------------------------------------------------- helpers

    def _draw(self, kind, size, params, replace=True) -> Variable:
        # the kernels read parameters 0-d, of the draw's shape, or vectors of their own
        names = KINDS[kind][0]
        params = tuple(
            p if p.ndim == 0 or (kind, name) in VECTOR_PARAMS else broadcast_to(p, size)
            for name, p in zip(names, params)
        )
        state = shared(state_array(self._seed_sequence.spawn(1)[0]), f"rng{len(self.states)}")
        self.states.append(state)
        new_state, value = RandomVariable(kind, replace)(state, size, *params)
        state.default_update = new_state
        return value

    def _size(self, size, what, *params) -> Variable:
        """The shape vector of a draw: ``size``, or the parameters' broadcast shape."""
        if size is not None:
            return as_shape_vector(size, what)
        if all(p.ndim == 0 for p in params):
            return as_shape_vector((), what)
        total = params[0]
        for p in params[1:]:
            total = add(total, p)
        return shape(total)


def _float(value) -> Variable:
    value = as_tensor(value)
    return value if is_float(value.dtype) else cast(value, "float64")


__all__ = ["RandomStream"]
