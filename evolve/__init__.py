"""evolve: LLMs discover scheduling heuristics as code, scored by trusted verifiers.

The Python API (``evolve.api``; the ``evolve`` command is a layer over it)::

    import evolve
    run = evolve.run("smtt", iterations=200, seed=0)
    run.best.code, run.best.score, run.best.metrics
    run.review(test=True); run.report("report.html"); run.programs()
    evolve.evaluate("smtt", "rule.py", split="test")
    evolve.resume("runs/smtt/<run>")

Names load on first use, so ``import evolve`` stays cheap (the sandbox's
warm worker imports ``evolve.sandbox`` without pulling in the engine).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "run": "evolve.api",
    "resume": "evolve.api",
    "open_run": "evolve.api",
    "evaluate": "evolve.api",
    "baselines": "evolve.api",
    "compare_programs": "evolve.api",
    "tune": "evolve.api",
    "run_study": "evolve.api",
    "review_study": "evolve.api",
    "load": "evolve.api",
    "compute_references": "evolve.api",
    "Run": "evolve.handle",
    "ScoredProgram": "evolve.handle",
    "Problem": "evolve.problem",
    "define_problem": "evolve.pyproblem",
    "Evaluation": "evolve.evaluation",
    "Progress": "evolve.progress",
    "RunSettings": "evolve.config",
    "UserError": "evolve.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # explicit re-exports for type checkers and IDEs
    from evolve.api import baselines as baselines
    from evolve.api import compare_programs as compare_programs
    from evolve.api import compute_references as compute_references
    from evolve.api import evaluate as evaluate
    from evolve.api import load as load
    from evolve.api import open_run as open_run
    from evolve.api import resume as resume
    from evolve.api import review_study as review_study
    from evolve.api import run as run
    from evolve.api import run_study as run_study
    from evolve.api import tune as tune
    from evolve.config import RunSettings as RunSettings
    from evolve.errors import UserError as UserError
    from evolve.evaluation import Evaluation as Evaluation
    from evolve.handle import Run as Run
    from evolve.handle import ScoredProgram as ScoredProgram
    from evolve.problem import Problem as Problem
    from evolve.progress import Progress as Progress
    from evolve.pyproblem import define_problem as define_problem


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evolve' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
