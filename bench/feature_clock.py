"""Is jssp's time metric the machine's load or the program's? `PYTHONPATH=. python bench/feature_clock.py`.

Evaluates the seed (MWKR, one pure expression: a batch run, builder and rule in the candidate's
process) and the same rule written so that it is not pure (driven: the trusted side builds,
the rule is asked per decision) on jssp's train split, REPEATS times each in one sandbox, and
prints ``ms_per_instance`` (a MAP-Elites dimension until 2026-12-07, now a metric), the program's
cell (code length and ``completion_share``, both deterministic), the wall time of the evaluation
and the machine's load. Run it quiet and under load (`--hogs N` starts N busy processes for the
duration) and compare: the time should move little with the load, the cell not at all.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.population import cell_key, feature_values
from evolve.problem import load_problem

REPEATS = 3


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=0, help="busy processes to run meanwhile")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    problem = load_problem("jssp")
    specs = problem.spec.features
    seed = problem.seed_code
    driven = seed.replace("    return job_work_left", "    work = job_work_left\n    return work")
    train = problem.instances("train")
    print(f"# {cpu_model()}, {os.cpu_count()} cores, {args.hogs} busy processes, "
          f"load {os.getloadavg()[0]:.1f} at start")
    print("| program | ms_per_instance | cell | evaluation wall s | load |")
    print("|---|---|---|---|---|")
    try:
        with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
            for name, code in (("MWKR, pure (batch)", seed), ("MWKR, driven", driven)):
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    evaluation = evaluator.run_split(code, train, "train")
                    wall = time.perf_counter() - start
                    ms = evaluation.metrics["ms_per_instance"]
                    cell = cell_key(specs, feature_values(specs, len(code), evaluation.metrics))
                    print(f"| {name} | {ms:.2f} | {cell} | {wall:.2f} | {os.getloadavg()[0]:.1f} |")
    finally:
        for hog in hogs:
            hog.kill()


if __name__ == "__main__":
    main()
