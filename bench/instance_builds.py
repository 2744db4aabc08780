"""What building a split costs, first and again: `PYTHONPATH=. python bench/instance_builds.py`.

For every shipped problem and split: the CPU time (``time.process_time``, this process) of the
first ``Problem.instances(split)`` (the verifier builds it), and the median of REPEATS later calls
on the same ``Problem`` (each a private copy of the first build, unpickled), with the size of that
copy. A run asks for quick and train several times (the select_on check, the loop, the GP's
screen); `review --test`, `baselines` and the tests ask for test and train again.
"""

from __future__ import annotations

import os
import pickle
import statistics
import time

from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

from evolve.problem import load_problem

PROBLEMS = ("smtt", "smtt_rule", "jssp", "moe", "serving", "serving_router")
REPEATS = 5


def main() -> None:
    print(f"# {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print("| problem | split | instances | first build ms | again ms (median of 5) | copy MB |")
    print("|---|---|---|---|---|---|")
    for name in PROBLEMS:
        problem = load_problem(name)
        problem.verifier  # noqa: B018 - built before the clock starts (its own cost, not the split's)
        for split in ("quick", "train", "test"):
            start = time.process_time()
            found = problem.instances(split)
            first = time.process_time() - start
            again = []
            for _ in range(REPEATS):
                start = time.process_time()
                problem.instances(split)
                again.append(time.process_time() - start)
            size = len(pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL)) / 1e6
            print(f"| {name} | {split} | {len(found)} | {1000 * first:.1f} | "
                  f"{1000 * statistics.median(again):.2f} | {size:.1f} |")


if __name__ == "__main__":
    main()
