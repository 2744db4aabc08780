"""A run folder belongs to one process, a damaged archive is named, and a run that fails
before archiving anything leaves no folder behind (real subprocesses, real SQLite files)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.runs import RunLock

TESTS = Path(__file__).resolve().parent


def evolve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == 2, result.stderr + result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for part in parts:
        assert part in result.stderr, result.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    shutil.copytree(TESTS / "toy_problem", root / "toy", ignore=shutil.ignore_patterns("__pycache__"))
    out = root / "run"
    made = evolve("run", str(root / "toy"), "--iterations", "4", "--out", str(out))
    assert made.returncode == 0, made.stderr
    return out


def test_a_second_process_cannot_drive_a_run_folder_in_use(finished_run: Path) -> None:
    with RunLock(finished_run):  # as a running `evolve run` or `evolve resume` holds it
        one_line_error(evolve("resume", str(finished_run), "--iterations", "6"),
                       str(finished_run), "in use by another evolve process")
    resumed = evolve("resume", str(finished_run), "--iterations", "5")  # released: free again
    assert resumed.returncode == 0, resumed.stderr
    assert "already done" not in resumed.stdout
    again = evolve("resume", str(finished_run))  # nothing left to do: say how to go on
    assert again.returncode == 0, again.stderr
    assert (f"it had already done its 5 iterations; to go on, give a new target: evolve resume {finished_run} "
            "--iterations 10") in again.stdout.replace("\n", "")


@pytest.mark.parametrize("damage", ["empty", "garbage", "foreign"])
def test_a_damaged_archive_is_a_one_line_error_naming_the_file(finished_run: Path, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    archive = copy / "archive.sqlite"
    for extra in ("archive.sqlite-wal", "archive.sqlite-shm"):
        (copy / extra).unlink(missing_ok=True)
    if damage == "empty":
        archive.write_bytes(b"")
    elif damage == "garbage":
        archive.write_bytes(b"not a database at all" * 100)
    else:
        archive.unlink()
        sqlite3.connect(archive).execute("CREATE TABLE t (x)").connection.close()
    for command in (("resume", str(copy)), ("review", str(copy)), ("report", str(copy))):
        one_line_error(evolve(*command), str(archive))
    assert archive.stat().st_size == (0 if damage == "empty" else archive.stat().st_size)  # not "repaired"


@pytest.mark.parametrize("damage", ["config-number", "config-binary", "metrics-row", "config-of-another-problem"])
def test_a_damaged_config_or_archive_row_is_a_one_line_error_naming_the_file(
        finished_run: Path, tmp_path: Path, damage: str) -> None:
    """These were tracebacks: a config.json holding a number (TypeError), one not UTF-8
    (UnicodeDecodeError), a program row whose metrics are not JSON (JSONDecodeError)."""
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    named = copy / "config.json"
    if damage == "config-number":
        named.write_text("5\n")
    elif damage == "config-binary":
        named.write_bytes(b"\xff\xfe{}")
    elif damage == "config-of-another-problem":  # review --test scored the toy's programs on smtt
        named.write_text(named.read_text().replace('"problem": "toy"', '"problem": "smtt"', 1))
    else:
        named = copy / "archive.sqlite"
        with sqlite3.connect(named) as db:
            db.execute("UPDATE programs SET metrics = 'not json'")
    one_line_error(evolve("review", str(copy)), str(named))


@pytest.mark.parametrize(
    "flags",
    [
        ("--llm", "replay:{tmp}/no-such-recording.jsonl"),
        ("--record", "{tmp}/no/such/folder/c.jsonl"),
        ("--option", "delay_s=x", "--option", "colour=1"),
    ],
)
def test_a_run_that_fails_before_its_first_program_leaves_no_folder(tmp_path: Path, flags: tuple[str, ...]) -> None:
    problem = tmp_path / "toy"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    args = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    result = evolve("run", str(problem), *args, cwd=tmp_path)
    one_line_error(result)
    assert not (tmp_path / "runs").exists()


def test_a_seed_that_fails_removes_the_folder_it_created(tmp_path: Path) -> None:
    problem = tmp_path / "toy"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    (problem / "seed.py").write_text("# EVOLVE-BLOCK-START\ndef order(x):\n    return [0] * len(x)\n"
                                     "# EVOLVE-BLOCK-END\n")  # infeasible
    out = tmp_path / "new" / "run"
    result = evolve("run", str(problem), "--out", str(out))
    one_line_error(result, "the seed program fails")
    assert not out.exists()
    # It said "run folder: OUT" before the seed ran, and nothing after: it now says the folder went.
    assert f"run folder: {out}" in result.stdout
    assert result.stdout.rstrip().endswith(f"run folder {out} removed: the run failed before any program was evaluated")


def test_a_feature_the_evaluation_does_not_measure_is_named_before_the_search(tmp_path: Path) -> None:
    """A [[features]] name no metric has put every program in one MAP-Elites cell, silently."""
    problem = tmp_path / "toy"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    toml = problem / "problem.toml"
    toml.write_text(toml.read_text().replace('name = "code_length"', 'name = "mean_gap"'))
    out = tmp_path / "run"
    result = evolve("run", str(problem), "--iterations", "2", "--out", str(out))
    one_line_error(result, f"{toml}: features[0].name = 'mean_gap': the evaluation measures no such metric",
                   "gap_mean_pct")
    assert not out.exists()


@pytest.mark.parametrize(("seed", "said"), [
    ("def order(x):\n    return list(range(len(x)))\n", "the seed has no EVOLVE-BLOCK, so a search could change nothing"),
    ("# EVOLVE-BLOCK-START\ndef order(x):\n    return list(range(len(x)))\n",
     "the seed's EVOLVE-BLOCK markers: "),
])
def test_a_seed_without_a_block_is_named_before_the_search(tmp_path: Path, seed: str, said: str) -> None:
    """Every proposal of such a run failed ("the program has no EVOLVE-BLOCK"), and it ended as it began."""
    problem = tmp_path / "toy"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    (problem / "seed.py").write_text(seed)
    out = tmp_path / "run"
    result = evolve("run", str(problem), "--iterations", "2", "--out", str(out))
    one_line_error(result, f"{problem / 'seed.py'}: {said}")
    assert not out.exists()


def test_a_rule_table_that_does_not_match_the_seed_is_named_whatever_the_search(tmp_path: Path) -> None:
    """A model's prompt states the [rule] inputs too; the table was checked only for the GP."""
    problem = tmp_path / "toy"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    toml = problem / "problem.toml"
    toml.write_text(toml.read_text().replace("[objective]", '[rule]\nfunction = "prio"\ninputs = [{ name = "x", '
                                                            'kind = "array", doc = "the numbers" }]\n\n[objective]'))
    out = tmp_path / "run"
    result = evolve("run", str(problem), "--llm", "mutate", "--iterations", "2", "--out", str(out))
    one_line_error(result, f"{toml}: [rule] function 'prio' is not a top-level function inside the seed's EVOLVE-BLOCK")
    assert not out.exists()


def test_an_out_folder_holding_other_things_is_refused_in_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    """--out into a folder of other files (a checkout, a home folder, '.') was accepted: the run's
    files mixed with them. A new or empty folder, or a run's own traces, are what --out takes."""
    problem = tmp_path / "toy"
    shutil.copytree(TESTS / "toy_problem", problem, ignore=shutil.ignore_patterns("__pycache__"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine\n")
    (busy / "data").mkdir()
    before = sorted(p.name for p in busy.iterdir())
    result = evolve("run", str(problem), "--iterations", "1", "--out", str(busy))
    one_line_error(result, f"{busy}: not empty and not a run folder (it holds 'data' and 1 more)",
                   "expected a new or empty folder for the run")
    study = evolve("run", str(problem), "--iterations", "1", "--seeds", "0-1", "--out", str(busy))
    one_line_error(study, f"{busy}: not empty and not a study folder (it holds 'data' and 1 more)")
    assert sorted(p.name for p in busy.iterdir()) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    made = evolve("run", str(problem), "--iterations", "1", "--out", str(empty))
    assert made.returncode == 0, made.stderr
    again = evolve("run", str(problem), "--iterations", "1", "--out", str(empty))
    one_line_error(again, f"already holds a run (use 'evolve resume {empty}' to continue it)")


@pytest.mark.parametrize("name", ["run#1", "a?b", "50%"])
def test_a_run_folder_named_with_uri_characters_holds_its_own_archive(tmp_path: Path, name: str) -> None:
    """SQLite opens archives by URI: an unquoted ``file:.../run#1/archive.sqlite`` was the file
    ``.../run`` (created there, empty), so the run wrote its archive beside its folder and its
    review read nothing."""
    shutil.copytree(TESTS / "toy_problem", tmp_path / "toy", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "runs" / name
    made = evolve("run", str(tmp_path / "toy"), "--iterations", "2", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [name]  # nothing beside it
    db = sqlite3.connect(out / "archive.sqlite")
    try:
        assert db.execute("SELECT COUNT(*) FROM programs").fetchone()[0] >= 1
    finally:
        db.close()
    review = evolve("review", str(out), "--test")
    assert review.returncode == 0, review.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [name]


def toy_with_older_scores(tmp_path: Path) -> Path:
    """The toy problem whose verifier calls a score older when its metrics hold 'older'."""
    toy = tmp_path / "toy"
    shutil.copytree(TESTS / "toy_problem", toy, ignore=shutil.ignore_patterns("__pycache__"))
    with (toy / "toy_verifier.py").open("a") as verifier:  # ToyVerifier is the file's last class
        verifier.write("\n    @staticmethod\n    def stale_scores(metrics):\n"
                       "        return 'by an older verifier (a test)' if 'older' in metrics else None\n")
    return toy


def test_the_best_across_runs_leaves_out_a_run_its_verifier_calls_older(tmp_path: Path) -> None:
    """A run scored by an older verifier (smtt_rule's before its audit admitted only index rules,
    when a look-ahead kept its score) is not the problem's best across runs, however high its
    score: it does not compare.  `evolve best` names the runs it leaves out (it had reported it)."""
    toy = toy_with_older_scores(tmp_path)
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        made = evolve("run", str(toy), "--iterations", "2", "--out", str(runs / "toy" / name))
        assert made.returncode == 0, made.stderr
    with sqlite3.connect(runs / "toy" / "b" / "archive.sqlite") as db:  # b: an archive of that older verifier
        db.execute("UPDATE programs SET score = score + 1000, metrics = json_set(metrics, '$.older', 1.0) "
                   "WHERE score IS NOT NULL")
    found = evolve("best", "toy", "--runs-dir", str(runs), "--json")
    assert found.returncode == 0, found.stderr
    document = json.loads(found.stdout)
    assert document["run_dir"] == str(runs / "toy" / "a") and document["stale_runs"] == [str(runs / "toy" / "b")]
    said = evolve("best", "toy", "--runs-dir", str(runs))
    assert "runs left out (1): their scores were made by an older verifier (a test)" in " ".join(said.stdout.split())
    shutil.rmtree(runs / "toy" / "a")
    one_line_error(evolve("best", "toy", "--runs-dir", str(runs)), "runs left out (1): their scores were made by")


def test_resuming_a_run_its_verifier_calls_older_says_so_first(tmp_path: Path) -> None:
    """`evolve resume` of a run scored by an older verifier kept comparing children with those
    scores (its best, maybe a program the verifier now refuses, stayed the best) without a word."""
    toy = toy_with_older_scores(tmp_path)
    run = tmp_path / "run"
    assert evolve("run", str(toy), "--iterations", "2", "--out", str(run)).returncode == 0
    fresh = evolve("resume", str(run), "--iterations", "3")
    assert fresh.returncode == 0 and "older verifier" not in fresh.stdout, fresh.stderr
    with sqlite3.connect(run / "archive.sqlite") as db:
        db.execute("UPDATE programs SET metrics = json_set(metrics, '$.older', 1.0) WHERE score IS NOT NULL")
    said = evolve("resume", str(run), "--iterations", "4")
    assert said.returncode == 0, said.stderr
    assert "this run's scores were made by an older verifier (a test); its programs keep them" in " ".join(said.stdout.split())
