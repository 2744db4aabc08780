"""What runs inside the sandbox for SMTT: calling the candidate, for both tracks.

Sandbox side: numpy and the dispatcher only, never references, reports or
solvers.  Answers go back as plain JSON-able data, unvalidated; the trusted
``score`` says what is wrong with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from evolve.evaluators.smtt.dispatch import dispatch


def plain(result: Any) -> Any:
    """A candidate's answer as JSON-able data: arrays and numpy scalars become Python values."""
    if isinstance(result, np.ndarray):
        return result.tolist()
    if isinstance(result, str | Mapping) or not isinstance(result, Iterable):
        return result  # score() says what it is
    # numpy scalars -> Python scalars (same value), so the list pickles/JSONs.
    return [x.item() if isinstance(x, np.generic) else x for x in result]


def solve_schedule(heuristic: Callable[..., Any], instance: Any) -> Any:
    """``smtt``: the candidate's ``schedule(p, d)`` returns the whole sequence."""
    p, d = instance.data["p"], instance.data["d"]
    return plain(heuristic(p.copy(), d.copy()))


def solve_rule(heuristic: Callable[..., Any], instance: Any) -> Any:
    """``smtt_rule``: the candidate's ``priority`` only ranks; the dispatcher builds the sequence."""
    return dispatch(heuristic, instance.data["p"], instance.data["d"])
