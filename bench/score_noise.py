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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402  (bench/machine.py)

import evolve  # noqa: E402
from evolve.edits import apply_edit  # noqa: E402
from evolve.problem import load_problem  # noqa: E402

HERE = Path(__file__).resolve().parent


def programs() -> dict[str, str]:
    problem = load_problem("smtt")
    mddc = next(code for name, code in problem.baseline_programs() if name == "mddc")
    replies = [json.loads(line) for line in (HERE / "data" / "promptcheck_smtt.jsonl").read_text().splitlines()]
    ils = apply_edit(problem.seed_code, replies[1]["text"], "diff")
    return {"seed": problem.seed_code, "mddc": mddc, "ils": ils}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--split", default="train")
    parser.add_argument("--only", nargs="*", help="program names (seed, mddc, ils)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.system()} {platform.machine()}, {cpu_model()}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f} at the start; smtt {args.split}, "
          f"{args.repeats} evaluations each")
    print("| program | scores | spread (max - min) | instances whose objective changed (first vs last) |")
    print("|---|---|---|---|")
    for name, code in programs().items():
        if args.only and name not in args.only:
            continue
        runs = [evolve.evaluate("smtt", code, split=args.split) for _ in range(args.repeats)]
        scores = [r.score for r in runs]
        if any(s is None for s in scores):
            print(f"| {name} | {[r.status for r in runs]} | - | - |", flush=True)
            continue
        first = {i.name: i.objective for i in runs[0].instances}
        moved = sum(1 for i in runs[-1].instances if first.get(i.name) != i.objective)
        print(f"| {name} | {', '.join(f'{s:.6f}' for s in scores)} | {max(scores) - min(scores):.6f} | "
              f"{moved} of {len(runs[-1].instances)} |", flush=True)
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
