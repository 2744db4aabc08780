"""Commands that look back at runs: review, best, compare, export, report, new-problem."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from evolve.cli_common import (
    RUNS_ROOT,
    InstanceFlag,
    InstancesFlag,
    OptionFlag,
    SchemeFlag,
    app,
    example,
    for_terminal,
    split_of,
    step_progress,
    user_errors,
    verifier_options,
)
from evolve.display import console, err_console
from evolve.errors import UserError
from evolve.formats import count, failure_summary, fmt, json_safe


@app.command(
    epilog=example(
        "evolve review runs/smtt/20261121-101500-a1b2c3",
        "evolve review RUN_DIR --test",
        "evolve review RUN_DIR --test --json",
    )
)
@user_errors
def review(
    run_dir: Annotated[Path, typer.Argument(help="A run folder, or a study folder (evolve run --seeds).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the stable JSON summary.")] = False,
    top: Annotated[int, typer.Option(min=1, help="Leaderboard length.")] = 10,
    test: Annotated[
        bool, typer.Option("--test", help="Evaluate the best, the seed and every baseline on the held-out test split.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Parallel evaluations for --test.")] = 1,
    repeats: Annotated[int | None, typer.Option(min=1, help="Re-evaluate the top 3 programs this many times and flag a best within noise of the runner-up (default: no re-evaluation).")] = None,
) -> None:
    """Leaderboard, the best program's diff and lineage, failures by kind, tokens and cost.

    With --test, paired per-instance comparisons on held-out instances and an overfitting check;
    with --repeats R, the top programs' spread over R re-evaluations."""
    from evolve import api
    from evolve.study import is_study

    if is_study(run_dir):  # evolve run --seeds: median and spread over the seeds
        from evolve.study_table import show_study

        with step_progress("evaluating every seed's best and every baseline on the test split",
                           quiet=not test) as shown:
            study = api.review_study(run_dir, test=test, workers=workers, progress=shown)
        if as_json:
            print(json.dumps(json_safe(study.to_json()), indent=2))
        else:
            show_study(study)
        return
    run = api.open_run(run_dir)
    with step_progress("evaluating the best, the seed and every baseline on the test split",
                       quiet=not test) as shown:
        result = run.review(test=test, top=top, workers=workers, progress=shown)
    if repeats:
        from evolve.noise import noise_check

        with step_progress(f"re-evaluating the top programs {repeats} times") as shown:
            result.noise = noise_check(run_dir, repeats=repeats, workers=workers, progress=shown)
    if as_json:
        print(json.dumps(json_safe(result.to_json()), indent=2))
        return
    from evolve.render import show_holdout, show_review

    show_review(result)
    if result.test is not None:
        show_holdout(result.test, result.gap_against)
    if result.noise is not None:
        from evolve.cli_search import show_noise

        show_noise(result.noise)


@app.command(epilog=example("evolve best smtt", "evolve best smtt --json"))
@user_errors
def best(
    problem: Annotated[str, typer.Argument(help="Problem name, or a problem folder.")],
    runs_dir: Annotated[Path, typer.Option(help="Where runs are kept.")] = RUNS_ROOT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The best program archived for PROBLEM across all runs, with its metrics."""
    from rich.syntax import Syntax

    from evolve.render import metrics_table
    from evolve.review import best_across_runs
    from evolve.sandbox.outcome import printable

    if "/" in problem or Path(problem, "problem.toml").is_file():
        # a folder, as `evolve run ./my-problem` takes it: its runs are under runs/<its name>/
        # (an absolute path looked in runs//abs/path/)
        from evolve.problem import load_problem

        problem = load_problem(problem).name

    across = best_across_runs(runs_dir, problem)
    if across.found is None:
        older = (f"; runs left out ({len(across.stale)}): their scores were made {across.stale[0][1]}"
                 if across.stale else "")
        if not (runs_dir / problem).exists():
            from evolve.problem import load_problem

            try:
                load_problem(problem)
            except UserError as unknown:  # neither runs nor a problem by that name: say so, not "run it"
                raise UserError(f"no runs under {runs_dir}/{problem}/, and {unknown}") from None
        raise UserError(f"no evaluated program for '{problem}' under {runs_dir}/{problem}/{older} "
                        f"(run: evolve run {problem})")
    folder, program = across.found
    if as_json:
        document = {
            "problem": problem, "run_dir": str(folder), "id": program.id,
            "score": program.score, "metrics": program.metrics, "code": program.code,
            "stale_runs": [str(f) for f, _ in across.stale],
        }
        print(json.dumps(json_safe(document), indent=2))
        return
    console.print(f"[bold]best {problem} program[/]: #{program.id} of {folder}, score {fmt(program.score)}")
    if across.stale:
        console.print(f"runs left out ({len(across.stale)}): their scores were made {across.stale[0][1]}", markup=False)
    console.print(Syntax(printable(program.code), "python", theme="ansi_dark"))  # the model's text
    console.print(metrics_table([(f"#{program.id}", program.status, program.score, program.metrics)]))


@app.command(
    epilog=example(
        "evolve compare runs/smtt/RUN/best.py problems/smtt/baselines/mdd.py --problem smtt",
        "evolve compare a.py b.py --problem smtt --split train --json",
    )
)
@user_errors
def compare(
    a: Annotated[Path, typer.Argument(help="Program A.")],
    b: Annotated[Path, typer.Argument(help="Program B.")],
    problem: Annotated[str, typer.Option(help="Problem name or folder.")],
    split: Annotated[str | None, typer.Option(help="quick, train or test (default).")] = None,
    instances: InstancesFlag = None,
    instance: InstanceFlag = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stable JSON result.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Parallel evaluations.")] = 1,
    option: OptionFlag = None,
    scheme: SchemeFlag = None,
) -> None:
    """Compare two programs instance by instance: gaps per group, wins/ties/losses, Wilcoxon test."""
    from evolve import api

    split = split_of(split, instances, "test")
    spec = api.load(problem, verifier_options(option, scheme), "--option")
    split_name = str(instances) if instances else split
    with step_progress(f"evaluating 2 programs on {spec.name}/{split_name}") as shown:
        evaluations, result = api.compare_programs(a, b, spec, split=split, instances=instances, instance=instance,
                                                   workers=workers, progress=shown)
    direction = spec.spec.objective.direction
    if as_json:
        document = {
            "problem": spec.name, "split": split_name, "objective": spec.spec.objective.name,
            "direction": direction,
            "programs": [
                {"name": n, "status": e.status, "score": e.score, "metrics": e.metrics} for n, e in evaluations.items()
            ],
            "comparison": result.to_json(),
        }
        print(json.dumps(json_safe(document), indent=2))
        return
    from evolve.render import print_metrics, show_comparison

    n_instances = result.overall.instances  # a program that could not start has no per-instance results
    print_metrics([(n, e.status, e.score, e.metrics) for n, e in evaluations.items()], (),
                  f"{spec.name}/{split_name} ({count(n_instances, 'instance')})", against=spec.spec.objective.reference)
    show_comparison(result, split_name, f"{spec.spec.objective.name}, {direction}")
    # A program that failed showed as "error" in the table and nothing more: its reason, one line.
    for name, e in evaluations.items():
        if e.status != "ok":
            err_console.print(f"{escape(name)}: {e.status}: {escape(failure_summary(e.feedback))}",
                              highlight=False, soft_wrap=True)


@app.command(
    epilog=example(
        "evolve export runs/smtt/20261121-101500-a1b2c3 -o rule.py",
        "evolve export RUN_DIR --id 42 -o rule42.py",
    )
)
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    program_id: Annotated[int | None, typer.Option("--id", help="Program id (default: the best).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here (default: print).")] = None,
) -> None:
    """A program as a standalone module (no evolve import) with a header: problem, scores, run, lineage."""
    from evolve import api

    if output is not None and output.is_dir():  # checked before the work; a missing folder is created
        raise UserError(f"{output}: is a folder, expected a module file path")
    text = api.open_run(run_dir).export(output, program_id)
    if output is None:
        print(for_terminal(text), end="")
        return
    err_console.print(f"written to {output}")


@app.command(
    epilog=example(
        "evolve report runs/smtt/20261121-101500-a1b2c3 -o report.html",
        "evolve report RUN_DIR --split quick -o quick-report.html",
    )
)
@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="HTML file (default RUN_DIR/report.html).")] = None,
    split: Annotated[str, typer.Option(help="Split of the comparison table and the pictures.")] = "test",
    workers: Annotated[int, typer.Option(min=1, help="Parallel evaluations.")] = 1,
) -> None:
    """One self-contained HTML report: progress, islands, MAP-Elites grid, lineage, test comparison, code, picture."""
    import time

    from evolve import api

    run = api.open_run(run_dir)
    target = output or run_dir / "report.html"
    if target.is_dir():
        raise UserError(f"{target}: is a folder, expected an HTML file path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{target.parent}: cannot create the report's folder ({err.strerror})") from None
    try:  # before minutes of evaluations, not after them
        existed = target.exists()
        with open(target, "a"):
            pass
        if not existed:
            target.unlink()
    except OSError as err:
        raise UserError(f"{target}: cannot write the report ({err.strerror})") from None
    started = time.perf_counter()
    with step_progress(f"evaluating the best, the seed and every baseline on the {split} split") as shown:
        run.report(target, split=split, workers=workers, progress=shown)
    seconds = time.perf_counter() - started
    console.print(f"report written to {target} ({target.stat().st_size / 1e6:.2f} MB, {seconds:.1f} s)")


@app.command(
    epilog=example(
        "evolve watch runs/smtt/20261121-101500-a1b2c3",
        "evolve watch RUN_DIR --port 0     # any free port",
    )
)
@user_errors
def watch(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (running or not).")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 8765,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between the page's checks for news.")] = 1.5,
    render_every: Annotated[
        float, typer.Option(min=0.0, help="Re-render the page (plots) at most this often, in seconds: its CPU cost.")
    ] = 5.0,
) -> None:
    """Serve a live view of a run on 127.0.0.1, refreshed as the run writes; read-only.

    It shows the gap over time, recent proposals, failures, islands and the MAP-Elites grid, from the archive."""
    from evolve.watch import LiveView, make_server

    view = LiveView(run_dir, min_interval=render_every, poll_ms=int(interval * 1000))
    try:
        server = make_server(view, port)
    except OSError as err:
        raise UserError(f"port {port} on 127.0.0.1: cannot listen ({err.strerror}); try --port 0") from None
    console.print(f"watching {run_dir} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command(
    name="new-problem",
    epilog=example("evolve new-problem packing", "evolve new-problem my-shop --dir problems_wip/my-shop"),
)
@user_errors
def new_problem(
    name: Annotated[str, typer.Argument(help="Problem name: lowercase letters, digits, '-' and '_'.")],
    folder: Annotated[Path | None, typer.Option("--dir", help="Folder to create (default ./NAME).")] = None,
) -> None:
    """Scaffold a working problem: problem.toml, seed, baseline, verifier, context and a test."""
    from evolve.problem import builtin_dir
    from evolve.scaffold import scaffold

    if (builtin_dir() / name / "problem.toml").is_file():
        # `evolve run smtt` runs the shipped problem whatever folder ./smtt holds: the newcomer's
        # edits to the scaffold would have no effect, and its `next:` lines would run the other one
        raise UserError(f"problem name '{name}': a shipped problem has that name, and `evolve run {name}` would "
                        "run it, not this folder; choose another name")
    target = folder or Path(name)
    created = scaffold(name, target)
    for path in created:
        console.print(f"  created {path}")
    # `python -m pytest`: a bare `pytest` may be another interpreter's, without evolve
    # (`pip install -e .` does not install pytest; `.[test]` does).
    import importlib.util

    missing = "" if importlib.util.find_spec("pytest") else "   (first: pip install pytest)"
    console.print(
        f"next:\n  python -m pytest -q {target / 'tests'}{missing}\n  evolve baselines {target}\n"
        f"  evolve run {target} --iterations 100\n"
        "then replace the example's instances, solve and score with yours (docs/add-a-problem.md)."
    )
