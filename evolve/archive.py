"""The run archive: one SQLite file (WAL) per run.

Every iteration is an *attempt* (a proposal and what became of it); every
evaluated child is a *program*.  Both are committed in one transaction as soon
as the evaluation finishes, so a run killed at any moment resumes with every
evaluated program.  MAP-Elites cells live in ``elites`` and are updated
incrementally.  All hot queries are indexed: their cost does not grow with the
archive.  Programs and attempts are never changed once written, so the ones a
prompt reads again and again are kept decoded (a bounded cache per ``Archive``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from evolve.errors import UserError

SCHEMA_VERSION = "1"
# Decoded programs and attempts kept per Archive: every prompt reads its parent, the run's
# best, inspirations and the latest attempts with their children (a few dozen rows).
CACHED_ROWS = 512
K = TypeVar("K")
V = TypeVar("V")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS programs (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL,
    code_hash TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES programs(id),
    island INTEGER NOT NULL,
    iteration INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    origin TEXT NOT NULL,
    model TEXT,
    status TEXT NOT NULL,
    score REAL,
    stage TEXT NOT NULL,
    metrics TEXT NOT NULL,
    instances TEXT NOT NULL,
    feedback TEXT NOT NULL,
    features TEXT,
    eval_seconds REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS programs_by_score ON programs(score DESC) WHERE score IS NOT NULL;
CREATE TABLE IF NOT EXISTS attempts (
    iteration INTEGER PRIMARY KEY,
    island INTEGER NOT NULL,
    parent_id INTEGER,
    mode TEXT NOT NULL,
    model TEXT,
    outcome TEXT NOT NULL,
    error TEXT,
    program_id INTEGER REFERENCES programs(id),
    completion TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    llm_seconds REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
-- "What was already tried on this parent" for every prompt: bounded by the index.
CREATE INDEX IF NOT EXISTS attempts_by_parent ON attempts(parent_id, iteration);
CREATE TABLE IF NOT EXISTS elites (
    island INTEGER NOT NULL,
    cell TEXT NOT NULL,
    program_id INTEGER NOT NULL REFERENCES programs(id),
    score REAL NOT NULL,
    PRIMARY KEY (island, cell)
);
"""

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


_PROGRAM_COLUMNS = (
    "code, code_hash, parent_id, island, iteration, generation, origin, model, status, score, "
    "stage, metrics, instances, feedback, features, eval_seconds, created_at"
)
# The same without the per-instance results (the largest column), for summaries.
_LIGHT_PROGRAM_COLUMNS = _PROGRAM_COLUMNS.replace("instances,", "'[]' AS instances,")


class Archive:
    """Single-writer store; open one per process (the controller's thread)."""

    def __init__(self, path: Path, *, create: bool = False, readonly: bool = False) -> None:
        self.path = path
        if not create and not path.is_file():
            raise UserError(f"{path}: no archive here (expected a run folder with archive.sqlite)")
        if not create:
            check_archive(path)
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # Rows never change once written: decoded copies, keyed by (id, with results) / iteration.
        self._programs: _Cache[tuple[int, bool], Program] = _Cache(CACHED_ROWS)
        self._attempts: _Cache[int, Attempt] = _Cache(CACHED_ROWS)
        self._seed_id: int | None = None
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
    def add_program(self, program: Program, attempt: Attempt | None = None) -> int:
        """Commit a program (and the attempt that made it) atomically."""
        with self._transaction():
            cursor = self._db.execute(
                f"INSERT INTO programs({_PROGRAM_COLUMNS}) VALUES ({', '.join('?' * 17)})",
                (
                    program.code, program.code_hash, program.parent_id, program.island,
                    program.iteration, program.generation, program.origin, program.model,
                    program.status, program.score, program.stage, json.dumps(program.metrics),
                    json.dumps(program.instances), program.feedback,
                    json.dumps(program.features) if program.features is not None else None,
                    program.eval_seconds, program.created_at,
                ),
            )
            program.id = int(cursor.lastrowid or 0)
            if attempt is not None:
                attempt.program_id = program.id
                self._insert_attempt(attempt)
        return program.id

    def add_attempt(self, attempt: Attempt) -> None:
        with self._transaction():
            self._insert_attempt(attempt)

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
        return _clone(self._program(program_id, results))

    def _program(self, program_id: int, results: bool) -> Program:
        """The cached record itself (shared: read it, never change it)."""
        key = (program_id, results)
        program = self._programs.get(key)
        if program is None:
            columns = _PROGRAM_COLUMNS if results else _LIGHT_PROGRAM_COLUMNS
            row = self._db.execute(f"SELECT id, {columns} FROM programs WHERE id=?", (program_id,)).fetchone()
            if row is None:
                raise UserError(f"{self.path}: no program with id {program_id}")
            program = self._programs.put(key, _program_from_row(row))
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
            f"SELECT id, {_PROGRAM_COLUMNS} FROM programs WHERE score IS NOT NULL"
            " ORDER BY score DESC, id ASC LIMIT ?",
            (n,),
        ).fetchall()
        return [_program_from_row(r) for r in rows]

    def best(self) -> Program | None:
        row = self._db.execute(
            "SELECT id FROM programs WHERE score IS NOT NULL ORDER BY score DESC, id ASC LIMIT 1").fetchone()
        return self.program(int(row[0])) if row else None

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
        return self._attempts_with_children("WHERE parent_id=?", (parent_id,), limit)

    def latest_attempts(self, limit: int) -> list[tuple[Attempt, Program | None]]:
        """The run's latest ``limit`` attempts, from any parent, newest first (as attempts_on)."""
        return self._attempts_with_children("", (), limit)

    def attempt(self, iteration: int) -> Attempt | None:
        attempt = self._attempt(iteration)
        return _clone(attempt) if attempt is not None else None

    def _attempt(self, iteration: int) -> Attempt | None:
        """The cached record itself (shared: read it, never change it)."""
        attempt = self._attempts.get(iteration)
        if attempt is None:
            row = self._db.execute(f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE iteration=?",
                                   (iteration,)).fetchone()
            if row is None:  # not cached: it may come later
                return None
            attempt = self._attempts.put(iteration, _attempt_from_row(row))
        return attempt

    def _attempts_with_children(self, where: str, args: tuple[Any, ...],
                                limit: int) -> list[tuple[Attempt, Program | None]]:
        rows = self._db.execute(
            f"SELECT iteration FROM attempts {where} ORDER BY iteration DESC LIMIT ?", (*args, limit),
        ).fetchall()
        found = []
        for row in rows:
            attempt = self._attempt(int(row[0]))
            if attempt is None:  # gone between the two reads: cannot happen to an append-only table
                continue
            program = None
            if attempt.program_id is not None:  # without per-instance results: not needed here
                program = self._program(attempt.program_id, False)
            found.append((attempt, program))
        return found

    def last_attempt(self, island: int) -> Attempt | None:
        """The island's most recent attempt (its next prompt reports an edit that failed)."""
        row = self._db.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE island=? ORDER BY iteration DESC LIMIT 1",
            (island,),
        ).fetchone()
        return _attempt_from_row(row) if row else None

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


def check_archive(path: Path) -> None:
    """An existing archive must be an evolve archive: a zero-byte or corrupt file is a
    one-line error naming it, never a silent fresh start (SQLite would happily treat
    an empty file as an empty database)."""
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path}: empty file (0 bytes), not an evolve archive; the run cannot be read or resumed")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            db.execute("SELECT id FROM programs LIMIT 1").fetchone()
            db.execute("SELECT iteration FROM attempts LIMIT 1").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        raise UserError(f"{path}: not a readable evolve archive ({err})") from None
    if row is None:
        raise UserError(f"{path}: not an evolve archive (no schema version)")


def _clone(record: V) -> V:
    """A shallow copy of a cached dataclass record (a tenth of ``copy.copy``'s time)."""
    new = object.__new__(type(record))
    new.__dict__.update(record.__dict__)
    return new


class _Cache(Generic[K, V]):
    """At most ``size`` entries; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


_ATTEMPT_COLUMNS = (
    "iteration, island, parent_id, mode, model, outcome, error, completion, prompt_tokens, "
    "completion_tokens, cost_usd, llm_seconds, program_id, created_at"
)


_ATTEMPT_FIELDS = tuple(name.strip() for name in _ATTEMPT_COLUMNS.split(","))


def _attempt_from_row(row: sqlite3.Row) -> Attempt:
    return Attempt(**{name: row[name] for name in _ATTEMPT_FIELDS})


def _program_from_row(row: sqlite3.Row) -> Program:
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
