"""Single-machine total tardiness (SMTT): verifier, instances, references."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evolve.evaluators.smtt.verifier import SmttVerifier

__all__ = ["SmttVerifier"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m evolve.evaluators.smtt.references` does not import that
    # module twice (once via the package, once as __main__).
    if name == "SmttVerifier":
        from evolve.evaluators.smtt.verifier import SmttVerifier

        return SmttVerifier
    raise AttributeError(f"module 'evolve.evaluators.smtt' has no attribute {name!r}")
