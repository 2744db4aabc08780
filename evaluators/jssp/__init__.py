"""Job-shop scheduling (JSSP): verifier, benchmark instances, schedule builder, references."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evolve.evaluators.jssp.verifier import JsspVerifier

__all__ = ["JsspVerifier"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m evolve.evaluators.jssp.references` does not import its
    # module twice (once via the package, once as __main__).
    if name == "JsspVerifier":
        from evolve.evaluators.jssp.verifier import JsspVerifier

        return JsspVerifier
    raise AttributeError(f"module 'evolve.evaluators.jssp' has no attribute {name!r}")
