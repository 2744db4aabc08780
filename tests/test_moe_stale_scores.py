"""A moe run scored before the problem's current score: review, --repeats and report say so.

moe's score gained the guard against LPT (2026-12-06) and the CPU budget per call (2026-12-07).
A run archived before either keeps its old scores, while every re-evaluation (review --test,
--repeats, report) uses the current score. Each term leaves a metric older evaluations lack
(``lpt_shortfall``, ``runtime_budget_ms``), so an old run's archive is a real run's archive
without those metrics (what the code of 9a451e4^ archived; docs/moe.md, "Score").
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.archive import Program
from evolve.problem import load_problem
from evolve.review import stale_scores

REPO = Path(__file__).resolve().parent.parent
NEWER = ("runtime_budget_ms", "runtime_budget_use_max", "lpt_shortfall")


def evolve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200"}, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a run of today's code, the same archive as a run scored before the guard and the budget)."""
    root = tmp_path_factory.mktemp("stale")
    current = root / "current"
    done = evolve("run", "moe", "--llm", "stub", "--iterations", "2", "--out", str(current))
    assert done.returncode == 0, done.stderr
    old = root / "old"
    shutil.copytree(current, old)
    with sqlite3.connect(old / "archive.sqlite") as db:
        rows = db.execute("SELECT id, metrics FROM programs").fetchall()
        assert rows and all(json.loads(m).get("runtime_budget_ms") for _, m in rows if json.loads(m).get("balancedness"))
        for pid, metrics in rows:
            kept = {k: v for k, v in json.loads(metrics).items() if k not in NEWER}
            db.execute("UPDATE programs SET metrics = ? WHERE id = ?", (json.dumps(kept), pid))
    return current, old


def test_review_of_a_run_scored_before_the_budget_and_the_guard_says_its_scores_do_not_compare(
        runs: tuple[Path, Path]) -> None:
    current, old = runs
    text = evolve("review", str(old))
    assert text.returncode == 0, text.stderr
    assert "archived scores were made before the guard against LPT" in text.stdout
    assert "and before the CPU budget per call" in text.stdout
    document = json.loads(evolve("review", str(old), "--json").stdout)
    assert "before the CPU budget per call" in document["stale_scores"]
    fresh = json.loads(evolve("review", str(current), "--json").stdout)
    assert fresh["stale_scores"] is None
    assert "archived scores were made" not in evolve("review", str(current)).stdout


def test_only_the_terms_the_run_was_scored_without_are_named() -> None:
    problem = load_problem("moe")
    budget_only = {"balancedness": 0.8, "lpt_shortfall": 0.0}
    guard_only = {"balancedness": 0.8, "runtime_budget_ms": 30.0, "runtime_call_penalty": 0.0}
    assert "CPU budget" in (stale_scores(problem, _program(budget_only)) or "")
    assert "guard" not in (stale_scores(problem, _program(budget_only)) or "")
    assert "guard against LPT" in (stale_scores(problem, _program(guard_only)) or "")
    assert "CPU budget" not in (stale_scores(problem, _program(guard_only)) or "")
    assert stale_scores(problem, _program({**budget_only, **guard_only})) is None
    # scored with the budget, but with the judged calls' mean held against it (before the twelfth
    # red team): one costly call among cheap ones could pay nothing
    pooled = {**budget_only, "runtime_budget_ms": 30.0}
    assert "each judged call was charged" in (stale_scores(problem, _program(pooled)) or "")
    assert "CPU budget per call" not in (stale_scores(problem, _program(pooled)) or "")
    # a run made with the guard and the budget switched off has nothing to miss
    plain = problem.with_options({"lpt_guard": 0, "runtime_budget_ms": 0, "runtime_budget_us_per_slot": 0})
    assert stale_scores(plain, _program({"balancedness": 0.8})) is None


def test_repeats_leave_an_older_archived_score_out_of_the_spread(runs: tuple[Path, Path]) -> None:
    _, old = runs
    done = evolve("review", str(old), "--repeats", "1", "--json")
    assert done.returncode == 0, done.stderr
    programs = json.loads(done.stdout)["noise"]["programs"]
    assert programs and all(p["archived_stale"] for p in programs)
    for p in programs:
        kept = [s for s in p["scores"] if s is not None]
        assert (p["low"], p["high"]) == ((min(kept), max(kept)) if kept else (None, None))
    text = evolve("review", str(old), "--repeats", "1")
    assert "(older score, not in the range)" in text.stdout


def test_the_report_of_an_old_run_carries_the_note(runs: tuple[Path, Path], tmp_path: Path) -> None:
    _, old = runs
    page = tmp_path / "report.html"
    # The note heads the page whatever the split: quick's 2 instances, not test's 11, are re-evaluated.
    done = evolve("report", str(old), "--split", "quick", "-o", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "archived scores were made before the guard against LPT (2026-12-06) and before the CPU budget per call" in html


def _program(metrics: dict[str, float]) -> Program:  # the archive's record, as review reads it
    return Program(code="", code_hash="", parent_id=None, island=0, iteration=0, generation=0, origin="seed",
                   model=None, status="ok", score=1.0, stage="train", metrics=metrics, instances=[], feedback="",
                   features=None, eval_seconds=0.0)


def test_review_of_a_study_says_which_seeds_were_scored_under_an_older_score(
        runs: tuple[Path, Path], tmp_path: Path) -> None:
    """A study's review shows the note a run's review shows (f88034d), naming the seeds: here
    seed 1 is the old run, seed 2 today's."""
    current, old = runs
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({"problem": "moe", "seeds": [1, 2], "runs": ["seed-1", "seed-2"]}))
    shutil.copytree(old, study / "seed-1")
    shutil.copytree(current, study / "seed-2")
    text = evolve("review", str(study))
    assert text.returncode == 0, text.stderr
    assert "note: seed 1: this run's archived scores were made before the guard against LPT" in " ".join(
        text.stdout.split())
    document = json.loads(evolve("review", str(study), "--json").stdout)
    [line] = document["stale_scores"]
    assert line.startswith("seed 1: ") and "before the CPU budget per call" in line
    assert [r["stale_scores"] is not None for r in document["runs"]] == [True, False]
