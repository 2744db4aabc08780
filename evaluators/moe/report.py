"""Baseline table for a split: balancedness, gap to the reference and runtime, per deployment.

    python -m evolve.evaluators.moe.report --split test [--program best.py ...]

Every program runs through the same sandbox, harness and verifier as
``evolve eval`` (``Evaluator.run_split``), so the figures are those a run sees.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from evolve.evaluation import Evaluation


def _groups(evaluation: Evaluation) -> list[str]:
    return sorted({r.group for r in evaluation.instances})


def _cell(values: list[float], fmt: str) -> str:
    return format(float(np.mean(values)), fmt) if values else "-"


def tables(rows: list[tuple[str, Evaluation]]) -> str:
    groups = sorted({g for _, e in rows for g in _groups(e)})
    kinds = {}
    for _, e in rows:
        for r in e.instances:
            kinds.setdefault(r.group, set()).add(r.reference_kind)
    head = "| program | status | score | balancedness | " + " | ".join(groups) + " |"
    out = ["### balancedness on the next window (mean over instances)", "", head,
           "|---" * (len(groups) + 4) + "|"]
    for name, e in rows:
        cells = [_cell([r.objective for r in e.instances if r.group == g and r.objective is not None], ".4f")
                 for g in groups]
        score = f"{e.score:.2f}" if e.score is not None else "-"
        overall = e.metrics.get("balancedness")
        out.append(f"| {name} | {e.status} | {score} | {overall:.4f} | " if overall is not None
                   else f"| {name} | {e.status} | {score} | - | ")
        out[-1] += " | ".join(cells) + " |"
    out += ["", "### gap to the reference, % (reference kind per deployment)", "",
            "| program | " + " | ".join(f"{g} ({'/'.join(sorted(kinds[g]))})" for g in groups) + " |",
            "|---" * (len(groups) + 1) + "|"]
    for name, e in rows:
        cells = [_cell([100 * r.gap for r in e.instances if r.group == g and r.gap is not None], ".2f")
                 for g in groups]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "### runtime: median ms per rebalance_experts call (wall / process CPU)", "",
            "| program | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for name, e in rows:
        cells = []
        for g in groups:
            wall = [r.extra["wall_ms"] for r in e.instances if r.group == g and "wall_ms" in r.extra]
            cpu = [r.extra["cpu_ms"] for r in e.instances if r.group == g and "cpu_ms" in r.extra]
            cells.append(f"{_cell(wall, '.2f')} / {_cell(cpu, '.2f')}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from evolve.config import RunSettings
    from evolve.evaluation import Evaluator
    from evolve.problem import load_problem

    parser = argparse.ArgumentParser(prog="python -m evolve.evaluators.moe.report", description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="test", choices=["quick", "train", "test"])
    parser.add_argument("--program", type=Path, action="append", default=[], help="also score this program")
    args = parser.parse_args(argv)
    problem = load_problem("moe")
    chosen = problem.instances(args.split)
    programs = [("seed", problem.dir / problem.spec.seed), *problem.baselines.items()]
    programs += [(p.name, p) for p in args.program]
    rows = []
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        for name, path in programs:
            rows.append((name, evaluator.run_split(Path(path).read_text(), chosen, args.split)))
    print(f"## moe baselines on the {args.split} split ({len(chosen)} instances; python "
          f"{platform.python_version()}, numpy {np.__version__}, {platform.machine()})\n")
    print(tables(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
