"""LLM serving: a vLLM-like continuous-batching simulator and its verifiers.

``ServingVerifier`` scores request-scheduling policies of one replica;
``RouterVerifier`` scores routers over several replicas.
"""

from __future__ import annotations

from evolve.evaluators.serving.router import RouterVerifier
from evolve.evaluators.serving.verifier import ServingVerifier

__all__ = ["RouterVerifier", "ServingVerifier"]
