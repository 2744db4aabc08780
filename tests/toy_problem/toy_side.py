"""The toy problem's sandbox side (tests only): the module the sandbox's worker imports."""

from __future__ import annotations

import time
from typing import Any


def solve(heuristic: Any, instance: Any) -> Any:
    if instance.data["delay_s"]:
        time.sleep(instance.data["delay_s"])
    result = heuristic(instance.data["x"].copy())
    return result.tolist() if hasattr(result, "tolist") else list(result)
