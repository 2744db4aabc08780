from __future__ import annotations

import pytest

from evolve.scoring import gap_metrics
from evolve.verifier import InstanceResult


def test_ratio_gap_counts_falling_short_of_a_maximisation_reference_as_positive() -> None:
    result = InstanceResult("a", "g", True, 80.0, 100.0, "bound", 0.2)
    assert gap_metrics([result], "maximize")["gap_ratio_pct"] == 20.0
    assert gap_metrics([result], "minimize")["gap_ratio_pct"] == -20.0


def test_time_per_instance_is_reported_overall_and_per_group_next_to_the_gaps() -> None:
    from evolve.render import gap_and_time, metrics_table
    from evolve.scoring import aggregate

    results = [InstanceResult(f"i{k}", g, True, 110.0, 100.0, "optimal", 0.1, seconds=s)
               for k, (g, s) in enumerate([("n=20", 0.001), ("n=20", 0.003), ("n=100", 0.010)])]
    _, metrics = aggregate(results, "minimize", "gap_mean")
    assert metrics["ms_per_instance"] == (1 + 3 + 10) / 3
    assert metrics["ms_per_instance[n=20]"] == 2.0 and metrics["ms_per_instance[n=100]"] == 10.0
    assert gap_and_time(metrics, "n=20") == "10.00% · 2 ms"
    assert gap_and_time({"gap_mean_pct[x]": 1.0}, "x") == "1.00%"  # not timed: the gap alone
    table = metrics_table([("a", "ok", -10.0, metrics)])
    assert [c.header for c in table.columns] == ["program", "status", "score", "gap mean", "ms/inst", "gap ratio",
                                                  "n=20", "n=100"]
    assert table.caption == ("gap mean: the mean of the instances' gaps; gap ratio: (sum of objectives - sum of "
                             "references) / sum of references; ms/inst: CPU per instance")
    one_group = aggregate(results[:2], "minimize", "gap_mean")[1]
    assert "ms_per_instance[n=20]" not in one_group  # a single group repeats the overall figure


def test_the_group_mean_score_weighs_every_group_the_same_whatever_its_size() -> None:
    from evolve.scoring import aggregate, headline_gap

    # Three instances at 10 % in group a, one at 40 % in group b: the plain mean is 17.5 %,
    # the mean of the groups' means 25 %.
    results = [InstanceResult(f"a{k}", "a", True, 110.0, 100.0, "optimal", 0.1) for k in range(3)]
    results.append(InstanceResult("b", "b", True, 140.0, 100.0, "optimal", 0.4))
    score, metrics = aggregate(results, "minimize", "gap_group_mean")
    assert abs(metrics["gap_mean_pct"] - 17.5) < 1e-9 and abs(metrics["gap_group_mean_pct"] - 25.0) < 1e-9
    assert score == -metrics["gap_group_mean_pct"] and headline_gap(metrics, "gap_group_mean") == metrics["gap_group_mean_pct"]
    assert aggregate(results, "minimize", "gap_mean")[0] == -metrics["gap_mean_pct"]
    # One group: the score is its mean gap.
    alone, metrics = aggregate(results[:3], "minimize", "gap_group_mean")
    assert "gap_group_mean_pct" not in metrics and abs(alone + 10.0) < 1e-9


def test_median_weight_blends_each_groups_mean_with_its_median_in_the_score_only() -> None:
    from evolve.scoring import aggregate, headline_gap

    # Group a: gaps 0, 0, 90 % (mean 30, median 0); group b: 10 %, 20 % (mean and median 15).
    results = [InstanceResult(f"a{k}", "a", True, 100.0 + g, 100.0, "optimal", g / 100)
               for k, g in enumerate((0.0, 0.0, 90.0))]
    results += [InstanceResult(f"b{k}", "b", True, 100.0 + g, 100.0, "optimal", g / 100)
                for k, g in enumerate((10.0, 20.0))]
    plain, metrics = aggregate(results, "minimize", "gap_group_mean")
    blended, blended_metrics = aggregate(results, "minimize", "gap_group_mean", median_weight=0.5)
    assert abs(plain + (30 + 15) / 2) < 1e-9
    assert abs(blended + ((0.5 * 30 + 0.5 * 0) + 15) / 2) < 1e-9
    # The reported gaps do not change: they stay the published means.
    assert blended_metrics == metrics and headline_gap(blended_metrics, "gap_group_mean") == 22.5
    median_only = aggregate(results, "minimize", "gap_mean", median_weight=1.0)[0]
    assert median_only == -metrics["gap_median_pct"] == -10.0
    # One group: its own blend.
    assert abs(aggregate(results[:3], "minimize", "gap_group_mean", median_weight=0.5)[0] + 15.0) < 1e-9


def test_a_reference_floor_measures_gaps_in_the_named_groups_against_it_in_the_score_only() -> None:
    from evolve.scoring import aggregate

    # Group a: reference 4 (10 late: 250 %) and 1000 (1 % late); group b: reference 10 (1 late: 10 %).
    results = [InstanceResult("a0", "a", True, 14.0, 4.0, "optimal", 2.5),
               InstanceResult("a1", "a", True, 1010.0, 1000.0, "optimal", 0.01),
               InstanceResult("b0", "b", True, 11.0, 10.0, "optimal", 0.1)]
    plain, metrics = aggregate(results, "minimize", "gap_group_mean")
    floored, floored_metrics = aggregate(results, "minimize", "gap_group_mean", reference_floor={"a": 100.0})
    assert plain == pytest.approx(-((250 + 1) / 2 + 10) / 2)
    # a0's 10 units over max(4, 100); a1's reference is above the floor, and group b is not named.
    assert floored == pytest.approx(-((10 + 1) / 2 + 10) / 2)
    assert floored_metrics == metrics  # every reported gap stays the gap to the reference
    # With the median blend the floored gaps are blended: group a's median of (10 %, 1 %) is their mean.
    both = aggregate(results, "minimize", "gap_group_mean", median_weight=0.5, reference_floor={"a": 100.0})[0]
    assert both == floored
    assert aggregate(results, "minimize", "gap_mean", reference_floor={"a": 100.0, "b": 100.0})[0] == pytest.approx(-(10 + 1 + 1) / 3)
    # The objective's score has no gaps to floor.
    assert aggregate(results, "minimize", "objective", reference_floor={"a": 100.0})[0] == -(14 + 1010 + 11)
