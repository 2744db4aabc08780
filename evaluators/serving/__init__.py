"""LLM serving: a vLLM-like continuous-batching simulator and its verifiers.

``ServingVerifier`` scores request-scheduling policies of one replica;
``RouterVerifier`` scores routers over several replicas.  Their sandbox side
is ``candidate_side``; everything else here is trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evolve.evaluators.serving.router import RouterVerifier
    from evolve.evaluators.serving.verifier import ServingVerifier

__all__ = ["RouterVerifier", "ServingVerifier"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the sandbox's worker can import candidate_side without the simulator.
    if name == "ServingVerifier":
        from evolve.evaluators.serving.verifier import ServingVerifier

        return ServingVerifier
    if name == "RouterVerifier":
        from evolve.evaluators.serving.router import RouterVerifier

        return RouterVerifier
    raise AttributeError(f"module 'evolve.evaluators.serving' has no attribute {name!r}")
