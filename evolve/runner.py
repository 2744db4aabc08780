"""Starting and continuing runs: check everything first, then own the run folder and search.

Order matters for users: every mistake in the input (problem, settings, a
config file, verifier options, the model spec, a replay or record file, a
missing Ray) is found before a run folder exists.  The folder is then locked
for this process; a failure before anything was archived removes what this
call created, so ``runs/`` never fills with empty folders.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evolve.archive import Archive
from evolve.archive_schema import sqlite_uri
from evolve.config import RunSettings, offline_default, read_toml, resolve_settings
from evolve.errors import UserError
from evolve.files import check_output, write_atomic
from evolve.llm import LLM, OFFLINE, make_llm
from evolve.llm.preflight import Checked, members, preflight
from evolve.loop import Controller, Progress
from evolve.problem import Problem, _from_dir, load_problem
from evolve.runs import (
    ARCHIVE,
    CONFIG,
    LOCK,
    RunLock,
    load_run,
    new_run_dir,
    refuse_foreign_contents,
    save_config,
)
from evolve.selection import clear_selection, refit_reported, select_best
from evolve.stop import StopKind
from evolve.user_code import check_seed_blocks, check_seed_parses

ProgressCallback = Callable[[Progress], None]
PROBLEM_COPY = "problem"  # where a run keeps a copy of a problem defined in Python
# What a run writes in its folder (what a failed start leaves and removes): the only things an --out may hold.
RUN_FILES = {ARCHIVE, f"{ARCHIVE}-wal", f"{ARCHIVE}-shm", CONFIG, LOCK, "best.py", PROBLEM_COPY}


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``kept`` says whether the folder holds anything to resume."""

    def __init__(self, run_dir: Path, kept: bool) -> None:
        super().__init__(f"interrupted: {run_dir}")
        self.run_dir, self.kept = run_dir, kept


@dataclass
class Plan:
    """A run that passed every check and has not touched the disk yet."""

    problem: Problem
    settings: RunSettings
    llm: LLM
    checked: list[Checked] = field(default_factory=list)  # the models' preflight


def as_problem(problem: str | Path | Problem) -> Problem:
    """A ``Problem`` as given, or by name or folder path."""
    if isinstance(problem, Problem):
        return problem
    if isinstance(problem, str | Path):
        return load_problem(str(problem))
    raise UserError(f"problem: expected a name, a folder path or a Problem, got {type(problem).__name__}")


def plan_run(
    problem: str | Path | Problem,
    overrides: dict[str, Any],
    config: Path | None = None,
    options_source: str = "options",
    source: str = "run settings",
    request: bool = True,
) -> Plan:
    """Resolve and check everything a new run needs, without creating anything.

    The model is checked last (``evolve.llm.preflight``): provider, credentials
    and, if ``request``, one minimal request to each endpoint.
    """
    if config is not None and config.is_dir():
        raise UserError(f"{config}: is a folder, expected a TOML file of run settings")
    base = as_problem(problem)
    settings = resolve_settings(base.spec.run, config, overrides, source=source)
    if config is not None:
        # the config file's own verifier_options are checked first, so that a bad one names the
        # file, not the command line's --option
        in_file = read_toml(config).get("verifier_options") or {}
        given = overrides.get("verifier_options") or {}
        base = base.configured({k: v for k, v in in_file.items() if k not in given},
                               source=f"{config}: verifier_options")
    return _plan(base, settings, options_source, request)


def _plan(base: Problem, settings: RunSettings, options_source: str, request: bool) -> Plan:
    configured = base.configured(settings.verifier_options, source=options_source)
    check_seed_parses(configured.seed_code, configured.dir / configured.spec.seed)  # missing, binary, broken
    check_seed_blocks(configured.seed_code, configured.dir / configured.spec.seed)
    _ = configured.context  # a context file problem.toml names but that is missing: one line, now
    if settings.record:
        check_output(Path(settings.record), "record file")
    if settings.executor == "ray":
        from evolve.executors import import_ray

        import_ray(settings.ray_address)
    if settings.select_on:  # a validation split that cannot load fails now, before a run folder exists
        try:
            configured.instances(settings.select_on)
        except UserError as err:  # the verifier's "unknown split 'valid'" named no setting
            raise UserError(f"select_on = '{settings.select_on}': {err}") from None
    if settings.refit_on:  # as select_on: a fit split that cannot load fails now
        try:
            configured.instances(settings.refit_on)
        except UserError as err:
            raise UserError(f"refit_on = '{settings.refit_on}': {err}") from None
    if settings.llm == "auto":  # saved resolved: a resumed run keeps the search it started with
        settings = settings.model_copy(update={"llm": offline_default(bool(configured.spec.rule))})
    if configured.spec.rule:  # a model's prompt states the [rule] inputs too: a wrong table misleads any search
        from evolve.gp import check_rules

        check_rules(configured.seed_code, configured.spec.rule, str(configured.toml_path))
    llm = build_llm(settings, configured)
    checked = preflight(llm, timeout_s=settings.llm_preflight_timeout_s, request=request)
    return Plan(configured, settings, llm, checked)


def build_llm(settings: RunSettings, problem: Problem | None = None) -> LLM:
    return make_llm(
        settings.llm, api_base=settings.api_base, seed=settings.seed, temperature=settings.temperature,
        max_tokens=settings.max_tokens, timeout_s=settings.llm_timeout_s, max_retries=settings.llm_retries,
        record=Path(settings.record) if settings.record else None,
        rules=problem.spec.rule if problem is not None else None, gp=settings.gp,
        screen=_screen_factory(problem), files_settle_s=settings.files_settle_s,
    )


def _screen_factory(problem: Problem | None) -> Callable[[], Any] | None:
    """The GP's brood screen on train, built only if the GP is the backend (evolve/gp/screen.py)."""
    if problem is None:
        return None

    def build() -> Any:
        from evolve.gp.screen import screen_for

        return screen_for(problem)
    return build


def plan_resume(run_dir: Path, iterations: int | None = None, request: bool = True) -> tuple[Plan, bool]:
    """The plan of an existing run (and whether its settings changed)."""
    from evolve.archive import check_archive
    from evolve.review import run_problem

    if iterations is not None and iterations < 0:  # was "for -5 more: --iterations -2"
        raise UserError(f"--iterations {iterations}: expected the run's new target, a number of iterations >= 0")
    info = load_run(run_dir)
    check_archive(info.archive_path)
    settings = info.settings
    if iterations is not None:
        archive = Archive(info.archive_path, readonly=True)
        try:
            done = archive.max_iteration()
        finally:
            archive.close()
        if iterations < done:  # "--iterations 5" read as "5 more" would silently do nothing
            raise UserError(f"--iterations {iterations} is the run's new target (not a number more), and {run_dir} "
                            f"has already done {done} iterations; for {iterations} more: --iterations {done + iterations}")
    changed = iterations is not None and iterations != settings.iterations
    if changed:
        settings = settings.model_copy(update={"iterations": iterations})
    base = run_problem(info)
    return _plan(base, settings, f"{run_dir / CONFIG}: settings.verifier_options", request), changed


def new_folder(out: Path | None, runs_dir: Path, problem: str) -> tuple[Path, bool]:
    """The run folder (and whether this call created it); nothing is written in it yet."""
    if out is None:
        return new_run_dir(runs_dir, problem), True
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if (out / ARCHIVE).exists():
        raise UserError(f"{out}: already holds a run (use 'evolve resume {out}' to continue it)")
    refuse_foreign_contents(out, RUN_FILES, "run")
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{out}: cannot create the run folder ({err.strerror})") from None
    return out, not existed


@contextmanager
def owned(folder: Path, created: bool, show: bool = False) -> Iterator[RunLock]:
    """Hold the folder's lock; if the body fails before anything was archived,
    remove what this run put there (the whole folder if this call created it), and with
    ``show`` say so (``drive`` has printed "run folder: X").
    Ctrl-C becomes ``RunInterrupted``, which says whether there is a run to resume."""
    lock = RunLock(folder)
    try:
        yield lock
    except BaseException as err:
        kept = _has_work(folder / ARCHIVE)
        if not kept:
            lock.release()
            _remove_traces(folder, created)
            if show and not isinstance(err, KeyboardInterrupt):  # Ctrl-C says "no run folder kept" itself
                from evolve.display import console

                console.print(f"run folder {folder} removed: the run failed before any program was evaluated"
                              if created else f"run folder {folder}: this run's files removed: the run failed "
                              "before any program was evaluated", markup=False, highlight=False, soft_wrap=True)
        if isinstance(err, KeyboardInterrupt) and not isinstance(err, RunInterrupted):
            raise RunInterrupted(folder, kept) from err
        raise
    finally:
        lock.release()


def _has_work(archive: Path) -> bool:
    if not archive.is_file() or archive.stat().st_size == 0:
        return False
    import sqlite3

    try:
        db = sqlite3.connect(sqlite_uri(archive, readonly=True), uri=True)
        try:
            programs = db.execute("SELECT COUNT(*) FROM programs").fetchone()[0]
            attempts = db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return True  # unreadable: keep it for a human to look at
    return bool(programs or attempts)


def _remove_traces(folder: Path, created: bool) -> None:
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for name in sorted(RUN_FILES):
        target = folder / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def start(plan: Plan, folder: Path) -> Plan:
    """Write the run's config and archive; a problem defined in Python is copied in."""
    problem = plan.problem
    if problem.origin == "python":
        shutil.copytree(problem.dir, folder / PROBLEM_COPY, ignore=shutil.ignore_patterns("__pycache__"))
        problem = _from_dir(folder / PROBLEM_COPY, "path").with_options(plan.settings.verifier_options)
    save_config(folder, problem.name, problem.dir, plan.settings)
    archive = Archive(folder / ARCHIVE, create=True)
    try:
        archive.set_meta("problem", problem.name)
    finally:
        archive.close()
    return Plan(problem, plan.settings, plan.llm, plan.checked)


def model_reads_prompts(llm: str) -> bool:
    """Whether the run's proposals come from prompts (a model, files:, replay:), not the offline search."""
    return llm not in ("gp", "mutate", "stub", "auto")


def drive(plan: Plan, folder: Path, on_progress: ProgressCallback | None, show: bool) -> Progress:
    """Run the controller to its stop; the stop reason is kept in the archive."""
    from evolve.display import RunDisplay, console

    if show:
        if plan.settings.llm in ("gp", "mutate", "stub"):
            what = ("the offline search: GP over the rule's inputs" if plan.settings.llm == "gp"
                    else "the offline mutator")
            console.print(f"No model configured: using {what} (--llm MODEL for a real one).")
        for checked in plan.checked:
            if checked.note:
                console.print(f"model: {checked.model}: {checked.note}")
                continue
            answered = "request skipped (--no-preflight)" if checked.seconds is None else (
                f"answered in {checked.seconds:.1f} s")
            console.print(f"model check: {checked.model}: provider and credentials ok, {answered}")
        if model_reads_prompts(plan.settings.llm) and not plan.problem.context.strip():
            console.print(f"note: {plan.problem.dir / plan.problem.spec.context} is missing or empty: the model "
                          "reads only problem.toml's description and function contract (docs/add-a-problem.md)",
                          markup=False, highlight=False, soft_wrap=True)
        console.print(f"run folder: {folder}")
    archive = Archive(folder / ARCHIVE)
    callbacks = [on_progress] if on_progress else []

    def report(progress: Progress) -> None:
        for callback in callbacks:
            callback(progress)

    try:
        model = getattr(plan.llm, "name", "") not in OFFLINE
        for backend in members(plan.llm):  # files:DIR says when it waits, what came of a reply
            if show and hasattr(backend, "notify"):
                backend.notify = lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)
        with RunDisplay(plan.problem.name, model=model,
                                    against=plan.problem.spec.objective.reference) if show else nullcontext() as display:
            if display is not None:
                callbacks.append(display.update)
            controller = Controller(plan.problem, plan.settings, archive, plan.llm, folder, on_progress=report)
            clear_selection(archive)
            progress = controller.run()
        archive.set_meta("stop_reason", progress.stop_reason)
        archive.set_meta("stop_kind", progress.stop.kind.value if progress.stop else None)
        archive.set_meta("stopped_at", time.time())
        if plan.settings.select_on and progress.stop is not None and progress.stop.kind in (
                StopKind.COMPLETED, StopKind.BUDGET):
            if show:
                console.print(f"choosing the reported best on the {plan.settings.select_on} split among the "
                              f"{plan.settings.select_among} best on train")
            selection = select_best(plan.problem, plan.settings, archive)
            if selection is not None:
                write_atomic(folder / "best.py", archive.program(selection.program_id).code)
                if show:
                    console.print(f"best: {selection.describe()}", highlight=False)
        if plan.settings.refit_on and progress.stop is not None and progress.stop.kind in (
                StopKind.COMPLETED, StopKind.BUDGET):
            refitted = refit_reported(plan.problem, plan.settings, archive)
            if refitted is not None:
                write_atomic(folder / "best.py", archive.program(refitted.program_id).code)
                if show:
                    console.print(f"best: {refitted.describe()}", highlight=False)
    finally:
        archive.close()
    return progress
