"""Controller CPU while a moe candidate floods its session channel with forged messages.

    PYTHONPATH=. python bench/session_flood.py empty   # or: none, byte

Each of the three calls of quick's small64 workload writes 200,000 messages onto fd 3 before
answering; printed: the evaluation's status and the CPU this process (the controller) spent.
"""

import sys
import time
from pathlib import Path

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.problem import load_problem

BASE = (Path(__file__).parents[1] / "problems" / "moe" / "baselines" / "round_robin.py").read_text()
PLACE = BASE.replace("def rebalance_experts(", "def _placed(") + """

import os


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    FLOOD
    return _placed(weight, num_replicas, num_groups, num_nodes, num_gpus)
"""
kind = sys.argv[1]
flood = {"none": "pass",
         "empty": "for _ in range(200_000): os.write(3, b'')",
         "byte": "for _ in range(200_000): os.write(3, b'x')"}[kind]
problem = load_problem("moe").with_options({"timing_repeats": 0, "warmup_calls": 0})
chosen = problem.instances("quick", names=["quick-small64-0"])
with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
    evaluator.run_split(PLACE.replace("FLOOD", "pass"), chosen, "quick")  # warm
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ev = evaluator.run_split(PLACE.replace("FLOOD", flood), chosen, "quick")
    print(kind, ev.status, (ev.feedback or "")[:100].replace("\n", " "), f"controller CPU {time.process_time() - cpu0:.2f} s, wall {time.perf_counter() - wall0:.2f} s")
