"""Run folders: ``runs/<problem>/<timestamp>-<id>/`` with archive, config, best."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.archive_schema import ARCHIVE, CONFIG, archived_problem
from evolve.config import RunSettings, validate
from evolve.errors import UserError
from evolve.files import read_text

LOCK = "run.lock"


@dataclass
class RunInfo:
    dir: Path
    problem: str
    problem_dir: str
    settings: RunSettings

    @property
    def archive_path(self) -> Path:
        return self.dir / ARCHIVE


def new_run_dir(root: Path, problem: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = root / problem / f"{stamp}-{secrets.token_hex(3)}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def refuse_foreign_contents(folder: Path, own: set[str], what: str) -> None:
    """``--out`` names a new or empty folder (or one holding only ``own`` files, a run's traces):
    a run or a study written into a folder of other things mixes with them, and removing a failed
    run's traces would not give the folder back as it was."""
    if not folder.is_dir():
        return
    others = sorted(p.name for p in folder.iterdir() if p.name not in own)
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise UserError(f"{folder}: not empty and not a {what} folder (it holds {others[0]!r}{more}); "
                        f"expected a new or empty folder for the {what}: choose another --out")


def save_config(folder: Path, problem: str, problem_dir: Path, settings: RunSettings) -> None:
    # Settings hold no secrets: keys are read from the environment only.
    document = {
        "problem": problem,
        "problem_dir": str(problem_dir),
        "settings": settings.model_dump(mode="json"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (folder / CONFIG).write_text(json.dumps(document, indent=2) + "\n")


STUDY_FILE = "study.json"  # evolve.study.STUDY (that module imports this one)


def load_run(folder: Path) -> RunInfo:
    config = folder / CONFIG
    if not (folder / ARCHIVE).is_file() or not config.is_file():
        runs = sorted((p.name for p in folder.glob("seed-*") if (p / ARCHIVE).is_file()),
                      key=lambda name: (len(name), name)) if (folder / STUDY_FILE).is_file() else []
        if runs:  # a newcomer gives report, export or resume the study folder that review takes
            raise UserError(f"{folder}: a study of {len(runs)} runs, not one run: give one of them "
                            f"({', '.join(str(folder / r) for r in runs[:3])}{', ...' if len(runs) > 3 else ''}); "
                            "evolve review takes the whole study")
        raise UserError(f"{folder}: not a run folder (expected {ARCHIVE} and {CONFIG})")
    try:
        document: dict[str, Any] = json.loads(read_text(config, "run config"))
    except json.JSONDecodeError as err:
        raise UserError(f"{config}: invalid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(document, dict):
        raise UserError(f"{config}: expected a JSON object with problem, problem_dir and settings, got {type(document).__name__}")
    for key in ("problem", "problem_dir", "settings"):
        if key not in document:
            raise UserError(f"{config}: missing key '{key}'")
    settings = validate(RunSettings, document["settings"], str(config), prefix="settings.")
    archived = archived_problem(folder / ARCHIVE)
    if archived is not None and archived != document["problem"]:  # review/export would mislabel every figure
        raise UserError(f"{config}: problem {document['problem']!r}, but {folder / ARCHIVE} holds a run of "
                        f"{archived!r} (a config.json from another run?)")
    return RunInfo(folder, document["problem"], document["problem_dir"], settings)


def find_runs(root: Path, problem: str) -> list[Path]:
    return sorted(p.parent for p in (root / problem).glob(f"*/{ARCHIVE}"))


class RunLock:
    """A run folder is driven by one process at a time (``run``, ``resume``).

    ``flock`` on ``RUN/run.lock``: the kernel releases it when the process dies,
    even by ``kill -9``, so a stale file never blocks a resume.  Readers
    (review, report, watch) take no lock.  The archive file itself is not
    locked: SQLite's own POSIX locks would be dropped by closing another
    descriptor of it.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            self.release()
            raise UserError(f"{folder}: in use by another evolve process (pid {holder}); "
                            "wait for it to finish or stop it, then resume") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
