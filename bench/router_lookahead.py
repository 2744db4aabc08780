"""How far ahead of a request's arrival the router sees the replicas (red team probe).

    PYTHONPATH=. python bench/router_lookahead.py [--splits quick train]

``run_router`` advances every replica through the steps that start before the arrival, so the
last one may end after it: the router then sees that step's outcome (tokens, finishes, freed
blocks).  Routes every request of the splits to the replica with the fewest outstanding
requests (trusted side, no sandbox) and counts the calls with a replica past the arrival, by
how much, and the requests shown finished whose finish lies after the arrival (one per call
that shows it).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import evolve.evaluators.serving.router as router
from evolve.problem import load_problem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=["quick", "train"])
    args = parser.parse_args()
    calls, ahead, shown, leads = 0, 0, 0, []
    observe = router.router_observation

    def counting(engines: list[Any], trace: Any, i: int) -> Any:
        nonlocal calls, ahead, shown
        t = float(trace.arrival[i])
        calls += 1
        past = [e for e in engines if e.now > t]
        ahead += bool(past)
        for e in past:
            leads.append(e.now - t)
            shown += int(np.count_nonzero((e.finish > t) & (e.finish <= e.now)))
        return observe(engines, trace, i)

    router.router_observation = counting
    problem = load_problem("serving_router")
    for split in args.splits:
        for instance in problem.instances(split):
            problem.verifier.simulate(instance, lambda observation: observation[0][0])  # fewest outstanding
    print(f"{calls} routing calls; {ahead} with a replica past the arrival, by {np.median(leads):.3f} s median, "
          f"{np.percentile(leads, 95):.3f} s p95, {max(leads):.3f} s at most; {shown} finishes after the "
          "arrival shown as done")


if __name__ == "__main__":
    main()
