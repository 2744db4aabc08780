"""When a run stops for its model: fail fast on a wrong setup, stop on a long outage.

A wrong key, model name or endpoint fails the same way on every call
(``LLMConfigError``): ``llm_fail_fast`` such calls in a row stop the run at once, and the
first request past a ``replay:`` recording's end stops it at once.
Transient errors are retried by the client; only when every call has failed for
``llm_outage_minutes`` does the run stop. Waiting is not failing: a slow model,
or a person answering ``files:DIR``, never trips the outage rule.
"""

from __future__ import annotations

import time

from evolve.llm.base import LLMConfigError, LLMError
from evolve.stop import Stop, StopKind


class ModelHealth:
    def __init__(self, fail_fast: int, outage_minutes: float) -> None:
        self.fail_fast = fail_fast
        self.outage_minutes = outage_minutes
        self.permanent_in_row = 0
        self.failures_since_ok = 0
        self.ok_at = time.monotonic()
        self._config_error: str | None = None

    def failed(self, error: LLMError) -> None:
        self.failures_since_ok += 1
        if isinstance(error, LLMConfigError):
            self.permanent_in_row += 1
            if error.kind == "replay_end":  # a recording has nothing after its end: stop now
                self._config_error = str(error)
            elif self.permanent_in_row >= self.fail_fast:
                n = self.permanent_in_row
                calls = "call" if n == 1 else f"{n} calls in a row"
                self._config_error = f"{error} ({calls} failed this way)"
        else:
            self.permanent_in_row = 0

    def answered(self) -> None:
        self.permanent_in_row = 0
        self.failures_since_ok = 0
        self.ok_at = time.monotonic()

    def stop(self, last_failure: str) -> Stop | None:
        """The stop the model's record calls for now, if any (``last_failure`` names the last)."""
        if self._config_error is not None:
            return Stop(StopKind.MODEL_CONFIG, self._config_error)
        if self.failures_since_ok == 0:
            return None
        if time.monotonic() - self.ok_at >= 60 * self.outage_minutes:
            return Stop(StopKind.MODEL_OUTAGE,
                        f"every model call failed for {self.outage_minutes:g} min "
                        f"({self.failures_since_ok} failed); last: {last_failure}")
        return None
