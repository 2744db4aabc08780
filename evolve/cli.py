"""The ``evolve`` command line: parse, call the library (``evolve.api``), print with rich.

Core commands live here (problems, run, resume, eval, baselines); the ones
that look back at runs are in ``evolve.cli_review``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from evolve.cli_common import (
    RUNS_ROOT,
    InstanceFlag,
    InstancesFlag,
    NoPreflightFlag,
    OptionFlag,
    SchemeFlag,
    app,
    example,
    for_terminal,
    run_cli,
    split_of,
    step_progress,
    user_errors,
    verifier_options,
)
from evolve.display import console, err_console
from evolve.errors import UserError
from evolve.formats import count, failure_summary, fmt, gap_words, json_safe, pct


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
    llm: Annotated[str | None, typer.Option(help="Model (litellm string), 'm1:0.8,m2:0.2', 'gp' (offline search, the default), 'mutate' (alias 'stub'), 'replay:FILE' or 'files:DIR' (you answer prompts in files).")] = None,
    iterations: Annotated[int | None, typer.Option(help="Proposals to make (each is one iteration).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of the run.")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel evaluations (sandboxes); with --seeds, seeds at a time (a process each).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Iterations in flight (model call or evaluation), at least --workers.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Stop cleanly once LLM spend reaches this.")] = None,
    api_base: Annotated[str | None, typer.Option(help="OpenAI-compatible server (vLLM, Ollama, ...).")] = None,
    edit_mode: Annotated[str | None, typer.Option(help="diff, rewrite or mixed.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/PROBLEM/<timestamp>-<id>).")] = None,
    record: Annotated[Path | None, typer.Option(help="Save every completion to this JSONL file (for replay; with --seeds one file per seed, FILE.seed-N.jsonl).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of run settings.")] = None,
    option: OptionFlag = None,
    scheme: SchemeFlag = None,
    executor: Annotated[str | None, typer.Option(help="local (sandboxes here) or ray.")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Existing Ray cluster, e.g. ray://head:10001.")] = None,
    no_preflight: NoPreflightFlag = False,
    tune_every: Annotated[int | None, typer.Option(help="Tune the constants of each new best every N iterations (0: never).")] = None,
    tune_budget: Annotated[int | None, typer.Option(help="Programs evaluated per tuning.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Several seeds as one study, e.g. 0-4: --workers of them at a time, each in a process of its own.")] = None,
) -> None:
    """Evolve a heuristic for PROBLEM. Offline (GP over the rule's inputs) unless --llm names a model.

    Exit codes: 0 done (iterations or budget), 2 bad input or failed model check, 3 every model
    call failed the same way (key, model, endpoint) or a replay: recording ended, 4 every model call failed for
    llm_outage_minutes, 130 interrupted.
    """
    from evolve import api

    if seeds is not None:
        from evolve.cli_search import run_seeds

        if seed is not None:
            raise UserError("--seed and --seeds: give one of them")
        with _interruptible():
            run_seeds(problem, seeds, workers, out, llm=llm, iterations=iterations, concurrency=concurrency,
                      budget_usd=budget_usd, api_base=api_base, edit_mode=edit_mode, record=record, config=config,
                      options=verifier_options(option, None), scheme=scheme, executor=executor,
                      ray_address=ray_address, options_source="--option", preflight=not no_preflight,
                      tune_every=tune_every, tune_budget=tune_budget)
        return
    with _interruptible():
        result = api.run(
            problem, llm=llm, iterations=iterations, seed=seed, workers=workers, concurrency=concurrency,
            budget_usd=budget_usd, api_base=api_base, edit_mode=edit_mode, out=out, record=record, config=config,
            options=verifier_options(option, None), scheme=scheme, executor=executor, ray_address=ray_address,
            runs_dir=RUNS_ROOT, progress=True, options_source="--option", preflight=not no_preflight,
            tune_every=tune_every, tune_budget=tune_budget,
        )
    _summary(result)


@app.command(epilog=example("evolve resume runs/smtt/20261121-101500-a1b2c3", "evolve resume RUN_DIR --iterations 400"))
@user_errors
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The run folder to continue.")],
    iterations: Annotated[int | None, typer.Option(help="New iteration target (default: the run's).")] = None,
    no_preflight: NoPreflightFlag = False,
) -> None:
    """Continue a stopped run (Ctrl-C or kill -9) up to its iteration target."""
    from evolve import api
    from evolve.runs import ARCHIVE

    finished = iterations is None and (run_dir / ARCHIVE).is_file() and \
        api.open_run(run_dir).stop_reason == "iterations"  # "resume" read as "do more"
    _say_if_stale(run_dir)
    with _interruptible():
        result = api.resume(run_dir, iterations=iterations, progress=True, preflight=not no_preflight)
    _summary(result)
    if finished:
        target = result.settings.iterations
        console.print(f"it had already done its {target} iterations; to go on, give a new target: "
                      f"evolve resume {run_dir} --iterations {2 * target}")


def _say_if_stale(run_dir: Path) -> None:
    """A run scored by an older verifier goes on comparing new children with those scores (its
    best, maybe a program the verifier now refuses, stays the best): say so before resuming."""
    from evolve.review import reported_best_staleness
    from evolve.runs import ARCHIVE

    if not (run_dir / ARCHIVE).is_file():
        return  # resume itself says what is wrong
    best, why = reported_best_staleness(run_dir)
    if best is not None and why is not None:
        console.print(f"[yellow]note[/]: this run's scores were made {why}; its programs keep them, so its best "
                      f"(#{best.id}) and its parents are compared with children scored now. To search under the "
                      f"current verifier, start a new run.")


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C: say how to continue and exit 130 at once (in-flight model calls are not awaited)."""
    from evolve.runner import RunInterrupted

    try:
        yield
    except RunInterrupted as stop:
        if stop.kept:
            console.print(f"\ninterrupted; every evaluated program is saved. Continue with: evolve resume {stop.run_dir}")
        else:
            console.print("\ninterrupted before anything was evaluated; no run folder kept")
        sys.stdout.flush()
        os._exit(130)  # don't wait for in-flight HTTP calls; the archive is committed


def _summary(result: Any) -> None:
    """The closing lines; a run stopped by its model exits with the stop's code (evolve/stop.py)."""
    from evolve.stop import EXIT_OK, StopKind

    progress = result.last_progress
    best, seed = result.best, result.seed
    against = result.gap_against  # serving: "12.65% below FCFS's mean E2E latency", not "gap -12.65%"
    stop = progress.stop if progress else None
    code = stop.exit_code if stop is not None else EXIT_OK
    if code != EXIT_OK:
        err_console.print(f"[red]error:[/] run stopped: {escape(progress.stop_reason or '')} "
                          f"(exit {code})", highlight=False)
    console.print(
        f"stopped: {progress.stop_reason if progress else result.stop_reason}. best score {fmt(best.score)} "
        + (f"({gap_words(best.gap_pct, against)}; seed {gap_words(seed.gap_pct, against)})" if against
           else f"(gap {pct(best.gap_pct)}; seed {pct(seed.gap_pct)})") + " on the train split\n"
        f"best program: {result.dir / 'best.py'}\nreview it with: evolve review {result.dir}\n"
        f"against the baselines on held-out instances: evolve review {result.dir} --test"
        + (f"\nonce fixed, continue with: evolve resume {result.dir}" if code != EXIT_OK else "")
    )
    if stop is not None and stop.kind in (StopKind.MODEL_CONFIG, StopKind.MODEL_OUTAGE):
        # Abandoned model calls may sit in their threads until their timeout:
        # the archive is committed and closed, so do not wait for them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code != EXIT_OK:
        raise typer.Exit(code)


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
    split: Annotated[str | None, typer.Option(
        help="quick, train (default) or test (or valid, where the problem has a validation split).")] = None,
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
    """Score one program file with the problem's verifier (exit 1 if it fails).

    A feasible evaluation with no gap to measure (every reference 0) is status ok with score null."""
    from evolve import api

    split = split_of(split, instances, "train")
    spec = api.load(problem, verifier_options(option, scheme), "--option")
    evaluation = api.evaluate(spec, program, split=split, instances=instances, instance=instance,
                              solutions_out=solutions_out, plot=plot)
    if plot:
        err_console.print(f"picture written to {plot}")
    split_name = str(instances) if instances else split
    if as_json:
        print(json.dumps(json_safe(evaluation.to_json(spec.name, split_name)), indent=2))
    elif not evaluation.instances:  # it failed before any instance (it does not load): no empty tables
        console.print(f"{escape(str(program))} on {spec.name}/{split_name}: no instance was run", highlight=False)
        console.print(f"[red]{evaluation.status}[/]: {escape(evaluation.feedback)}", highlight=False)
    else:
        from evolve.render import evaluation_table, headline_of, print_metrics

        console.print(evaluation_table(f"{program} on {spec.name}/{split_name}", evaluation))
        print_metrics([(program.name, evaluation.status, evaluation.score, evaluation.metrics)], headline_of(spec.verifier),
                      against=spec.spec.objective.reference)
        if not evaluation.ok:  # failed, or (status ok) solved with no gap to score: the feedback says which
            colour = "yellow" if evaluation.status == "ok" else "red"
            console.print(f"[{colour}]{evaluation.status}[/]: {escape(evaluation.feedback)}", highlight=False)
    if evaluation.status != "ok":
        raise typer.Exit(1)


@app.command(epilog=example("evolve doctor"))
@user_errors
def doctor() -> None:
    """Show which isolation the sandbox gives candidates on this machine."""
    from rich.table import Table

    from evolve.sandbox.doctor import isolation_facts, weaknesses

    facts = isolation_facts()
    table = Table(title="sandbox isolation on this machine", title_justify="left")
    for column in ("aspect", "in force", "how, or why not"):
        table.add_column(column)
    for aspect, (ok, detail) in facts.items():
        table.add_row(aspect, "[green]yes[/green]" if ok else "[red]no[/red]", escape(detail))
    console.print(table)
    line = weaknesses(facts)
    if line:
        console.print(escape(line.removesuffix("; see `evolve doctor`")))


@app.command(epilog=example("evolve baselines smtt", "evolve baselines smtt --split test --json"))
@user_errors
def baselines(
    problem: Annotated[str, typer.Argument(help="Problem name or folder.")],
    split: Annotated[str | None, typer.Option(
        help="quick, train (default) or test (or valid, where the problem has a validation split).")] = None,
    instances: InstancesFlag = None,
    instance: InstanceFlag = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stable JSON result.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Parallel evaluations.")] = 1,
    option: OptionFlag = None,
    scheme: SchemeFlag = None,
) -> None:
    """Score every baseline of PROBLEM through the same sandbox and verifier as evolved programs.

    Exit 1 if one fails, its reason on stderr."""
    from evolve import api

    split = split_of(split, instances, "train")
    spec = api.load(problem, verifier_options(option, scheme), "--option")
    split_name = str(instances) if instances else split
    with step_progress(f"scoring the seed and {len(spec.baselines)} baselines on {spec.name}/{split_name}") as shown:
        rows = api.baselines(spec, split=split, instances=instances, instance=instance, workers=workers, progress=shown)
    if as_json:
        document = {
            "problem": spec.name, "split": split_name,
            "baselines": [{"name": n, "status": e.status, "score": e.score, "metrics": e.metrics,
                           "other_class": n in spec.spec.other_class_baselines} for n, e in rows.items()],
        }
        print(json.dumps(json_safe(document), indent=2))
    else:
        from evolve.render import headline_of, print_metrics

        n_instances = len(next(iter(rows.values())).instances) if rows else 0
        print_metrics([(n, e.status, e.score, e.metrics) for n, e in rows.items()], headline_of(spec.verifier),
                      f"baselines on {spec.name}/{split_name} ({count(n_instances, 'instance')})",
                      against=spec.spec.objective.reference)
        if spec.spec.other_class_baselines:
            console.print(f"[dim]not this problem's class of program: {', '.join(spec.spec.other_class_baselines)} "
                          "(problem.toml other_class_baselines)[/]")
    # A baseline that fails (a file that does not parse, a wrong function name) showed as "error"
    # in the table and nothing more, exit 0: its reason, one line each, and exit 1 as eval does.
    failed = [(name, e) for name, e in rows.items() if e.status != "ok"]
    for name, e in failed:
        where = spec.baselines.get(name, spec.dir / spec.spec.seed)
        reason = failure_summary(e.feedback)  # "3 of 3 instances failed:" then the first of them
        err_console.print(f"{escape(str(where))}: {e.status}: {escape(reason)}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command(
    name="prompt",
    epilog=example("evolve prompt smtt", "evolve prompt smtt --edit-mode rewrite",
                   "evolve prompt --run runs/smtt/20261121-101500-a1b2c3 --json"),
)
@user_errors
def prompt_(
    problem: Annotated[str | None, typer.Argument(help="Problem name or folder (or give --run).")] = None,
    run: Annotated[Path | None, typer.Option(help="A run folder: its next prompt.")] = None,
    edit_mode: Annotated[str | None, typer.Option(help="diff, rewrite or mixed (new runs).")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file of run settings (new runs).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The messages as JSON.")] = False,
) -> None:
    """Print exactly what a model would be sent next: read it before paying for it.

    Without --run: the first prompt of a new run (the seed is evaluated, as a run starts).
    """
    from evolve.config import read_toml
    from evolve.preview import as_text, next_prompt

    overrides = {**(read_toml(config) if config else {}), **({"edit_mode": edit_mode} if edit_mode else {})}
    request = next_prompt(problem, run, overrides)
    if as_json:  # on a terminal, \u escapes for all but ASCII (bidirectional overrides, C1 controls)
        print(json.dumps({"iteration": request.iteration, "mode": request.mode,
                          "messages": request.messages}, indent=2, ensure_ascii=sys.stdout.isatty()))
    else:
        print(for_terminal(as_text(request)), end="")


# Registered after the core commands so that --help lists those first.
from evolve import cli_references, cli_review, cli_search  # noqa: E402, F401


def main() -> None:
    run_cli()


if __name__ == "__main__":
    main()
