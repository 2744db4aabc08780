"""Single-machine total tardiness (SMTT): verifiers for both tracks, instances, references."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evolve.evaluators.smtt.verifier import SmttRuleVerifier, SmttVerifier

__all__ = ["SmttRuleVerifier", "SmttVerifier"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the sandbox's worker, importing candidate_side.py through this
    # package, does not import the verifier and its trusted side (references, solvers).
    if name in __all__:
        from evolve.evaluators.smtt import verifier

        return getattr(verifier, name)
    raise AttributeError(f"module 'evolve.evaluators.smtt' has no attribute {name!r}")
