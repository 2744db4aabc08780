"""Read-only queries over a run archive for ``review`` and ``report``.

``Archive`` serves the search loop (hot, indexed queries); the questions a
reviewer asks afterwards (every score over time, why proposals failed, who
spent the tokens, the whole genealogy) scan the run once, here, on a
read-only connection that never blocks a run in progress.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.archive_schema import sqlite_uri

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
# Proposal outcomes and evaluation statuses that are failures, in display order.
ATTEMPT_FAILURES = ("edit_error", "llm_error")
PROGRAM_FAILURES = ("infeasible", "error", "timeout", "memory", "crash")
FAILURE_LABELS = {
    "edit_error": "edit failures (the edit did not apply)",
    "llm_error": "LLM errors (no usable reply)",
    "infeasible": "infeasible solutions",
    "error": "exceptions raised",
    "timeout": "timeouts",
    "memory": "out of memory",
    "crash": "crashes",
    "rejected": "stopped by the cascade (not a failure)",
    "duplicate": "duplicates (not evaluated)",
}


@dataclass(frozen=True)
class ProgramPoint:
    """A program without its code and per-instance results (cheap to load in bulk)."""

    id: int
    parent_id: int | None
    island: int
    iteration: int
    origin: str
    model: str | None
    status: str
    score: float | None
    features: list[float] | None
    created_at: float
    gap: float | None = None  # the headline gap in %, when the problem's score is a gap


@dataclass(frozen=True)
class FailureKind:
    kind: str
    count: int
    reasons: list[tuple[str, int]]  # most frequent first

    @property
    def label(self) -> str:
        return FAILURE_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class ModelUsage:
    model: str
    proposals: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    llm_seconds: float


class History:
    def __init__(self, archive_path: Path) -> None:
        self._db = sqlite3.connect(sqlite_uri(archive_path, readonly=True), uri=True)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def programs(self, gap_keys: tuple[str, ...] = ("gap_mean_pct",)) -> list[ProgramPoint]:
        """Every program, oldest first, with the first of the metrics ``gap_keys`` it has as its
        gap (``scoring.headline_gap_keys``: the gap review prints)."""
        gap = " ".join(["COALESCE(", ", ".join(["json_extract(metrics, ?)"] * len(gap_keys)), ", NULL)"])
        rows = self._db.execute(
            "SELECT id, parent_id, island, iteration, origin, model, status, score, features, created_at,"
            f" {gap} FROM programs ORDER BY id",
            tuple(f"$.{json.dumps(key)}" for key in gap_keys),
        )
        return [
            ProgramPoint(
                int(r[0]), r[1], int(r[2]), int(r[3]), r[4], r[5], r[6], r[7],
                json.loads(r[8]) if r[8] else None, float(r[9]), r[10] if r[7] is not None else None,
            )
            for r in rows
        ]

    def recent_attempts(self, count: int = 20) -> list[dict[str, Any]]:
        """The last ``count`` proposals with what became of them (newest first)."""
        rows = self._db.execute(
            "SELECT a.iteration, a.island, a.parent_id, a.mode, a.model, a.outcome, a.error, a.created_at,"
            " p.id, p.status, p.score, p.feedback, p.code, q.code, q.score"
            " FROM attempts a LEFT JOIN programs p ON p.id = a.program_id"
            " LEFT JOIN programs q ON q.id = a.parent_id ORDER BY a.iteration DESC LIMIT ?",
            (count,),
        ).fetchall()
        keys = ("iteration", "island", "parent_id", "mode", "model", "outcome", "error", "created_at",
                "program_id", "status", "score", "feedback", "code", "parent_code", "parent_score")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def counts(self) -> tuple[int, int, float]:
        """(programs, attempts, newest write time): changes whenever the run writes."""
        row = self._db.execute(
            "SELECT (SELECT COUNT(*) FROM programs), (SELECT COUNT(*) FROM attempts),"
            " MAX(COALESCE((SELECT MAX(created_at) FROM programs), 0),"
            " COALESCE((SELECT MAX(created_at) FROM attempts), 0))"
        ).fetchone()
        return int(row[0]), int(row[1]), float(row[2])

    def started_at(self) -> float | None:
        row = self._db.execute(
            "SELECT MIN(t) FROM (SELECT MIN(created_at) AS t FROM programs"
            " UNION ALL SELECT MIN(created_at) FROM attempts)"
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def failures(self, top_reasons: int = 3) -> list[FailureKind]:
        """Every failure kind that occurred, with its most frequent reasons."""
        # Reasons that differ only in numbers ("job 3 twice", "job 7 twice") count as one;
        # the first message of each is shown.
        reasons: dict[str, Counter[str]] = {}
        examples: dict[str, str] = {}

        def note(kind: str, text: str) -> None:
            reason = first_reason(text)
            key = NUMBER.sub("#", reason)
            examples.setdefault(key, reason)
            reasons.setdefault(kind, Counter())[key] += 1

        for outcome, error in self._db.execute(
            f"SELECT outcome, error FROM attempts WHERE outcome IN ({_marks(ATTEMPT_FAILURES)})", ATTEMPT_FAILURES
        ):
            note(outcome, error or "")
        kinds = (*PROGRAM_FAILURES, "rejected")
        for status, feedback in self._db.execute(
            f"SELECT status, feedback FROM programs WHERE origin != 'seed' AND status IN ({_marks(kinds)})", kinds
        ):
            note(status, feedback or "")
        order = [*ATTEMPT_FAILURES, *PROGRAM_FAILURES, "rejected"]
        return [
            FailureKind(
                kind, sum(reasons[kind].values()),
                [(examples[key], count) for key, count in reasons[kind].most_common(top_reasons)],
            )
            for kind in order
            if kind in reasons
        ]

    def usage_by_model(self) -> list[ModelUsage]:
        rows = self._db.execute(
            "SELECT COALESCE(model, '-'), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd),"
            " SUM(llm_seconds) FROM attempts GROUP BY COALESCE(model, '-') ORDER BY COUNT(*) DESC"
        )
        return [ModelUsage(r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4]), float(r[5])) for r in rows]


def first_reason(text: str, width: int = 120) -> str:
    """The line of a feedback or error text that says what went wrong.

    Evaluation feedback starts with a count ("3 of 40 instances failed:")
    followed by "- name: reason" lines: the first reason is the informative part.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    line = lines[0]
    if line.endswith("instances failed:") and len(lines) > 1 and lines[1].startswith("- "):
        line = lines[1][2:].partition(": ")[2] or lines[1][2:]
    return line if len(line) <= width else line[: width - 3] + "..."


def _marks(values: tuple[str, ...]) -> str:
    return ", ".join("?" * len(values))
