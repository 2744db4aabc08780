"""The gap the report and `watch` plot for each program is the headline gap review prints, and
what an evaluation without one says.

smtt scores by gap_group_mean (the mean over sizes): the progress plot drew the instance mean
(gap_mean_pct) for every dot and the best-so-far line, next to the seed's line at its group
mean, so a 3-iteration run showed its seed at 52.3 % on the line and 56.7 % in the legend.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from test_archive import _program

from evolve.archive import Archive
from evolve.history import History
from evolve.scoring import headline_gap, headline_gap_keys


def test_history_gaps_are_the_headline_gap_of_each_score_kind(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite"
    archive = Archive(path, create=True)
    groups = {"gap_mean_pct": 52.33, "gap_group_mean_pct": 56.74, "gap_ratio_pct": 61.78}
    archive.add_program(replace(_program("seed", -56.74, 0), metrics=groups))
    one_group = {"gap_mean_pct": 7.0, "gap_ratio_pct": 3.0}  # a single group has no group mean
    archive.add_program(replace(_program("child", -7.0, 1), metrics=one_group))
    archive.close()
    with History(path) as history:
        for kind in ("gap_group_mean", "gap_mean", "gap_ratio"):
            gaps = [p.gap for p in history.programs(headline_gap_keys(kind))]
            assert gaps == [headline_gap(groups, kind), headline_gap(one_group, kind)], kind
        assert [p.gap for p in history.programs(headline_gap_keys("gap_group_mean"))] == [56.74, 7.0]


def test_a_feasible_evaluation_without_a_gap_says_why() -> None:
    """An --instances file whose every reference is 0 (smtt with loose due dates) was reported
    'infeasible: ' with nothing after it: every solution was feasible, the gap undefined."""
    from evolve.evaluation import describe
    from evolve.scoring import aggregate
    from evolve.verifier import Instance, Reference, feasible

    zero = [Instance(f"i{k}", "n=2", {}, Reference(0.0, "optimal", "dp", 0.0)) for k in range(2)]
    results = [feasible(i, 0.0, "minimize") for i in zero]
    score, metrics = aggregate(results, "minimize", "gap_mean")
    assert score is None
    assert describe(results, metrics, "gap_mean").startswith(
        "no gap: the reference of every instance is 0, and a gap relative to 0 is undefined (objective sum 0)")


def test_eval_of_instances_whose_every_reference_is_0_is_ok_with_no_score(tmp_path: Path) -> None:
    """Every solution feasible, every reference 0: `evolve eval` said status 'infeasible' and exit 1.
    It is status ok, score null (no gap to measure), the objectives reported, exit 0."""
    import json
    import subprocess
    import sys

    from conftest import REPO

    instances = tmp_path / "zero.json"
    instances.write_text(json.dumps({"instances": [
        {"name": "a", "p": [3, 5, 2], "d": [40, 40, 40], "optimum": 0},
        {"name": "b", "p": [7, 2], "d": [30, 50], "optimum": 0}]}))
    seed = str(REPO / "problems" / "smtt" / "seed.py")
    command = [sys.executable, "-m", "evolve.cli", "eval", "smtt", seed, "--instances", str(instances)]
    said = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120)
    assert said.returncode == 0, said.stderr
    document = json.loads(said.stdout)
    assert (document["status"], document["score"], document["metrics"]["objective_sum"]) == ("ok", None, 0.0)
    assert [(r["objective"], r["gap"], r["feasible"]) for r in document["instances"]] == [(0.0, None, True)] * 2
    assert document["feedback"].startswith("no gap: the reference of every instance is 0")
    text = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "ok: no gap: the reference of every instance is 0" in " ".join(text.stdout.split())


def test_the_best_so_far_line_follows_the_archives_best_by_score() -> None:
    """serving ranks by goodput - starved - 0.2 x latency gap: the lowest latency gap so far is not
    the run's best. The line drew the lowest gap; it draws the gap of the best by score."""
    from evolve.history import ProgramPoint
    from evolve.report_plots import best_so_far

    def point(k: int, score: float, gap: float) -> ProgramPoint:
        return ProgramPoint(k, None, 0, k, "gp", "gp", "ok", score, None, float(k), gap)

    ordered = [point(0, 90.0, 0.0), point(1, 80.0, -30.0), point(2, 95.0, -5.0), point(3, 95.0, -8.0)]
    assert best_so_far(ordered, use_gap=True).tolist() == [0.0, 0.0, -5.0, -5.0]  # was [0, -30, -30, -30]
    assert best_so_far(ordered, use_gap=False).tolist() == [90.0, 90.0, 95.0, 95.0]


def test_the_serving_progress_plot_draws_the_score_it_ranks_by() -> None:
    """serving's y axis was the latency gap (every program has one), not goodput - starved - 0.2 x
    that gap, which the search ranks by: a program could sit low on the plot and be the best."""
    from evolve.history import ProgramPoint
    from evolve.problem import load_problem
    from evolve.report_plots import axis_is_gap, plots_by_score, progress_figure

    assert plots_by_score(load_problem("serving")) and plots_by_score(load_problem("serving_router"))
    assert not plots_by_score(load_problem("smtt")) and not plots_by_score(load_problem("jssp"))
    points = [ProgramPoint(k, None, 0, k, "gp", "gp", "ok", score, None, float(k), gap)
              for k, (score, gap) in enumerate([(69.3, 0.0), (80.0, -30.0), (95.0, -5.0)])]
    assert axis_is_gap(points) and not axis_is_gap(points, by_score=True)
    assert progress_figure(points, 0.0, 69.3, {"spf": 96.9}, 0.0, by_score=True).startswith("data:image/png;base64,")


def test_a_baseline_that_fails_on_train_is_named_not_silently_left_out(toy_dir: Path, tmp_path: Path) -> None:
    """A report drew no line for smtt's mddc_augmented when it exceeded its CPU budget on one
    train instance at load 13, and said nothing; the caption names it now."""
    import evolve
    from evolve.problem import load_problem
    from evolve.report import _train_references
    from evolve.runs import load_run

    (toy_dir / "baselines" / "broken.py").write_text("def order(x):\n    raise ValueError('no')\n")
    run = evolve.run(str(toy_dir), iterations=0, out=tmp_path / "run")
    info = load_run(run.dir)
    references, failed = _train_references(run.dir, load_problem(str(toy_dir)), info, "gap_mean", None)
    assert "descending" in references and "broken" not in references
    assert failed == ["broken (error)"]
