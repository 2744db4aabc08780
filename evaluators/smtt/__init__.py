"""Single-machine total tardiness (SMTT): verifiers for both tracks, instances, references."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evolve.evaluators.smtt.verifier import SmttRuleVerifier, SmttVerifier

__all__ = ["SmttRuleVerifier", "SmttVerifier"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m evolve.evaluators.smtt.references` does not import that
    # module twice (once via the package, once as __main__).
    if name in __all__:
        from evolve.evaluators.smtt import verifier

        return getattr(verifier, name)
    raise AttributeError(f"module 'evolve.evaluators.smtt' has no attribute {name!r}")
