"""Job-shop scheduling (JSSP): verifier, benchmark instances, schedule builder, references."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evolve.evaluators.jssp.verifier import JsspVerifier

__all__ = ["JsspVerifier"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the sandbox's worker, importing candidate_side.py through this
    # package, does not import the verifier and its trusted side (references, solvers).
    if name == "JsspVerifier":
        from evolve.evaluators.jssp.verifier import JsspVerifier

        return JsspVerifier
    raise AttributeError(f"module 'evolve.evaluators.jssp' has no attribute {name!r}")
