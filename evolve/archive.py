"""The run archive: one SQLite file (WAL) per run.

Every iteration is an *attempt* (a proposal and what became of it); every
evaluated child is a *program*.  Both are committed in one transaction as soon
as the evaluation finishes, so a run killed at any moment resumes with every
evaluated program.  MAP-Elites cells live in ``elites`` and are updated
incrementally.  All hot queries are indexed: their cost does not grow with the
archive.  Programs and attempts are never changed once written, so the ones a
prompt reads again and again are kept decoded (a bounded cache per ``Archive``).
The run's writer (not a read-only ``Archive``, which may watch a live run) also keeps
what every prompt asks of the history in memory -- the best program, each attempt's
iteration by parent and island -- read once and updated as its own commits succeed:
the file stays the record, and a resumed run reads it afresh.

``Archive`` is the store's reads and writes; the records and their rows are in
``archive_records.py``, the schema and the file check in ``archive_schema.py``, the
cache in ``record_cache.py``.  Every name this module had is still importable from it.
"""

from __future__ import annotations

import bisect
import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evolve.archive_records import (
    ATTEMPT_COLUMNS,
    DUPLICATE,
    EDIT_ERROR,
    EVALUATED,
    LIGHT_PROGRAM_COLUMNS,
    LLM_ERROR,
    PROGRAM_COLUMNS,
    Attempt,
    Program,
    attempt_from_row,
    program_from_row,
)
from evolve.archive_schema import SCHEMA, SCHEMA_VERSION, check_archive, sqlite_uri
from evolve.errors import UserError
from evolve.record_cache import RecordCache, clone

__all__ = [
    "CACHED_ROWS", "DUPLICATE", "EDIT_ERROR", "EVALUATED", "LLM_ERROR", "SCHEMA", "SCHEMA_VERSION",
    "Archive", "Attempt", "Program", "check_archive",
]

# Decoded programs and attempts kept per Archive: every prompt reads its parent, the run's
# best, inspirations and the latest attempts with their children (a few dozen rows).
CACHED_ROWS = 512


class Archive:
    """Single-writer store; open one per process (the controller's thread)."""

    def __init__(self, path: Path, *, create: bool = False, readonly: bool = False) -> None:
        self.path = path
        if not create and not path.is_file():
            raise UserError(f"{path}: no archive here (expected a run folder with archive.sqlite)")
        if not create:
            check_archive(path)
        uri = sqlite_uri(path, readonly=readonly)
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # Rows never change once written: decoded copies, keyed by (id, with results) / iteration.
        self._programs: RecordCache[tuple[int, bool], Program] = RecordCache(CACHED_ROWS)
        self._attempts: RecordCache[int, Attempt] = RecordCache(CACHED_ROWS)
        self._seed_id: int | None = None
        # The writer's view of the history (None: not read yet, or a read-only archive).
        self._readonly = readonly
        self._best: tuple[float, int] | None = None  # (score, id) of the best program
        self._index: _AttemptIndex | None = None
        if not readonly:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            if create:
                self.set_meta("schema_version", SCHEMA_VERSION)

    def close(self) -> None:
        self._db.close()

    # --- meta -------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, json.dumps(value)),
        )

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # --- writes -----------------------------------------------------------
    def add_program(self, program: Program, attempt: Attempt | None = None, instances_json: str | None = None) -> int:
        """Commit a program (and the attempt that made it) atomically. ``instances_json``:
        ``json.dumps(program.instances)`` if already made (``Evaluation.instances_json``)."""
        with self._transaction():
            cursor = self._db.execute(
                f"INSERT INTO programs({PROGRAM_COLUMNS}) VALUES ({', '.join('?' * 17)})",
                (
                    program.code, program.code_hash, program.parent_id, program.island,
                    program.iteration, program.generation, program.origin, program.model,
                    program.status, program.score, program.stage, json.dumps(program.metrics),
                    json.dumps(program.instances) if instances_json is None else instances_json, program.feedback,
                    json.dumps(program.features) if program.features is not None else None,
                    program.eval_seconds, program.created_at,
                ),
            )
            program.id = int(cursor.lastrowid or 0)
            if attempt is not None:
                attempt.program_id = program.id
                self._insert_attempt(attempt)
        # Committed: what the writer keeps in memory follows (SQLite keeps a NaN score as NULL).
        score = program.score
        if self._best is not None and score is not None and not math.isnan(score) and score > self._best[0]:
            self._best = (score, program.id)
        if attempt is not None and self._index is not None:
            self._index.add(attempt)
        return program.id

    def add_attempt(self, attempt: Attempt) -> None:
        with self._transaction():
            self._insert_attempt(attempt)
        if self._index is not None:
            self._index.add(attempt)

    def _insert_attempt(self, a: Attempt) -> None:
        self._db.execute(
            "INSERT INTO attempts(iteration, island, parent_id, mode, model, outcome, error, program_id,"
            " completion, prompt_tokens, completion_tokens, cost_usd, llm_seconds, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a.iteration, a.island, a.parent_id, a.mode, a.model, a.outcome, a.error, a.program_id,
                a.completion, a.prompt_tokens, a.completion_tokens, a.cost_usd, a.llm_seconds, a.created_at,
            ),
        )

    def set_elite(self, island: int, cell: str, program_id: int, score: float) -> None:
        self._db.execute(
            "INSERT INTO elites(island, cell, program_id, score) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(island, cell) DO UPDATE SET program_id=excluded.program_id, score=excluded.score",
            (island, cell, program_id, score),
        )

    def reset_island(self, island: int, keep: list[tuple[str, int, float]], meta: dict[str, Any]) -> None:
        """Replace an island's MAP-Elites grid by ``keep`` (cell, program id, score), with ``meta``,
        in one transaction (an island restart must not be half-persisted)."""
        with self._transaction():
            self._db.execute("DELETE FROM elites WHERE island=?", (island,))
            for cell, program_id, score in keep:
                self.set_elite(island, cell, program_id, score)
            for key, value in meta.items():
                self.set_meta(key, value)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # --- reads ------------------------------------------------------------
    def program(self, program_id: int, *, results: bool = True) -> Program:
        """A program; ``results=False`` leaves out its per-instance results (the largest column).

        A copy of the cached record: callers may change its fields, not its containers."""
        return clone(self._program(program_id, results))

    def _program(self, program_id: int, results: bool) -> Program:
        """The cached record itself (shared: read it, never change it)."""
        key = (program_id, results)
        program = self._programs.get(key)
        if program is None:
            columns = PROGRAM_COLUMNS if results else LIGHT_PROGRAM_COLUMNS
            row = self._db.execute(f"SELECT id, {columns} FROM programs WHERE id=?", (program_id,)).fetchone()
            if row is None:
                raise UserError(f"{self.path}: no program with id {program_id}")
            try:
                record = program_from_row(row)
            except (ValueError, TypeError) as err:  # a row damaged outside evolve (JSON, types)
                raise UserError(f"{self.path}: program {program_id}: damaged record ({type(err).__name__}: {err})") from None
            program = self._programs.put(key, record)
        return program

    def id_for_hash(self, code_hash: str) -> int | None:
        row = self._db.execute("SELECT id FROM programs WHERE code_hash=?", (code_hash,)).fetchone()
        return int(row[0]) if row else None

    def seed(self) -> Program | None:
        """The run's seed (the first program of origin 'seed'); read once it exists (every
        prompt asks for it, and once written it never changes)."""
        if self._seed_id is None:
            row = self._db.execute("SELECT id FROM programs WHERE origin='seed' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            self._seed_id = int(row[0])
        return self.program(self._seed_id)

    def top(self, n: int = 10) -> list[Program]:
        rows = self._db.execute(
            f"SELECT id, {PROGRAM_COLUMNS} FROM programs WHERE score IS NOT NULL"
            " ORDER BY score DESC, id ASC LIMIT ?",
            (n,),
        ).fetchall()
        return [program_from_row(r) for r in rows]

    def best(self) -> Program | None:
        """The highest score, the oldest of equals (the writer reads it once, then follows its commits)."""
        if self._best is not None:
            return self.program(self._best[1])
        row = self._db.execute(
            "SELECT id, score FROM programs WHERE score IS NOT NULL ORDER BY score DESC, id ASC LIMIT 1").fetchone()
        if row is None:
            return None
        if not self._readonly:
            self._best = (float(row[1]), int(row[0]))
        return self.program(int(row[0]))

    def elites(self) -> list[tuple[int, str, int, float]]:
        rows = self._db.execute("SELECT island, cell, program_id, score FROM elites").fetchall()
        return [(int(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in rows]

    def scored_children(self) -> list[tuple[int, int, float]]:
        """(island, iteration, score) of every evaluated non-seed program, oldest first."""
        rows = self._db.execute(
            "SELECT island, iteration, score FROM programs WHERE score IS NOT NULL AND origin != 'seed'"
            " ORDER BY id"
        ).fetchall()
        return [(int(r[0]), int(r[1]), float(r[2])) for r in rows]

    def attempt_parent(self, iteration: int) -> int | None:
        row = self._db.execute("SELECT parent_id FROM attempts WHERE iteration=?", (iteration,)).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def codes(self) -> Iterator[tuple[int, str]]:
        """(id, code) of every program, oldest first."""
        for row in self._db.execute("SELECT id, code FROM programs ORDER BY id"):
            yield int(row[0]), str(row[1])

    def attempts_on(self, parent_id: int, limit: int) -> list[tuple[Attempt, Program | None]]:
        """The latest ``limit`` attempts made from ``parent_id``, newest first, each with
        the program it produced (None for an edit error, a duplicate or a model error).

        The records are the archive's cached ones, not copies (every prompt reads a dozen):
        read them, never change them."""
        index = self._attempt_index()
        if index is not None:
            return self._with_children(_newest(index.by_parent.get(parent_id, []), limit))
        return self._attempts_with_children("WHERE parent_id=?", (parent_id,), limit)

    def latest_attempts(self, limit: int) -> list[tuple[Attempt, Program | None]]:
        """The run's latest ``limit`` attempts, from any parent, newest first (as attempts_on)."""
        index = self._attempt_index()
        if index is not None:
            return self._with_children(_newest(index.iterations, limit))
        return self._attempts_with_children("", (), limit)

    def _attempt_index(self) -> _AttemptIndex | None:
        """The writer's attempts by parent and island (read on first use); None for a reader."""
        if self._index is None and not self._readonly:
            rows = self._db.execute("SELECT iteration, parent_id, island FROM attempts ORDER BY iteration")
            self._index = _AttemptIndex(rows)
        return self._index

    def attempt(self, iteration: int) -> Attempt | None:
        attempt = self._attempt(iteration)
        return clone(attempt) if attempt is not None else None

    def _attempt(self, iteration: int) -> Attempt | None:
        """The cached record itself (shared: read it, never change it)."""
        attempt = self._attempts.get(iteration)
        if attempt is None:
            row = self._db.execute(f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE iteration=?",
                                   (iteration,)).fetchone()
            if row is None:  # not cached: it may come later
                return None
            attempt = self._attempts.put(iteration, attempt_from_row(row))
        return attempt

    def _attempts_with_children(self, where: str, args: tuple[Any, ...],
                                limit: int) -> list[tuple[Attempt, Program | None]]:
        rows = self._db.execute(
            f"SELECT iteration FROM attempts {where} ORDER BY iteration DESC LIMIT ?", (*args, limit),
        ).fetchall()
        return self._with_children([int(row[0]) for row in rows])

    def _with_children(self, iterations: list[int]) -> list[tuple[Attempt, Program | None]]:
        found = []
        for iteration in iterations:
            attempt = self._attempt(iteration)
            if attempt is None:  # gone between the two reads: cannot happen to an append-only table
                continue
            program = None
            if attempt.program_id is not None:  # without per-instance results: not needed here
                program = self._program(attempt.program_id, False)
            found.append((attempt, program))
        return found

    def last_attempt(self, island: int) -> Attempt | None:
        """The island's most recent attempt (its next prompt reports an edit that failed)."""
        index = self._attempt_index()
        if index is not None:
            iteration = index.by_island.get(island)
            return self.attempt(iteration) if iteration is not None else None
        row = self._db.execute(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE island=? ORDER BY iteration DESC LIMIT 1",
            (island,),
        ).fetchone()
        return attempt_from_row(row) if row else None

    def attempt_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])

    def max_iteration(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(iteration), 0) FROM attempts").fetchone()[0])

    def usage(self) -> dict[str, float]:
        row = self._db.execute(
            "SELECT COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0),"
            " COALESCE(SUM(cost_usd),0) FROM attempts"
        ).fetchone()
        return {"prompt_tokens": row[0], "completion_tokens": row[1], "cost_usd": float(row[2])}

    def outcome_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def status_counts(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT status, COUNT(*) FROM programs WHERE origin != 'seed' GROUP BY status"
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def program_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM programs").fetchone()[0])

    def lineage(self, program_id: int) -> list[Program]:
        """The chain from the seed to ``program_id`` (seed first)."""
        chain: list[Program] = []
        current: int | None = program_id
        while current is not None and len(chain) < 10_000:
            program = self.program(current)
            chain.append(program)
            current = program.parent_id
        return chain[::-1]

    def program_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every program without its code and per-instance results (metrics decoded), oldest first."""
        for row in self._db.execute(
            "SELECT id, parent_id, island, iteration, generation, origin, model, status, score, stage, metrics,"
            " eval_seconds, created_at FROM programs ORDER BY id"
        ):
            yield (*tuple(row)[:10], json.loads(row[10]), float(row[11]), float(row[12]))

    def iter_scores(self) -> Iterator[tuple[int, int, float | None, float]]:
        """(id, iteration, score, created_at) for every program, oldest first."""
        for row in self._db.execute("SELECT id, iteration, score, created_at FROM programs ORDER BY id"):
            yield int(row[0]), int(row[1]), row[2], float(row[3])


class _AttemptIndex:
    """Every attempt's iteration, in order, in all and by parent, and each island's latest:
    the writer's answer to "the latest attempts" without a query (ints only: ~100 bytes an
    attempt). Attempts may be committed out of order (several workers): kept sorted."""

    def __init__(self, rows: Iterator[tuple[int, int | None, int]]) -> None:
        self.iterations: list[int] = []
        self.by_parent: dict[int | None, list[int]] = {}
        self.by_island: dict[int, int] = {}
        for iteration, parent_id, island in rows:
            self._add(int(iteration), parent_id, int(island))

    def add(self, attempt: Attempt) -> None:
        self._add(attempt.iteration, attempt.parent_id, attempt.island)

    def _add(self, iteration: int, parent_id: int | None, island: int) -> None:
        _insort(self.iterations, iteration)
        _insort(self.by_parent.setdefault(parent_id, []), iteration)
        if iteration > self.by_island.get(island, iteration - 1):
            self.by_island[island] = iteration


def _insort(values: list[int], value: int) -> None:
    if not values or value > values[-1]:
        values.append(value)  # the usual case: the newest iteration
    else:
        bisect.insort(values, value)


def _newest(iterations: list[int], limit: int) -> list[int]:
    return iterations[: -limit - 1: -1] if limit > 0 else []


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
