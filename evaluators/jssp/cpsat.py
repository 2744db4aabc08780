"""An exact reference: OR-Tools CP-SAT on the classic interval model.

One interval per operation, ``NoOverlap`` per machine, precedence within each
job, minimise the makespan.  With a time limit the answer is ``optimal`` (the
solver proved it) or ``feasible`` (a schedule and a proven lower bound).
Zero-duration operations join precedence only, as everywhere in this package.
Imported lazily: the sandbox never needs ortools.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from evolve.evaluators.jssp.model import JobShop


@dataclass(frozen=True)
class CpSatResult:
    status: str  # "optimal", "feasible" or "unknown" (no schedule within the limit)
    makespan: int | None
    bound: int  # proven lower bound on the optimal makespan
    start: np.ndarray | None  # start times, padded with -1
    seconds: float


def solve_cpsat(
    shop: JobShop,
    time_limit_s: float = 10.0,
    workers: int = 1,
    hint: np.ndarray | None = None,
    seed: int = 0,
) -> CpSatResult:
    started = time.monotonic()
    model = cp_model.CpModel()
    horizon = int(shop.durations.sum())
    starts: dict[tuple[int, int], cp_model.IntVar] = {}
    per_machine: dict[int, list[cp_model.IntervalVar]] = {}
    makespan = model.new_int_var(0, horizon, "makespan")
    for j in range(shop.n_jobs):
        length = int(shop.lengths[j])
        for k in range(length):
            p = int(shop.durations[j, k])
            s = model.new_int_var(0, horizon, f"s{j}_{k}")
            starts[j, k] = s
            if p > 0:
                interval = model.new_fixed_size_interval_var(s, p, f"i{j}_{k}")
                per_machine.setdefault(int(shop.machines[j, k]), []).append(interval)
            if k > 0:
                model.add(s >= starts[j, k - 1] + int(shop.durations[j, k - 1]))
            if hint is not None:
                model.add_hint(s, int(hint[j, k]))
        if length:
            model.add(makespan >= starts[j, length - 1] + int(shop.durations[j, length - 1]))
    for intervals in per_machine.values():
        model.add_no_overlap(intervals)
    model.add(makespan >= shop.trivial_lower_bound())  # helps the search, changes nothing
    model.minimize(makespan)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    code = solver.solve(model)
    seconds = time.monotonic() - started
    bound = max(int(math.ceil(solver.best_objective_bound - 1e-6)), shop.trivial_lower_bound())
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return CpSatResult("unknown", None, bound, None, seconds)
    start = np.full(shop.durations.shape, -1, dtype=np.int64)
    for (j, k), var in starts.items():
        start[j, k] = solver.value(var)
    value = int(solver.objective_value)
    status = "optimal" if code == cp_model.OPTIMAL else "feasible"
    return CpSatResult(status, value, value if status == "optimal" else min(bound, value), start, seconds)
