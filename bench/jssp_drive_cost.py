"""What the trusted builder costs a jssp evaluation: a train split built by the trusted side
(``evaluators/jssp/drive.py``, MWKR with an import added so it is not one pure expression)
against the same rule built in the sandbox (pure MWKR), interleaved rounds.

    PYTHONPATH=. python bench/jssp_drive_cost.py [--rounds 5] [--split train]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.problem import load_problem

PURE = "def priority(job_work_left, **_):\n    return job_work_left\n"
DRIVEN = "import sys\n" + PURE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    problem = load_problem("jssp")
    instances = problem.instances(args.split)
    seconds: dict[str, list[float]] = {"in the sandbox (pure)": [], "driven (trusted builder)": []}
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        evaluator.run_split(PURE, instances, args.split)  # warm-up
        for _ in range(args.rounds):
            for (name, times), code in zip(seconds.items(), (PURE, DRIVEN), strict=True):
                started = time.perf_counter()
                evaluation = evaluator.run_split(code, instances, args.split)
                times.append(time.perf_counter() - started)
                if not evaluation.ok:
                    raise SystemExit(f"{name}: {evaluation.feedback}")
    for name, times in seconds.items():
        print(f"{name}: median {statistics.median(times):.3f} s ({', '.join(f'{t:.2f}' for t in times)})")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
