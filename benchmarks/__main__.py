"""Run the benchmark suite (``benchmarks/suite.py``) and print its table.

    python -m benchmarks --quick      # about two minutes on 2 cores (the README's main job)
    python -m benchmarks --full --write --chart benchmarks/ratios.png --peer-python PEERS

``--write`` replaces the suite's section of ``benchmarks/RESULTS.md``; ``--chart`` saves a
bar chart of the ratios to NumPy (needs matplotlib: ``pip install -e ".[bench]"``).
``--peer-python`` runs JAX and PyTensor in another interpreter (a virtual environment with
``pip install -e ".[bench]"``, whose PyTensor pins an older Numba) and fusegraph in this one.
"""

from __future__ import annotations

import os

# BLAS runs on one thread in every variant: on two cores, NumPy's and SciPy's (Numba's)
# OpenBLAS thread pools otherwise spin against each other and the medians swing 2x.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import suite  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- suite:start -->", "<!-- suite:end -->"


def header(plan: str, peer_python: str | None) -> str:
    cpu = platform.processor() or platform.machine()
    peers = ""
    if peer_python:
        peers = f"; JAX and PyTensor in another interpreter: {suite.versions(peer_python)}"
    return (
        f"Suite run `{plan}`, {datetime.date.today()}: {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, {suite.versions()}{peers}. "
        "BLAS on one thread. Medians; ratios > 1 are slower than NumPy / than the interpreted "
        "`py` backend.\n"
    )


def write_results(text: str) -> None:
    old = RESULTS.read_text()
    block = f"{START}\n{text}{END}"
    if START in old:
        new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, old, flags=re.S)
    else:
        new = old.replace(
            "\n## ", f"\n## The benchmark suite (`python -m benchmarks`)\n\n{block}\n\n## ", 1
        )
    RESULTS.write_text(new)


def chart(results, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart)", file=sys.stderr)
        return
    rows = [r for r in results if "NumPy" in r.seconds]
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 2.2 * len(rows)))
    for ax, r in zip(np.atleast_1d(axes), rows):
        names = list(r.seconds)
        ax.barh(names, [r.seconds[n] / r.seconds["NumPy"] for n in names])
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{r.workload}: time / NumPy's", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart written to {path}", file=sys.stderr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_const", dest="plan", const="quick")
    group.add_argument("--full", action="store_const", dest="plan", const="full")
    group.add_argument("--smoke", action="store_const", dest="plan", const="smoke")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--chart", metavar="PNG", help="save a bar chart of the ratios")
    parser.add_argument(
        "--peer-python", metavar="PYTHON", help="run JAX and PyTensor in this interpreter"
    )
    args = parser.parse_args(argv)
    plan = args.plan or "quick"
    print(f"running the {plan} benchmark suite (progress on stderr)", file=sys.stderr)
    results = suite.run(plan, args.peer_python)
    text = header(plan, args.peer_python) + suite.table(results)
    print(text)
    if args.write:
        write_results(text)
    if args.chart:
        chart(results, args.chart)


if __name__ == "__main__":
    main()
