"""The Python API for programs outside a run: load a problem, score a program
(``evaluate``), fit its constants (``tune``), score the baselines, compare two
programs, compute a problem's references.  Every program goes through the sandbox
and the trusted verifier, as in a run.  Exported by ``evolve.api``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evolve.compare import Comparison, StepProgress
from evolve.config import RunSettings
from evolve.errors import UserError
from evolve.evaluation import Evaluation
from evolve.files import check_output, read_program
from evolve.problem import Problem
from evolve.runner import as_problem
from evolve.tuning import Trial, TuneResult


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
    splits = parse_splits(split, spec)
    if time_limit_s is not None and not 0 < time_limit_s < 1e6:
        raise UserError(f"--time-limit {time_limit_s:g}: expected a positive number of seconds")
    command = refresh_command(spec.name, splits, time_limit_s, dict(options or {}))
    return refresh_references(spec, splits, time_limit_s, command, force=force, jobs=jobs, progress=progress)


def _check_picture_format(path: Path) -> None:
    """Before the evaluation: a suffix matplotlib cannot write was a ValueError after it."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lstrip(".").lower()
    if suffix and suffix not in formats:
        raise UserError(f"{path}: cannot draw a picture as '.{suffix}' (expected one of: {', '.join(sorted(formats))})")


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

    from evolve.evaluation import Evaluator, without_measurable_gap
    from evolve.formats import json_safe

    spec = load(problem, with_scheme(options, scheme), options_source)
    code = program_code(program)
    out = check_output(Path(solutions_out), "solutions file") if solutions_out is not None else None
    picture = check_output(Path(plot), "picture file") if plot is not None else None
    draw = getattr(spec.verifier, "picture", None)
    if picture is not None and draw is None:
        raise UserError(f"problem '{spec.name}' has no picture of its solutions (--plot)")
    if picture is not None:
        _check_picture_format(picture)
    chosen, split_name = _instances(spec, split, instances, instance)
    with Evaluator(spec, _sandbox(spec)) as evaluator:
        evaluation = without_measurable_gap(evaluator.run_split(code, chosen, split_name))
    if out is not None:
        rows = [{"name": i.name, "solution": s} for i, s in zip(chosen, evaluation.solutions, strict=False)]
        out.write_text(json.dumps(json_safe(rows)) + "\n")
    if picture is not None:
        if evaluation.status != "ok":
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
    spec = load(problem, with_scheme(options, scheme), options_source)
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

    spec = load(problem, with_scheme(options, scheme), options_source)
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
    from evolve.compare import evaluate_programs, instance_score_of

    spec = load(problem, with_scheme(options, scheme), options_source)
    name_a, name_b = _label(a), _label(b)
    if name_a == name_b:
        name_a, name_b = str(a), str(b)
    programs = [(name_a, program_code(a)), (name_b, program_code(b))]
    chosen, split_name = _instances(spec, split, instances, instance)
    evaluations = evaluate_programs(spec, _sandbox(spec), programs, chosen, split_name, workers, progress=progress)
    direction = spec.spec.objective.direction
    return evaluations, paired(name_a, evaluations[name_a], name_b, evaluations[name_b], chosen, direction,
                               instance_score_of(spec))


def program_code(program: str | Path) -> str:
    """Source code from a path, or the string itself when it holds code (a newline)."""
    if isinstance(program, str) and "\n" in program:
        return program
    return read_program(Path(program))


def _label(program: str | Path) -> str:
    return "program" if isinstance(program, str) and "\n" in program else Path(program).name


def with_scheme(options: dict[str, Any] | None, scheme: str | None) -> dict[str, Any]:
    """Verifier options with ``scheme`` (the ``--scheme`` shorthand) set when given."""
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
