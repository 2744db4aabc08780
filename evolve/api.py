"""The Python API: what the ``evolve`` command does, as functions (the CLI is a layer over these).

    import evolve
    run = evolve.run("smtt", iterations=200, seed=0, out="runs/smtt/mine")
    run.best.code, run.best.score, run.best.metrics
    run.review(test=True)       # the data of `evolve review --test --json`, as objects
    run.report("report.html")
    run.programs()              # a pandas DataFrame
    evolve.evaluate("smtt", "rule.py", split="test")
    run = evolve.resume("runs/smtt/<run>")

A problem is a name (``"smtt"``), a folder with ``problem.toml``, or a
``Problem`` (``evolve.define_problem`` builds one from a verifier class and a
seed string).  Mistakes in input raise ``evolve.UserError`` with a one-line
message; nothing is printed unless ``progress=True``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evolve.compare import Comparison, StepProgress
from evolve.config import RunSettings
from evolve.errors import UserError
from evolve.evaluation import Evaluation
from evolve.files import check_output, read_program
from evolve.handle import Run
from evolve.problem import Problem
from evolve.runner import (
    Plan,
    ProgressCallback,
    as_problem,
    drive,
    new_folder,
    owned,
    plan_resume,
    plan_run,
    start,
)
from evolve.tuning import Trial, TuneResult

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
    with owned(folder, created):
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
    verifier_options = {**(options or {}), **({"scheme": scheme} if scheme is not None else {})}
    overrides = {**given, "record": str(record) if record is not None else None,
                 "verifier_options": verifier_options or None}
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
    with owned(folder, created=False):
        if changed:
            save_config(folder, plan.problem.name, plan.problem.dir, plan.settings)
        final = drive(plan, folder, None if isinstance(progress, bool) else progress, progress is True)
    return Run(folder, final)


def open_run(run_dir: Path | str) -> Run:
    """An existing run folder (finished, stopped or still running), read-only."""
    return Run(run_dir)


def load(problem: str | Path | Problem, options: dict[str, Any] | None = None,
         options_source: str = "options") -> Problem:
    """A problem by name, folder or ``Problem``, with ``options`` overriding its
    ``[verifier.options]``; the verifier is built now, so bad options fail here."""
    return as_problem(problem).configured(dict(options or {}), source=options_source)


def compute_references(
    problem: str | Path | Problem,
    *,
    split: str = "all",
    time_limit_s: float | None = None,
    force: bool = False,
    jobs: int = 1,
    options: dict[str, Any] | None = None,
    options_source: str = "options",
    progress: Callable[[int, int, Any], None] | None = None,
) -> Any:
    """Compute the missing references of ``split`` (``all``, a name or a comma list) into the
    problem's ``data/references.json`` and return what was done (``RefreshOutcome``).
    ``time_limit_s`` is the solver budget per instance as the verifier defines it (None: its
    default); ``progress(done, total, record)`` is called before the first and after each."""
    from evolve.reference_refresh import parse_splits, refresh_command, refresh_references

    spec = load(problem, options, options_source)
    splits = parse_splits(split)
    if time_limit_s is not None and not 0 < time_limit_s < 1e6:
        raise UserError(f"--time-limit {time_limit_s:g}: expected a positive number of seconds")
    command = refresh_command(spec.name, splits, time_limit_s, dict(options or {}))
    return refresh_references(spec, splits, time_limit_s, command, force=force, jobs=jobs, progress=progress)


def evaluate(
    problem: str | Path | Problem,
    program: str | Path,
    *,
    split: str = "train",
    instances: Path | str | None = None,
    instance: list[str] | None = None,
    options: dict[str, Any] | None = None,
    scheme: str | None = None,
    solutions_out: Path | str | None = None,
    plot: Path | str | None = None,
    options_source: str = "options",
) -> Evaluation:
    """Score one program with the problem's verifier, as ``evolve eval`` does.

    ``program`` is a file path or the source code itself (a string with a
    newline).  ``split`` is ``quick``, ``train`` or ``test``; ``instances`` a
    file of instances (or a trace) instead; ``instance`` a list of instance
    names to keep.  ``solutions_out`` writes the solutions as JSON, ``plot``
    draws the problem's picture of them.  A failing program is a returned
    ``Evaluation`` with ``ok == False``, not an exception.
    """
    import json

    from evolve.evaluation import Evaluator
    from evolve.formats import json_safe

    spec = load(problem, _with_scheme(options, scheme), options_source)
    code = program_code(program)
    out = check_output(Path(solutions_out), "solutions file") if solutions_out is not None else None
    picture = check_output(Path(plot), "picture file") if plot is not None else None
    draw = getattr(spec.verifier, "picture", None)
    if picture is not None and draw is None:
        raise UserError(f"problem '{spec.name}' has no picture of its solutions (--plot)")
    chosen, split_name = _instances(spec, split, instances, instance)
    with Evaluator(spec, _sandbox(spec)) as evaluator:
        evaluation = evaluator.run_split(code, chosen, split_name)
    if out is not None:
        rows = [{"name": i.name, "solution": s} for i, s in zip(chosen, evaluation.solutions, strict=False)]
        out.write_text(json.dumps(json_safe(rows)) + "\n")
    if picture is not None:
        if not evaluation.ok:
            raise UserError(f"{_label(program)}: nothing to draw, the program failed ({evaluation.status})")
        draw(chosen, evaluation.instances, evaluation.solutions, picture)  # type: ignore[misc]
    return evaluation


def tune(
    problem: str | Path | Problem,
    program: str | Path,
    *,
    split: str = "train",
    budget: int = 40,
    seed: int = 0,
    workers: int = 1,
    options: dict[str, Any] | None = None,
    scheme: str | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    options_source: str = "options",
) -> TuneResult:
    """Fit the numeric literals inside the program's EVOLVE-BLOCK on ``split`` (``evolve tune``).

    CMA-ES over the constants (``evolve/tuning.py``); every trial is scored through the
    sandbox and the trusted verifier, ``workers`` at a time; ``budget`` counts the programs
    evaluated, the original included.  The result's ``code`` is the best program found
    (the original when nothing beat it) and ``constants``/``values`` say what changed.
    """
    from evolve.evaluation import Evaluator
    from evolve.tuning import tune_code

    if budget < 1:
        raise UserError(f"budget {budget}: expected at least 1 evaluation")
    spec = load(problem, _with_scheme(options, scheme), options_source)
    code = program_code(program)
    chosen, split_name = _instances(spec, split, None, None)
    with Evaluator(spec, _sandbox(spec), slots=workers) as evaluator:

        def score(candidate: str) -> float | None:
            evaluation = evaluator.run_split(candidate, chosen, split_name)
            return evaluation.score if evaluation.ok else None

        return tune_code(code, score, budget, seed=seed, parallel=workers, on_trial=on_trial)


def baselines(
    problem: str | Path | Problem,
    *,
    split: str = "train",
    instances: Path | str | None = None,
    instance: list[str] | None = None,
    options: dict[str, Any] | None = None,
    scheme: str | None = None,
    workers: int = 1,
    progress: StepProgress | None = None,
    options_source: str = "options",
) -> dict[str, Evaluation]:
    """The seed and every baseline scored through the same sandbox and verifier as
    evolved programs (``evolve baselines``): ``{"seed": ..., "<baseline>": ...}``."""
    from evolve.compare import evaluate_programs

    spec = load(problem, _with_scheme(options, scheme), options_source)
    programs = [("seed", spec.seed_code), *spec.baseline_programs()]
    chosen, split_name = _instances(spec, split, instances, instance)
    return evaluate_programs(spec, _sandbox(spec), programs, chosen, split_name, workers, progress=progress)


def compare_programs(
    a: str | Path,
    b: str | Path,
    problem: str | Path | Problem,
    *,
    split: str = "test",
    instances: Path | str | None = None,
    instance: list[str] | None = None,
    options: dict[str, Any] | None = None,
    scheme: str | None = None,
    workers: int = 1,
    progress: StepProgress | None = None,
    options_source: str = "options",
) -> tuple[dict[str, Evaluation], Comparison]:
    """Two programs instance by instance (``evolve compare``): their evaluations by name,
    and the paired comparison (wins/ties/losses per group, Wilcoxon signed-rank test)."""
    from evolve.compare import compare as paired
    from evolve.compare import evaluate_programs

    spec = load(problem, _with_scheme(options, scheme), options_source)
    name_a, name_b = _label(a), _label(b)
    if name_a == name_b:
        name_a, name_b = str(a), str(b)
    programs = [(name_a, program_code(a)), (name_b, program_code(b))]
    chosen, split_name = _instances(spec, split, instances, instance)
    evaluations = evaluate_programs(spec, _sandbox(spec), programs, chosen, split_name, workers, progress=progress)
    direction = spec.spec.objective.direction
    return evaluations, paired(name_a, evaluations[name_a], name_b, evaluations[name_b], chosen, direction)


def program_code(program: str | Path) -> str:
    """Source code from a path, or the string itself when it holds code (a newline)."""
    if isinstance(program, str) and "\n" in program:
        return program
    return read_program(Path(program))


def _label(program: str | Path) -> str:
    return "program" if isinstance(program, str) and "\n" in program else Path(program).name


def _with_scheme(options: dict[str, Any] | None, scheme: str | None) -> dict[str, Any]:
    return {**(options or {}), **({"scheme": scheme} if scheme is not None else {})}


def _instances(
    spec: Problem, split: str, instances: Path | str | None, names: list[str] | None
) -> tuple[list[Any], str]:
    """The chosen instances and the name the output gives their set."""
    if instances is not None:
        return spec.instances(split, Path(instances), names), str(instances)
    return spec.instances(split, None, names), split


def _sandbox(spec: Problem) -> Any:
    """The problem's sandbox limits (its ``[run.sandbox]`` table over the defaults)."""
    return RunSettings.model_validate(spec.spec.run).sandbox
