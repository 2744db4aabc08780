"""The sandbox side of both serving problems: call the candidate with one observation.

This module runs in the candidate's process and must not know anything the
candidate may not: it imports numpy only, never the engine, the traces or the
verifier.  Each call gets one observation (what a real scheduler or router
knows at that moment) and returns the candidate's answer as a float64 array;
the trusted side validates it again (this process is the candidate's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.ma  # noqa: F401  numpy imports it lazily (np.percentile, set ops); the sandbox may not

Heuristic = Callable[..., Any]


def _answer(out: Any, size: int, what: str) -> np.ndarray:
    values = np.asarray(out, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(size, float(values))
    if values.shape != (size,):
        raise ValueError(f"the {what} returned shape {values.shape}; expected ({size},)")
    if not np.isfinite(values).all():
        raise ValueError(f"the {what} returned NaN or infinity")
    return np.ascontiguousarray(values)


def respond_priority(heuristic: Heuristic, observation: dict[str, Any]) -> np.ndarray:
    """``priority(**observation)``: one priority per waiting and running request."""
    return _answer(heuristic(**observation), observation["arrival"].size, "policy")


def respond_route(heuristic: Heuristic, observation: dict[str, Any]) -> np.ndarray:
    """``route(**observation)``: one score per replica (the lowest wins)."""
    return _answer(heuristic(**observation), observation["outstanding"].size, "router")
