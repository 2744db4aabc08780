"""Reference values for SMTT instances: how they are computed, cached and shipped.

* n <= DP_MAX_N: subset DP, the optimum (kind "optimal", source "dp").
* larger n: warm start (best shipped baseline + insertion descent), an
  iterated local search for a share of the budget, then CP-SAT (positional
  model up to POSITIONAL_MAX_N jobs, disjunctive above) hinted with the best
  sequence.  "optimal" only when CP-SAT proves it (or the bound meets the
  value, or the value is 0); otherwise "best_known" with the solver's bound.

Trusted side only.  The engine's reference store keeps the results
(``evolve.references``): the built-in splits ship theirs in
problems/smtt/data/references.json, computed by ``evolve references smtt``;
instances of users' files are computed on first use and cached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from evolve.evaluators.smtt.exact import DP_MAX_N, dp_optimum, matching_lower_bound
from evolve.evaluators.smtt.local_search import iterated_descent, warm_start
from evolve.evaluators.smtt.objective import total_tardiness
from evolve.references import StoredReference

# CP-SAT deterministic time units per CPU second (one worker), measured on the 2-vCPU
# development machine: 2 units took 3.8-4.1 s of CPU at n = 100.  Only a conversion, so
# that --time-limit keeps meaning roughly "CPU seconds"; what is recorded is the units.
DET_PER_CPU_S = 0.5
WALL_CAP = 20.0  # the wall clock a solve may take per CPU second of budget (a safety cap)


@dataclass(frozen=True)
class Budget:
    """Compute budget per instance beyond the DP range, in CPU time, not the wall clock.

    The local search stops on the process's CPU clock and CP-SAT (one worker) on its
    deterministic time, so a reference does not get weaker when the machine is busy,
    and CP-SAT's part repeats exactly.
    """

    time_limit_s: float = 10.0  # local search + CP-SAT, CPU seconds
    workers: int = 1  # CP-SAT workers (threads); with more, CP-SAT is not deterministic
    ils_share: float = 0.3  # of time_limit_s spent in the iterated local search


def compute_reference(name: str, p: np.ndarray, d: np.ndarray, budget: Budget) -> StoredReference:
    """The best reference we can get for one instance within ``budget``; its witness is
    a sequence attaining the value, its details the instance size."""
    from evolve.evaluators.smtt import cpsat  # ortools only when a reference is computed

    started = time.process_time()
    n = len(p)

    def record(value: int, kind: str, source: str, bound: int | None, seq: list[int]) -> StoredReference:
        if total_tardiness(p, d, seq) != value:  # never ship a value we cannot attain
            raise RuntimeError(f"{name}: reference sequence does not attain {value}")
        return StoredReference(name, int(value), kind, bound, source,  # type: ignore[arg-type]
                               round(time.process_time() - started, 3), [int(j) for j in seq], {"n": n})

    if n <= DP_MAX_N:
        value, seq = dp_optimum(p, d)
        return record(value, "optimal", "dp", value, seq)
    value, seq, how = warm_start(p, d)
    if value == 0:
        return record(0, "optimal", f"{how} (zero tardiness)", 0, seq)
    ils_s = budget.ils_share * budget.time_limit_s
    seq = cpsat.respect_dominance(p, d, iterated_descent(p, d, seq, ils_s, seed=n))
    value = total_tardiness(p, d, seq)
    floor = matching_lower_bound(p, d)
    if value == floor:
        return record(value, "optimal", "local search (meets the matching bound)", value, seq)

    kind = "positional" if n <= cpsat.POSITIONAL_MAX_N else "disjunctive"
    built = (cpsat.build_positional if kind == "positional" else cpsat.build_disjunctive)(p, d)
    cpsat.add_hint(built, p, d, seq)
    solve_s = max(1.0, budget.time_limit_s - (time.process_time() - started))
    units = round(DET_PER_CPU_S * solve_s, 1)
    solver, status = cpsat.solve(built, WALL_CAP * solve_s, budget.workers, deterministic_time=units)
    outcome = cpsat.report(built, solver, status, p, d)

    source = f"ils {ils_s:g}s cpu + cp-sat {kind} {units:g}det/{budget.workers}w"
    if outcome.objective is not None and outcome.objective < value:
        value, seq = outcome.objective, outcome.sequence or seq
    bound = max(outcome.bound, floor)
    if outcome.proven_optimal or bound >= value:
        return record(value, "optimal", source, value, seq)
    return record(value, "best_known", source, bound, seq)


def refresh_bound(record: StoredReference, p: np.ndarray, d: np.ndarray) -> StoredReference:
    """Raise a stored bound to the matching bound (never lowers it; no solver)."""
    floor = matching_lower_bound(p, d)
    if record.bound is not None and record.bound >= floor:
        return record
    kind = "optimal" if floor >= record.value else record.kind
    return replace(record, bound=floor, kind=kind)


def attains(record: StoredReference, p: np.ndarray, d: np.ndarray) -> bool:
    """The record's witness is a sequence of these jobs with exactly its value."""
    seq = record.witness
    return (isinstance(seq, list) and len(seq) == len(p) and sorted(seq) == list(range(len(p)))
            and total_tardiness(p, d, seq) == record.value)
