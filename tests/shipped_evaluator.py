"""A shipped problem with an Evaluator under its own sandbox limits, as `evolve eval` runs it,
and the seeds-attack tests' way of running a probe beside the baselines it must equal or beat."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from evolve.config import RunSettings
from evolve.evaluation import Evaluation, Evaluator
from evolve.problem import Problem, load_problem
from evolve.verifier import Instance


@contextmanager
def shipped_evaluator(name: str) -> Iterator[tuple[Problem, Evaluator]]:
    problem = load_problem(name)
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        yield problem, evaluator


def run_each(evaluator: Evaluator, codes: dict[str, str], instances: list[Instance]) -> dict[str, Evaluation]:
    """Every program on the instances (as quick), each required to pass: the probes pass either way."""
    out = {name: evaluator.run_split(code, instances, "quick") for name, code in codes.items()}
    for name, evaluation in out.items():
        assert evaluation.ok, (name, evaluation.feedback)
    return out


def objectives(evaluation: Evaluation) -> list[float]:
    return [float(r.objective) for r in evaluation.instances if r.objective is not None]
