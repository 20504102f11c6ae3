"""Gradients as values vs gradients accumulated in state (PyTorch's autograd.grad vs backward).

PyTorch offers two ways to get a gradient. `torch.autograd.grad(loss, params)` is
functional: it returns the gradients and changes nothing. `loss.backward()` is stateful: it
*adds* the gradient into `p.grad`, so calling it twice (retain_graph=True) doubles
`p.grad`; you call `optimizer.step()` and `optimizer.zero_grad()` yourself.

fusegraph's `fg.grad` is the functional kind: it returns new graph variables and mutates
nothing. Accumulation, when you want it, is state you declare yourself: a shared variable
and an `updates=` rule. This script shows

1. `fg.grad` is pure: calling it twice gives equal graphs, the model graph and the
   parameters are untouched, and a compiled gradient returns the same numbers every call;
2. accumulating minibatch gradients in a shared `acc` (`acc <- acc + g`), then applying and
   zeroing it, reproduces one full-batch gradient step (checked in NumPy);
3. why the functional form suits several threads training one model (the "Hogwild!" style):
   a gradient function without updates runs in 4 threads at once (compiled code releases
   the GIL) and every thread gets exactly its own minibatch's gradient; the shared
   accumulator instead needs a lock, and fusegraph's functions with updates hold one, so
   4 threads x K accumulate calls add up exactly. A hand-written read-modify-write without
   the lock loses contributions.

    python examples/grad_vs_accumulation.py
"""

import threading

import numpy as np

import fusegraph as fg

N, D, BATCH = 256, 5, 32  # 256 samples of 5 features, in 8 minibatches of 32
LR = 0.5
THREADS, CALLS = 4, 200  # the threaded part: 4 threads, 200 calls each


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    y = (X @ rng.normal(size=D) + 0.3 * rng.normal(size=N) > 0).astype("float64")
    w0 = 0.1 * rng.normal(size=D)  # a non-zero starting point, so the gradients are generic
    return X, y, w0


def numpy_grad(X, y, w, b, n):
    """Hand-written gradient of sum(binary cross-entropy) / n for logistic regression."""
    r = 1 / (1 + np.exp(-(X @ w + b))) - y
    return X.T @ r / n, r.sum() / n


def run_threads(work):
    """Run work(t) in THREADS threads that start together; return their results by t."""
    results = [None] * THREADS
    start = threading.Barrier(THREADS)

    def target(t):
        start.wait()
        results[t] = work(t)

    threads = [threading.Thread(target=target, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


def main():
    X_data, y_data, w0 = make_data()
    batches = [slice(i, i + BATCH) for i in range(0, N, BATCH)]
    out = {}

    # The model: logistic regression. The loss is the *sum* of the per-sample losses divided
    # by n, an input: with n = the minibatch size it is the minibatch mean; with n = N the
    # minibatch gradients add up to the full-batch gradient (PyTorch users write
    # `loss = losses.sum() / N` before `backward()` for the same reason).
    X, y, n = fg.matrix("X"), fg.vector("y"), fg.scalar("n")
    w = fg.shared(w0, "w")
    b = fg.shared(0.1, "b")
    loss = fg.binary_crossentropy(fg.sigmoid(X.dot(w) + b), y).sum() / n

    # 1. fg.grad is a function from graphs to graphs. Two calls build two separate but equal
    #    graphs; the loss graph and the parameters are left exactly as they were.
    before = fg.pprint(loss)
    gw, gb = fg.grad(loss, [w, b])
    gw_again, gb_again = fg.grad(loss, [w, b])
    same_graph = fg.pprint(gw) == fg.pprint(gw_again) and fg.pprint(gb) == fg.pprint(gb_again)
    print("1. fg.grad is functional")
    print(
        f"   two calls: new variables each time ({gw is not gw_again}), equal graphs ({same_graph})"
    )
    print(f"   loss graph unchanged: {fg.pprint(loss) == before}")

    # One compiled function returns the gradients; it has no updates, so it is pure too:
    # calling it twice gives the same numbers (backward() twice would double p.grad).
    grads = fg.function([X, y, n], [gw, gb], name="grads")
    first = grads(X_data[batches[0]], y_data[batches[0]], BATCH)
    second = grads(X_data[batches[0]], y_data[batches[0]], BATCH)
    unchanged = np.array_equal(w.get_value(), w0) and float(b.get_value()) == 0.1
    repeat_equal = all(np.array_equal(a, c) for a, c in zip(first, second))
    print(f"   compiled gradient twice: identical ({repeat_equal}); w, b untouched ({unchanged})")
    out.update(same_graph=same_graph, repeat_equal=repeat_equal, params_unchanged=unchanged)
    out["grad_batch0"] = first

    # 2. The accumulating style, spelled out with state: shared accumulators (PyTorch's
    #    p.grad), a step that adds one minibatch's gradient to them, and a step that applies
    #    them and zeroes them (optimizer.step() + optimizer.zero_grad()). `calls` counts the
    #    accumulate calls; part 3 uses it.
    acc_w = fg.shared(np.zeros(D), "acc_w")
    acc_b = fg.shared(0.0, "acc_b")
    calls = fg.shared(0, "calls")
    accumulate = fg.function(
        [X, y, n],
        loss,
        updates={acc_w: acc_w + gw, acc_b: acc_b + gb, calls: calls + 1},
        name="accumulate",
    )
    apply_and_zero = fg.function(
        [],
        [],
        updates={
            w: w - LR * acc_w,
            b: b - LR * acc_b,
            acc_w: fg.zeros_like(acc_w),
            acc_b: fg.zeros_like(acc_b),
            calls: fg.zeros_like(calls),
        },
        name="apply_and_zero",
    )

    for s in batches:  # n = N: each minibatch contributes its share of the full-batch mean
        accumulate(X_data[s], y_data[s], N)
    out["acc_w"], out["acc_b"] = acc_w.get_value(), float(acc_b.get_value())
    ref_w, ref_b = numpy_grad(X_data, y_data, w0, 0.1, N)
    gap = max(np.abs(out["acc_w"] - ref_w).max(), abs(out["acc_b"] - ref_b))
    print(f"\n2. accumulated over {len(batches)} minibatches of {BATCH}")
    print(f"   acc_w = {np.array2string(out['acc_w'], precision=6)}, acc_b = {out['acc_b']:.6f}")
    print(f"   max |acc - full-batch NumPy gradient| = {gap:.1e}")
    assert gap < 1e-12

    apply_and_zero()
    out["w_after"], out["b_after"] = w.get_value(), float(b.get_value())
    out["acc_after"] = (acc_w.get_value(), float(acc_b.get_value()), int(calls.get_value()))
    step_gap = np.abs(out["w_after"] - (w0 - LR * ref_w)).max()
    print(f"   after apply_and_zero: max |w - (w0 - lr * g_full)| = {step_gap:.1e}, acc = 0")
    assert step_gap < 1e-12 and not out["acc_after"][0].any() and out["acc_after"][1:] == (0, 0)

    # 3a. Several threads, one model. Each thread calls the *pure* gradient function on its
    #     own minibatch, CALLS times, while the others do the same. The compiled part of a
    #     call runs without the GIL, so calls from different threads overlap; each call
    #     returns fresh arrays, so no thread can see another's gradient. In Hogwild!-style
    #     training each thread would then apply its gradient to the shared parameters
    #     (without locking, by design).
    w_now, b_now = out["w_after"], out["b_after"]

    def own_gradients(t):
        s = batches[t]
        return [grads(X_data[s], y_data[s], BATCH) for _ in range(CALLS)]

    per_thread = run_threads(own_gradients)
    worst = 0.0
    for t, results in enumerate(per_thread):
        ref_w, ref_b = numpy_grad(X_data[batches[t]], y_data[batches[t]], w_now, b_now, BATCH)
        for g_w, g_b in results:
            worst = max(worst, np.abs(g_w - ref_w).max(), abs(float(g_b) - ref_b))
    print(f"\n3. {THREADS} threads x {CALLS} calls at once")
    print(f"   pure gradient function: max |thread's gradient - its NumPy gradient| = {worst:.1e}")
    assert worst < 1e-12
    out["thread_grads"] = [
        (np.array([g for g, _ in r]), np.array([float(g) for _, g in r])) for r in per_thread
    ]

    # 3b. The shared accumulator, from THREADS threads at once. `acc <- acc + g` is a
    #     read-modify-write: two threads that read the same old acc would each write
    #     "old + own g", and one contribution would be lost. fusegraph's functions with
    #     updates hold a lock from reading the shared values to assigning the new ones, so
    #     the calls serialise and every contribution lands. (The lock belongs to the
    #     function: don't run apply_and_zero concurrently with accumulate.)
    def accumulate_many(t):
        s = batches[t]
        for _ in range(CALLS):
            accumulate(X_data[s], y_data[s], BATCH)

    run_threads(accumulate_many)
    out["locked"] = (acc_w.get_value(), float(acc_b.get_value()), int(calls.get_value()))
    expected = [
        numpy_grad(X_data[batches[t]], y_data[batches[t]], w_now, b_now, BATCH)
        for t in range(THREADS)
    ]
    exp_w = CALLS * sum(g for g, _ in expected)
    exp_b = CALLS * sum(g for _, g in expected)
    rel = np.abs(out["locked"][0] - exp_w).max() / np.abs(exp_w).max()
    print(
        f"   accumulate (updates=, locked): {out['locked'][2]} of {THREADS * CALLS} calls counted,"
        f" max relative error of acc_w {rel:.1e}"
    )
    assert out["locked"][2] == THREADS * CALLS and rel < 1e-12
    assert abs(out["locked"][1] - exp_b) <= 1e-12 * abs(exp_b)
    acc_w.set_value(np.zeros(D))  # start the next demonstration from zero
    acc_b.set_value(0.0)
    calls.set_value(0)

    # The same accumulation written by hand, without the lock: read the state, compute the
    # gradient (the GIL is released meanwhile, so other threads read the same old state),
    # write back. Contributions go missing; how many varies from run to run.
    def racy_accumulate(t):
        s = batches[t]
        for _ in range(CALLS):
            old_w, old_b, old_n = acc_w.get_value(), acc_b.get_value(), calls.get_value()
            g_w, g_b = grads(X_data[s], y_data[s], BATCH)
            acc_w.set_value(old_w + g_w)
            acc_b.set_value(old_b + g_b)
            calls.set_value(old_n + 1)

    run_threads(racy_accumulate)
    counted = int(calls.get_value())
    out["racy_lost"] = THREADS * CALLS - counted
    print(
        f"   hand-written get_value/set_value, no lock: {counted} of {THREADS * CALLS} calls "
        f"counted ({out['racy_lost']} lost; varies from run to run)"
    )
    return out


if __name__ == "__main__":
    main()
