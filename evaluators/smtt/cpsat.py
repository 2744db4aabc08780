"""CP-SAT models of SMTT: building, solving and reporting are separate steps.

Two formulations, both warm-started with a full solution hint:

* positional: x[j, k] = 1 iff job j is at position k (assignment constraints),
  C[k] completion of position k, T[k] >= C[k] - (due date at k).  n^2
  booleans; used up to POSITIONAL_MAX_N (the model gets too big beyond).
* disjunctive: one fixed-size interval per job on a NoOverlap machine,
  T[j] >= end[j] - d[j].  O(n) variables; used for larger n.

Both get the agreeable-pair dominance as precedences: if p_i <= p_j and
d_i <= d_j (ties by index), some optimal sequence has i before j (a special
case of Emmons 1969: swapping such an inverted pair never increases total
tardiness, and each swap removes inversions of the (p, d, index) order, so all
pairs can be imposed at once).  Only the transitive reduction is added.  The
objective is also bounded below by the SPT/EDD matching bound (exact.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from evolve.evaluators.smtt.exact import matching_lower_bound
from evolve.evaluators.smtt.objective import total_tardiness

POSITIONAL_MAX_N = 60


def dominance_pairs(p: np.ndarray, d: np.ndarray) -> list[tuple[int, int]]:
    """Transitive reduction of "i can go before j" (p_i <= p_j, d_i <= d_j)."""
    n = len(p)
    idx = np.arange(n)
    # Strict order: (p, d, index) lexicographically smaller and both <=.
    lex_less = (p[:, None] < p[None, :]) | (
        (p[:, None] == p[None, :])
        & ((d[:, None] < d[None, :]) | ((d[:, None] == d[None, :]) & (idx[:, None] < idx[None, :])))
    )
    before = (p[:, None] <= p[None, :]) & (d[:, None] <= d[None, :]) & lex_less
    relation = before.astype(np.float64)
    implied = (relation @ relation) > 0  # a path i -> k -> j exists
    reduced = before & ~implied
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(reduced), strict=True)]


def respect_dominance(p: np.ndarray, d: np.ndarray, sequence: list[int]) -> list[int]:
    """Swap inverted dominance pairs until none is left, so the hint is feasible.

    Each swap keeps or lowers total tardiness (the exchange argument above).
    """
    pairs = dominance_pairs(p, d)
    seq = list(sequence)
    where = {job: k for k, job in enumerate(seq)}
    changed = True
    while changed:
        changed = False
        for i, j in pairs:
            if where[i] > where[j]:
                a, b = where[i], where[j]
                seq[a], seq[b] = j, i
                where[i], where[j] = b, a
                changed = True
    return seq


@dataclass
class SmttModel:
    """A built model plus the variables needed to hint it and read it back."""

    kind: str  # "positional" or "disjunctive"
    model: cp_model.CpModel
    n: int
    tardiness: list[cp_model.IntVar]
    # positional
    assign: list[list[cp_model.IntVar]] = field(default_factory=list)  # [job][position]
    position: list[cp_model.IntVar] = field(default_factory=list)
    completion: list[cp_model.IntVar] = field(default_factory=list)  # per position
    # disjunctive
    start: list[cp_model.IntVar] = field(default_factory=list)  # per job


def build_positional(p: np.ndarray, d: np.ndarray, dominance: bool = True) -> SmttModel:
    n, total = len(p), int(p.sum())
    model = cp_model.CpModel()
    assign = [[model.new_bool_var(f"x_j{j}_k{k}") for k in range(n)] for j in range(n)]
    for j in range(n):
        model.add_exactly_one(assign[j])
    for k in range(n):
        model.add_exactly_one([assign[j][k] for j in range(n)])
    position = [model.new_int_var(0, n - 1, f"pos_j{j}") for j in range(n)]
    for j in range(n):
        model.add(position[j] == sum(k * assign[j][k] for k in range(n)))
    # Completion of position k lies between the k+1 shortest and longest jobs.
    sorted_p = np.sort(p)
    low, high = np.cumsum(sorted_p), np.cumsum(sorted_p[::-1])
    completion = [model.new_int_var(int(low[k]), int(high[k]), f"C_k{k}") for k in range(n)]
    # Due dates may be negative (public sets): a job can be later than P.
    max_tardiness = max(0, total - int(d.min()))
    tardiness = []
    for k in range(n):
        proc_k = sum(int(p[j]) * assign[j][k] for j in range(n))
        due_k = sum(int(d[j]) * assign[j][k] for j in range(n))
        previous = completion[k - 1] if k else 0
        model.add(completion[k] == previous + proc_k)
        tard_k = model.new_int_var(0, max_tardiness, f"T_k{k}")
        model.add(tard_k >= completion[k] - due_k)
        tardiness.append(tard_k)
    if dominance:
        for i, j in dominance_pairs(p, d):
            model.add(position[i] < position[j])
    model.add(sum(tardiness) >= matching_lower_bound(p, d))
    model.minimize(sum(tardiness))
    return SmttModel("positional", model, n, tardiness, assign=assign, position=position,
                     completion=completion)


def build_disjunctive(p: np.ndarray, d: np.ndarray, dominance: bool = True) -> SmttModel:
    n, total = len(p), int(p.sum())
    model = cp_model.CpModel()
    # No idle time is ever useful, so every job ends by P.
    start = [model.new_int_var(0, total - int(p[j]), f"S_j{j}") for j in range(n)]
    intervals = [
        model.new_fixed_size_interval_var(start[j], int(p[j]), f"job_j{j}") for j in range(n)
    ]
    model.add_no_overlap(intervals)
    tardiness = []
    for j in range(n):
        tard_j = model.new_int_var(0, max(0, total - int(d[j])), f"T_j{j}")
        model.add(tard_j >= start[j] + int(p[j]) - int(d[j]))
        tardiness.append(tard_j)
    if dominance:
        for i, j in dominance_pairs(p, d):
            model.add(start[i] + int(p[i]) <= start[j])
    model.add(sum(tardiness) >= matching_lower_bound(p, d))
    model.minimize(sum(tardiness))
    return SmttModel("disjunctive", model, n, tardiness, start=start)


def add_hint(built: SmttModel, p: np.ndarray, d: np.ndarray, sequence: list[int]) -> None:
    """Hint every variable with the values of ``sequence``."""
    c = np.cumsum(p[sequence])
    if built.kind == "positional":
        at = {job: k for k, job in enumerate(sequence)}
        for j in range(built.n):
            for k in range(built.n):
                built.model.add_hint(built.assign[j][k], at[j] == k)
            built.model.add_hint(built.position[j], at[j])
        for k, job in enumerate(sequence):
            built.model.add_hint(built.completion[k], int(c[k]))
            built.model.add_hint(built.tardiness[k], max(0, int(c[k] - d[job])))
    else:
        for k, job in enumerate(sequence):
            built.model.add_hint(built.start[job], int(c[k] - p[job]))
            built.model.add_hint(built.tardiness[job], max(0, int(c[k] - d[job])))


@dataclass(frozen=True)
class SolveOutcome:
    status: str  # CP-SAT status name
    proven_optimal: bool
    objective: int | None  # of the solver's best solution, recomputed by us
    bound: int  # proven lower bound on the optimum
    sequence: list[int] | None
    wall_s: float


def solve(built: SmttModel, time_limit_s: float, workers: int = 1, seed: int = 0,
          deterministic_time: float | None = None) -> tuple[cp_model.CpSolver, int]:
    """Solve within ``time_limit_s`` wall seconds, or, with ``deterministic_time``, within
    that many of CP-SAT's deterministic time units (the same result on a busy machine and
    an idle one, with one worker; ``time_limit_s`` is then only a safety cap)."""
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    if deterministic_time is not None:
        solver.parameters.max_deterministic_time = float(deterministic_time)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    # Run CP-SAT's portfolio (LNS, bound-improving subsolvers, ...) interleaved
    # on num_workers threads; with 1 worker the default is a single plain
    # search, which proved far weaker on bounds for this problem.
    solver.parameters.interleave_search = True
    status = solver.solve(built.model)
    return solver, status


def report(built: SmttModel, solver: cp_model.CpSolver, status: int, p: np.ndarray, d: np.ndarray) -> SolveOutcome:
    """Read the solution back and recompute its objective independently."""
    if status in (cp_model.INFEASIBLE, cp_model.MODEL_INVALID):
        # Every instance is feasible: this would be a modelling bug (e.g. a wrong precedence).
        raise RuntimeError(f"CP-SAT says {solver.status_name(status)} for an SMTT instance")
    has_solution = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    sequence: list[int] | None = None
    objective: int | None = None
    if has_solution:
        # Order jobs by position (positional) or by start time (disjunctive).
        keys = built.position if built.kind == "positional" else built.start
        sequence = [int(j) for j in np.argsort([solver.value(v) for v in keys], kind="stable")]
        objective = total_tardiness(p, d, sequence)
        # T is only bounded below, so a non-optimal solution may overstate it.
        if objective > solver.objective_value + 1e-6:
            raise RuntimeError(f"CP-SAT objective {solver.objective_value} < recomputed {objective}")
    # Integer objective: a fractional bound rounds up.
    bound = int(np.ceil(solver.best_objective_bound - 1e-6))
    proven = status == cp_model.OPTIMAL
    if proven and objective is not None:
        bound = objective
    return SolveOutcome(
        status=solver.status_name(status),
        proven_optimal=proven,
        objective=objective,
        bound=max(bound, 0),
        sequence=sequence,
        wall_s=solver.wall_time,
    )
