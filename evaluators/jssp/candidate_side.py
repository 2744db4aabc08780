"""The sandbox side of the jssp problem: build a schedule around the candidate's rule.

Runs in the candidate's process and imports numpy and the schedule builder
only, never the benchmarks, references, checker or CP-SAT: the warm worker
holds this module and nothing else of the package.  What it returns is
re-checked from scratch by the trusted ``check_schedule``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evolve.evaluators.jssp.builder import (
    accepted_features,
    ask,
    build_schedule,
    schedule_solution,
)
from evolve.verifier import Instance

MAX_REASON = 300  # characters of a rule's error sent (and quoted) per decision


def solve(heuristic: Callable[..., Any], instance: Instance) -> Any:
    data = instance.data
    start = build_schedule(heuristic, data["machines"], data["durations"], data["lengths"],
                           int(data["n_machines"]), data["scheme"])
    return schedule_solution(start, data["durations"], data["lengths"], data["scheme"])


def respond(heuristic: Callable[..., Any], payload: dict[str, Any]) -> list[int | str]:
    """One round of the trusted builder (``drive.py``): the candidate the rule dispatches at
    each decision asked (one per unfinished instance), or why the rule gave no usable answer
    there (that instance fails, the others go on, as in a batch run)."""
    wanted = set(accepted_features(heuristic))
    out: list[int | str] = []
    for features in payload["decisions"]:
        try:
            out.append(ask(heuristic, features, wanted, len(features["proc_time"])))
        except Exception as err:  # the rule's own error, or NaN, a wrong shape: that instance's verdict
            out.append(f"{type(err).__name__}: {err}"[:MAX_REASON])
    return out
