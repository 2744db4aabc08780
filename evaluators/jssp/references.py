"""References for generated and user instances: CP-SAT from the best dispatching-rule schedule.

Trusted side only.  The engine's reference store keeps the results
(``evolve.references``).  The ``quick`` and ``train`` splits ship theirs in
problems/jssp/data/references.json, computed once by::

    taskset -c 0 evolve references jssp --split quick,train --time-limit 45 --option reference_workers=8

(under 15 minutes on one core: the limit scales with the instance size, 45 s
at 600 operations; CP-SAT starts from the best of a few dispatching-rule
schedules, and its 8 workers share the one core).  Each record's witness is
the schedule that attains its value, re-checked whenever it is loaded, so no
value is trusted on faith.  ``kind`` is "optimal" when CP-SAT proved it, else
"best_known" with CP-SAT's lower bound.  Instances of a user's file without
stated bounds are solved the same way and cached.
"""

from __future__ import annotations

import numpy as np

from evolve.evaluators.jssp.check import check_schedule
from evolve.evaluators.jssp.model import JobShop
from evolve.references import StoredReference

FULL_BUDGET_OPS = 600  # instances this large get the whole time limit; smaller ones a share
MIN_TIME_LIMIT_S = 5.0


def scaled_time_limit(shop: JobShop, time_limit_s: float) -> float:
    """The CP-SAT seconds an instance gets: ``time_limit_s`` at 600+ operations, a share below
    (at least 5 s, never more than the limit)."""
    return min(time_limit_s, max(MIN_TIME_LIMIT_S, time_limit_s * shop.n_operations / FULL_BUDGET_OPS))


def attained_by_schedule(record: StoredReference, shop: JobShop) -> bool:
    """The record's witness is a feasible schedule of ``shop`` with exactly its makespan."""
    start = record.witness
    if not isinstance(start, list) or len(start) != shop.n_jobs:
        return False
    try:
        ends = [[s + int(shop.durations[j, k]) for k, s in enumerate(row)] for j, row in enumerate(start)]
    except (TypeError, IndexError):
        return False
    reason, checked = check_schedule(shop, {"start": start, "end": ends}, None)
    return reason is None and checked is not None and checked.makespan == record.value


def rule_schedule_hint(shop: JobShop) -> np.ndarray:
    """The best of MWKR and MWKR/p, non-delay and active: a warm start for CP-SAT."""
    from evolve.evaluators.jssp.builder import build_schedule

    rules = (lambda job_work_left, **_: job_work_left,
             lambda job_work_left, proc_time, **_: job_work_left / np.maximum(proc_time, 1))
    best: tuple[float, np.ndarray] | None = None
    for scheme in ("non_delay", "active"):
        for rule in rules:
            start = build_schedule(rule, shop.machines, shop.durations, shop.lengths, shop.n_machines, scheme)
            makespan = float(np.where(start >= 0, start + shop.durations, 0).max())
            if best is None or makespan < best[0]:
                best = (makespan, start.astype(np.int64))
    assert best is not None
    return best[1]


def compute_reference(shop: JobShop, time_limit_s: float, workers: int = 1) -> StoredReference:
    """CP-SAT for ``time_limit_s`` seconds (as given: scale it first), hinted by the rules."""
    from ortools import __version__ as ortools_version

    from evolve.evaluators.jssp.cpsat import solve_cpsat

    result = solve_cpsat(shop, time_limit_s=time_limit_s, workers=workers, hint=rule_schedule_hint(shop))
    if result.makespan is None or result.start is None:
        raise RuntimeError(f"{shop.name}: CP-SAT found no schedule in {time_limit_s:g}s; raise the time limit")
    proved = result.status == "optimal" or result.bound >= result.makespan
    how = "proved optimal" if proved else f"best found, lower bound {result.bound}"
    source = f"CP-SAT (ortools {ortools_version}, {time_limit_s:g}s, {workers} worker(s)): {how}"
    start = [result.start[j, : int(shop.lengths[j])].tolist() for j in range(shop.n_jobs)]
    record = StoredReference(
        name=shop.name, value=result.makespan, kind="optimal" if proved else "best_known",
        bound=result.makespan if proved else result.bound, source=source, seconds=round(result.seconds, 2),
        witness=start, details={"size": shop.size},
    )
    if not attained_by_schedule(record, shop):  # never ship a value we cannot attain
        raise RuntimeError(f"{shop.name}: the CP-SAT schedule does not check out")
    return record
