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

The functions live in ``api_runs.py`` (runs and studies) and ``api_programs.py``
(programs outside a run: evaluate, tune, baselines, compare, references).
"""

from evolve.api_programs import (
    baselines,
    compare_programs,
    compute_references,
    evaluate,
    load,
    program_code,
    tune,
)
from evolve.api_runs import RUNS_DIR, open_run, resume, review_study, run, run_study

__all__ = [
    "RUNS_DIR",
    "baselines",
    "compare_programs",
    "compute_references",
    "evaluate",
    "load",
    "open_run",
    "program_code",
    "resume",
    "review_study",
    "run",
    "run_study",
    "tune",
]
