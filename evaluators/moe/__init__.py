"""MoE expert placement (EPLB): verifier, workload generator, trace loading, references."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evolve.evaluators.moe.verifier import MoeVerifier

__all__ = ["MoeVerifier"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the sandbox's worker, importing candidate_side.py through this
    # package, does not import the verifier and its trusted side (references, solvers).
    if name == "MoeVerifier":
        from evolve.evaluators.moe.verifier import MoeVerifier

        return MoeVerifier
    raise AttributeError(f"module 'evolve.evaluators.moe' has no attribute {name!r}")
