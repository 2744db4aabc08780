"""Why a run stopped, and the exit code each reason maps to.

One table shared by the CLI and the Python API, so a script or a cluster job
can tell a finished run from one that could not reach its model. The codes are
documented in the README ("Using a real model") and in docs/llm.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StopKind(StrEnum):
    COMPLETED = "completed"  # the iteration target was reached
    BUDGET = "budget"  # --budget-usd was reached: a clean, intended stop
    MODEL_CONFIG = "model_config"  # every model call fails the same way (key, model, endpoint)
    MODEL_OUTAGE = "model_outage"  # every model call failed for llm_outage_minutes
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGINT


# Exit codes of `evolve run` / `evolve resume`. 1 stays Python's own (an
# unexpected error with a traceback); 2 is a mistake in the input, found before
# any work starts (bad flag or config, failed model preflight).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CODES: dict[StopKind, int] = {
    StopKind.COMPLETED: EXIT_OK,
    StopKind.BUDGET: EXIT_OK,
    StopKind.MODEL_CONFIG: 3,
    StopKind.MODEL_OUTAGE: 4,
    StopKind.INTERRUPTED: 130,
}

# What each code means, for --help and the docs.
EXIT_MEANINGS: dict[int, str] = {
    0: "the run reached its iteration target or its --budget-usd",
    1: "an unexpected error (a bug: please report the traceback)",
    2: "bad input or a failed model preflight; nothing was run",
    3: "stopped: every model call failed the same way (key, model, provider, endpoint), or a "
       "replay: recording ended",
    4: "stopped: every model call failed for llm_outage_minutes (provider outage, stalled server)",
    130: "interrupted (Ctrl-C); `evolve resume RUN_DIR` continues it",
}


@dataclass(frozen=True)
class Stop:
    kind: StopKind
    message: str  # one line, shown to the user

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]

    @property
    def failed(self) -> bool:
        """The run did not end the way it was asked to (a script should notice)."""
        return self.exit_code != EXIT_OK
