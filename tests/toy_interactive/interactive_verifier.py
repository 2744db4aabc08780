"""Interactive verifier for tests: the toy problem, with the order built one call at a time."""

from __future__ import annotations

from typing import Any

from toy_verifier import ToyVerifier

from evolve.verifier import Instance


class InteractiveToyVerifier(ToyVerifier):
    """Same instances and scoring as the toy problem; no batch ``solve``."""

    @staticmethod
    def solve(heuristic: Any, instance: Instance) -> Any:
        raise NotImplementedError("interactive only")

    @staticmethod
    def respond(heuristic: Any, payload: Any) -> Any:
        return heuristic(payload)

    @staticmethod
    def interact(instance: Instance, session: Any) -> list[int]:
        """Trusted: send the remaining numbers, take the index of the next one."""
        x = instance.data["x"]
        left = list(range(len(x)))
        order = []
        while left:
            reply = session.call(x[left])
            if reply.error is not None:
                raise ValueError(reply.error)
            k = reply.value
            if not isinstance(k, int) or not 0 <= k < len(left):
                raise ValueError(f"pick returned {k!r}, expected an index below {len(left)}")
            order.append(left.pop(k))
        return order
