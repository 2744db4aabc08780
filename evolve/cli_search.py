"""Commands of the search without a model: ``evolve tune``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from evolve.cli_common import OptionFlag, SchemeFlag, app, example, user_errors, verifier_options
from evolve.display import console, err_console
from evolve.formats import fmt, json_safe, pct


@app.command(
    epilog=example(
        "evolve tune runs/jssp/RUN/best.py --problem jssp",
        "evolve tune rule.py --problem smtt --budget 80 --workers 2 -o rule.tuned.py",
        "evolve tune rule.py --problem moe --json",
    )
)
@user_errors
def tune(
    program: Annotated[Path, typer.Argument(help="Program whose EVOLVE-BLOCK constants to fit.")],
    problem: Annotated[str, typer.Option(help="Problem name or folder.")],
    split: Annotated[str, typer.Option(help="Split to fit on (quick or train; never test).")] = "train",
    budget: Annotated[int, typer.Option(min=1, help="Programs to evaluate, the original included.")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the optimiser.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Parallel evaluations.")] = 1,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the tuned program here (default PROGRAM.tuned.py); written only if it scores better.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stable JSON result.")] = False,
    option: OptionFlag = None,
    scheme: SchemeFlag = None,
) -> None:
    """Fit the numeric literals inside PROGRAM's EVOLVE-BLOCK with CMA-ES.

    Every trial runs in the sandbox and is scored by the trusted verifier."""
    from evolve import api
    from evolve.errors import UserError
    from evolve.files import check_output
    from evolve.tuning import Trial

    if split == "test":
        raise UserError("--split test: constants are fitted on quick or train; the test split stays held out")
    target = check_output(output or program.with_suffix(".tuned.py"), "tuned program file")
    spec = api.load(problem, verifier_options(option, scheme), "--option")
    count = 0

    def show(trial: Trial) -> None:
        nonlocal count
        count += 1
        if not as_json:
            err_console.print(f"trial {count}: score {fmt(trial.score)}", highlight=False)

    result = api.tune(spec, program, split=split, budget=budget, seed=seed, workers=workers, on_trial=show)
    # Only a better program is written: a copy of the original under a "tuned" name would read
    # as a result (and overwrite an earlier, better one).
    written = bool(result.constants) and result.improved
    if written:
        target.write_text(result.code)
    changes = [
        {"line": c.line + 1, "before": c.value, "after": v}
        for c, v in zip(result.constants, result.values, strict=True) if v != c.value
    ] if written else []
    if as_json:
        document = {
            "problem": spec.name, "split": split, "program": str(program),
            "output": str(target) if written else None,
            "constants": len(result.constants), "trials": len(result.trials),
            "start_score": result.start_score, "score": result.score, "improved": result.improved,
            "changes": changes,
        }
        print(json.dumps(json_safe(document), indent=2))
        return
    if not result.constants:
        from evolve.tuning import no_constants_reason

        reason = no_constants_reason(program.read_text(encoding="utf-8", errors="replace"))
        console.print(f"nothing written: {program}: {reason}", highlight=False, soft_wrap=True)
        return
    console.print(f"{len(result.constants)} constants, {len(result.trials)} trials on {spec.name}/{split}: "
                  f"score {fmt(result.start_score)} -> {fmt(result.score)}"
                  f"{'' if written else ' (no trial beat the original)'}")
    for change in changes:
        console.print(f"  line {change['line']}: {change['before']:g} -> {change['after']:g}")
    console.print(f"written to {target}" if written else
                  f"nothing written: {program} keeps its constants ({target} not created or changed)")


# --- studies: several seeds as one -------------------------------------------------------


LIVE_MESSAGES = 8  # the seeds' latest messages shown above the live table; older ones scroll above it


def run_seeds(problem: str, seeds: str, workers: int | None, out: Path | None, **run_kwargs: object) -> None:
    """``evolve run P --seeds 0-4``: the seeds run ``--workers`` at a time, each in a process of
    its own with one evaluation worker; a live table shows them all, and above it each distinct
    message their processes print, once, with the seeds that printed it."""
    from rich.console import Group
    from rich.live import Live
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from evolve import api
    from evolve.cli_common import RUNS_ROOT
    from evolve.study import SeedOutcome, SeedsFailed, parse_seeds
    from evolve.study_output import SeedMessages

    chosen = parse_seeds(seeds)
    messages = SeedMessages()
    state: dict[int, object] = {}
    failed: dict[int, str] = {}
    at_once = min(workers or 1, len(chosen))

    def table() -> Group:
        how = "one process each" if at_once > 1 else "in this process"
        view = Table(title=f"{problem}: {len(chosen)} seeds, {at_once} at a time ({how})", title_justify="left")
        for column in ("seed", "iterations", "best gap (train)", "stop"):
            view.add_column(column, justify="right")
        for seed in chosen:
            p = state.get(seed)
            stop = "failed" if seed in failed else None
            if p is None:
                view.add_row(str(seed), "-", "-", stop or "waiting")
                continue
            view.add_row(str(seed), f"{p.done}/{p.target}", pct(p.best_gap),  # type: ignore[attr-defined]
                         stop or p.stop_reason or "running")  # type: ignore[attr-defined]
        if not console.is_terminal:  # drawn once, at the end: the messages follow, unwrapped
            return Group(view)
        # Folded to the terminal's width: the live area is redrawn in place, line by line.
        return Group(*(Text(line, style="yellow", no_wrap=False, overflow="fold") for line in messages.lines()), view)

    folder: Path | None = None
    error: SeedsFailed | None = None
    # Shown from the first report on: a mistake in the input is its one line, with no table.
    live = Live(table(), console=console, refresh_per_second=2, transient=False, auto_refresh=True)

    def show() -> None:
        if not live.is_started:
            live.start()
        live.update(table())

    def update(seed: int, progress: object) -> None:
        state[seed] = progress
        show()

    def done(outcome: SeedOutcome) -> None:
        if outcome.error is not None:
            failed[outcome.seed] = outcome.error
        show()

    def stop() -> None:
        if live.is_started:
            live.stop()
            if not console.is_terminal:  # the last table was written without its line end
                console.line()
                for line in messages.lines():
                    console.print(line, markup=False, highlight=False)

    def said(seed: int, text: str) -> None:
        if messages.add(seed, text) and console.is_terminal:  # the live area stays short:
            for line in messages.retire(LIVE_MESSAGES):  # older messages go above it, for good
                console.print(Text(line, style="yellow"), highlight=False)
        show()

    try:
        folder = api.run_study(problem, chosen, parallel=workers or 1, out=out, runs_dir=RUNS_ROOT,
                               on_progress=update, on_done=done, on_message=said, **run_kwargs)
    except SeedsFailed as err:
        error, folder = err, err.folder
    except KeyboardInterrupt:
        stop()
        # Every seed is stopped (threads of a seed run in this process are not awaited).
        console.print("interrupted; every evaluated program of every seed is saved. Continue a "
                      "seed with: evolve resume STUDY/seed-N")
        sys.stdout.flush()
        os._exit(130)
    finally:
        stop()
    if error is not None:
        for outcome in error.failed:
            if outcome.detail:
                err_console.print(escape(outcome.detail.rstrip()), highlight=False)
            err_console.print(f"[red]error:[/] seed {outcome.seed}: {escape(outcome.error or '')}", highlight=False)
        if not folder.exists():
            raise typer.Exit(1)
    console.print(f"study folder: {folder}\nreview it with: evolve review {folder} --test")
    if error is not None:
        raise typer.Exit(1)


def show_noise(check: object) -> None:
    """The top programs' scores over re-evaluations; a best within noise is flagged."""
    from rich.table import Table

    from evolve.noise import NoiseCheck

    assert isinstance(check, NoiseCheck)
    view = Table(title=f"re-evaluated {check.repeats} times on {check.split}", title_justify="left")
    for column in ("program", "archived", "re-evaluations", "range"):
        view.add_column(column, justify="left" if column in ("program", "re-evaluations") else "right")
    for row in check.programs:
        archived = fmt(row.archived) + (" (older score, not in the range)" if row.archived_stale else "")
        view.add_row(f"#{row.program_id}", archived, ", ".join(fmt(s) for s in row.scores),
                     f"{fmt(row.low)} .. {fmt(row.high)}")
    console.print(view)
    colour = "yellow" if check.within_noise else "green"
    console.print(f"[{colour}]{check.message}[/]", highlight=False)
