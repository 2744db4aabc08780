"""``evolve references PROBLEM``: compute or refresh the shipped references of any problem.

Works for every verifier that implements ``evolve.references.ComputesReferences``
(built-in or plug-in).  Records already present are kept (and refreshed cheaply
where the verifier can), missing ones computed, one at a time or in ``jobs``
processes, the file rewritten after each so an interrupted run keeps its work.
Computing every split drops the entries of instances no split has any more.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from evolve.errors import UserError
from evolve.problem import FIT, SPLITS, VALID, Problem, load_problem
from evolve.references import (
    ComputesReferences,
    ReferenceTask,
    StoredReference,
    read_file,
    write_file,
)

# (done, total, the record just computed): called with (0, total, None) before the first
Progress = Callable[[int, int, StoredReference | None], None]


@dataclass(frozen=True)
class RefreshOutcome:
    path: Path
    computed: int
    kept: int
    refreshed: int
    dropped: int


def parse_splits(text: str, problem: Problem | None = None) -> list[str]:
    """``all`` or a comma list of split names (``valid`` and ``fit`` too, where the verifier has
    them); UserError naming a bad one and the splits ``problem`` has (smtt's message listed
    valid and fit, which it does not have)."""
    names = list(SPLITS) if text == "all" else [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in (*SPLITS, VALID, FIT)] or ([] if names else [text])
    if bad:
        known = [*SPLITS, VALID, FIT] if problem is None else problem.split_names()
        raise UserError(f"--split {bad[0]!r}: expected one of {', '.join(known)}, a comma list, or all")
    return names


def reference_verifier(problem: Problem) -> ComputesReferences:
    verifier = problem.verifier
    if not isinstance(verifier, ComputesReferences):
        raise UserError(f"problem '{problem.name}': its verifier ({problem.spec.verifier.entry}) keeps no "
                        "references to compute (it would define reference_tasks(split) and "
                        "compute_reference(task, time_limit_s); see docs/architecture.md)")
    return verifier


def refresh_references(problem: Problem, splits: list[str], time_limit_s: float | None, command: str,
                       force: bool = False, jobs: int = 1, progress: Progress | None = None) -> RefreshOutcome:
    verifier = reference_verifier(problem)
    path = problem.dir / "data" / "references.json"
    header: dict[str, Any] = {}
    records: dict[str, StoredReference] = {}
    if path.exists() and not force:
        header, records = read_file(path)
    wanted: dict[str, ReferenceTask] = {}
    for split in splits:
        wanted.update((t.key, t) for t in verifier.reference_tasks(split))
    dropped = 0
    if set(SPLITS) <= set(splits):  # every split: drop what none has (a validation split's are kept)
        keep = set(wanted) | {t.key for t in _valid_tasks(verifier)}
        stale = [key for key in records if key not in keep]
        for key in stale:
            del records[key]
        dropped = len(stale)
    refresh = getattr(verifier, "refresh_reference", None)
    refreshed = 0
    for key, task in wanted.items():
        if key in records and refresh is not None:
            fresh = refresh(task, records[key])
            refreshed += fresh != records[key]
            records[key] = fresh
    if dropped or refreshed:  # the header still describes the run that computed the entries
        write_file(path, header, records)
    todo = [task for key, task in wanted.items() if key not in records]
    kept = len(wanted) - len(todo)
    if progress is not None:
        progress(0, len(todo), None)
    for done, (key, record) in enumerate(_computed(problem, verifier, todo, time_limit_s, jobs), 1):
        records[key] = record
        write_file(path, provenance(command), records)
        if progress is not None:
            progress(done, len(todo), record)
    return RefreshOutcome(path, len(todo), kept, refreshed, dropped)


def _valid_tasks(verifier: ComputesReferences) -> list[ReferenceTask]:
    out = []
    for split in (VALID, FIT):
        with contextlib.suppress(UserError, KeyError):  # the verifier has no such split
            out += verifier.reference_tasks(split)
    return out


def _computed(problem: Problem, verifier: ComputesReferences, todo: list[ReferenceTask],
              time_limit_s: float | None, jobs: int) -> Iterator[tuple[str, StoredReference]]:
    if jobs <= 1 or len(todo) <= 1:  # here, one at a time
        for task in todo:
            yield task.key, verifier.compute_reference(task, time_limit_s)
        return
    options = dict(problem.spec.verifier.options)
    with ProcessPoolExecutor(jobs) as pool:
        running = {pool.submit(_compute_in_worker, str(problem.dir), options, task, time_limit_s): task.key
                   for task in todo}
        for future in as_completed(running):
            yield running[future], future.result()


_WORKER_VERIFIERS: dict[str, Any] = {}


def _compute_in_worker(problem_dir: str, options: dict[str, Any], task: ReferenceTask,
                       time_limit_s: float | None) -> StoredReference:
    """In a pool process: the problem's verifier, built once per process."""
    verifier = _WORKER_VERIFIERS.get(problem_dir)
    if verifier is None:
        verifier = load_problem(problem_dir).with_options(options).verifier
        _WORKER_VERIFIERS[problem_dir] = verifier
    return verifier.compute_reference(task, time_limit_s)


def refresh_command(problem: str, splits: list[str], time_limit_s: float | None,
                    options: dict[str, Any]) -> str:
    """The command line that computes what this call computes: the file's provenance."""
    words = ["evolve references", problem, "--split", ",".join(splits)]
    if time_limit_s is not None:
        words += ["--time-limit", f"{time_limit_s:g}"]
    for key, value in options.items():
        text = str(value).lower() if isinstance(value, bool) else value if isinstance(value, str) else f"{value:g}" \
            if isinstance(value, float) else json.dumps(value)
        words += ["--option", f"{key}={text}"]
    return " ".join(words)


def provenance(command: str) -> dict[str, Any]:
    """The header of a file whose entries this command computed: how, with what, where."""
    versions = {}
    for package in ("numpy", "ortools"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {"command": command, "python": platform.python_version(), **versions,
            "machine": platform.machine(), "cpus": os.cpu_count()}
