"""Forward dispatching around a priority rule: the ``smtt_rule`` track's schedule builder.

Sandbox side (numpy only; nothing here is trusted, the verifier re-scores the
sequence from the instance alone).  The machine is free at time t; every
unscheduled job gets a priority from the rule; the lowest goes next and t
advances by its processing time.  The rule sees the unscheduled jobs in input
order plus the aggregates a dispatching rule uses (RULE_INPUTS), passed by
keyword: only those its signature names, or all of them with ``**kwargs``.

It returns one number per job, or a tuple of such arrays compared
lexicographically (``return np.maximum(d, t + p), d, p`` is MDD with ties by
due date, then processing time); remaining ties go to the job first in input
order.  NaN is an error; infinities order as usual.  ``p`` and ``d`` are read-only views of
the dispatcher's table (changed in place, they would carry state into later calls).
"""

from __future__ import annotations

import bisect
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

# name -> meaning; arrays have one entry per unscheduled job (input order), the rest are floats.
RULE_INPUTS: dict[str, str] = {
    "p": "processing times of the unscheduled jobs (array)",
    "d": "due dates of the unscheduled jobs (array; may be negative)",
    "t": "current time: the machine is free from t (the scheduled jobs' total processing time)",
    "remaining_work": "total processing time of the unscheduled jobs",
    "jobs_left": "number of unscheduled jobs",
    "n": "number of jobs in the instance",
    "p_max": "largest processing time among the unscheduled jobs",
    "p_mean": "mean processing time of the unscheduled jobs",
    "p_min": "smallest processing time among the unscheduled jobs",
    "d_min": "earliest due date among the unscheduled jobs",
    "d_mean": "mean due date of the unscheduled jobs",
    "d_max": "latest due date among the unscheduled jobs",
}


class RuleOutputError(ValueError):
    """The rule's answer cannot be used as one priority per unscheduled job."""


def accepted_inputs(rule: Callable[..., Any]) -> tuple[str, ...]:
    """The inputs ``rule`` takes: all with ``**kwargs``, else only those it names."""
    try:
        params = inspect.signature(rule).parameters.values()
    except (TypeError, ValueError):  # a builtin or an odd callable: offer everything
        return tuple(RULE_INPUTS)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return tuple(RULE_INPUTS)
    named = {p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                   inspect.Parameter.KEYWORD_ONLY)}
    return tuple(name for name in RULE_INPUTS if name in named)


def _key(value: Any, m: int, which: str) -> np.ndarray:
    if value is None:  # np.asarray would read it as NaN
        raise RuleOutputError(f"priority returned None{which}, expected numbers")
    try:
        key = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RuleOutputError(f"priority returned {type(value).__name__}{which}, expected numbers") from None
    if key.ndim == 0:
        return np.full(m, float(key))
    if key.shape != (m,):
        raise RuleOutputError(f"priority returned shape {key.shape}{which} for {m} unscheduled jobs, "
                              f"expected ({m},)")
    return key


def choose(answer: Any, m: int) -> int:
    """Position (among the m unscheduled jobs) of the lowest priority; lexicographic for tuples."""
    if type(answer) is np.ndarray and answer.dtype == np.float64 and answer.shape == (m,):
        k = int(answer.argmin())  # the common case, fast: the first minimum (or the first NaN)
        if answer[k] != answer[k]:
            raise RuleOutputError(f"priority returned NaN for job position {k}")
        return k
    keys = answer if isinstance(answer, tuple) else (answer,)  # a list is one key per job
    if not keys:
        raise RuleOutputError("priority returned an empty tuple")
    first = _key(keys[0], m, "" if len(keys) == 1 else " (key 0)")
    k = int(np.argmin(first))  # the first NaN if there is one
    if np.isnan(first[k]):
        raise RuleOutputError(f"priority returned NaN for job position {k}")
    if len(keys) == 1:
        return k
    tied = np.flatnonzero(first == first[k])
    for level, value in enumerate(keys[1:], 1):
        if tied.size == 1:
            break
        key = _key(value, m, f" (key {level})")[tied]
        low = int(np.argmin(key))
        if np.isnan(key[low]):
            raise RuleOutputError(f"priority returned NaN (key {level}) for job position {int(tied[low])}")
        tied = tied[key == key[low]]
    return int(tied[0])


class _Extremes:
    """Smallest and largest of a multiset of floats, one value removed per step.

    A sorted list with bisect deletions: O(1) reads and a short memmove per step.  A numpy
    reduction per aggregate and decision cost most of a decision when the rule names every
    input, as the seed and every GP program do (bench/smtt_dispatch.py: 41 us per decision
    before, 12 us since; 6 us for a rule naming t, p and d)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = sorted(values.tolist())

    def remove(self, value: float) -> None:
        del self.values[bisect.bisect_left(self.values, value)]


def integral(due: np.ndarray) -> bool:
    """Whether due dates are integers whose sums float64 holds exactly (d_mean from an int sum)."""
    return bool(np.all(due == np.round(due))) and float(np.abs(due).sum()) < 2.0 ** 53


def dispatch(rule: Callable[..., Any], p: np.ndarray, d: np.ndarray) -> list[int]:
    """The sequence the rule builds: n decisions, each over the unscheduled jobs."""
    n = len(p)
    wanted = set(accepted_inputs(rule))
    work = np.asarray(p, dtype=np.int64)  # t and remaining_work stay exact integers
    due = np.asarray(d, dtype=np.float64)
    # Rows: job index, p, d of the unscheduled jobs in input order; one deletion per step.
    table = np.stack([np.arange(n, dtype=np.float64), work.astype(np.float64), due])
    table.flags.writeable = False  # the rule gets views of it: an in-place change would outlive the call
    t, remaining = 0, int(work.sum())
    # Means from running sums: exact for integers below 2**53, so equal to np.mean's (its
    # partial sums are exact too); due dates that are not such integers use np.mean.
    integral_due = integral(due)
    due_left = int(due.sum()) if integral_due else 0
    p_range = _Extremes(table[1]) if wanted & {"p_max", "p_min"} else None
    d_range = _Extremes(table[2]) if wanted & {"d_max", "d_min"} else None
    sequence: list[int] = []
    for step in range(n):
        m = n - step
        # Only the inputs the rule names, each computed only then: this loop is the sandbox's
        # inner loop (52,250 decisions per evaluation on smtt_rule's train).
        inputs: dict[str, Any] = {}
        if "p" in wanted:
            inputs["p"] = table[1]
        if "d" in wanted:
            inputs["d"] = table[2]
        if "t" in wanted:
            inputs["t"] = float(t)
        if "remaining_work" in wanted:
            inputs["remaining_work"] = float(remaining)
        if "jobs_left" in wanted:
            inputs["jobs_left"] = float(m)
        if "n" in wanted:
            inputs["n"] = float(n)
        if "p_mean" in wanted:
            inputs["p_mean"] = remaining / m
        if "d_mean" in wanted:
            inputs["d_mean"] = due_left / m if integral_due else float(np.mean(table[2]))
        if "p_min" in wanted:
            inputs["p_min"] = p_range.values[0]  # type: ignore[union-attr]
        if "p_max" in wanted:
            inputs["p_max"] = p_range.values[-1]  # type: ignore[union-attr]
        if "d_min" in wanted:
            inputs["d_min"] = d_range.values[0]  # type: ignore[union-attr]
        if "d_max" in wanted:
            inputs["d_max"] = d_range.values[-1]  # type: ignore[union-attr]
        k = choose(rule(**inputs), m)
        job = int(table[0, k])
        sequence.append(job)
        t += int(work[job])
        remaining -= int(work[job])
        if integral_due:
            due_left -= int(due[job])
        if p_range is not None:
            p_range.remove(float(work[job]))
        if d_range is not None:
            d_range.remove(float(due[job]))
        table = np.concatenate((table[:, :k], table[:, k + 1:]), axis=1)
        table.flags.writeable = False
    return sequence


def inputs_at(wanted: set[str], p: np.ndarray, d: np.ndarray, t: int, n: int, integral_due: bool) -> dict[str, Any]:
    """The inputs ``dispatch`` passes the rule at a state, computed from the state alone.

    ``p`` (int64) and ``d`` (float64) are the unscheduled jobs in input order, ``t`` the
    scheduled jobs' total processing time, ``integral_due`` whether ``dispatch`` took the
    whole instance's due dates as exact integers.  The values are the same floats dispatch
    computes incrementally (a test checks every step), so a rule that is a function of its
    inputs makes the same choice here as it made there.
    """
    m = len(p)
    remaining = int(p.sum())
    pf = p.astype(np.float64)
    pf.flags.writeable = d.flags.writeable = False  # as dispatch's
    every = {
        "p": lambda: pf,
        "d": lambda: d,
        "t": lambda: float(t),
        "remaining_work": lambda: float(remaining),
        "jobs_left": lambda: float(m),
        "n": lambda: float(n),
        "p_mean": lambda: remaining / m,
        "d_mean": lambda: int(d.sum()) / m if integral_due else float(np.mean(d)),
        "p_min": lambda: float(pf.min()),
        "p_max": lambda: float(pf.max()),
        "d_min": lambda: float(d.min()),
        "d_max": lambda: float(d.max()),
    }
    return {name: every[name]() for name in RULE_INPUTS if name in wanted}


def choices_at(rule: Callable[..., Any], states: list[dict[str, Any]]) -> list[int]:
    """Sandbox side of the trusted replay (``audit.py``): the rule's choice (a position among
    the jobs shown) at each state, each asked as ``dispatch`` would have asked it there.  A
    state with ``scalars`` shows only some of the unscheduled jobs and carries the full state's
    scalar inputs, which the rule gets instead of the shown jobs' (the subset check)."""
    wanted = set(accepted_inputs(rule))
    out = []
    for state in states:
        p = np.asarray(state["p"], dtype=np.int64)
        scalars = {name: float(value) for name, value in state.get("scalars", {}).items() if name in wanted}
        inputs = inputs_at(wanted - scalars.keys(), p, np.array(state["d"], dtype=np.float64), int(state["t"]),
                           int(state["n"]), bool(state["integral_due"]))
        inputs.update(scalars)
        out.append(choose(rule(**{name: inputs[name] for name in RULE_INPUTS if name in inputs}), len(p)))
    return out
