"""Split evaluations of a run's programs, cached in the run's archive.

``review --test`` and ``report`` evaluate the best program, the seed and every
baseline on the held-out split; JSSP's 162 test instances take ~40 s, so the
results are kept in the archive (table ``split_evaluations``) and reused.

The key covers everything a result depends on: the program's code, the
problem's spec (with its verifier options), the split and a digest of its
instances (data and references), the sandbox limits, and the source of the
verifier's package and of the engine's scoring path.  Change any of them and
the entry is simply not found; nothing is ever invalidated by hand.

Because the key never names the run, an entry of another run in the same folder (the other
runs of ``runs/<problem>/``, the other seeds of a study) answers too: the seed and the
baselines are the same programs in every run of a problem, so a run's report after the first
evaluates little more than its best program (a fresh smtt run's report: 123 s at load 12, of
which its 14 baseline evaluations took ~60 s).  Such an entry is copied into this run's
archive, so the run folder stays whole on its own.

Only evolve runs of the same problem are read: a sibling folder holding a ``config.json`` that
names this run's problem and an ``archive.sqlite`` (a regular file) whose own record names it
too; the newest ``NEIGHBOURS`` of them, found once per cache.  A run under ``/tmp`` thus never
reads another program's ``*/archive.sqlite`` there, and a sibling that cannot be read (a foreign
or damaged SQLite file, a config that is not JSON, an entry that does not decode) is passed over.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import pickle
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from evolve.archive_schema import ARCHIVE, CONFIG, archived_problem, sqlite_uri
from evolve.config import SandboxSettings
from evolve.evaluation import Evaluation
from evolve.formats import json_safe
from evolve.problem import Problem
from evolve.verifier import Instance, InstanceResult

log = logging.getLogger(__name__)

SCHEMA = """CREATE TABLE IF NOT EXISTS split_evaluations (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, split TEXT NOT NULL,
    evaluation TEXT NOT NULL, created_at REAL NOT NULL)"""
# pure_rule decides which programs skip the audit, with the GP's parser (gp.codegen).
NEIGHBOURS = 50  # other runs' archives a lookup reads at most (the newest)
MAX_CONFIG = 1 << 20  # a sibling's config.json larger than this is not a run's
ENGINE_MODULES = ("evolve.evaluation", "evolve.scoring", "evolve.verifier", "evolve.pure_rule", "evolve.gp.codegen")


def source_digest(problem: Problem) -> str:
    """The verifier package's and the scoring path's source files, hashed: the verifier's files
    are those of the class actually built (two problem folders may both hold a verifier module
    of one name; plugin_import keeps them apart, and so must the cache)."""
    digest = hashlib.sha256()
    files: list[Path] = []
    verifier_file = getattr(sys.modules.get(problem.verifier_class.__module__), "__file__", None)
    if verifier_file:
        files += sorted(Path(verifier_file).parent.glob("*.py"))
    for name in ENGINE_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            files.append(Path(spec.origin))
    for file in files:
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def instances_digest(instances: list[Instance]) -> str:
    digest = hashlib.sha256()
    for instance in instances:
        digest.update(pickle.dumps((instance.name, instance.group, instance.reference, instance.data), protocol=4))
    return digest.hexdigest()


class EvalCache:
    """Cached evaluations for one (problem, sandbox, split, instances) combination."""

    def __init__(
        self, archive: Path, problem: Problem, sandbox: SandboxSettings, split: str, instances: list[Instance]
    ) -> None:
        self.archive = archive
        self.split = split
        self._problem = problem.name
        self._others: list[Path] | None = None
        base = hashlib.sha256()
        for part in (problem.spec.model_dump_json(), sandbox.model_dump_json(), split,
                     instances_digest(instances), source_digest(problem)):
            base.update(part.encode())
            base.update(b"\0")
        self._base = base.hexdigest()

    def key(self, code: str) -> str:
        return hashlib.sha256(f"{self._base}\0{code}".encode()).hexdigest()

    def get(self, code: str) -> Evaluation | None:
        key = self.key(code)
        row = _lookup(self.archive, key)
        if row is not None:
            return from_json(json.loads(row[1]))
        for other in self._neighbours():
            row = _lookup(other, key)
            found = _decoded(row[1]) if row is not None else None
            if found is not None:
                self._store(key, row[0], row[1], row[2])  # this run's own copy
                return found
        return None

    def _neighbours(self) -> list[Path]:
        """The archives of the other runs of this problem in this run's folder, newest first (at
        most NEIGHBOURS), found once."""
        if self._others is None:
            self._others = _runs_of(self._problem, Path(self.archive))
        return self._others

    def put(self, name: str, code: str, evaluation: Evaluation) -> None:
        if evaluation.status in ("timeout", "crash", "memory"):
            return  # may be the machine's fault (load): measure again next time
        self._store(self.key(code), name, json.dumps(json_safe(to_json(evaluation))), time.time())

    def _store(self, key: str, name: str, text: str, created: float) -> None:
        try:
            db = sqlite3.connect(self.archive, timeout=30)
            try:
                with db:
                    db.execute(SCHEMA)
                    db.execute("INSERT OR REPLACE INTO split_evaluations VALUES (?, ?, ?, ?, ?)",
                               (key, name, self.split, text, created))
            finally:
                db.close()
        except sqlite3.OperationalError as err:  # a read-only run folder: no cache, same results
            log.info("cannot cache the evaluation in %s: %s", self.archive, err)


def _runs_of(problem: str, archive: Path) -> list[Path]:
    """The archives of the evolve runs of ``problem`` beside ``archive``'s run, newest first, at
    most NEIGHBOURS: folders with a config.json naming ``problem`` and an archive.sqlite (a
    regular file) recording it too."""
    own = archive.resolve()
    found: list[tuple[float, Path]] = []
    try:
        folders = [p for p in own.parent.parent.iterdir() if p != own.parent]
    except OSError:
        return []
    for folder in folders:
        try:
            path, config = folder / ARCHIVE, folder / CONFIG
            if path.is_file() and config.is_file() and config.stat().st_size <= MAX_CONFIG:
                found.append((path.stat().st_mtime, path))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    found.sort(reverse=True)
    runs = []
    for _, path in found:
        if len(runs) == NEIGHBOURS:
            break
        try:
            document = json.loads((path.parent / CONFIG).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.get("problem") == problem and archived_problem(path) == problem:
            runs.append(path)
    return runs


def _decoded(text: str) -> Evaluation | None:
    """Another run's entry, or None where it does not decode (a damaged or foreign row)."""
    try:
        return from_json(json.loads(text))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _lookup(archive: Path, key: str) -> tuple[str, str, float] | None:
    """(name, evaluation JSON, created_at) of ``key`` in ``archive``'s cache, or None."""
    try:
        db = sqlite3.connect(sqlite_uri(archive, readonly=True), uri=True)
        try:
            row = db.execute("SELECT name, evaluation, created_at FROM split_evaluations WHERE key=?",
                             (key,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:  # no such table yet, or not an archive we can read
        return None
    return (str(row[0]), str(row[1]), float(row[2])) if row else None


def to_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "status": evaluation.status, "score": evaluation.score, "metrics": evaluation.metrics,
        "instances": [r.to_json() for r in evaluation.instances], "feedback": evaluation.feedback,
        "stage": evaluation.stage, "seconds": evaluation.seconds, "solutions": evaluation.solutions,
    }


def from_json(document: dict[str, Any]) -> Evaluation:
    return Evaluation(
        status=document["status"], score=document["score"], metrics=document["metrics"],
        instances=[InstanceResult.from_json(r) for r in document["instances"]],
        feedback=document["feedback"], stage=document["stage"], seconds=document["seconds"],
        solutions=document["solutions"],
    )
