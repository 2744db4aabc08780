"""A run's progress as the display, the API's callbacks and the final summary see it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from evolve.stop import Stop

# Failure kinds as the display and the log count them.
MODEL, EDIT, EVALUATION = "model", "edit", "evaluation"

@dataclass
class Progress:
    done: int
    target: int
    best_score: float | None
    best_gap: float | None
    failures: int
    evaluations: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    started: float
    stop_reason: str | None = None  # the stop's one-line message ("iterations" when complete)
    stop: Stop | None = None
    # CPU time of the controller thread's own work (sampling, prompts, edits,
    # archive writes): thread time, so a loaded machine does not inflate it.
    engine_seconds: float = 0.0
    # Duplicates an offline backend proposed and was asked again for (no iteration spent).
    duplicates_skipped: int = 0
    # Failures by kind (model, edit, evaluation; duplicates are not failures)
    # and the last reason of each kind, as "iteration N: reason".
    failures_by_kind: dict[str, int] = field(
        default_factory=lambda: {MODEL: 0, EDIT: 0, EVALUATION: 0})
    last_failure: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0
    # Iterations finished by this process (a resumed run starts at 0) since the
    # loop started (after the seed's evaluation): the ETA's pace.
    session_done: int = 0
    loop_started: float | None = None

    @property
    def evals_per_s(self) -> float:
        elapsed = time.time() - self.started
        return self.evaluations / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds to the iteration target at this session's pace (None before the first)."""
        elapsed = time.time() - (self.loop_started or self.started)
        if self.session_done <= 0 or elapsed <= 0:
            return None
        return max(0, self.target - self.done) * elapsed / self.session_done


def first_line(text: str) -> str:
    """The first non-blank line of a reason, stripped: what a progress line shows."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
