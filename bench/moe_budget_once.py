"""What keeping one placement costs a moe balancer under drift (eleventh red team).

moe's per-call CPU budget was held against the judged calls' mean (``harness.charged_s``), so one
call could spend the budgets of all judged calls at no cost if the others were near-free: a costly
placement once, then kept (since the twelfth red team each judged call is charged on its own,
``scoring.call_penalty``).  This sizes the price of keeping: LPT (the shipped baseline) on every
window against LPT's placement for the first judged window kept for all of them, on the trusted
side (``local_call``), per instance of a split.  A costlier solve of one window pays only if it
gains more than keeping loses.

Usage: PYTHONPATH=. python bench/moe_budget_once.py [--split quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from evolve.evaluators.moe.harness import local_call
from evolve.problem import load_problem

HERE = Path(__file__).resolve().parent


def kept(solve: Any) -> Any:
    """``solve`` at the first judged call (the second call: the first is the warm-up), its
    placement returned for every later call of the instance."""
    state: dict[str, Any] = {"calls": 0, "placement": None}

    def rebalance_experts(weight: Any, *args: Any) -> Any:
        state["calls"] += 1
        if state["calls"] <= 2:
            state["placement"] = solve(weight, *args)
        return state["placement"]

    return rebalance_experts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="quick")
    split = parser.parse_args().split
    problem = load_problem("moe")
    verifier = problem.verifier
    spec = importlib.util.spec_from_file_location("lpt", HERE.parent / "problems" / "moe" / "baselines" / "lpt.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lpt = module.rebalance_experts
    print(f"{'instance':24} {'LPT per window':>15} {'first kept':>11} {'lost':>7}")
    for instance in problem.instances(split):
        every = verifier.score(instance, verifier.run(instance, local_call(lpt))).objective or 0.0
        once = verifier.score(instance, verifier.run(instance, local_call(kept(lpt)))).objective or 0.0
        print(f"{instance.name:24} {every:15.4f} {once:11.4f} {every - once:7.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
