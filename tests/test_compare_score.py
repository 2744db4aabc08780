"""A paired comparison judges on what each instance adds to the score where the verifier says so
(serving: goodput - starved - 0.2 x latency gap), not on the per-instance objective alone: a
policy with more goodput and a longer mean latency was called "worse" than shortest-prompt-first."""

from __future__ import annotations

from statistics import fmean

import pytest
from shipped_evaluator import shipped_evaluator

from evolve.compare import compare, instance_score_of
from evolve.evaluation import Evaluation, describe
from evolve.verifier import Instance, InstanceResult, Reference


def served(name: str, latency: float, goodput: float) -> InstanceResult:
    return InstanceResult(name=name, group="g", feasible=True, objective=latency, reference=10.0,
                          reference_kind="none", gap=latency / 10.0 - 1.0,
                          extra={"goodput_pct": goodput, "starved_pct": 0.0})


def evaluation(results: list[InstanceResult]) -> Evaluation:
    return Evaluation(status="ok", score=None, metrics={}, instances=results, feedback="", stage="test", seconds=0.0)


def test_more_goodput_with_a_longer_latency_wins_on_the_score_and_loses_on_the_objective() -> None:
    instances = [Instance(f"t{k}", "g", {}, Reference(10.0, "none")) for k in range(8)]
    a = evaluation([served(f"t{k}", 9.5, 96.0) for k in range(8)])  # 5 % slower than b, 6 points more goodput
    b = evaluation([served(f"t{k}", 9.0, 90.0) for k in range(8)])

    def score(r: InstanceResult) -> float:
        return r.extra["goodput_pct"] - r.extra["starved_pct"] - 0.2 * 100.0 * (r.gap or 0.0)

    on_latency = compare("a", a, "b", b, instances, "minimize")
    on_score = compare("a", a, "b", b, instances, "minimize", score)
    assert on_latency.basis == "gap" and on_latency.overall.verdict == "worse"
    assert on_score.basis == "score" and on_score.overall.verdict == "better"
    assert on_score.overall.wins == 8 and on_score.overall.mean_diff_pct == pytest.approx(6.0 - 0.2 * 5.0)
    assert on_score.to_json()["basis"] == "score"


def test_servings_instance_scores_average_to_its_score_and_other_problems_have_none() -> None:
    with shipped_evaluator("serving") as (problem, evaluator):
        ran = evaluator.run_split(problem.seed_code, problem.instances("quick"), "quick")
    assert ran.ok and ran.score is not None, ran.feedback
    score = instance_score_of(problem)
    assert score is not None
    assert fmean(score(r) for r in ran.instances) == pytest.approx(ran.score)
    # The feedback a model reads leads with the score per group and names the instances that add the
    # least to the score, not the ones with the worst latency gap.
    lines = ran.feedback.splitlines()
    assert any(line.startswith("score per group: ") for line in lines), ran.feedback
    worst = next(line for line in lines if line.startswith("worst instances"))
    lowest = sorted(ran.instances, key=score)[:3]
    assert worst == "worst instances (the lowest scores): " + "; ".join(
        f"{r.name} score {score(r):.2f}, gap {100 * (r.gap or 0):.2f}%" for r in lowest)
    with shipped_evaluator("smtt") as (smtt, _):
        assert instance_score_of(smtt) is None  # score = minus a gap: the relative gap difference


def test_the_worst_instances_a_model_is_shown_are_those_adding_least_to_the_score() -> None:
    # "slow" has the worst latency gap but full goodput; "missed" is faster and loses goodput: with
    # serving's score it is the worse instance, and the feedback must say so.
    slow, missed, fine = served("slow", 12.0, 99.0), served("missed", 10.5, 70.0), served("fine", 10.0, 98.0)
    slow.group = missed.group = "code"

    def score(r: InstanceResult) -> float:
        return r.extra["goodput_pct"] - r.extra["starved_pct"] - 0.2 * 100.0 * (r.gap or 0.0)

    metrics = {"gap_mean_pct[code]": 12.5, "gap_mean_pct[g]": 0.0}
    text = describe([slow, missed, fine], metrics, "custom", score)
    assert text.splitlines() == [
        "score per group: code 82.00, g 98.00",
        "gap per group: code 12.50%, g 0.00%",
        "worst instances (the lowest scores): missed score 69.00, gap 5.00%; slow score 95.00, gap 20.00%; "
        "fine score 98.00, gap 0.00%",
    ]
    plain = describe([slow, missed, fine], metrics, "custom")
    assert plain.splitlines()[-1].startswith("worst instances: slow gap 20.00%")  # without it: by gap
