"""The archive's records: a ``Program`` (an evaluated child), an ``Attempt`` (an iteration:
a proposal and what became of it), the attempt outcomes, and how each maps to its SQLite row.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

# Attempt outcomes.
EVALUATED = "evaluated"
EDIT_ERROR = "edit_error"
LLM_ERROR = "llm_error"
DUPLICATE = "duplicate"


@dataclass
class Program:
    code: str
    code_hash: str
    parent_id: int | None
    island: int
    iteration: int
    generation: int
    origin: str
    model: str | None
    status: str
    score: float | None
    stage: str
    metrics: dict[str, float]
    instances: list[dict[str, Any]]
    feedback: str
    features: list[float] | None
    eval_seconds: float
    created_at: float = field(default_factory=time.time)
    id: int | None = None


@dataclass
class Attempt:
    iteration: int
    island: int
    parent_id: int | None
    mode: str
    model: str | None
    outcome: str
    error: str | None = None
    completion: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    llm_seconds: float = 0.0
    program_id: int | None = None
    created_at: float = field(default_factory=time.time)


PROGRAM_COLUMNS = (
    "code, code_hash, parent_id, island, iteration, generation, origin, model, status, score, "
    "stage, metrics, instances, feedback, features, eval_seconds, created_at"
)
# The same without the per-instance results (the largest column), for summaries.
LIGHT_PROGRAM_COLUMNS = PROGRAM_COLUMNS.replace("instances,", "'[]' AS instances,")


ATTEMPT_COLUMNS = (
    "iteration, island, parent_id, mode, model, outcome, error, completion, prompt_tokens, "
    "completion_tokens, cost_usd, llm_seconds, program_id, created_at"
)


ATTEMPT_FIELDS = tuple(name.strip() for name in ATTEMPT_COLUMNS.split(","))


def attempt_from_row(row: sqlite3.Row) -> Attempt:
    return Attempt(**{name: row[name] for name in ATTEMPT_FIELDS})


def program_from_row(row: sqlite3.Row) -> Program:
    return Program(
        id=int(row["id"]),
        code=row["code"],
        code_hash=row["code_hash"],
        parent_id=row["parent_id"],
        island=int(row["island"]),
        iteration=int(row["iteration"]),
        generation=int(row["generation"]),
        origin=row["origin"],
        model=row["model"],
        status=row["status"],
        score=row["score"],
        stage=row["stage"],
        metrics=json.loads(row["metrics"]),
        instances=json.loads(row["instances"]),
        feedback=row["feedback"],
        features=json.loads(row["features"]) if row["features"] else None,
        eval_seconds=float(row["eval_seconds"]),
        created_at=float(row["created_at"]),
    )
