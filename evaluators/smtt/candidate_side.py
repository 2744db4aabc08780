"""What runs inside the sandbox for SMTT: calling the candidate, for both tracks.

Sandbox side: numpy and the dispatcher only, never references, reports or
solvers.  Answers go back as plain JSON-able data, unvalidated; the trusted
``score`` says what is wrong with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from evolve.evaluators.smtt.dispatch import choices_at, dispatch


def plain(result: Any) -> Any:
    """A candidate's answer as JSON-able data: arrays and numpy scalars become Python values."""
    if isinstance(result, np.ndarray):
        return result.tolist()
    if isinstance(result, str | Mapping) or not isinstance(result, Iterable):
        return result  # score() says what it is
    # numpy scalars -> Python scalars (same value), so the list pickles/JSONs.
    return [x.item() if isinstance(x, np.generic) else x for x in result]


def wire(answer: Any) -> Any:
    """A session reply: a list of plain numbers goes as a numpy array (raw bytes, NaN kept,
    so the trusted check can name the bad element); anything else as it is (JSON)."""
    if isinstance(answer, list) and answer:
        kinds = {type(x) for x in answer}
        try:
            if kinds == {int}:
                return np.asarray(answer, dtype=np.int64)
            if kinds <= {int, float}:
                return np.asarray(answer, dtype=np.float64)
        except OverflowError:  # an int beyond int64: JSON keeps it, the check names it
            pass
    return answer


def respond_schedule(heuristic: Callable[..., Any], payload: dict[str, np.ndarray]) -> Any:
    """``smtt``: the candidate's ``schedule(p, d)`` returns the whole sequence."""
    return wire(plain(heuristic(payload["p"].copy(), payload["d"].copy())))


def respond_rule(heuristic: Callable[..., Any], payload: dict[str, np.ndarray]) -> Any:
    """``smtt_rule``: the candidate's ``priority`` only ranks; the dispatcher builds the sequence.

    A payload with ``states`` is one round of the trusted replay (``audit.py``, in a fresh
    process): the rule's choice at each, as positions among the unscheduled jobs."""
    if "states" in payload:
        return np.asarray(choices_at(heuristic, payload["states"]), dtype=np.int64)
    return wire(dispatch(heuristic, payload["p"], payload["d"]))


# A batch run (Sandbox.run) hands over whole instances and sends answers as JSON.
def solve_schedule(heuristic: Callable[..., Any], instance: Any) -> Any:
    return plain(heuristic(instance.data["p"].copy(), instance.data["d"].copy()))


def solve_rule(heuristic: Callable[..., Any], instance: Any) -> Any:
    return dispatch(heuristic, instance.data["p"], instance.data["d"])
