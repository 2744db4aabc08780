"""Schedule construction driven by a priority rule (runs inside the sandbox).

Two classic schemes, named in every reported figure:

* ``non_delay``: at the earliest time ``t`` any waiting operation can start,
  the candidates are the operations that can start at ``t`` on one machine
  (the machine of the lowest such job index); a machine is never left idle
  while an operation waits for it.
* ``active`` (Giffler-Thompson): take the waiting operation with the earliest
  completion time ``C*`` on machine ``m*``; the candidates are the operations
  waiting for ``m*`` that can start before ``C*``.

Either way the candidates of a decision share one machine.  At each decision
with two or more candidates the rule is called once with one
numpy array per feature (one entry per candidate, in job order) and returns one
priority per candidate; the highest is dispatched, ties go to the lowest job
index (as in job-shop-lib's dispatcher).  A single candidate needs no call.
Zero-duration operations are not decisions: they run when their job reaches
them and occupy no machine time.

The trusted verifier re-checks whatever this returns; nothing here is trusted.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

# The rule's keyword arguments, in the order of the documented signature.
FEATURES = (
    "proc_time",          # processing time of the candidate operation
    "job_work_left",      # total processing time of the job's unscheduled operations (incl. this one)
    "job_ops_left",       # number of the job's unscheduled operations (incl. this one)
    "job_work_done",      # total processing time of the job's scheduled operations
    "job_ready",          # time the job's previous operation ends (0 for the first)
    "machine_ready",      # time the candidate's machine becomes free
    "earliest_start",     # max(job_ready, machine_ready)
    "now",                # decision time: the smallest earliest_start among the candidates (scalar)
    "machine_work_left",  # unscheduled processing time on the candidate's machine (incl. this one)
    "op_index",           # position of the operation in its job (0-based)
    "n_jobs",             # scalar
    "n_machines",         # scalar
    # Aggregates a dispatching rule uses (GP hyper-heuristics' NPT, WINQ, bottleneck):
    "next_proc_time",         # processing time of the job's next operation (0 if this is its last)
    "next_machine_work_left", # unscheduled work on the machine of that next operation (0 if none)
    "total_work_left",        # unscheduled work of the whole shop (scalar)
    "max_machine_work_left",  # unscheduled work of the busiest machine: the bottleneck (scalar)
    "jobs_left",              # number of unfinished jobs (scalar)
)


def accepted_features(rule: Callable[..., Any]) -> tuple[str, ...]:
    """The features ``rule`` takes: all of them with ``**kwargs``, else only those it names.

    Rules written before a feature was added keep working; the features are only
    ever passed by keyword.
    """
    try:
        params = inspect.signature(rule).parameters.values()
    except (TypeError, ValueError):  # a builtin or an odd callable: offer everything
        return FEATURES
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return FEATURES
    named = {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                    inspect.Parameter.KEYWORD_ONLY)}
    return tuple(f for f in FEATURES if f in named)


class RuleOutputError(ValueError):
    """The rule's answer cannot be used as one priority per candidate."""


def _choose(priorities: Any, count: int) -> int:
    if type(priorities) is np.ndarray and priorities.dtype == np.float64 and priorities.shape == (count,):
        best = int(priorities.argmax())  # the common case, kept cheap: it runs per decision
        if priorities[best] != priorities[best]:  # argmax lands on the first NaN if there is one
            raise RuleOutputError(f"priority() returned NaN for candidate {best} of {count}")
        return best
    if priorities is None:  # np.asarray(None, float) would be NaN: name the real mistake
        raise RuleOutputError("priority() must return numbers (one per candidate), got None")
    try:
        values = np.asarray(priorities, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RuleOutputError(
            f"priority() must return numbers (one per candidate), got {type(priorities).__name__}: {exc}"
        ) from None
    if values.ndim == 0:
        if np.isnan(values):
            raise RuleOutputError("priority() returned NaN")
        return 0  # one number for all: every candidate ties
    if values.shape != (count,):
        raise RuleOutputError(
            f"priority() returned an array of shape {values.shape} for {count} candidates; "
            f"return one number per candidate (shape ({count},))"
        )
    best = int(values.argmax())  # argmax lands on the first NaN if there is one
    if np.isnan(values[best]):
        raise RuleOutputError(f"priority() returned NaN for candidate {best} of {count}")
    return best


def ask(rule: Callable[..., Any], features: dict[str, Any], wanted: set[str] | tuple[str, ...], count: int) -> int:
    """The candidate the rule dispatches (its position among the ``count`` candidates), given
    every feature of the decision; the rule gets those it takes."""
    if len(wanted) != len(FEATURES):
        features = {k: v for k, v in features.items() if k in wanted}
    return _choose(rule(**features), count)


def build_schedule(
    rule: Callable[..., Any],
    machines: np.ndarray,
    durations: np.ndarray,
    lengths: np.ndarray,
    n_machines: int,
    scheme: str,
) -> np.ndarray:
    """Start time of every operation, shape (n_jobs, max_ops) (padding: -1)."""
    wanted = set(accepted_features(rule))
    steps = build_steps(machines, durations, lengths, n_machines, scheme, wanted)
    try:
        features = next(steps)
        while True:
            features = steps.send(ask(rule, features, wanted, len(features["proc_time"])))
    except StopIteration as done:
        return done.value


def build_steps(
    machines: np.ndarray,
    durations: np.ndarray,
    lengths: np.ndarray,
    n_machines: int,
    scheme: str,
    wanted: set[str] | tuple[str, ...] = FEATURES,
) -> Generator[dict[str, Any], int, np.ndarray]:
    """The builder as a generator: yields each decision's features (those in ``wanted`` and
    the twelve every rule gets), is sent the position of the candidate dispatched, and
    returns the start times.  ``build_schedule`` drives it with a rule in one process; the
    trusted side drives it with a rule asked in the sandbox (``drive.py``)."""
    if scheme not in ("non_delay", "active"):
        raise ValueError(f"unknown scheme {scheme!r}")
    active = scheme == "active"
    n, width = durations.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    # One padding column so that "next operation" of a finished job indexes something.
    proc = np.zeros((n, width + 1))
    proc[:, :width] = durations
    mach = np.zeros((n, width + 1), dtype=np.int64)
    mach[:, :width] = np.maximum(machines, 0)
    # Job features by (job, position), stacked so one fancy index fetches them all:
    # work left (suffix sums), work done (prefix sums), operations left, position,
    # the next operation's processing time and machine (-1: none).
    positions = np.arange(width + 1, dtype=np.float64)
    next_machine = np.full((n, width + 1), -1.0)
    next_machine[:, : width - 1] = np.where(machines[:, 1:] >= 0, machines[:, 1:], -1)
    next_proc = np.zeros((n, width + 1))
    next_proc[:, :width] = proc[:, 1:]
    job_table = np.stack([
        np.cumsum(proc[:, ::-1], axis=1)[:, ::-1],
        np.cumsum(proc, axis=1) - proc,
        lengths[:, None] - positions[None, :],
        np.broadcast_to(positions, (n, width + 1)),
        next_proc,
        next_machine,
    ], axis=2)
    valid = machines >= 0
    machine_left = np.bincount(machines[valid], weights=durations[valid], minlength=n_machines).astype(float)
    total_left = float(machine_left.sum())

    nxt = np.zeros(n, dtype=np.int64)
    job_ready = np.zeros(n)
    machine_ready = np.zeros(n_machines)
    cur_m = mach[:, 0].copy()
    cur_p = proc[:, 0].copy()
    start = np.full((n, width), -1.0)
    n_jobs, n_mach = float(n), float(n_machines)
    remaining = int(lengths.sum())
    jobs_left = int((lengths > 0).sum())

    def advance(j: int) -> None:
        """Move job j to its next operation, running zero-duration ones at once."""
        nonlocal remaining, jobs_left
        while True:
            k = int(nxt[j])
            if k >= lengths[j]:
                job_ready[j] = np.inf  # finished: never a candidate again
                jobs_left -= int(lengths[j] > 0)
                return
            if proc[j, k] > 0:
                cur_m[j] = mach[j, k]
                cur_p[j] = proc[j, k]
                return
            start[j, k] = job_ready[j]
            nxt[j] = k + 1
            remaining -= 1

    for j in range(n):
        advance(j)

    while remaining > 0:
        est = np.maximum(job_ready, machine_ready[cur_m])
        if active:
            ect = est + cur_p
            first = int(ect.argmin())
            cand = ((cur_m == cur_m[first]) & (est < ect[first])).nonzero()[0]
        else:
            now = est.min()
            startable = est == now
            # Operations startable at `now` on different machines do not compete (any order
            # gives the same schedule): offer those of one machine at a time.
            cand = (startable & (cur_m == cur_m[startable.argmax()])).nonzero()[0]
        if cand.size == 1:
            j = int(cand[0])
        else:
            cm = cur_m[cand]
            cand_est = est[cand]
            jobs = job_table[cand, nxt[cand]]
            features = {
                "proc_time": cur_p[cand],
                "job_work_left": jobs[:, 0],
                "job_ops_left": jobs[:, 2],
                "job_work_done": jobs[:, 1],
                "job_ready": job_ready[cand],
                "machine_ready": machine_ready[cm],
                "earliest_start": cand_est,
                "now": float(cand_est.min() if active else now),
                "machine_work_left": machine_left[cm],
                "op_index": jobs[:, 3],
                "n_jobs": n_jobs,
                "n_machines": n_mach,
                "next_proc_time": jobs[:, 4],
            }
            if "next_machine_work_left" in wanted:
                later = jobs[:, 5].astype(np.int64)
                features["next_machine_work_left"] = np.where(later >= 0, machine_left[later], 0.0)
            if "total_work_left" in wanted:
                features["total_work_left"] = total_left
            if "max_machine_work_left" in wanted:
                features["max_machine_work_left"] = float(machine_left.max())
            if "jobs_left" in wanted:
                features["jobs_left"] = float(jobs_left)
            j = int(cand[(yield features)])
        k_j = int(nxt[j])
        m_j = int(cur_m[j])
        s = float(est[j])
        end = s + cur_p[j]
        start[j, k_j] = s
        machine_ready[m_j] = end
        machine_left[m_j] -= cur_p[j]
        total_left -= cur_p[j]
        job_ready[j] = end
        nxt[j] = k_j + 1
        remaining -= 1
        advance(j)
    return start


def schedule_solution(start: np.ndarray, durations: np.ndarray, lengths: np.ndarray, scheme: str) -> dict[str, Any]:
    """The JSON the sandbox hands back: start and end of every operation, per job."""
    starts, ends = [], []
    for j, length in enumerate(lengths.tolist()):
        s = start[j, :length].astype(np.int64)
        starts.append(s.tolist())
        ends.append((s + durations[j, :length]).tolist())
    return {"scheme": scheme, "start": starts, "end": ends}
