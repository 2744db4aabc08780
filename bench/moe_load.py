"""Does a program's moe score depend on the machine's load?  The same programs scored on train,
alone and beside CPU hogs, under the runtime term without a budget and with one.

    nice -n 10 python bench/moe_load.py [--runs 5] [--program P.py ...] [--budget-ms 10 --budget-us 5]

Per run, every program is scored on train (``evolve.evaluate``, the sandbox and the verifier, the
problem's options) in turn, first with nothing added ("as is": whatever else the machine runs),
then beside two hogs this script starts (a pure-Python spinner and a numpy loop streaming 2 x 64
MiB through memory, the caches and memory bandwidth a neighbour takes).  Each evaluation's
per-instance results are scored twice, so the two forms see the same calls:

* ``no budget``: P = mean log2(1 + runtime_ms / 10), the score before 2026-12-07;
* ``budget``: P = mean max(0, log2(runtime_ms / budget)), budget = max(B ms, U us x layers x slots).

Printed: each evaluation's mean charged CPU ms per call per deployment and both scores, then per
program and form the spread (max - min) of the score within each condition and over both.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np

import evolve
from evolve.evaluators.moe.options import MoeOptions
from evolve.evaluators.moe.scoring import combine, runtime_budget_ms

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = {"lpt": ROOT / "problems/moe/baselines/lpt.py", "seed": ROOT / "problems/moe/seed.py",
            "deepseek_eplb": ROOT / "problems/moe/baselines/deepseek_eplb.py"}
HOGS = {
    "spin": "while True:\n    pass\n",
    "memory": "import numpy as np\na = np.ones(1 << 23)\nb = np.empty_like(a)\nwhile True:\n    np.copyto(b, a)\n",
}
GROUPS = ("qwen", "small64", "tiny16", "v3")


def score_both(evaluation: Any, sizes: dict[str, tuple[int, int]], off: MoeOptions,
               on: MoeOptions) -> tuple[float, float]:
    """(score without a budget, score with one) from the same per-instance results."""
    plain = [replace(r, extra={k: v for k, v in r.extra.items() if k != "runtime_budget_ms"})
             for r in evaluation.instances]
    budgeted = [replace(r, extra={**r.extra, "runtime_budget_ms": runtime_budget_ms(*sizes[r.name], on)})
                for r in plain]
    return combine(plain, off)[0], combine(budgeted, on)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/moe_load.py", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--program", type=Path, action="append", default=[])
    parser.add_argument("--budget-ms", type=float, default=10.0)
    parser.add_argument("--budget-us", type=float, default=5.0)
    args = parser.parse_args(argv)
    programs = dict(PROGRAMS) | {p.stem: p for p in args.program}
    problem = evolve.load("moe")
    off = problem.verifier.options.model_copy(update={"runtime_budget_ms": 0.0, "runtime_budget_us_per_slot": 0.0})
    on = off.model_copy(update={"runtime_budget_ms": args.budget_ms, "runtime_budget_us_per_slot": args.budget_us})
    instances = problem.instances("train")
    sizes = {i.name: (int(i.data["windows"].shape[1]), int(i.data["replicas"])) for i in instances}
    budgets = {i.group: runtime_budget_ms(*sizes[i.name], on) for i in instances}
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cpus; budget "
          f"max({args.budget_ms:g} ms, {args.budget_us:g} us x layers x slots): "
          + ", ".join(f"{g} {budgets[g]:.1f} ms" for g in GROUPS))
    print(f"{'condition':<10} {'run':>3} {'load':>5} {'program':<14} "
          + " ".join(f"{g + ' ms':>10}" for g in GROUPS) + f" {'no budget':>10} {'budget':>10}")
    scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for condition in ("as is", "hogs"):
        hogs = [subprocess.Popen([sys.executable, "-c", code]) for code in HOGS.values()] if condition == "hogs" else []
        try:
            time.sleep(1 if hogs else 0)
            for run in range(args.runs):
                for name, path in programs.items():
                    evaluation = evolve.evaluate(problem, path, split="train")
                    if not evaluation.ok:
                        raise SystemExit(f"{path}: {evaluation.status}: {evaluation.feedback[:200]}")
                    per_group = {g: fmean(r.extra["runtime_ms"] for r in evaluation.instances if r.group == g)
                                 for g in GROUPS}
                    both = score_both(evaluation, sizes, off, on)
                    scores.setdefault((name, condition), []).append(both)
                    print(f"{condition:<10} {run + 1:>3} {os.getloadavg()[0]:5.1f} {name:<14} "
                          + " ".join(f"{per_group[g]:10.2f}" for g in GROUPS) + f" {both[0]:10.3f} {both[1]:10.3f}",
                          flush=True)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    print(f"\nspread of the score (max - min) per program: {'no budget':>32} {'budget':>32}")
    print(f"{'program':<14} " + " ".join(f"{c:>10}" for c in ("as is", "hogs", "both")) + " "
          + " ".join(f"{c:>10}" for c in ("as is", "hogs", "both")))
    for name in programs:
        cells = []
        for form in (0, 1):
            for condition in ("as is", "hogs", "both"):
                values = [s[form] for c in ("as is", "hogs") if condition in (c, "both")
                          for s in scores[(name, c)]]
                cells.append(f"{max(values) - min(values):10.3f}")
        print(f"{name:<14} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
