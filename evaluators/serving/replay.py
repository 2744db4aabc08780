"""The trusted side: replay recorded decisions through the engine and validate each one.

A solution is hostile input.  Its decisions are flat integer lists
``[step, request, step, request, ...]`` (steps non-decreasing):

* ``admit``: requests admitted at that step, in admission order;
* ``blocked``: at most one per step, the waiting request at which admission
  stopped because it did not fit (KV blocks, or the whole prompt without
  chunking);
* ``victims``: requests preempted at that step, in order.

The replay uses the same engine as the sandbox, so a decision is valid exactly
when the engine's rules allow it in the replayed state; the first invalid one
is reported with its step and the rule it breaks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evolve.evaluators.serving.engine import (
    WAITING,
    Engine,
    EngineConfig,
    EngineError,
    Trace,
    run_engine,
)

MAX_DECISIONS = 10**7
_WHY = {
    "slots": "all max_num_seqs sequence slots are taken",
    "budget": "the step's token budget is spent",
    "kv": "its first prefill chunk needs more KV blocks than are free",
    "unchunked": "its whole prompt does not fit in the rest of the token budget (no chunking)",
}


class SolutionError(Exception):
    """The solution is malformed (types, lengths): not even a replayable record."""


def decision_rows(solution: dict[str, Any], key: str, n_requests: int) -> np.ndarray:
    """A validated (k, 2) int array of (step, request) rows."""
    flat = solution.get(key)
    if not isinstance(flat, list):
        raise SolutionError(f"'{key}' must be a list of integers, got {type(flat).__name__}")
    if len(flat) % 2 or len(flat) > 2 * MAX_DECISIONS:
        raise SolutionError(f"'{key}' must hold [step, request] pairs (even length), got {len(flat)} items")
    if not all(type(x) is int for x in flat):
        bad = next(x for x in flat if type(x) is not int)
        raise SolutionError(f"'{key}' must hold integers only, found {bad!r}")
    rows = np.asarray(flat, dtype=np.int64).reshape(-1, 2) if flat else np.empty((0, 2), np.int64)
    if rows.size and (rows[:, 0].min() < 0 or np.any(np.diff(rows[:, 0]) < 0)):
        raise SolutionError(f"'{key}' steps must be >= 0 and non-decreasing")
    if rows.size and (rows[:, 1].min() < 0 or rows[:, 1].max() >= n_requests):
        raise SolutionError(f"'{key}' names a request outside 0..{n_requests - 1}")
    return rows


class _Rows:
    """Recorded rows consumed step by step."""

    def __init__(self, rows: np.ndarray, what: str) -> None:
        self.steps = rows[:, 0].tolist()
        self.ids = rows[:, 1]
        self.at = 0
        self.what = what

    def take(self, step: int) -> np.ndarray:
        self.check_stale(step)
        end = self.at
        while end < len(self.steps) and self.steps[end] == step:
            end += 1
        out, self.at = self.ids[self.at:end], end
        return out

    def check_stale(self, step: int | None) -> None:
        """Rows before ``step`` (None: any row) that were never consumed are invalid."""
        if self.at < len(self.steps) and (step is None or self.steps[self.at] < step):
            raise EngineError(f"{self.what} of request {int(self.ids[self.at])} is recorded at step "
                              f"{self.steps[self.at]}, but the engine had no such choice then", located=True)


class ReplayDecider:
    def __init__(self, admit: np.ndarray, blocked: np.ndarray, victims: np.ndarray) -> None:
        self.admit_rows = _Rows(admit, "an admission")
        self.blocked_rows = _Rows(blocked, "a blocked admission")
        self.victim_rows = _Rows(victims, "a preemption")

    def preempt(self, eng: Engine) -> None:
        for victim in self.victim_rows.take(eng.steps).tolist():
            eng.preempt(victim)
        if eng.shortage() > 0:
            raise EngineError(f"the running requests need {eng.shortage()} more KV blocks than are "
                              "free after the recorded preemptions")

    def admit(self, eng: Engine) -> None:
        step = eng.steps
        ids = self.admit_rows.take(step)
        blocked = self.blocked_rows.take(step)
        if blocked.size > 1:
            raise EngineError(f"{blocked.size} blocked admissions recorded; at most one per step")
        if ids.size != np.unique(ids).size:
            raise EngineError("a request is admitted twice in one step")
        candidates = np.concatenate((ids, blocked))
        not_waiting = candidates[eng.state[candidates] != WAITING]
        if not_waiting.size:
            raise EngineError(f"request {int(not_waiting[0])} cannot be admitted: it is not waiting "
                              "(not arrived, running or finished)")
        if blocked.size and blocked[0] in ids:
            raise EngineError(f"request {int(blocked[0])} is recorded both as admitted and as blocked")
        k, tokens, blocks, reason = eng.fit_prefix(candidates)
        if k < ids.size:
            raise EngineError(f"request {int(candidates[k])} cannot be admitted: {_WHY[reason]}")
        if blocked.size:
            if k == candidates.size:
                raise EngineError(f"request {int(blocked[0])} is recorded as not fitting, but it fits")
            if reason not in ("kv", "unchunked"):
                raise EngineError(f"request {int(blocked[0])} is recorded as blocking admission, but "
                                  f"admission had stopped anyway: {_WHY[reason]}")
        else:
            slots, budget, _ = eng.admission_room()
            left = eng.waiting.size - k
            if left > 0 and slots - k > 0 and budget - int(tokens.sum()) > 0:
                raise EngineError(
                    f"admission stopped with {left} requests waiting, {slots - k} sequence slots and "
                    f"{budget - int(tokens.sum())} budget tokens left, and no request recorded as not "
                    "fitting (the engine admits while slots, budget and KV last)")
        eng.admit(ids, tokens, blocks)

    def finish(self) -> None:
        for rows in (self.admit_rows, self.blocked_rows, self.victim_rows):
            rows.check_stale(None)


def replay(cfg: EngineConfig, trace: Trace, solution: Any, max_steps: int) -> Engine:
    """The engine after replaying ``solution``; SolutionError / EngineError if invalid."""
    if not isinstance(solution, dict):
        raise SolutionError(f"the solution must be an object, got {type(solution).__name__}")
    n = len(trace)
    decider = ReplayDecider(*(decision_rows(solution, key, n) for key in ("admit", "blocked", "victims")))
    engine = run_engine(cfg, trace, decider, max_steps)
    decider.finish()
    return engine


def reported(solution: dict[str, Any], key: str, n: int) -> np.ndarray:
    """A per-request figure the sandbox reported (checked against the replay)."""
    values = solution.get(key)
    if not isinstance(values, list) or len(values) != n:
        raise SolutionError(f"'{key}' must be a list of {n} numbers")
    if not all(type(x) in (int, float) and math.isfinite(x) for x in values):
        raise SolutionError(f"'{key}' must hold finite numbers only")
    return np.asarray(values, dtype=float)
