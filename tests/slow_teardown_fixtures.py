"""A verifier whose sandbox side makes the zygote's namespace dropper slow (tests/test_sandbox_turns.py).

Imported in the zygote before it forks its helpers, so the dropper closes each dead
candidate's mount namespace (and frees its tmpfs) only ``DELAY_S`` after the reap: a
next candidate sharing that candidate's cgroup would find its memory limit lowered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sandbox_fixtures import EchoVerifier

from evolve.sandbox import nsdrop

DELAY_S = 1.5
_release = nsdrop.release


def _slow_release(fd: int) -> None:
    time.sleep(DELAY_S)
    _release(fd)


nsdrop.release = _slow_release


class SlowTeardownVerifier(EchoVerifier):
    @staticmethod
    def solve(heuristic: Callable[..., Any], instance: Any) -> Any:  # defined here: this module is the sandbox side
        return heuristic(instance.data["x"])


