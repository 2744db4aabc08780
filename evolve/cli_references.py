"""``evolve references``: compute or refresh a problem's shipped references (any problem)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from evolve.cli_common import OptionFlag, app, example, user_errors, verifier_options
from evolve.display import console, err_console
from evolve.references import StoredReference


@app.command(
    name="references",
    epilog=example(
        "evolve references smtt --split quick",
        "evolve references moe --split test --time-limit 10 --force",
        "taskset -c 0 evolve references jssp --split quick,train --time-limit 45 --option reference_workers=8",
        "evolve references ./my_problem --jobs 2",
    ),
)
@user_errors
def references(
    problem: Annotated[str, typer.Argument(help="Problem name or folder.")],
    split: Annotated[str, typer.Option(help="quick, train, test, a comma list, or all.")] = "all",
    time_limit: Annotated[float | None, typer.Option(
        help="Solver budget per instance in seconds, as the verifier defines it (default: the verifier's).")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Instances computed in parallel (processes).")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Recompute references already stored.")] = False,
    option: OptionFlag = None,
) -> None:
    """Compute the missing references of PROBLEM's splits into its data/references.json.

    References already stored are kept (their witnesses re-checked when used); the file is
    rewritten after each instance, so an interrupted run keeps what it computed. Computing
    every split drops entries of instances no split has any more.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from evolve import api

    bar = Progress(TextColumn(f"references of {escape(problem)}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err_console, transient=True)
    task = bar.add_task("references", total=None)
    started: list[bool] = []

    def shown(done: int, total: int, record: StoredReference | None) -> None:
        if done == 0:  # the problem and its options are good: show the bar from here
            bar.start()
            started.append(True)
        bar.update(task, completed=done, total=total)
        if record is not None:
            bound = "-" if record.bound is None else f"{record.bound:g}"
            bar.console.print(f"[{done}/{total}] {escape(record.name)}: {record.value:g} {record.kind} "
                              f"(bound {bound}; {escape(record.source)}; {record.seconds:.1f} s)", highlight=False)

    try:
        outcome = api.compute_references(problem, split=split, time_limit_s=time_limit, force=force, jobs=jobs,
                                 options=verifier_options(option, None), options_source="--option",
                                 progress=shown)
    finally:
        if started:
            bar.stop()
    notes = [f"{outcome.computed} computed", f"{outcome.kept} kept"]
    notes += [f"{outcome.refreshed} refreshed"] if outcome.refreshed else []
    notes += [f"{outcome.dropped} dropped (no split has them)"] if outcome.dropped else []
    console.print(f"{outcome.path}: {', '.join(notes)}", highlight=False)
