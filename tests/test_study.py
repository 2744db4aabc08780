"""Several seeds as one study: the folder, parallel seeds, median and spread in review."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import evolve
from evolve.errors import UserError
from evolve.runs import load_run
from evolve.study import STUDY, parse_seeds, review_study


def test_seed_lists_and_ranges_parse_and_bad_ones_are_one_line() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3, 1,1 ,7-8") == [3, 1, 7, 8]
    for bad in ("", "a", "4-2", "1-", "0-5000", "-1", "-3-2"):  # -1 made a folder seed--1
        with pytest.raises(UserError, match="--seeds"):
            parse_seeds(bad)


def test_a_study_is_not_started_inside_a_run_folder(tmp_path: Path) -> None:
    """`evolve run --seeds 0-1 --out RUN` wrote study.json and seed-0/ into an existing run's folder."""
    from evolve.study import open_study

    (tmp_path / "archive.sqlite").write_bytes(b"")
    with pytest.raises(UserError, match="already holds a run, not a study"):
        open_study("smtt", [0, 1], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.sqlite"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seeds of the toy, 8 iterations, two at a time: one study the tests below only review."""
    root = tmp_path_factory.mktemp("study")
    toy = root / "toy_problem"
    shutil.copytree(Path(__file__).resolve().parent / "toy_problem", toy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return evolve.run_study(str(toy), "0-2", parallel=2, out=root / "study", iterations=8)


def test_a_study_runs_every_seed_into_one_folder_and_reviews_their_spread(study: Path) -> None:
    folder = study
    assert json.loads((folder / STUDY).read_text())["seeds"] == [0, 1, 2]
    seeds = sorted(load_run(sub).settings.seed for sub in folder.glob("seed-*"))
    assert seeds == [0, 1, 2]
    review = review_study(folder, test=True, workers=2)
    assert [r.seed for r in review.runs] == [0, 1, 2] and all(r.iterations == 8 for r in review.runs)
    train = review.figure("train", "gap_mean_pct")
    assert train is not None and len(train.values) == 3 and min(train.values) <= train.median <= max(train.values)
    assert review.strongest in review.baselines
    for run in review.runs:
        assert run.test is not None and "gap_mean_pct" in run.test
        versus = run.versus
        assert versus is not None and versus["wins"] + versus["ties"] + versus["losses"] == run.test["instances"]
    document = review.to_json()
    assert document["test"]["gap_mean_pct"]["n"] == 3 and document["strongest_baseline"] == review.strongest


def test_run_with_seeds_on_the_command_line_then_review_json(toy_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    cli = [sys.executable, "-m", "evolve.cli"]
    done = subprocess.run([*cli, "run", str(toy_dir), "--seeds", "1,2", "--workers", "2", "--iterations", "5",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = subprocess.run([*cli, "review", str(out), "--json"], capture_output=True, text=True, timeout=600)
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    assert document["seeds"] == [1, 2] and document["train"]["gap_mean_pct"]["n"] == 2
    both = subprocess.run([*cli, "run", str(toy_dir), "--seeds", "1", "--seed", "3"], capture_output=True,
                          text=True, timeout=600)
    assert both.returncode == 2 and "--seeds" in both.stderr
    # report, export, resume and prompt take one run: given the study, they name its runs in one line
    # (a newcomer gave `evolve report STUDY` the folder review takes, and read "not a run folder").
    for command in (["report", str(out), "-o", str(tmp_path / "r.html")], ["export", str(out)],
                    ["resume", str(out)], ["prompt", "--run", str(out)]):
        refused = subprocess.run([*cli, *command], capture_output=True, text=True, timeout=600)
        assert refused.returncode == 2, (command, refused.stderr)
        assert refused.stderr.strip() == (f"error: {out}: a study of 2 runs, not one run: give one of them "
                                          f"({out / 'seed-1'}, {out / 'seed-2'}); evolve review takes the whole "
                                          "study"), command


def test_review_repeats_re_evaluates_the_top_programs_and_flags_ties(toy_dir: Path, tmp_path: Path) -> None:
    from evolve.noise import NoiseCheck, Repeated, noise_check

    run = evolve.run(str(toy_dir), iterations=10, out=tmp_path / "r")
    check = noise_check(run.dir, repeats=2, top=3)
    assert len(check.programs) >= 2 and all(len(p.scores) == 2 for p in check.programs)
    best = check.programs[0]
    assert best.program_id == run.best.id and all(s == pytest.approx(best.archived) for s in best.scores)
    # The toy is deterministic: the flag follows the ranges alone.
    assert check.within_noise == (best.low <= check.programs[1].high)
    close = NoiseCheck("train", 2, [Repeated(1, -1.0, [-1.3, -1.1]), Repeated(2, -1.2, [-1.05, -1.2])])
    apart = NoiseCheck("train", 2, [Repeated(1, -1.0, [-1.0, -1.01]), Repeated(2, -1.2, [-1.2, -1.25])])
    assert close.within_noise and "within noise" in close.message
    assert not apart.within_noise and "stays ahead" in apart.message
    printed = subprocess.run([sys.executable, "-m", "evolve.cli", "review", str(run.dir), "--repeats", "1", "--json"],
                             capture_output=True, text=True, timeout=600)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["noise"]["repeats"] == 1
    assert run.review(repeats=1).noise is not None  # the API: RunReview.noise


def test_study_review_fits_an_80_column_terminal(study: Path) -> None:
    """Every figure of `review STUDY --test` is readable at 80 columns (piped output is 80
    wide): the table splits into parts instead of cutting each number to '1.…'."""
    import os

    folder = study
    env = {**os.environ, "COLUMNS": "80"}
    cli = [sys.executable, "-m", "evolve.cli", "review", str(folder), "--test"]
    shown = subprocess.run(cli, capture_output=True, text=True, timeout=600, env=env)
    assert shown.returncode == 0, shown.stderr
    assert str(folder) in shown.stdout  # the title line keeps the whole path
    tables = [line for line in shown.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert "…" not in shown.stdout and max(len(line) for line in tables) <= 80
    document = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=600).stdout)
    for run in document["runs"]:
        assert f"{run['test']['gap_mean_pct']:.2f}" in shown.stdout
        versus = run["versus_strongest"]
        assert f"{versus['wins']}/{versus['ties']}/{versus['losses']}" in shown.stdout
    for key, figure in document["test"].items():
        assert f"{figure['median']:.2f}" in shown.stdout, key


def test_the_study_tables_mean_is_the_gap_the_problem_scores_by(toy_dir: Path, tmp_path: Path) -> None:
    """smtt scores by the mean over sizes: the study's "train mean" said the per-instance mean,
    which each run's own review does not show."""
    from evolve.study import SeedRun, StudyReview
    from evolve.study_table import study_rows

    train = {"gap_group_mean_pct": 2.0, "gap_mean_pct": 3.0, "gap_median_pct": 1.0}
    review = StudyReview("smtt", tmp_path, [SeedRun(0, tmp_path, 5, 1, train), SeedRun(1, tmp_path, 5, 2, train)],
                         gap_key="gap_group_mean_pct")
    rows = {row.label: row.cells for row in study_rows(review)[2]}
    assert rows["seed 0"]["train mean"] == "2.00" and rows["median"]["train mean"] == "2.00"
    document = review.to_json()
    assert document["gap_key"] == "gap_group_mean_pct" and document["train"]["gap_group_mean_pct"]["median"] == 2.0
    assert document["train"]["gap_mean_pct"]["median"] == 3.0  # the JSON keeps every key it had
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text().replace('direction = "minimize"\n', 'direction = "minimize"\nscore = "gap_group_mean"\n', 1))
    folder = evolve.run_study(str(toy_dir), "0", parallel=1, out=tmp_path / "study", iterations=2)
    assert review_study(folder).gap_key == "gap_group_mean_pct"
