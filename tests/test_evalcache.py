"""Held-out evaluations of a run's programs are cached in its archive and found again only
for the same code, problem, options, instances and sandbox limits (real run, real sandbox)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

import evolve
from evolve.evalcache import EvalCache, to_json
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


def test_another_run_of_the_problem_in_the_same_folder_reuses_the_seed_and_baselines(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed and the baselines are the same programs in every run of a problem: a second run
    beside the first (runs/<problem>/...) evaluates only its own best; the others are copied
    from the first run's archive into its own, so the folder stays whole."""
    first = evaluate_holdout(run_dir)  # fills (or reads) the first run's cache
    second_dir = evolve.run(str(run_dir.parent / "toy"), iterations=3, seed=7, out=run_dir.parent / "second").dir
    evaluated: list[str] = []
    real = Evaluator.run_split

    def counting(self: Evaluator, code: str, *args: object, **kwargs: object) -> object:
        evaluated.append(code)
        return real(self, code, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Evaluator, "run_split", counting)
    second = evaluate_holdout(second_dir)
    shared = {name for name in second.evaluations if not name.startswith("best #")}
    assert shared == {name for name in first.evaluations if not name.startswith("best #")}
    for name in shared:
        assert second.evaluations[name].score == first.evaluations[name].score
    # its best alone, unless it is the seed (then nothing): never the seed or a baseline again
    problem = problem_of(load_run(second_dir))
    shared_codes = {problem.seed_code, *(code for _, code in problem.baseline_programs())}
    assert len(evaluated) <= 1 and not shared_codes & set(evaluated), len(evaluated)
    assert cached_rows(second_dir) >= len(shared)  # its own copies (the best shares the seed's if it is it)
    shutil.rmtree(second_dir)  # the module's other tests see the first run alone


def _forged_archive(path: Path, key: str, problem: str | None, evaluation: str) -> None:
    """An SQLite file with a split_evaluations row under ``key`` (and a meta row naming
    ``problem``, if given): not a run's archive, but shaped like one where the cache looks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("CREATE TABLE split_evaluations (key TEXT PRIMARY KEY, name TEXT NOT NULL, "
                       "split TEXT NOT NULL, evaluation TEXT NOT NULL, created_at REAL NOT NULL)")
            db.execute("INSERT INTO split_evaluations VALUES (?, 'seed', 'test', ?, 0)", (key, evaluation))
            if problem is not None:
                db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                db.execute("INSERT INTO meta VALUES ('problem', ?)", (json.dumps(problem),))
    finally:
        db.close()


def test_only_sibling_runs_of_the_same_problem_answer_and_nothing_else_in_the_folder(tmp_path: Path) -> None:
    """A run under /tmp has every folder of /tmp beside it: the cache read any */archive.sqlite
    there, so a stranger's SQLite file holding a row under the key answered for the seed (score
    12345), and a sibling whose entry did not decode ended the report with a KeyError.  Only
    evolve runs (config.json and archive.sqlite) of the same problem answer now; a damaged one is
    passed over; a genuine sibling run still does."""
    shutil.copytree(TESTS / "toy_problem", tmp_path / "toy", ignore=shutil.ignore_patterns("__pycache__"))
    runs = tmp_path / "runs"
    first = evolve.run(str(tmp_path / "toy"), iterations=2, seed=1, out=runs / "first").dir
    genuine = evaluate_holdout(first).evaluations["seed"]
    second = evolve.run(str(tmp_path / "toy"), iterations=2, seed=2, out=runs / "second").dir
    info = load_run(second)
    problem = problem_of(info)
    cache = EvalCache(info.archive_path, problem, info.settings.sandbox, "test", problem.instances("test"))
    key, name = cache.key(problem.seed_code), problem.name
    forged = json.dumps({**json.loads(json.dumps(to_json(genuine), default=str)), "score": 12345.0})
    _forged_archive(runs / "stranger" / "archive.sqlite", key, name, forged)  # no config.json
    _forged_archive(runs / "other" / "archive.sqlite", key, "other", forged)
    (runs / "other" / "config.json").write_text(json.dumps({"problem": "other"}))
    _forged_archive(runs / "broken" / "archive.sqlite", key, name, "{}")  # a run's, undecodable entry
    (runs / "broken" / "config.json").write_text(json.dumps({"problem": name}))
    (runs / "garbage").mkdir()
    (runs / "garbage" / "archive.sqlite").write_bytes(b"not sqlite at all " * 100)
    (runs / "garbage" / "config.json").write_text("{not json")
    for folder in ("stranger", "other", "broken", "garbage"):  # newer than the genuine run: read first
        os.utime(runs / folder / "archive.sqlite", (time.time() + 60, time.time() + 60))
    found = cache.get(problem.seed_code)
    assert found is not None and found.score == genuine.score != 12345.0
    assert EvalCache(info.archive_path, problem, info.settings.sandbox, "test",
                     problem.instances("test")).get(problem.seed_code + "\n# not cached anywhere\n") is None
