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

# The policy's keyword arguments (problems/serving/problem.toml and context.md document them).
# An observation travels as one float64 matrix (a row per array feature, a column per
# waiting-then-running request) and a tuple of scalars: one small pickle per call.
ARRAY_FEATURES = ("arrival", "waited", "prompt_len", "computed", "generated", "predicted_len", "blocks_held",
                  "blocks_needed", "running", "preemptions", "client_tokens")
SCALAR_FEATURES = ("now", "free_blocks", "total_blocks", "queue_len", "num_running", "ttft_slo", "tpot_slo")
# The router's: the request (scalars), then one entry per replica (rows).
ROUTER_SCALARS = ("now", "prompt_len", "predicted_len", "arrival_index")
ROUTER_ARRAYS = ("outstanding", "waiting", "running", "free_blocks", "total_blocks", "queued_tokens",
                 "predicted_work", "step_time", "prefill_time", "decode_time")
Payload = tuple[np.ndarray, tuple[float, ...]]


def features(payload: Payload, arrays: tuple[str, ...], scalars: tuple[str, ...]) -> dict[str, Any]:
    """The keyword arguments of one call, from its payload."""
    matrix, values = payload
    out: dict[str, Any] = dict(zip(arrays, matrix, strict=True))
    out.update(zip(scalars, values, strict=True))
    return out


def _answer(out: Any, size: int, what: str) -> np.ndarray:
    values = np.asarray(out, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(size, float(values))
    if values.shape != (size,):
        raise ValueError(f"the {what} returned shape {values.shape}; expected ({size},)")
    if not np.isfinite(values).all():
        raise ValueError(f"the {what} returned NaN or infinity")
    return np.ascontiguousarray(values)


def respond_priority(heuristic: Heuristic, payload: Payload) -> np.ndarray:
    """``priority(**observation)``: one priority per waiting and running request."""
    return _answer(heuristic(**features(payload, ARRAY_FEATURES, SCALAR_FEATURES)), payload[0].shape[1], "policy")


def respond_route(heuristic: Heuristic, payload: Payload) -> np.ndarray:
    """``route(**observation)``: one score per replica (the lowest wins)."""
    return _answer(heuristic(**features(payload, ROUTER_ARRAYS, ROUTER_SCALARS)), payload[0].shape[1], "router")
