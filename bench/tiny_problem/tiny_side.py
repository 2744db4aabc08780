"""Sandbox side of the tiny benchmark problem: what runs in the candidate's process."""

from __future__ import annotations

import time
from typing import Any

from evolve.verifier import Instance


def solve(heuristic: Any, instance: Instance) -> Any:
    if instance.data["delay_s"]:  # a simulated evaluation cost, for the executor throughput bench
        time.sleep(instance.data["delay_s"])
    return heuristic(instance.data["x"])
