"""MoE expert placement (EPLB): verifier, workload generator, trace loading, references."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evolve.evaluators.moe.verifier import MoeVerifier

__all__ = ["MoeVerifier"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m evolve.evaluators.moe.references` does not import that
    # module twice (once via the package, once as __main__).
    if name == "MoeVerifier":
        from evolve.evaluators.moe.verifier import MoeVerifier

        return MoeVerifier
    raise AttributeError(f"module 'evolve.evaluators.moe' has no attribute {name!r}")
