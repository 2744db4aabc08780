"""Shared by the replay attack tests (smtt_rule, jssp): an attack must pay, then be refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from evolve.config import RunSettings
from evolve.evaluation import Evaluation, Evaluator
from evolve.problem import load_problem
from evolve.verifier import Instance


def problem_evaluator(name: str, instance_timeout_s: float | None = None) -> Iterator[Evaluator]:
    """The problem's evaluator with its run's sandbox settings; ``instance_timeout_s`` replaces
    the problem's wall-clock (and CPU) limit per instance where a test's own attack is slow."""
    problem = load_problem(name)
    settings = RunSettings.model_validate(problem.spec.run).sandbox
    if instance_timeout_s is not None:
        settings = settings.model_copy(update={"instance_timeout_s": instance_timeout_s})
    with Evaluator(problem, settings) as ev:
        yield ev


def _pays(evaluator: Evaluator, attack: str, honest: str, instances: list[Instance],
          monkeypatch: pytest.MonkeyPatch) -> tuple[Evaluation, Evaluation]:
    """(honest, attack without the audit): the attack beats the honest rule (the control: it is
    worth stopping)."""
    fair = evaluator.run_split(honest, instances, "quick")
    with monkeypatch.context() as patch:
        patch.setattr(evaluator.problem.verifier, "audit", None)
        paid = evaluator.run_split(attack, instances, "quick")
    assert fair.ok and paid.ok, paid.feedback
    assert paid.score is not None and fair.score is not None and paid.score > fair.score
    return fair, paid


def assert_refused_wherever_it_departs(evaluator: Evaluator, attack: str, honest: str, instances: list[Instance],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack pays without the audit; with it, exactly the instances whose solution is not
    the honest rule's are refused (every one: an attack that departs rarely wins a sampled replay)."""
    fair, paid = _pays(evaluator, attack, honest, instances, monkeypatch)
    departed = {i.name for i, a, b in zip(instances, fair.solutions, paid.solutions, strict=True) if a != b}
    caught = evaluator.run_split(attack, instances, "quick")
    refused = {r.name for r in caught.instances if not r.feasible and "asked again in a fresh process" in (r.error or "")}
    assert departed and refused == departed, caught.feedback


def assert_pays_then_refused(evaluator: Evaluator, attack: str, honest: str, instances: list[Instance],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the audit the attack beats the honest rule; with it the evaluation fails, each
    failed instance named as asked again."""
    _pays(evaluator, attack, honest, instances, monkeypatch)
    caught = evaluator.run_split(attack, instances, "quick")
    assert not caught.ok and caught.score is None
    # Caught where its choices are not the rule's (elsewhere an attack may match the honest rule).
    flagged = [r.error or "" for r in caught.instances if not r.feasible]
    assert flagged and all("asked again in a fresh process" in e for e in flagged), caught.feedback
