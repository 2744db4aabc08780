"""The toy problem with a CPU budget per instance (tests only): one session call per instance."""

from __future__ import annotations

import time
from typing import Any

from toy_interactive.interactive_verifier import InteractiveToyVerifier

from evolve.verifier import CandidateError, Instance

BUDGET_S = 0.04
WAIT_FOR_S = 0.06  # CPU the first instance's test program spends after answering


class BudgetedToyVerifier(InteractiveToyVerifier):
    """As the interactive toy's, but the candidate returns the whole order in one call."""

    time_budget_text = "40 ms per instance"

    @staticmethod
    def time_budget_s(instance: Instance) -> float:
        return BUDGET_S

    @staticmethod
    def interact(instance: Instance, session: Any) -> Any:
        before = session._cpu_ns()
        reply = session.call(instance.data["x"])
        if reply.error is not None:
            raise CandidateError(reply.error)
        if reply.cpu_seconds > BUDGET_S:
            raise CandidateError(f"CPU budget exceeded at the answer: {reply.cpu_seconds:.3f} s")
        if instance.name.endswith("-0"):
            # A slow trusted side: on the first instance, wait (reading the child's clock, never
            # settling it) until the CPU its test program spends after answering shows, so that
            # it is there when the evaluation settles the instance, whatever the machine's load.
            deadline = time.monotonic() + 25
            while session._cpu_ns() - before < WAIT_FOR_S * 1e9 and time.monotonic() < deadline:
                time.sleep(0.005)
        return [int(k) for k in reply.value]
