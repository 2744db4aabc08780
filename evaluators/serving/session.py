"""The trusted side's view of a sandbox session: send an observation, get the candidate's answer.

The sandbox runs the candidate's function behind ``respond`` (``candidate_side.py``)
in its own process; ``session.call(observation)`` returns a reply whose
``value`` is the answer (decoded without unpickling) and whose ``error`` says
whether the candidate raised.  Only the answer crosses back; the engine, the
trace and its true output lengths never leave this process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from evolve.evaluators.serving.policy import Observation, PolicyError
from evolve.verifier import REPLY_NOTE_BYTES

# What a reply may hold: one float per column of the observation (8 bytes as an array, a JSON
# number at most ~24) and a short note.  Every byte is read and parsed here, in the process
# that simulates every candidate's engine: a reply padded with whitespace to the sandbox's
# 64 MiB cost ~0.24 s of its CPU (and GIL) per call (docs/sandbox.md, sixth red team).
REPLY_BYTES_PER_ANSWER = 32


class Reply(Protocol):
    value: Any
    error: str | None


class Session(Protocol):
    @property
    def source(self) -> str:
        """The program text, as the trusted side sent it to the sandbox."""

    def call(self, payload: Any, reply_limit: int | None = None) -> Reply: ...


def session_decide(session: Session, what: str) -> Callable[[Observation], Any]:
    """``decide(observation)`` answered by the candidate in the sandbox."""

    def decide(observation: Observation) -> Any:
        reply = session.call(observation, reply_limit=REPLY_NOTE_BYTES + REPLY_BYTES_PER_ANSWER * observation[0].shape[-1])
        if reply.error:
            raise PolicyError(f"raised {reply.error}")
        return reply.value

    return decide


def local_decide(respond: Callable[[Callable[..., Any], Any], Any],
                 heuristic: Callable[..., Any]) -> Callable[[Observation], Any]:
    """``decide`` answered in this process, for tests and benchmarks of the verifier itself.

    As in a session, an exception is the call's error.  Never for candidates: they
    would share this process with the truth.
    """

    def decide(observation: Observation) -> Any:
        try:
            return respond(heuristic, observation)
        except Exception as exc:
            raise PolicyError(f"raised {type(exc).__name__}: {exc}") from None

    return decide
