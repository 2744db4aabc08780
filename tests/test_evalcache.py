"""Held-out evaluations of a run's programs are cached in its archive and found again only
for the same code, problem, options, instances and sandbox limits (real run, real sandbox)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import evolve
from evolve.evalcache import EvalCache
from evolve.evaluation import Evaluator
from evolve.holdout import evaluate_holdout
from evolve.review import problem_of
from evolve.runs import load_run

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    shutil.copytree(TESTS / "toy_problem", root / "toy", ignore=shutil.ignore_patterns("__pycache__"))
    return evolve.run(str(root / "toy"), iterations=6, out=root / "run").dir


def cached_rows(run_dir: Path) -> int:
    db = sqlite3.connect(run_dir / "archive.sqlite")
    try:
        return int(db.execute("SELECT COUNT(*) FROM split_evaluations").fetchone()[0])
    finally:
        db.close()


def test_a_second_holdout_evaluation_comes_from_the_archive(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = evaluate_holdout(run_dir)
    assert cached_rows(run_dir) == len(first.evaluations)  # best, seed and the baseline

    def no_sandbox(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated again instead of reading the cache")

    monkeypatch.setattr(Evaluator, "run_split", no_sandbox)
    second = evaluate_holdout(run_dir)
    for name, evaluation in first.evaluations.items():
        again = second.evaluations[name]
        assert (again.status, again.score, again.metrics) == (evaluation.status, evaluation.score, evaluation.metrics)
        assert [r.to_json() for r in again.instances] == [r.to_json() for r in evaluation.instances]
    assert second.generalisation == first.generalisation


def test_the_cache_key_changes_with_code_options_split_and_limits(run_dir: Path) -> None:
    evaluate_holdout(run_dir)  # fills the cache (or reads it)
    info = load_run(run_dir)
    problem = problem_of(info)
    test = problem.instances("test")
    base = EvalCache(info.archive_path, problem, info.settings.sandbox, "test", test)
    code = problem.seed_code
    assert base.get(code) is not None
    assert base.get(code + "\n# changed\n") is None
    slower = problem.with_options({"delay_s": 0.001})
    assert EvalCache(info.archive_path, slower, info.settings.sandbox, "test", slower.instances("test")).get(code) is None
    assert EvalCache(info.archive_path, problem, info.settings.sandbox, "quick", problem.instances("quick")).get(code) is None
    tighter = info.settings.sandbox.model_copy(update={"memory_mb": 999})
    assert EvalCache(info.archive_path, problem, tighter, "test", test).get(code) is None
