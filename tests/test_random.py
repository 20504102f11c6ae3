"""``fg.RandomStream``: draws inside compiled functions on both backends -- the
distributions (moments and frequencies of large samples, fixed seeds, tight bounds), state
that advances by itself and reseeds reproducibly, gradients, rewrites that leave draws
alone, errors, and NumPy's PCG64 reproduced exactly by the Numba generator."""

import numpy as np
import pytest

import fusegraph as fg
from fusegraph.backends.numba import rng as nb_rng
from fusegraph.ops.random import RandomVariable, _pack, generator, state_array

N = 200_000  # draws per distribution: a mean is within 5 sd of its expectation


def _within(sample, mean, var):
    sample = np.asarray(sample, dtype=float)
    sd = np.sqrt(var / sample.size)
    assert abs(sample.mean() - mean) < 5 * sd, (sample.mean(), mean)
    # the variance of a sample variance is about 2 var**2 / n for these (light) tails
    assert abs(sample.var() - var) < 5 * np.sqrt(3 * var**2 / sample.size) + 1e-12


def _frequencies(sample, probs):
    counts = np.bincount(np.asarray(sample).ravel(), minlength=len(probs)) / np.size(sample)
    sd = np.sqrt(np.asarray(probs) * (1 - np.asarray(probs)) / np.size(sample))
    np.testing.assert_array_less(np.abs(counts - probs), 5 * sd + 1e-12)


@pytest.fixture(scope="module", params=["py", "numba"])
def draws(request):
    """One function per backend drawing every distribution (one compile each)."""
    srng = fg.RandomStream(2024)
    n = fg.scalar("n", dtype="int64")
    loc, probs = fg.vector("loc"), fg.vector("probs")
    outs = {
        "uniform": srng.uniform(-1.0, 3.0, size=(n,)),
        "normal": srng.normal(loc, 2.0),
        "bernoulli": srng.bernoulli(0.3, size=(n,)),
        "binomial_small": srng.binomial(10, 0.25, size=(n,)),
        "binomial_large": srng.binomial(1000, 0.7, size=(n // 10,)),
        "integers": srng.integers(-3, 4, size=(n,)),
        "choice": srng.choice(5, size=(n,)),
        "weighted": srng.choice(4, size=(n,), p=probs),
        "no_replace": srng.choice(10, size=(3,), replace=False),
        "weighted_no_replace": srng.choice(4, size=(1,), replace=False, p=probs),
        "permutation": srng.permutation(6),
    }
    f = fg.function([n, loc, probs], list(outs.values()), mode=request.param)
    return srng, f, list(outs)


def _sample(draws, calls=1, n=N):
    _, f, names = draws
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    runs = [f(n, np.full(n, 5.0), probs) for _ in range(calls)]
    return {k: [r[i] for r in runs] for i, k in enumerate(names)}


def test_moments_and_frequencies(draws):
    s = {k: v[0] for k, v in _sample(draws).items()}
    assert s["uniform"].min() >= -1.0 and s["uniform"].max() < 3.0
    _within(s["uniform"], 1.0, 16 / 12)
    _within(s["normal"], 5.0, 4.0)
    _frequencies(s["bernoulli"], [0.7, 0.3])
    _within(s["binomial_small"], 2.5, 10 * 0.25 * 0.75)
    _within(s["binomial_large"], 700.0, 1000 * 0.7 * 0.3)
    assert s["integers"].min() == -3 and s["integers"].max() == 3
    _frequencies(s["integers"] + 3, [1 / 7] * 7)
    _frequencies(s["choice"], [0.2] * 5)
    _frequencies(s["weighted"], [0.1, 0.2, 0.3, 0.4])
    for k in ("bernoulli", "binomial_small", "integers", "choice", "weighted"):
        assert s[k].dtype == np.int64 and s[k].shape == (N,)


def test_draws_without_replacement_and_permutations(draws):
    s = _sample(draws, calls=400, n=20)
    for picked in s["no_replace"]:
        assert len(set(picked.tolist())) == 3 and 0 <= picked.min() and picked.max() < 10
    for perm in s["permutation"]:
        assert sorted(perm.tolist()) == list(range(6))
    _frequencies(np.array([p[0] for p in s["permutation"]]), [1 / 6] * 6)
    # the first pick of a weighted draw without replacement follows the weights
    _frequencies(np.array([w[0] for w in s["weighted_no_replace"]]), [0.1, 0.2, 0.3, 0.4])


def test_state_advances_reseeds_and_is_shared(draws):
    srng, f, names = draws
    args = (5, np.zeros(5), np.full(4, 0.25))
    srng.seed(2024)
    first, second = f(*args), f(*args)
    assert not np.array_equal(first[0], second[0])  # fresh draws on every call
    srng.seed(2024)
    again = f(*args)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    u = names.index("uniform")
    g = fg.function([f.inputs[0]], f.outputs[u], mode=f.mode)  # the same draw, same state
    srng.seed(2024)
    np.testing.assert_array_equal(g(5), first[u])  # g advances the state f reads
    np.testing.assert_array_equal(f(*args)[u], second[u])


def test_numba_generator_is_numpys_pcg64():
    state = state_array(7)
    reference = generator(state)
    raw = [int(nb_rng.next64(state)) for _ in range(1000)]
    assert raw == [int(v) for v in reference.bit_generator.random_raw(1000)]
    state = state_array(8)
    ours = [nb_rng.next_double(state) for _ in range(100)]
    np.testing.assert_array_equal(ours, generator(state_array(8)).random(100))


def test_normal_draws_are_numpys_in_both_backends():
    """NumPy's ziggurat: the same numbers as ``Generator.normal`` from the same state (tail
    draws included: 2e5 samples reach the base strip's tail about 100 times), and the state
    left where NumPy leaves it."""
    for seed, n in ((0, 200_000), (3, 1), (4, 7)):
        state = state_array(seed)
        out = np.empty(n)
        nb_rng.fill_normal(state, out)
        reference = generator(state_array(seed))
        np.testing.assert_array_equal(out, reference.standard_normal(n))
        assert nb_rng.next64(state) == reference.bit_generator.random_raw()
    loc = fg.matrix("loc")
    results = []
    for mode in ("py", "numba"):
        srng = fg.RandomStream(seed=11)
        f = fg.function([loc], [srng.normal(loc, 0.5), srng.normal(size=(0,))], mode=mode)
        results.append(f(np.arange(6.0).reshape(2, 3)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1].shape == results[1][1].shape == (0,)


def _numpy_state(reference):
    return _pack(reference.bit_generator.state)


#: (name, sampler call on (state, out), NumPy's draw on (generator, size)): every sampler at
#: the parameters that choose its paths (inversion and BTPE; 32- and 64-bit, full and empty
#: integer ranges; Floyd's sampling, the tail shuffle and replacement; rounds of weighted
#: draws; float32 probabilities)
_P4 = np.array([0.1, 0.2, 0.3, 0.4])
_P50 = np.random.default_rng(1).dirichlet(np.ones(50))
_SAMPLERS = [
    *[
        (
            f"binomial({n}, {p})",
            lambda st, out, n=n, p=p: nb_rng.fill_binomial(st, np.array([n]), np.array([p]), out),
            lambda g, size, n=n, p=p: g.binomial(n, p, size),
        )
        for n, p in [
            (1, 0.3),
            (1, 0.7),
            (1, 0.5),
            (1, 0.0),
            (1, 1.0),
            (10, 0.2),
            (50, 0.5),
            (60, 0.9),
            (3, 0.999),
            (7, 1e-9),
            (61, 0.5),
            (200, 0.2),
            (1000, 0.7),
            (10**6, 0.3),
            (10**12, 0.4),
            (2**40, 1e-6),
        ]
    ],
    (
        "bernoulli(0.3)",
        lambda st, out: nb_rng.fill_bernoulli(st, np.array([0.3]), out),
        lambda g, size: g.binomial(1, 0.3, size),
    ),
    *[
        (
            f"integers({lo}, {hi})",
            lambda st, out, lo=lo, hi=hi: nb_rng.fill_integers(
                st, np.array([lo]), np.array([hi]), out
            ),
            lambda g, size, lo=lo, hi=hi: g.integers(lo, hi, size, dtype=np.int64),
        )
        for lo, hi in [
            (7, 8),
            (-3, 4),
            (0, 10**6),
            (0, 2**32 - 1),
            (0, 2**32),
            (0, 2**32 + 1),
            (5, 2**40),
            (-(2**63), 2**63 - 1),
            (-(2**63), 0),
        ]
    ],
    *[
        (
            f"choice({n})",
            lambda st, out, n=n: nb_rng.fill_choice(st, n, True, out),
            lambda g, size, n=n: g.choice(n, size),
        )
        for n in (5, 1, 2**33)
    ],
    *[
        (
            f"choice({len(p)}, p={p.dtype})",
            lambda st, out, p=p: nb_rng.fill_weighted_choice(
                st, len(p), p, True, nb_rng.CHOICE_ATOL[p.dtype.name], out
            ),
            lambda g, size, p=p: g.choice(len(p), size, True, p),
        )
        for p in (_P4, _P4.astype("float32"), _P50)
    ],
]


@pytest.mark.parametrize("name, ours, numpys", _SAMPLERS, ids=[s[0] for s in _SAMPLERS])
def test_numba_samplers_are_numpys(name, ours, numpys):
    """Each sampler gives ``Generator``'s numbers from the same state at several sizes, and
    leaves the state (the buffered 32-bit half included) where NumPy leaves it; one case
    starts with a half already buffered."""
    for seed, size in ((0, 1), (1, 7), (2, 2000)):
        state = state_array(seed)
        reference = generator(state)
        if seed == 1:  # a 32-bit draw buffers the other half of a 64-bit output
            nb_rng.next32(state)
            reference.integers(0, 3)
        out = np.empty(size, np.int64)
        ours(state, out)
        np.testing.assert_array_equal(out, numpys(reference, size), err_msg=f"{name} {size}")
        np.testing.assert_array_equal(state, _numpy_state(reference), err_msg=name)


def test_choice_without_replacement_takes_numpys_paths():
    """Floyd's sampling for small samples and the tail shuffle for a large sample of a large
    population (NumPy switches at 10000 and n // 50), sampling all of it, and a population
    past 2**32."""
    for n, size in ((10, 10), (10, 0), (20000, 400), (20000, 401), (20000, 20000), (2**33, 5)):
        state = state_array(n + size)
        reference = generator(state)
        out = np.empty(size, np.int64)
        nb_rng.fill_choice(state, n, False, out)
        np.testing.assert_array_equal(out, reference.choice(n, size, False), err_msg=f"{n} {size}")
        np.testing.assert_array_equal(state, _numpy_state(reference))


def test_weighted_choice_without_replacement_is_numpys():
    """Rounds of weighted draws, each zeroing the probabilities already drawn, down to the
    last non-zero one."""
    for p in (_P4, np.array([0.0, 0.5, 0.0, 0.5]), _P50):
        for size in (1, 2, np.count_nonzero(p)):
            state = state_array(size)
            reference = generator(state)
            out = np.empty(size, np.int64)
            nb_rng.fill_weighted_choice(state, len(p), p, False, nb_rng.CHOICE_ATOL["float64"], out)
            np.testing.assert_array_equal(out, reference.choice(len(p), size, False, p))
            np.testing.assert_array_equal(state, _numpy_state(reference))


def test_permutations_are_numpys():
    for n in (0, 1, 2, 10, 100_000):
        state = state_array(n)
        reference = generator(state)
        out = np.empty(n, np.int64)
        nb_rng.fill_permutation(state, out)
        np.testing.assert_array_equal(out, reference.permutation(n))
        np.testing.assert_array_equal(state, _numpy_state(reference))


def test_every_draw_is_the_same_in_both_backends():
    """One stream, every method, symbolic and broadcast parameters of several dtypes: the
    two backends give the same numbers call after call, and the first call's are NumPy's
    from the stream's initial states."""
    n, k = fg.scalar("n", dtype="int64"), fg.vector("k", dtype="int32")
    p32, probs, x = fg.vector("p32", dtype="float32"), fg.vector("probs"), fg.matrix("x")
    results, states = [], []
    for mode in ("py", "numba"):
        srng = fg.RandomStream(seed=31)
        outs = [
            srng.uniform(-1.0, 3.0, size=(n,)),
            srng.normal(size=(2, n)),
            srng.bernoulli(p32),
            srng.binomial(k, 0.4),
            srng.binomial(5000, p32, size=(2, 3)),
            srng.integers(-5, k),
            srng.integers(2**40, size=(n,)),
            srng.choice(7, size=(n,)),
            srng.choice(x, size=(2,), replace=False),
            srng.choice(4, size=(n,), p=probs),
            srng.choice(4, size=(3,), replace=False, p=probs),
            srng.permutation(n),
            srng.permutation(x),
        ]
        f = fg.function([n, k, p32, probs, x], outs, mode=mode)
        states.append([s.get_value() for s in srng.states])
        args = (
            50,
            np.array([3, 40, 2**20], "int32"),
            np.array([0.1, 0.5, 0.9], "float32"),
            _P4,
            np.arange(12.0).reshape(6, 2),
        )
        results.append([f(*args) for _ in range(3)])
    for call_py, call_numba in zip(*results):
        for got, want in zip(call_numba, call_py):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    first = results[0][0]
    np.testing.assert_array_equal(first[7], generator(states[0][7]).choice(7, 50))
    np.testing.assert_array_equal(first[11], generator(states[0][11]).permutation(50))


@pytest.mark.parametrize("mode", ["py", "numba"])
def test_symbolic_size_and_broadcast_parameters(mode):
    srng = fg.RandomStream(1)
    x, lo = fg.matrix("x"), fg.vector("lo")
    u = srng.uniform(lo, lo + 1.0, size=(x.shape[0], lo.shape[0]))
    k = srng.integers(0, 10, size=x.shape[1])
    f = fg.function([x, lo], [u, k], mode=mode)
    uv, kv = f(np.zeros((3, 2)), np.array([0.0, 10.0, 20.0, 30.0]))
    assert uv.shape == (3, 4) and kv.shape == (2,)
    assert np.all((uv >= [0, 10, 20, 30]) & (uv < [1, 11, 21, 31]))


def test_reparameterised_gradients():
    srng = fg.RandomStream(3)
    loc, scale, low, high = fg.scalar("loc"), fg.scalar("scale"), fg.scalar("a"), fg.scalar("b")
    z = srng.normal(loc, scale, size=(50,))
    u = srng.uniform(low, high, size=(50,))
    grads = fg.grad(z.sum() + (u * u).sum(), [loc, scale, low, high])
    f = fg.function([loc, scale, low, high], [z, u, *grads], mode="py")
    zv, uv, g_loc, g_scale, g_low, g_high = f(1.0, 2.0, -1.0, 3.0)
    std_u = (uv + 1.0) / 4.0
    np.testing.assert_allclose(g_loc, 50.0)
    np.testing.assert_allclose(g_scale, ((zv - 1.0) / 2.0).sum())
    np.testing.assert_allclose(g_low, (2 * uv * (1 - std_u)).sum())
    np.testing.assert_allclose(g_high, (2 * uv * std_u).sum())


def test_other_draws_have_no_gradient_wrt_their_parameters():
    srng = fg.RandomStream(0)
    p = fg.scalar("p")
    weights = fg.vector("w")
    for draw in (
        srng.bernoulli(p, size=3),
        srng.binomial(5, p, size=3),
        srng.choice(3, size=2, p=weights),
    ):
        wrt = weights if draw.owner.op.kind == "weighted_choice" else p
        with pytest.raises(fg.NullTypeGradError, match="not differentiable"):
            fg.grad((draw * 1.0).sum() + wrt.sum(), wrt)


def test_rewrites_never_merge_or_fold_draws():
    srng = fg.RandomStream(5)
    a, b = srng.uniform(size=(4,)), srng.uniform(size=(4,))  # same op, same parameters
    f = fg.function([], [a, b, a - b])
    draws = [n for n in f.graph.toposort() if isinstance(n.op, RandomVariable)]
    assert len(draws) == 2
    av, bv, d = f()
    assert not np.array_equal(av, bv)
    np.testing.assert_allclose(d, av - bv)
    assert not np.array_equal(f()[0], av)  # constant parameters: still drawn on each call


@pytest.mark.parametrize("mode", ["py", "numba"])
def test_bad_parameters_raise_naming_the_line(mode):
    srng = fg.RandomStream(0)
    p = fg.scalar("p")
    f = fg.function([p], srng.bernoulli(p, size=(3,)), mode=mode)
    state = srng.states[0].get_value()
    with pytest.raises(ValueError, match="test_random.py"):
        f(1.5)
    np.testing.assert_array_equal(srng.states[0].get_value(), state)  # no state advanced
    assert f(1.0).tolist() == [1, 1, 1]
    s = fg.vector("s")
    g = fg.function([s], srng.normal(1.0, s), mode=mode)
    state = srng.states[1].get_value()
    with pytest.raises(ValueError, match=r"(?s)normal: scale < 0.*test_random.py"):
        g(np.array([1.0, -0.5]))
    np.testing.assert_array_equal(srng.states[1].get_value(), state)
    assert g(np.zeros(2)).tolist() == [1.0, 1.0]  # scale 0 is allowed, as in NumPy


def test_njit_takes_and_returns_the_state():
    srng = fg.RandomStream(9)
    x = fg.vector("x")
    f = fg.function([x], x + srng.uniform(size=(3,)))
    state = srng.states[0].get_value()
    out, new_state = f.njit(np.zeros(3), state)
    np.testing.assert_array_equal(out, generator(state).random(3))
    assert not np.array_equal(new_state, state) and new_state.dtype == np.uint64


def test_debug_mode_compares_drawn_values(monkeypatch):
    """Debug mode compares the backends' draws in full (a draw off by one raises) and
    returns NumPy's numbers."""
    srng = fg.RandomStream(11)
    x = fg.vector("x")
    draws = [srng.normal(size=(3,)), srng.integers(0, 2**40, size=(3,)), srng.permutation(5)]
    f = fg.function([x], [(x * draws[0]).sum(), *draws[1:]], mode="debug")
    states = [s.get_value() for s in srng.states]
    total, ints, perm = f(np.ones(3))
    np.testing.assert_allclose(total, generator(states[0]).standard_normal(3).sum())
    np.testing.assert_array_equal(ints, generator(states[1]).integers(0, 2**40, 3))
    np.testing.assert_array_equal(perm, generator(states[2]).permutation(5))
    impl = RandomVariable.impl

    def off_by_one(op, *args):
        state, value = impl(op, *args)
        return state, value + 1

    monkeypatch.setattr(RandomVariable, "impl", off_by_one)
    with pytest.raises(fg.DebugModeError, match="RandomVariable"):
        f(np.ones(3))


@pytest.mark.parametrize("mode", ["py", "numba"])
def test_edge_sizes_parameters_and_layouts(mode):
    """0-size draws, strided and broadcast parameters, int parameters, and the parameter
    values whose draws are certain (p of 0 or 1, a range of one integer, one choice)."""
    srng = fg.RandomStream(4)
    p, n, k = fg.vector("p"), fg.vector("n", dtype="int32"), fg.scalar("k", dtype="int64")
    outs = [
        srng.uniform(size=(0,)),
        srng.normal(size=(2, 0)),
        srng.bernoulli(p),
        srng.binomial(n, p),
        srng.binomial(n, 1, size=(2, 3)),  # int p; n broadcast along a new axis
        srng.integers(k, k + 1, size=(4,)),
        srng.choice(1, size=(3,)),
        srng.permutation(k - k),
    ]
    f = fg.function([p, n, k], outs, mode=mode)
    p_strided = np.array([0.0, 9.0, 1.0, 9.0, 0.0])[::2]
    n_strided = np.array([5, -1, 7, -1, 9], dtype="int32")[::2]
    got = f(p_strided, n_strided, 6)
    assert got[0].shape == (0,) and got[1].shape == (2, 0)
    assert got[2].tolist() == [0, 1, 0] and got[3].tolist() == [0, 7, 0]
    assert got[4].tolist() == [[5, 7, 9], [5, 7, 9]]
    assert got[5].tolist() == [6] * 4 and got[6].tolist() == [0, 0, 0]
    assert got[7].shape == (0,) and got[7].dtype == np.int64
