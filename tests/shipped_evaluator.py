"""A shipped problem with an Evaluator under its own sandbox limits, as `evolve eval` runs it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.problem import Problem, load_problem


@contextmanager
def shipped_evaluator(name: str) -> Iterator[tuple[Problem, Evaluator]]:
    problem = load_problem(name)
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        yield problem, evaluator
