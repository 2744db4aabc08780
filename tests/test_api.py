"""The Python API (evolve.run, evaluate, resume, a Run's best/review/report/programs) on real
runs, and that it says what the CLI says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from py_problem import SEED, SHORTEST, CompletionVerifier

import evolve
from evolve.formats import json_safe

TESTS = Path(__file__).resolve().parent
TIMING = {"ms_per_instance", "seconds"}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def untimed(value: object) -> object:
    """A JSON document without wall-clock figures (they differ between two evaluations)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k.partition("[")[0] not in TIMING}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> evolve.Run:
    root = tmp_path_factory.mktemp("api")
    return evolve.run(str(TESTS / "toy_problem"), iterations=12, seed=1, out=root / "run", islands=2)


def test_run_returns_the_best_as_code_and_a_float_score(toy_run: evolve.Run) -> None:
    best = toy_run.best
    assert isinstance(best.code, str) and "def order" in best.code
    assert isinstance(best.score, float) and best.score >= toy_run.seed.score
    assert best.metrics["gap_mean_pct"] == pytest.approx(best.gap_pct)
    assert toy_run.stop_reason == "iterations" and toy_run.last_progress.done == 12
    assert (toy_run.dir / "best.py").read_text() == best.code
    assert toy_run.settings.islands == 2  # any run setting is a keyword


def test_programs_is_a_dataframe_with_one_row_per_archived_program(toy_run: evolve.Run) -> None:
    frame = toy_run.programs()
    assert isinstance(frame, pd.DataFrame)
    assert {"id", "parent", "island", "iteration", "score", "metrics", "status"} <= set(frame.columns)
    review = toy_run.review()
    assert len(frame) == review.programs
    seed = frame[frame["origin"] == "seed"].iloc[0]
    assert pd.isna(seed["parent"]) and seed["score"] == pytest.approx(toy_run.seed.score)
    assert frame["score"].max() == pytest.approx(toy_run.best.score)
    assert isinstance(frame["metrics"].iloc[0], dict)
    attempts = toy_run.attempts()
    assert len(attempts) == 12 and set(attempts["outcome"]) <= {"evaluated", "edit_error", "llm_error", "duplicate"}


def test_review_objects_hold_what_review_json_prints(toy_run: evolve.Run) -> None:
    printed = cli("review", str(toy_run.dir), "--test", "--json")
    assert printed.returncode == 0, printed.stderr
    review = toy_run.review(test=True)  # the test evaluations come from the archive's cache now
    assert review.test is not None and review.test.generalisation.verdict
    assert json.loads(printed.stdout) == json_safe(review.to_json())


def test_report_writes_one_html_file(toy_run: evolve.Run, tmp_path: Path) -> None:
    target = toy_run.report(tmp_path / "r.html")
    assert target == tmp_path / "r.html" and 'id="grid"' in target.read_text()


def test_evaluate_takes_a_path_or_code_and_matches_eval_json(tmp_path: Path) -> None:
    seed = TESTS / "toy_problem" / "seed.py"
    printed = cli("eval", str(TESTS / "toy_problem"), str(seed), "--split", "test", "--json")
    assert printed.returncode == 0, printed.stderr
    from_path = evolve.evaluate(str(TESTS / "toy_problem"), seed, split="test")
    from_code = evolve.evaluate(str(TESTS / "toy_problem"), seed.read_text(), split="test")
    document = json_safe(from_path.to_json(from_path_problem := "toy", "test"))
    assert from_path_problem == json.loads(printed.stdout)["problem"]
    assert untimed(document) == untimed(json.loads(printed.stdout))
    assert from_code.score == from_path.score and from_code.ok
    frame = from_path.frame()
    assert list(frame["name"]) == [r.name for r in from_path.instances] and frame["gap"].notna().all()


def test_baselines_score_the_seed_and_every_baseline() -> None:
    rows = evolve.baselines(str(TESTS / "toy_problem"), split="quick")
    assert list(rows) == ["seed", "descending"]
    assert rows["descending"].score == pytest.approx(0.0) and rows["seed"].score < 0


def test_resume_continues_to_a_new_target(toy_run: evolve.Run) -> None:
    resumed = evolve.resume(toy_run.dir, iterations=15)
    assert resumed.last_progress.done == 15 and len(resumed.attempts()) == 15
    assert resumed.best.score >= toy_run.seed.score


def test_a_problem_defined_in_python_runs_and_resumes_from_its_run_folder(tmp_path: Path) -> None:
    problem = evolve.define_problem(
        "weights", CompletionVerifier, SEED, objective="weighted position sum",
        baselines={"lightest_first": SHORTEST}, options={"jobs": 10}, run={"islands": 2},
    )
    assert problem.spec.function.name == "sequence" and problem.spec.objective.direction == "minimize"
    assert evolve.evaluate(problem, SEED, split="quick").score == pytest.approx(0.0)  # heaviest first is optimal
    assert evolve.baselines(problem, split="quick")["lightest_first"].score < 0

    run = evolve.run(problem, iterations=4, out=tmp_path / "run")
    assert (run.dir / "problem" / "problem.toml").is_file()  # the run keeps the definition
    resumed = cli("resume", str(run.dir), "--iterations", "6")  # another process, the CLI
    assert resumed.returncode == 0, resumed.stderr
    assert len(evolve.open_run(run.dir).attempts()) == 6


def test_a_verifier_defined_in_main_is_refused_with_the_fix() -> None:
    main_class = type("LocalVerifier", (), {"direction": "minimize", "__module__": "__main__"})
    with pytest.raises(evolve.UserError, match=r"defined in __main__.*move it into a module \(e.g. local_verifier.py"):
        evolve.define_problem("local", main_class, SEED)


def test_unknown_settings_and_options_are_user_errors_before_any_folder(tmp_path: Path) -> None:
    with pytest.raises(evolve.UserError, match="unknown run setting 'island'"):
        evolve.run("smtt", island=3, out=tmp_path / "a")
    with pytest.raises(evolve.UserError, match=r"options colour: unknown key \(expected one of"):
        evolve.run("smtt", options={"colour": 1}, out=tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_define_problem_names_a_seed_with_a_null_byte_without_a_line() -> None:
    """Python's SyntaxError for a null byte has no line: it was "(line None: ...)"."""
    with pytest.raises(evolve.UserError) as failed:
        evolve.define_problem("weights", CompletionVerifier, SEED + "\x00")
    assert "does not parse (source code string cannot contain null bytes)" in str(failed.value), failed.value


def test_define_problem_takes_one_direction_and_refuses_a_mismatch() -> None:
    with pytest.raises(evolve.UserError, match="direction='maximize' but verifier CompletionVerifier declares "
                                               "direction = 'minimize'; make them agree"):
        evolve.define_problem("weights", CompletionVerifier, SEED, direction="maximize")


def test_define_problem_names_a_seed_or_baselines_of_the_wrong_type() -> None:
    """They were a TypeError from compile() and a ValueError from dict()."""
    with pytest.raises(evolve.UserError, match=r"^define_problem: seed: expected the seed program's source code "
                                               r"\(a str\), got PosixPath$"):
        evolve.define_problem("weights", CompletionVerifier, TESTS / "toy_problem" / "seed.py")
    with pytest.raises(evolve.UserError, match=r"^define_problem: baselines: expected a dict of name -> source code "
                                               r"\(str\), got list \['shortest'\]$"):
        evolve.define_problem("weights", CompletionVerifier, SEED, baselines=["shortest"])
