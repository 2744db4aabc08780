"""The paired comparison and the overfitting rule, checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evolve.compare import GroupComparison, SignedRank, compare, difference, wilcoxon
from evolve.evaluation import Evaluation
from evolve.history import first_reason
from evolve.holdout import improvement, judge_generalisation
from evolve.verifier import Instance, InstanceResult, Reference


def result(name: str, objective: float | None, reference: float | None = 100.0, group: str = "g") -> InstanceResult:
    gap = None if objective is None or not reference else (objective - reference) / reference
    return InstanceResult(name, group, objective is not None, objective, reference, "optimal", gap,
                          None if objective is not None else "infeasible")


def evaluation(results: list[InstanceResult], score: float | None = None, status: str = "ok") -> Evaluation:
    return Evaluation(status, score, {}, results, "", "test", 0.0)  # type: ignore[arg-type]


# --- Wilcoxon signed-rank ---------------------------------------------------------


def test_exact_p_value_of_a_textbook_case() -> None:
    # Ranks 1..6 all positive: P(W+ = 21) = 1/64, two-sided p = 2/64.
    test = wilcoxon([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert test.method == "exact" and test.w_plus == 21 and test.w_minus == 0
    assert test.p_value == pytest.approx(2 / 64)


def test_exact_p_value_by_enumerating_every_sign_pattern() -> None:
    d = [0.5, -1.2, 2.0, 0.7, -0.1, 3.3, 1.1, -0.4]
    test = wilcoxon(d)
    ranks = np.argsort(np.argsort(np.abs(d))) + 1
    observed = min(test.w_plus, test.w_minus)
    sums = [sum(r for r, bit in zip(ranks, range(len(d)), strict=True) if mask >> bit & 1) for mask in range(2 ** len(d))]
    expected = min(1.0, 2 * sum(1 for s in sums if s <= observed) / len(sums))
    assert test.method == "exact" and test.p_value == pytest.approx(expected)


def test_zero_differences_are_dropped_and_all_ties_give_p_one() -> None:
    assert wilcoxon([0.0, 0.0]) == SignedRank(0, 0.0, 0.0, 1.0, "none")
    assert wilcoxon([0.0, 0.1, 0.2]).n == 2


def test_a_failure_outranks_every_finite_difference() -> None:
    test = wilcoxon([math.inf, -0.5, -0.4, -0.3])
    assert test.w_plus == 4  # the failure of B gets the largest rank


@pytest.mark.parametrize("n", [5, 12, 30, 50, 51, 90])
def test_p_values_match_scipy(n: int) -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy (the [test] extra) cross-checks our Wilcoxon test")
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.4):
        d = rng.normal(shift, 1.0, n)
        expected = stats.wilcoxon(d, zero_method="wilcox", method="exact" if n <= 50 else "approx").pvalue
        assert wilcoxon(d).p_value == pytest.approx(expected, rel=1e-9)


def test_p_values_with_ties_match_scipy_normal_approximation() -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy (the [test] extra) cross-checks our Wilcoxon test")
    d = np.round(np.random.default_rng(3).normal(0.3, 1, 40), 1)
    d[:4] = 0
    test = wilcoxon(d)
    assert test.method == "normal"
    assert test.p_value == pytest.approx(stats.wilcoxon(d, zero_method="wilcox", method="approx").pvalue)


# --- paired comparison ------------------------------------------------------------


def test_difference_is_the_gap_difference_with_a_reference_and_relative_without() -> None:
    assert difference(result("a", 110), result("a", 130), "minimize") == pytest.approx(0.2)
    assert difference(result("a", 10, None), result("a", 20, None), "minimize") == pytest.approx(0.5)
    assert difference(result("a", 10, None), result("a", 20, None), "maximize") == pytest.approx(-0.5)
    assert difference(result("a", 100), result("a", 100 + 1e-12), "minimize") == 0.0


def test_a_failed_instance_is_a_loss_for_the_failing_side_and_both_failing_is_a_tie() -> None:
    assert difference(result("a", 120), result("a", None), "minimize") == math.inf
    assert difference(result("a", None), result("a", 120), "minimize") == -math.inf
    assert difference(None, result("a", None), "minimize") == 0.0


def test_compare_counts_wins_ties_losses_per_group_and_overall() -> None:
    names = [("x1", "small"), ("x2", "small"), ("x3", "small"), ("y1", "large"), ("y2", "large")]
    instances = [Instance(n, g, {}, Reference(100.0, "optimal")) for n, g in names]
    a = evaluation([result("x1", 100, group="small"), result("x2", 105, group="small"), result("x3", 110, group="small"),
                    result("y1", 120, group="large"), result("y2", None, group="large")])
    b = evaluation([result("x1", 101, group="small"), result("x2", 105, group="small"), result("x3", 100, group="small"),
                    result("y1", 130, group="large"), result("y2", 150, group="large")])
    comparison = compare("A", a, "B", b, instances, "minimize")
    overall = comparison.overall
    assert (overall.wins, overall.ties, overall.losses) == (2, 1, 2)
    assert (overall.failed_a, overall.failed_b) == (1, 0)
    by_group = {g.group: g for g in comparison.groups}
    assert [g.group for g in comparison.groups] == ["large", "small"]
    assert (by_group["small"].wins, by_group["small"].ties, by_group["small"].losses) == (1, 1, 1)
    assert by_group["small"].gap_a_pct == pytest.approx(5.0) and by_group["small"].gap_b_pct == pytest.approx(2.0)
    assert by_group["large"].gap_a_pct == pytest.approx(20.0)  # the failed instance has no gap


def test_verdict_needs_significance_and_follows_the_sign() -> None:
    def group(w_plus: float, w_minus: float, p: float, n: int = 10) -> GroupComparison:
        return GroupComparison("all", n, 0, 0, 0, None, None, None, 0, 0, SignedRank(n, w_plus, w_minus, p, "exact"))

    assert group(50, 5, 0.01).verdict == "better"
    assert group(5, 50, 0.01).verdict == "worse"
    assert group(30, 25, 0.6).verdict == "not significant"
    assert group(0, 0, 1.0, n=0).verdict == "identical"


# --- the overfitting rule ----------------------------------------------------------


def seed_comparison(better: bool) -> object:
    d = [0.1] * 10 if better else [0.1, -0.1] * 5
    instances = [Instance(f"i{k}", "g", {}, Reference(100.0, "optimal")) for k in range(10)]
    a = evaluation([result(f"i{k}", 100.0) for k in range(10)])
    b = evaluation([result(f"i{k}", 100.0 + 100 * x) for k, x in enumerate(d)])
    return compare("best", a, "seed", b, instances, "minimize")


def test_improvement_is_relative_to_the_seed_score() -> None:
    assert improvement(-20.0, -60.0) == pytest.approx(2 / 3)  # closes two thirds of the seed's gap
    assert improvement(-60.0, -60.0) == 0.0
    assert improvement(0.5, 0.0) == 0.5


@pytest.mark.parametrize(
    ("train", "test", "better", "verdict"),
    [
        ((-20.0, -60.0), (-22.0, -58.0), True, "generalises"),
        ((-20.0, -60.0), (-50.0, -58.0), True, "overfit"),  # 14% of 67% carries over
        ((-20.0, -60.0), (-61.0, -58.0), True, "overfit"),  # worse than the seed on test
        ((-20.0, -60.0), (-22.0, -58.0), False, "inconclusive"),
        ((-60.0, -60.0), (-58.0, -58.0), False, "no improvement"),
    ],
)
def test_overfitting_rule(train: tuple[float, float], test: tuple[float, float], better: bool, verdict: str) -> None:
    judged = judge_generalisation(train[0], train[1], evaluation([], test[0]), evaluation([], test[1]),
                                  seed_comparison(better), best_is_seed=False)  # type: ignore[arg-type]
    assert judged.verdict == verdict
    assert judged.flagged == (verdict == "overfit")


def test_a_best_program_failing_on_test_is_flagged() -> None:
    failed = Evaluation("timeout", None, {}, [], "wall-clock limit", "test", 0.0)
    judged = judge_generalisation(-20.0, -60.0, failed, evaluation([], -58.0), seed_comparison(True), False)  # type: ignore[arg-type]
    assert judged.verdict == "fails on test" and judged.flagged


def test_failure_reasons_name_the_first_failed_instance() -> None:
    feedback = "3 of 40 instances failed:\n- train-n20-0: job 4 appears twice\n- train-n20-1: job 2 appears twice"
    assert first_reason(feedback) == "job 4 appears twice"
    assert first_reason("edit outside the EVOLVE-BLOCK\nline 3") == "edit outside the EVOLVE-BLOCK"
    assert first_reason("") == "(no message)"


def test_a_verdict_by_rank_against_the_mean_says_so() -> None:
    """Review of a 2-iteration smtt_rule run: 'best vs the strongest baseline (mddc): gap 1.32%
    vs 1.25%, 31 wins / 83 ties / 11 losses, p = 0.023: better', which read as a contradiction.
    The signed-rank test ranks the differences, so many small wins outweigh a few large losses;
    where the mean says the other way, the verdict's text says both."""
    instances = [Instance(f"i{k}", "g", {}, Reference(100.0, "optimal")) for k in range(27)]
    a = evaluation([result(f"i{k}", 100.0 if k < 25 else 120.0) for k in range(27)])  # 25 small wins, 2 large losses
    b = evaluation([result(f"i{k}", 101.0 if k < 25 else 100.0) for k in range(27)])
    overall = compare("A", a, "B", b, instances, "minimize").overall
    assert (overall.wins, overall.losses) == (25, 2) and overall.mean_diff_pct is not None and overall.mean_diff_pct < 0
    assert overall.verdict == "better"  # the stable JSON keeps the test's verdict
    assert overall.verdict_text == f"better by rank, though {abs(overall.mean_diff_pct):.2f} pp worse on the mean"
    agreeing = compare("A", a, "B", evaluation([result(f"i{k}", 130.0) for k in range(27)]), instances,
                       "minimize").overall
    assert agreeing.verdict == agreeing.verdict_text == "better"  # mean and ranks agree: no caveat
