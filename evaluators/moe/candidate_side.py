"""The sandbox side of the moe problem: one ``rebalance_experts`` call per message.

Runs in the candidate's process and imports numpy only.  It calls the
candidate on the window it is sent and packs the returned triple into one
int64 array (``pack``), which crosses back as raw bytes; a result that is not
a triple of integer arrays comes back as a short JSON note instead.  It times
nothing: the trusted side reads the child's CPU clock from outside
(``harness.py``), so the conversion of lazy results to arrays is part of the
measured call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

NAMES = ("phy2log", "log2phy", "logcnt")
INT64_MAX = np.iinfo(np.int64).max


def pack(result: Any) -> np.ndarray | dict[str, Any]:
    """``[3, ndim, *shape, ...(x3), values...]`` as int64, or a note on what came back."""
    if not isinstance(result, tuple | list) or len(result) != 3:
        return {"returned": type(result).__name__[:40]}
    arrays = [np.asarray(part) for part in result]
    notes = {}
    for name, arr in zip(NAMES, arrays, strict=True):
        if arr.dtype.kind not in "iu" or (arr.dtype.kind == "u" and arr.size and int(arr.max()) > INT64_MAX):
            notes[name] = {"dtype": arr.dtype.name if arr.dtype.kind in "fcbu" else "object"}
    if notes:
        return notes
    head = [3]
    for arr in arrays:
        head += [arr.ndim, *arr.shape]
    return np.concatenate([np.asarray(head, np.int64), *(arr.astype(np.int64).ravel() for arr in arrays)])


def respond(heuristic: Callable[..., Any], payload: tuple[np.ndarray, tuple[int, int, int, int]]) -> Any:
    weight, args = payload
    return pack(heuristic(weight, *args))
