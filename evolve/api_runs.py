"""The Python API for runs: start one (``run``), one per seed as a study
(``run_study``, ``review_study``), continue one (``resume``), open one
(``open_run``).  Exported by ``evolve.api``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evolve.api_programs import load, with_scheme
from evolve.compare import StepProgress
from evolve.config import RunSettings
from evolve.errors import UserError
from evolve.handle import Run
from evolve.problem import Problem
from evolve.runner import (
    Plan,
    ProgressCallback,
    drive,
    new_folder,
    owned,
    plan_resume,
    plan_run,
    start,
)

RUNS_DIR = Path("runs")


def run(
    problem: str | Path | Problem,
    *,
    iterations: int | None = None,
    seed: int | None = None,
    llm: str | None = None,
    workers: int | None = None,
    concurrency: int | None = None,
    budget_usd: float | None = None,
    api_base: str | None = None,
    edit_mode: str | None = None,
    out: Path | str | None = None,
    record: Path | str | None = None,
    config: Path | str | None = None,
    options: dict[str, Any] | None = None,
    scheme: str | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
    runs_dir: Path | str = RUNS_DIR,
    progress: bool | ProgressCallback = False,
    options_source: str = "options",
    preflight: bool = True,
    **settings: Any,
) -> Run:
    """Evolve a heuristic for ``problem`` and return the finished run.

    Every ``evolve run`` flag is a keyword (``options`` is ``--option``, a dict);
    any other run setting (``temperature``, ``islands``, ``sandbox={...}``,
    ``cascade={...}``; see ``evolve.config.RunSettings``) can be given too.
    Settings resolve as defaults < the problem's ``[run]`` table < ``config``
    (a TOML file) < keywords.  The run folder is ``out``, or
    ``runs_dir/<problem>/<timestamp>-<id>``.  ``progress=True`` shows the
    live rich display; a callable receives ``evolve.progress.Progress`` after every
    iteration.  Every input is checked before the folder is created, the model
    too (provider, credentials and one minimal request; ``preflight=False``
    skips the request); a run that fails before archiving anything leaves no
    folder behind.  Ctrl-C raises ``KeyboardInterrupt``; every evaluated
    program is kept (``evolve.resume``).  A run its model stopped (wrong key,
    outage) returns normally: ``run.stop`` says why, with its exit code.
    """
    plan = _plan_of(problem, dict(
        iterations=iterations, seed=seed, llm=llm, workers=workers, concurrency=concurrency,
        budget_usd=budget_usd, api_base=api_base, edit_mode=edit_mode, record=record, config=config,
        options=options, scheme=scheme, executor=executor, ray_address=ray_address,
        options_source=options_source, preflight=preflight, **settings))
    folder, created = new_folder(Path(out) if out is not None else None, Path(runs_dir), plan.problem.name)
    with owned(folder, created, show=progress is True):
        plan = start(plan, folder)
        final = drive(plan, folder, None if isinstance(progress, bool) else progress, progress is True)
    return Run(folder, final)


def _plan_of(problem: str | Path | Problem, keywords: dict[str, Any]) -> Plan:
    """Every check ``run`` makes before it creates anything, for ``run``'s keywords
    (``out``, ``runs_dir`` and ``progress`` excepted): the plan, or a ``UserError``."""
    given = dict(keywords)
    config = given.pop("config", None)
    options_source = given.pop("options_source", "options")
    preflight = given.pop("preflight", True)
    options, scheme, record = given.pop("options", None), given.pop("scheme", None), given.pop("record", None)
    unknown = sorted(set(given) - set(RunSettings.model_fields))
    if unknown:
        raise UserError(f"unknown run setting '{unknown[0]}' (expected one of: {', '.join(RunSettings.model_fields)})")
    overrides = {**given, "record": str(record) if record is not None else None,
                 "verifier_options": with_scheme(options, scheme) or None}
    return plan_run(problem, overrides, Path(config) if config is not None else None, options_source,
                    source="command line" if options_source.startswith("--") else "run settings",
                    request=preflight)


def run_study(
    problem: str | Path | Problem,
    seeds: list[int] | str,
    *,
    parallel: int = 1,
    out: Path | str | None = None,
    runs_dir: Path | str = RUNS_DIR,
    on_progress: Callable[[int, Any], None] | None = None,
    on_done: Callable[[Any], None] | None = None,
    on_message: Callable[[int, str], None] | None = None,
    **run_settings: Any,
) -> Path:
    """One run per seed into one study folder (``evolve run P --seeds 0-4``); returns the folder.

    ``seeds`` is a list or a text like ``"0-4"``; every other keyword is an ``evolve.run``
    keyword, checked once before anything starts (a mistake is a ``UserError`` and leaves no
    folder).  ``parallel`` seeds run at once, each in an OS process of its own (so N seeds use
    N cores; ``parallel=1`` runs them in turn in this process), each with one evaluation worker
    unless ``workers`` is given.  Each seed's run is an ordinary run folder ``STUDY/seed-<s>/``,
    the same whichever way it ran; ``review_study`` (``evolve review STUDY``) reports the median
    and spread over the seeds.  ``on_progress(seed, progress)`` receives each run's
    ``evolve.progress.Progress``, ``on_done(outcome)`` each seed's ``evolve.study.SeedOutcome`` and
    ``on_message(seed, text)`` each message a parallel seed's process prints (by default, each
    distinct one is printed once on stderr, labelled ``seed N:``; seeds in turn print in this
    process), in the calling thread.  A seed that fails does not stop the others: once they are done,
    ``evolve.study.SeedsFailed`` names each failed seed and its error.  Ctrl-C (or SIGTERM)
    stops every seed and raises ``KeyboardInterrupt``; each seed keeps every evaluated program
    (``evolve.resume(STUDY/seed-<s>)``).
    """
    import secrets
    import time

    from evolve.study import SeedsFailed, open_study, parse_seeds, run_in_turn, seed_settings
    from evolve.study_processes import run_in_processes

    chosen = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
    if not chosen:
        raise UserError("seeds: expected at least one seed")
    if parallel < 1:
        raise UserError(f"parallel {parallel}: expected at least 1")
    for key in ("seed", "progress"):
        if key in run_settings:
            raise UserError(f"run_study: '{key}' is set per seed; give seeds (and on_progress) instead")
    run_settings.setdefault("workers", 1)
    base = load(problem)
    _plan_of(base, {**run_settings, "seed": chosen[0]})  # every check, before any folder or process
    run_settings["preflight"] = False  # the model was just checked: not once more per seed
    folder = Path(out) if out is not None else (
        Path(runs_dir) / base.name / f"study-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}")
    created = not folder.exists()
    try:
        open_study(base, chosen, folder)
        if parallel == 1 or len(chosen) == 1:
            def one(seed: int, sub: Path) -> Run:
                report = (lambda p: on_progress(seed, p)) if on_progress is not None else False
                return run(base, seed=seed, out=sub, progress=report, **seed_settings(run_settings, seed))

            outcomes = run_in_turn(chosen, folder, one, on_done)
        else:
            outcomes = run_in_processes(run, base, chosen, folder, min(parallel, len(chosen)), run_settings,
                                        on_progress, on_done, on_message)
        if not all(o.ok for o in outcomes):
            raise SeedsFailed(folder, outcomes)
    except BaseException:
        if created and not any(folder.glob("seed-*/archive.sqlite")):
            shutil.rmtree(folder, ignore_errors=True)  # nothing to keep: no folder left behind
        raise
    return folder


def review_study(study_dir: Path | str, *, test: bool = False, workers: int = 1,
                 progress: StepProgress | None = None) -> Any:
    """Median and spread over a study's seeds (``evolve review STUDY [--test]``): a
    ``evolve.study.StudyReview``; with ``test``, every seed's best and the baselines are
    evaluated on the held-out split."""
    from evolve.study import review_study as review_all

    return review_all(Path(study_dir), test=test, workers=workers, progress=progress)


def resume(
    run_dir: Path | str, *, iterations: int | None = None, progress: bool | ProgressCallback = False,
    preflight: bool = True,
) -> Run:
    """Continue a stopped run (Ctrl-C, ``kill -9``, a budget) up to its iteration target
    (or a new one); nothing evaluated is redone.  One process at a time owns a run folder:
    a second ``resume`` (or a ``run`` still going) is a ``UserError``."""
    from evolve.runs import save_config

    folder = Path(run_dir)
    plan, changed = plan_resume(folder, iterations, request=preflight)
    with owned(folder, created=False, show=progress is True):
        if changed:
            save_config(folder, plan.problem.name, plan.problem.dir, plan.settings)
        final = drive(plan, folder, None if isinstance(progress, bool) else progress, progress is True)
    return Run(folder, final)


def open_run(run_dir: Path | str) -> Run:
    """An existing run folder (finished, stopped or still running), read-only."""
    return Run(run_dir)
