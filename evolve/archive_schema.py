"""The run archive's file format: its SQLite schema, and the check that a file is one.

``Archive`` (``archive.py``) creates the tables; ``check_archive`` refuses a file that is
not an evolve archive before anything reads or resumes it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from evolve.errors import UserError

SCHEMA_VERSION = "1"

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


ARCHIVE = "archive.sqlite"  # a run folder's archive and config (evolve.runs)
CONFIG = "config.json"


def sqlite_uri(path: Path | str, *, readonly: bool = False) -> str:
    """``path`` as an SQLite URI, quoted: a folder named ``run#1`` or ``a?b`` is that folder (an
    unquoted ``file:.../run#1/archive.sqlite`` opened, and created, the file ``.../run``)."""
    uri = Path(path).absolute().as_uri()
    return f"{uri}?mode=ro" if readonly else uri


def check_archive(path: Path) -> None:
    """An existing archive must be an evolve archive: a zero-byte or corrupt file is a
    one-line error naming it, never a silent fresh start (SQLite would happily treat
    an empty file as an empty database)."""
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path}: empty file (0 bytes), not an evolve archive; the run cannot be read or resumed")
    try:
        db = sqlite3.connect(sqlite_uri(path, readonly=True), uri=True)
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


def archived_problem(path: Path) -> str | None:
    """The problem the archive says its run was of (None: not recorded, or not readable here;
    a damaged archive is reported by whoever opens it)."""
    try:
        db = sqlite3.connect(sqlite_uri(path, readonly=True), uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'problem'").fetchone()
        finally:
            db.close()
        value = json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError, TypeError):
        return None
    return value if isinstance(value, str) else None
