"""Commands of the search without a model: ``evolve tune``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from evolve.cli_common import OptionFlag, SchemeFlag, app, example, user_errors, verifier_options
from evolve.display import console, err_console
from evolve.formats import fmt, json_safe


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
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the tuned program here (default PROGRAM.tuned.py).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stable JSON result.")] = False,
    option: OptionFlag = None,
    scheme: SchemeFlag = None,
) -> None:
    """Fit the numeric literals inside PROGRAM's EVOLVE-BLOCK with CMA-ES; every trial runs
    in the sandbox and is scored by the trusted verifier."""
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
    target.write_text(result.code)
    changes = [
        {"line": c.line + 1, "before": c.value, "after": v}
        for c, v in zip(result.constants, result.values, strict=True) if v != c.value
    ]
    if as_json:
        document = {
            "problem": spec.name, "split": split, "program": str(program), "output": str(target),
            "constants": len(result.constants), "trials": len(result.trials),
            "start_score": result.start_score, "score": result.score, "improved": result.improved,
            "changes": changes,
        }
        print(json.dumps(json_safe(document), indent=2))
        return
    if not result.constants:
        console.print(f"{program}: no numeric literal to fit inside the EVOLVE-BLOCK; copied unchanged to {target}")
        return
    console.print(f"{len(result.constants)} constants, {len(result.trials)} trials on {spec.name}/{split}: "
                  f"score {fmt(result.start_score)} -> {fmt(result.score)}"
                  f"{'' if result.improved else ' (no trial beat the original)'}")
    for change in changes:
        console.print(f"  line {change['line']}: {change['before']:g} -> {change['after']:g}")
    console.print(f"written to {target}")
