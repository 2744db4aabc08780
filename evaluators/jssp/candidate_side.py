"""The sandbox side of the jssp problem: build a schedule around the candidate's rule.

Runs in the candidate's process and imports numpy and the schedule builder
only, never the benchmarks, references, checker or CP-SAT: the warm worker
holds this module and nothing else of the package.  What it returns is
re-checked from scratch by the trusted ``check_schedule``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evolve.evaluators.jssp.builder import accepted_features, ask, build_schedule, schedule_solution
from evolve.verifier import Instance


def solve(heuristic: Callable[..., Any], instance: Instance) -> Any:
    data = instance.data
    start = build_schedule(heuristic, data["machines"], data["durations"], data["lengths"],
                           int(data["n_machines"]), data["scheme"])
    return schedule_solution(start, data["durations"], data["lengths"], data["scheme"])


def respond(heuristic: Callable[..., Any], payload: dict[str, Any]) -> np.ndarray:
    """One round of the trusted replay (``audit.py``, in a fresh process): the candidate the
    rule dispatches at each decision, as the builder would have asked it there."""
    wanted = set(accepted_features(heuristic))
    return np.asarray([ask(heuristic, features, wanted, len(features["proc_time"]))
                       for features in payload["decisions"]], dtype=np.int64)
