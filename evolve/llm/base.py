"""The LLM backend contract shared by every backend (hosted, local, stub, replay)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

EditMode = Literal["diff", "rewrite"]


@dataclass(frozen=True)
class ProposalRequest:
    """Everything a backend may use to propose a child program.

    Real models read ``messages``; the offline stub reads the structured fields
    (it mutates ``parent_code`` and borrows from ``inspiration_codes``).
    """

    messages: list[dict[str, str]]
    iteration: int
    seed: int
    mode: EditMode
    parent_code: str
    inspiration_codes: list[str] = field(default_factory=list)
    # Asked again for the same iteration after a duplicate (offline backends only): an
    # answer that depends only on the fields above must change with it.
    retry: int = 0
    # Start afresh rather than from the parent (an island's initial population or restart).
    fresh: bool = False


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0


class LLMError(Exception):
    """A proposal that failed after retries (or a malformed/empty reply).

    The message is one line; the loop records it as a failed proposal.
    ``kind`` names the failure for counting and display (``"timeout"``,
    ``"http_503"``, ``"empty"``, ...); ``"other"`` when nothing better is known.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


class LLMConfigError(LLMError):
    """A failure that will repeat the same way for every call: no retry can fix it.

    Wrong or missing key (HTTP 401/403, missing credentials), unknown model or
    provider (HTTP 404), an endpoint that refuses connections or whose name does
    not resolve. Still an ``LLMError`` (the loop records a failed proposal), but
    the loop stops the run after a few consecutive ones (``llm_fail_fast``).
    """


class LLM(Protocol):
    name: str

    def complete(self, request: ProposalRequest) -> Completion: ...
