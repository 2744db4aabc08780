"""The ``evolve`` command line: parse, call the library, print with rich.

Core commands live here (problems, run, resume, eval, baselines); the ones
that look back at runs are in ``evolve.cli_review``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from evolve.cli_common import (
    RUNS_ROOT,
    InstanceFlag,
    InstancesFlag,
    OptionFlag,
    SchemeFlag,
    _read_program,
    _verifier_options,
    app,
    example,
    user_errors,
)
from evolve.display import (
    RunDisplay,
    console,
    err_console,
    evaluation_table,
    fmt,
    headline_of,
    json_safe,
    metrics_table,
    pct,
)
from evolve.errors import UserError


@app.command(epilog=example("evolve problems"))
@user_errors
def problems() -> None:
    """List the available problems, their verifiers and baselines."""
    from rich.table import Table

    from evolve.problem import discover

    table = Table(title="problems", title_justify="left")
    for column in ("name", "title", "objective", "verifier", "baselines", "from"):
        table.add_column(column)
    for name, problem in sorted(discover().items()):
        spec = problem.spec
        table.add_row(
            name, spec.title, f"{spec.objective.name} ({spec.objective.direction})",
            spec.verifier.entry, ", ".join(problem.baselines) or "-", problem.origin,
        )
    console.print(table)


@app.command(
    epilog=example(
        "evolve run smtt",
        "evolve run smtt --iterations 500 --workers 2 --seed 7",
        "evolve run smtt --llm openai/gpt-4.1-mini --budget-usd 2 --record completions.jsonl",
        "evolve run smtt --llm hosted_vllm/Qwen2.5-Coder-32B --api-base http://localhost:8000/v1",
        "evolve run smtt --llm replay:completions.jsonl",
        "evolve run smtt --executor ray --workers 8 --ray-address ray://head:10001",
    )
)
@user_errors
def run(
    problem: Annotated[str, typer.Argument(help="Problem name, or a folder with problem.toml.")],
    llm: Annotated[str | None, typer.Option(help="Model (litellm string), 'm1:0.8,m2:0.2', 'gp' (offline search, the default), 'mutate' (alias 'stub') or 'replay:FILE'.")] = None,
    iterations: Annotated[int | None, typer.Option(help="Proposals to make (each is one iteration).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of the run.")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel evaluations (sandboxes).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Iterations in flight (model call or evaluation), at least --workers.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Stop cleanly once LLM spend reaches this.")] = None,
    api_base: Annotated[str | None, typer.Option(help="OpenAI-compatible server (vLLM, Ollama, ...).")] = None,
    edit_mode: Annotated[str | None, typer.Option(help="diff, rewrite or mixed.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/PROBLEM/<timestamp>-<id>).")] = None,
    record: Annotated[Path | None, typer.Option(help="Save every completion to this JSONL file (for replay).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of run settings.")] = None,
    option: OptionFlag = None,
    scheme: SchemeFlag = None,
    executor: Annotated[str | None, typer.Option(help="local (sandboxes here) or ray.")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Existing Ray cluster, e.g. ray://head:10001.")] = None,
) -> None:
    """Evolve a heuristic for PROBLEM. Offline (GP over the rule's inputs) unless --llm names a model."""
    from evolve.archive import Archive
    from evolve.config import offline_default, resolve_settings
    from evolve.problem import load_problem
    from evolve.runs import ARCHIVE, new_run_dir, prepare_out_dir, save_config

    spec = load_problem(problem)
    overrides = {
        "llm": llm, "iterations": iterations, "seed": seed, "workers": workers,
        "concurrency": concurrency, "budget_usd": budget_usd, "api_base": api_base,
        "edit_mode": edit_mode, "record": str(record) if record else None,
        "verifier_options": _verifier_options(option, scheme) or None,
        "executor": executor, "ray_address": ray_address,
    }
    settings = resolve_settings(spec.spec.run, config, overrides, source="command line")
    spec = spec.with_options(settings.verifier_options)
    if settings.executor == "ray":
        from evolve.executors import import_ray

        import_ray()  # a missing install is a one-line error before the run folder exists
    if settings.llm == "auto":
        settings = settings.model_copy(update={"llm": offline_default(bool(spec.spec.rule))})
        what = ("the offline search: GP over the rule's inputs" if settings.llm == "gp"
                else "the offline mutator (the problem declares no [rule] for the GP)")
        console.print(f"No model configured: using {what} (--llm MODEL for a real one).")
    folder = prepare_out_dir(out) if out else new_run_dir(RUNS_ROOT, spec.name)
    save_config(folder, spec.name, spec.dir, settings)
    archive = Archive(folder / ARCHIVE, create=True)
    archive.set_meta("problem", spec.name)
    _drive(spec, settings, archive, folder)


@app.command(epilog=example("evolve resume runs/smtt/20261121-101500-a1b2c3", "evolve resume RUN_DIR --iterations 400"))
@user_errors
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The run folder to continue.")],
    iterations: Annotated[int | None, typer.Option(help="New iteration target (default: the run's).")] = None,
) -> None:
    """Continue a stopped run (Ctrl-C or kill -9) up to its iteration target."""
    from evolve.archive import Archive
    from evolve.problem import load_problem
    from evolve.runs import load_run, save_config

    info = load_run(run_dir)
    problem = load_problem(info.problem_dir if Path(info.problem_dir).is_dir() else info.problem)
    settings = info.settings
    problem = problem.with_options(settings.verifier_options)
    if iterations is not None:
        settings = settings.model_copy(update={"iterations": iterations})
        save_config(run_dir, info.problem, problem.dir, settings)
    archive = Archive(info.archive_path)
    _drive(problem, settings, archive, run_dir)


def _drive(problem: Any, settings: Any, archive: Any, folder: Path) -> None:
    from evolve.llm import make_llm
    from evolve.loop import Controller
    from evolve.scoring import headline_gap

    model = make_llm(
        settings.llm, api_base=settings.api_base, seed=settings.seed, temperature=settings.temperature,
        max_tokens=settings.max_tokens, timeout_s=settings.llm_timeout_s, max_retries=settings.llm_retries,
        record=Path(settings.record) if settings.record else None,
        rules=problem.spec.rule, gp=settings.gp,
    )
    console.print(f"run folder: {folder}")
    try:
        with RunDisplay(problem.name) as display:
            controller = Controller(problem, settings, archive, model, folder, on_progress=display.update)
            progress = controller.run()
        seed = archive.seed()
    except KeyboardInterrupt:
        console.print(f"\ninterrupted; every evaluated program is saved. Continue with: evolve resume {folder}")
        sys.stdout.flush()
        os._exit(130)  # don't wait for in-flight HTTP calls; the archive is committed
    finally:
        archive.close()
    seed_gap = headline_gap(seed.metrics, problem.spec.objective.score) if seed else None
    console.print(
        f"stopped: {progress.stop_reason}. best score {fmt(progress.best_score)} "
        f"(gap {pct(progress.best_gap)}; seed {pct(seed_gap)}) on the train split\n"
        f"best program: {folder / 'best.py'}\nreview it with: evolve review {folder}"
    )


@app.command(
    name="eval",
    epilog=example(
        "evolve eval smtt problems/smtt/seed.py",
        "evolve eval smtt best.py --split test --json",
        "evolve eval smtt rule.py --instances my_instances.json --solutions-out solutions.json",
    ),
)
@user_errors
def eval_(
    problem: Annotated[str, typer.Argument(help="Problem name or folder.")],
    program: Annotated[Path, typer.Argument(help="Program file to score.")],
    split: Annotated[str, typer.Option(help="quick, train or test.")] = "train",
    instances: InstancesFlag = None,
    instance: InstanceFlag = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stable JSON result.")] = False,
    solutions_out: Annotated[Path | None, typer.Option(help="Write the solutions (JSON) here.")] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", "--gantt", "--heatmap", help="Draw the problem's picture of the solutions (PNG/SVG)."),
    ] = None,
    option: OptionFlag = None,
    scheme: SchemeFlag = None,
) -> None:
    """Score one program file with the problem's verifier (exit 1 if it fails)."""
    from evolve.config import RunSettings
    from evolve.evaluation import Evaluator
    from evolve.problem import load_problem

    spec = load_problem(problem).with_options(_verifier_options(option, scheme))
    code = _read_program(program)
    chosen = spec.instances(split, instances, instance)
    split_name = str(instances) if instances else split
    with Evaluator(spec, RunSettings.model_validate(spec.spec.run).sandbox) as evaluator:
        evaluation = evaluator.run_split(code, chosen, split_name)
    if solutions_out:
        rows = [{"name": i.name, "solution": s} for i, s in zip(chosen, evaluation.solutions, strict=False)]
        solutions_out.write_text(json.dumps(json_safe(rows)) + "\n")
    if plot:
        draw = getattr(spec.verifier, "picture", None)
        if draw is None:
            raise UserError(f"problem '{spec.name}' has no picture of its solutions (--plot)")
        if not evaluation.ok:
            raise UserError(f"{program}: nothing to draw, the program failed ({evaluation.status})")
        draw(chosen, evaluation.instances, evaluation.solutions, plot)
        err_console.print(f"picture written to {plot}")
    if as_json:
        document = {
            "problem": spec.name, "split": split_name, "status": evaluation.status,
            "score": evaluation.score, "metrics": evaluation.metrics,
            "feedback": evaluation.feedback,
            "instances": [
                {k: v for k, v in r.to_json().items() if k not in {"extra"}} for r in evaluation.instances
            ],
        }
        print(json.dumps(json_safe(document), indent=2))
    else:
        console.print(evaluation_table(f"{program} on {spec.name}/{split_name}", evaluation))
        console.print(metrics_table(
            [(program.name, evaluation.status, evaluation.score, evaluation.metrics)], headline_of(spec.verifier)
        ))
        if not evaluation.ok:
            console.print(f"[red]{evaluation.status}[/]: {escape(evaluation.feedback)}", highlight=False)
    if not evaluation.ok:
        raise typer.Exit(1)


@app.command(epilog=example("evolve baselines smtt", "evolve baselines smtt --split test --json"))
@user_errors
def baselines(
    problem: Annotated[str, typer.Argument(help="Problem name or folder.")],
    split: Annotated[str, typer.Option(help="quick, train or test.")] = "train",
    instances: InstancesFlag = None,
    instance: InstanceFlag = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stable JSON result.")] = False,
    option: OptionFlag = None,
    scheme: SchemeFlag = None,
) -> None:
    """Score every baseline of PROBLEM through the same sandbox and verifier as evolved programs."""
    from evolve.config import RunSettings
    from evolve.evaluation import Evaluator
    from evolve.problem import load_problem

    spec = load_problem(problem).with_options(_verifier_options(option, scheme))
    chosen = spec.instances(split, instances, instance)
    rows = []
    with Evaluator(spec, RunSettings.model_validate(spec.spec.run).sandbox) as evaluator:
        for name, path in [("seed", spec.dir / spec.spec.seed), *spec.baselines.items()]:
            evaluation = evaluator.run_split(_read_program(path), chosen, split)
            rows.append((name, evaluation))
    split_name = str(instances) if instances else split
    if as_json:
        document = {
            "problem": spec.name, "split": split_name,
            "baselines": [
                {"name": n, "status": e.status, "score": e.score, "metrics": e.metrics} for n, e in rows
            ],
        }
        print(json.dumps(json_safe(document), indent=2))
        return
    table = metrics_table([(n, e.status, e.score, e.metrics) for n, e in rows], headline_of(spec.verifier))
    table.title = f"baselines on {spec.name}/{split_name} ({len(chosen)} instances)"
    console.print(table)


# Registered after the core commands so that --help lists those first.
from evolve import cli_review  # noqa: E402, F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
