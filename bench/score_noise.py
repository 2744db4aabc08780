"""How much a program's score moves from one evaluation to the next:
`PYTHONPATH=. python bench/score_noise.py [--repeats 3] [--split train]`.

Evaluates programs of three kinds `--repeats` times each on smtt's split, through the real
sandbox and verifier (``evolve.evaluate``, as ``evolve eval`` and a run do), and prints each
score, the spread (max - min) and how many instances changed objective between the first and
last evaluation:

* ``seed``: EDD, a pure dispatching rule: no clock, the same sequence every time.
* ``mddc``: the shipped MDDC baseline, likewise deterministic.
* ``ils``: the clean-room agent's CPU-time-bounded iterated local search (its second reply in
  ``bench/data/promptcheck_smtt.jsonl``, applied to the seed), which stops on
  ``time.process_time()`` and seeds its randomness per instance: how far it searches depends on
  how fast the machine runs it, so its result can move.

A program whose result does not depend on time scores the same every time: its noise is 0.
Nothing here is the candidate's word: scores are the verifier's.

``--problem jssp|moe|serving|serving_router|smtt_rule`` measures the other problems' programs the same way (the seed and
shipped baselines; jssp's ``fdd_mwkr`` is a composite rule with a fitted-looking weight, as a
learned rule would be). A second table says what difference between two programs is within
the noise of the *instances* rather than of the evaluation: for each program against the seed (or ``--against NAME``),
the standard error of the score difference, from the per-instance gap differences within each
group (score = minus the mean over groups of each group's mean gap, so the difference's variance
is the sum over groups of var_g / n_g, over the number of groups squared). Two programs whose
scores differ by less than about two such errors could change order on a fresh draw of
instances of the same kind. From each instance's gap (smtt, jssp), or its own
score term (serving and serving_router, one group); not for moe, whose LPT shortfall term is per deployment.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402  (bench/machine.py)

import evolve  # noqa: E402
from evolve.edits import apply_edit  # noqa: E402
from evolve.problem import load_problem  # noqa: E402

HERE = Path(__file__).resolve().parent


# The programs measured per problem: the seed and shipped baselines (smtt adds the clean-room ILS).
BASELINES = {"jssp": ("mwkr", "fdd_mwkr", "mopnr"), "moe": ("lpt", "deepseek_eplb"),
             "serving": ("sjf_predicted", "edf_ttft"), "serving_router": ("least_outstanding", "least_kv"),
             "smtt_rule": ("mdd", "mddc")}


def programs(name: str = "smtt") -> dict[str, str]:
    problem = load_problem(name)
    shipped = dict(problem.baseline_programs())
    if name != "smtt":
        return {"seed": problem.seed_code, **{b: shipped[b] for b in BASELINES[name]}}
    replies = [json.loads(line) for line in (HERE / "data" / "promptcheck_smtt.jsonl").read_text().splitlines()]
    ils = apply_edit(problem.seed_code, replies[1]["text"], "diff")
    return {"seed": problem.seed_code, "mddc": shipped["mddc"], "ils": ils}


def paired_error(a: list, b: list, value: Callable[[Any], float | None], grouped: bool) -> float | None:
    """The standard error, in points, of score(b) - score(a) from the instances' differences in
    what each adds to the score (``value``): per group, each group weighing the same, where the
    score is a mean over groups (``grouped``), else over all instances at once."""
    first = {i.name: value(i) for i in a}
    groups: dict[str, list[float]] = {}
    for i in b:
        mine, theirs = value(i), first.get(i.name)
        if mine is None or theirs is None:
            continue
        groups.setdefault(i.group if grouped else "all", []).append(mine - theirs)
    if not groups or any(len(v) < 2 for v in groups.values()):
        return None
    variance = sum(statistics.variance(v) / len(v) for v in groups.values())
    return variance ** 0.5 / len(groups)


def per_instance(problem_name: str) -> tuple[Callable[[Any], float | None], bool] | None:
    """What an instance adds to the score and whether the score averages groups first, or None
    where the score is not a mean of per-instance terms (moe: its LPT term is per deployment)."""
    if problem_name == "moe":
        return None
    if problem_name in ("serving", "serving_router"):
        verifier = load_problem(problem_name).verifier
        return (lambda i: verifier.instance_score(i) if i.feasible else None), False
    return (lambda i: None if i.gap is None else -100.0 * i.gap), True  # gaps are fractions; scores %


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--split", default="train")
    parser.add_argument("--problem", default="smtt", choices=["smtt", *BASELINES])
    parser.add_argument("--against", default="seed", help="the program the differences are taken to")
    parser.add_argument("--only", nargs="*", help="program names (smtt: seed, mddc, ils; else seed and "
                                                  "the baselines of BASELINES)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.system()} {platform.machine()}, {cpu_model()}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f} at the start; {args.problem} {args.split}, "
          f"{args.repeats} evaluations each")
    print("| program | scores | spread (max - min) | instances whose objective changed (first vs last) |")
    print("|---|---|---|---|")
    firsts = {}
    for name, code in programs(args.problem).items():
        if args.only and name not in args.only:
            continue
        runs = [evolve.evaluate(args.problem, code, split=args.split) for _ in range(args.repeats)]
        scores = [r.score for r in runs]
        if any(s is None for s in scores):
            print(f"| {name} | {[r.status for r in runs]} | - | - |", flush=True)
            continue
        firsts[name] = runs[0]
        first = {i.name: i.objective for i in runs[0].instances}
        moved = sum(1 for i in runs[-1].instances if first.get(i.name) != i.objective)
        print(f"| {name} | {', '.join(f'{s:.6f}' for s in scores)} | {max(scores) - min(scores):.6f} | "
              f"{moved} of {len(runs[-1].instances)} |", flush=True)
    base = firsts.get(args.against)
    if base is not None and len(firsts) > 1:
        print(f"\n| program | score difference to {args.against} (first evaluations) | its standard error "
              "over the instances (points) |")
        print("|---|---|---|")
        terms = per_instance(args.problem)
        for name, run in firsts.items():
            if name == args.against:
                continue
            error = None if terms is None else paired_error(base.instances, run.instances, *terms)
            print(f"| {name} | {run.score - base.score:+.4f} | "
                  f"{'-' if error is None else f'{error:.4f}'} |")
        if terms is None:
            print("(moe's score is not a mean of per-instance terms (its LPT shortfall is per "
                  "deployment): no standard error)")
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
