"""A tiny verifier for tests/test_sandbox.py: solve() just calls the heuristic on data["x"]."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class EchoVerifier:
    direction = "minimize"

    @staticmethod
    def solve(heuristic: Callable[..., Any], instance: Any) -> Any:
        return heuristic(instance.data["x"])


class InteractiveVerifier(EchoVerifier):
    """Batch runs as EchoVerifier; in a session each call is ``heuristic(payload)``."""

    @staticmethod
    def respond(heuristic: Callable[..., Any], payload: Any) -> Any:
        return heuristic(payload)
