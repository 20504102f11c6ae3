"""The compile-scaling benchmark: cold compiles of real models (``benchmarks/models.py``) in
fresh processes with an empty cache, then warm (same cache, new process), against the
logistic-regression compile of the same run and JAX's ``jit`` of the same function.

    python -m benchmarks.compile_scaling [--only TEXT] [--no-jax] [--rounds N] [--write]

Each function reports its nodes, its distinct kernels, its compiled units (linked kernels
and the entry) by where their code came from, and the seconds in each phase
(``Function.compile_stats``). The host may be noisy: the workloads are measured in
``--rounds`` rounds (3), each target's ratio in every round (workload and reference of the
same round), and a target is judged on the median ratio. ``--write`` replaces this
benchmark's section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap

from benchmarks import models

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(_ROOT, "benchmarks", "RESULTS.md")
START, END = "<!-- compile-scaling:start -->", "<!-- compile-scaling:end -->"
#: The reference compiles (the benchmark suite's), by label.
REFERENCES = {"logistic regression": "logreg", "MLP step": "mlp"}

_FUSEGRAPH = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import fusegraph as fg
    t_import = time.perf_counter() - t0
    from benchmarks import models, suite
    rows = []
    if {label!r} in {references!r}:
        t = time.perf_counter()
        f, args = suite._compile_case("fusegraph numba", {references!r}[{label!r}])
        f(*args)
        functions = [("f", f, time.perf_counter() - t)]
    else:
        model = models.WORKLOADS[{label!r}]()
        functions = []
        for name, (inputs, outputs, updates) in model.functions.items():
            t = time.perf_counter()
            f = fg.function(inputs, outputs, updates=updates)
            f(*model.args)
            functions.append((name, f, time.perf_counter() - t))
    for name, f, seconds in functions:
        stats = f.compile_stats
        stats.pop("per_unit")
        header = f.source.splitlines()[0].split()
        rows.append(dict(function=name, seconds=seconds, nodes=int(header[2]),
                         kernels=int(header[4]), **stats))
    print(json.dumps(dict(imports=t_import, rows=rows)))
    """
)

_JAX = textwrap.dedent(
    """
    import json, time
    import jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    from benchmarks import models
    model = models.WORKLOADS[{label!r}]()
    t = time.perf_counter()
    fn, args = model.jax(jax, jnp)
    jax.block_until_ready(fn(*args))
    print(json.dumps(time.perf_counter() - t))
    """
)


def _run(script: str, env: dict) -> object:
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"benchmark process failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def measure(label: str, jax: bool = True) -> dict:
    """Cold (empty cache) and warm runs of ``label`` in fresh processes, and JAX's compile."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(
            os.environ,
            PYTHONPATH=_ROOT,
            FUSEGRAPH_CACHE_DIR=cache,
            NUMBA_CACHE_DIR=os.path.join(cache, "numba"),
            FUSEGRAPH_PROGRESS="0",
        )
        script = _FUSEGRAPH.format(label=label, references=REFERENCES)
        print(f"  ... {label}: cold", file=sys.stderr, flush=True)
        cold = _run(script, env)
        print(f"  ... {label}: warm", file=sys.stderr, flush=True)
        warm = _run(script, env)
    result = {"label": label, "cold": cold, "warm": warm, "jax": None}
    if jax and label in models.WORKLOADS and _installed("jax"):
        print(f"  ... {label}: JAX", file=sys.stderr, flush=True)
        result["jax"] = _run(_JAX.format(label=label), dict(os.environ, PYTHONPATH=_ROOT))
    return result


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


#: The targets, as (workload, function, reference workload, reference function, factor):
#: the cold compile of the first at most ``factor`` times that of the second.
TARGETS = [
    ("LSTM f_grad + f_grad_shared, 6 steps", "f_grad", "logistic regression", "f", 4.0),
    (
        "LSTM f_grad + f_grad_shared, 6 steps",
        "f_grad_shared",
        "LSTM f_grad + f_grad_shared, 6 steps",
        "f_grad",
        0.3,
    ),
    ("LeNet im2col gradient", "f_grad", "logistic regression", "f", 4.0),
    ("RNN gradient, 50 steps", "f_grad", "RNN gradient, 5 steps", "f_grad", 3.0),
    ("16 fused transcendental terms", "f", "logistic regression", "f", 1.0),
    ("10x10 Hessian", "f", "logistic regression", "f", 2.0),
]


def _seconds(results, label, function, kind="cold"):
    for r in results:
        if r["label"] == label:
            row = next(x for x in r[kind]["rows"] if x["function"] == function)
            # the first function of a process pays for importing too
            first = row is r[kind]["rows"][0]
            return row["seconds"] + (r[kind]["imports"] if first else 0.0)
    return None


def _median_runs(rounds: list) -> list:
    """Per workload, the result of the round whose cold compile was the median one."""
    chosen = []
    for results in zip(*rounds):
        by_time = sorted(results, key=lambda r: sum(row["seconds"] for row in r["cold"]["rows"]))
        median = dict(by_time[len(by_time) // 2])
        median["jax"] = next((r["jax"] for r in results if r["jax"] is not None), None)
        chosen.append(median)
    return chosen


def table(rounds: list) -> str:
    """Markdown: one row per compiled function (the median round's), then the targets with
    each round's ratio (workload and reference measured in the same round), judged on
    their median."""
    results = _median_runs(rounds)
    lines = [
        "| workload | function | nodes | kernels | units compiled / cached | cold s | rewrite "
        "| codegen | typing | LLVM | other | warm s | JAX jit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for row in r["cold"]["rows"]:
            warm = _seconds(results, r["label"], row["function"], "warm")
            units = row["units"]
            jax = r["jax"] if row is r["cold"]["rows"][0] and r["jax"] is not None else None
            lines.append(
                f"| {r['label']} | {row['function']} | {row['nodes']} | {row['kernels']} "
                f"| {units['compiled']} / {units['memory'] + units['disk']} "
                f"| {_seconds(results, r['label'], row['function']):.2f} | {row['rewrite']:.2f} "
                f"| {row['codegen']:.2f} | {row['typing']:.2f} | {row['llvm']:.2f} "
                f"| {row['other']:.2f} | {warm:.2f} | {'—' if jax is None else f'{jax:.2f}'} |"
            )
    lines += ["", "| target | ratio per round | median | met |", "|---|---|---|---|"]
    for label, fn, ref_label, ref_fn, factor in TARGETS:
        ratios = []
        for run in rounds:
            got, ref = _seconds(run, label, fn), _seconds(run, ref_label, ref_fn)
            if got is not None and ref is not None:
                ratios.append(got / ref)
        if not ratios:
            continue
        median = statistics.median(ratios)
        lines.append(
            f"| {label} {fn} ≤ {factor}× {ref_label} {ref_fn} "
            f"| {', '.join(f'{r:.2f}×' for r in ratios)} | {median:.2f}× "
            f"| {'yes' if median <= factor else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def write_results(text: str) -> None:
    with open(RESULTS) as f:
        old = f.read()
    block = f"{START}\n{text}{END}"
    if START in old:
        new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, old, flags=re.S)
    else:
        title = "## Compile scaling (`python -m benchmarks.compile_scaling`)"
        new = old.rstrip("\n") + f"\n\n{title}\n\n{block}\n"
    with open(RESULTS, "w") as f:
        f.write(new)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only the workloads whose label contains this text")
    parser.add_argument("--no-jax", action="store_true", help="skip JAX's compiles")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds over all workloads (default 3)"
    )
    args = parser.parse_args(argv)
    labels = [*REFERENCES, *models.WORKLOADS]
    if args.only:
        labels = [x for x in labels if args.only in x or x in REFERENCES]
    rounds = [
        [measure(label, not args.no_jax and k == 0) for label in labels] for k in range(args.rounds)
    ]
    text = (
        f"Run of {datetime.date.today()}: {os.cpu_count()} cores ({platform.machine()}), "
        f"Python {platform.python_version()}, {args.rounds} rounds over the workloads. Cold: "
        "a fresh process and an empty cache, from `import fusegraph` to the first result "
        "(the first function of a process includes the import); warm: the same in a new "
        "process with the cache the cold run left. Rows: each workload's median round.\n\n"
        + table(rounds)
    )
    print(text)
    if args.write:
        write_results(text)


if __name__ == "__main__":
    main()
