"""The sandbox side of binpack: the only module of this package in a candidate's process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def solve(heuristic: Callable[..., Any], instance: Any) -> Any:
    """Call the candidate on one instance; plain data back, unvalidated (score() judges it)."""
    result = heuristic(instance.data["items"].copy(), int(instance.data["capacity"]))
    if isinstance(result, np.ndarray):
        return result.tolist()
    if isinstance(result, list | tuple):
        return [x.item() if isinstance(x, np.generic) else x for x in result]
    return result
