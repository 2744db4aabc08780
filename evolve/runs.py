"""Run folders: ``runs/<problem>/<timestamp>-<id>/`` with archive, config, best."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.archive import Archive, Program
from evolve.config import RunSettings, validate
from evolve.errors import UserError

ARCHIVE = "archive.sqlite"
CONFIG = "config.json"


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


def prepare_out_dir(out: Path) -> Path:
    if (out / ARCHIVE).exists():
        raise UserError(f"{out}: already holds a run (use 'evolve resume {out}' to continue it)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_config(folder: Path, problem: str, problem_dir: Path, settings: RunSettings) -> None:
    # Settings hold no secrets: keys are read from the environment only.
    document = {
        "problem": problem,
        "problem_dir": str(problem_dir),
        "settings": settings.model_dump(mode="json"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (folder / CONFIG).write_text(json.dumps(document, indent=2) + "\n")


def load_run(folder: Path) -> RunInfo:
    config = folder / CONFIG
    if not (folder / ARCHIVE).is_file() or not config.is_file():
        raise UserError(f"{folder}: not a run folder (expected {ARCHIVE} and {CONFIG})")
    try:
        document: dict[str, Any] = json.loads(config.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{config}: invalid JSON ({err.msg} at line {err.lineno})") from None
    for key in ("problem", "problem_dir", "settings"):
        if key not in document:
            raise UserError(f"{config}: missing key '{key}'")
    settings = validate(RunSettings, document["settings"], str(config), prefix="settings.")
    return RunInfo(folder, document["problem"], document["problem_dir"], settings)


def find_runs(root: Path, problem: str) -> list[Path]:
    return sorted(p.parent for p in (root / problem).glob(f"*/{ARCHIVE}"))


def best_across_runs(root: Path, problem: str) -> tuple[Path, Program] | None:
    """The best program archived for ``problem`` in any run under ``root``."""
    best: tuple[Path, Program] | None = None
    for folder in find_runs(root, problem):
        archive = Archive(folder / ARCHIVE, readonly=True)
        try:
            program = archive.best()
        finally:
            archive.close()
        if program is None or program.score is None:
            continue
        if best is None or program.score > (best[1].score or float("-inf")):
            best = (folder, program)
    return best
