"""bench/jssp_validation.py: fresh instances of the test families' generators, cached CP-SAT
references re-checked on load, a run's best scored as a GP tree, instance files for `evolve eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "jssp_validation.py"
ARGS = ("--families", "abz-wide", "--replicates", "2")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=900)


def _rows(stdout: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in stdout.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Two abz-wide instances with their references (CP-SAT, cached), FDD/MWKR, MWKR and a
    "run" whose best is the seed (MWKR written as the GP writes it)."""
    folder = tmp_path_factory.mktemp("validation")
    run = folder / "study" / "seed-0"
    run.mkdir(parents=True)
    (run / "best.py").write_text((ROOT / "problems" / "jssp" / "seed.py").read_text())
    done = _run(*ARGS, "--cache", str(folder / "cache.json"), "--write-instances", str(folder / "sets"),
                str(folder / "study"))
    assert done.returncode == 0, done.stderr
    return folder, done


def test_a_runs_best_is_scored_as_its_tree_and_matches_the_same_rule_as_a_baseline(made) -> None:
    _, done = made
    table = _rows(done.stdout)
    assert set(table) == {"fdd_mwkr", "mwkr", "seed-0", "median of 1"}
    assert table["seed-0"] == table["mwkr"] == table["median of 1"]  # the seed is MWKR
    assert table["fdd_mwkr"] != table["mwkr"]
    assert "2 instances" in done.stdout and done.stderr.count("CP-SAT valid-abz-wide-10x10-") == 2


def test_references_are_cached_with_their_schedules_and_a_tampered_one_is_refused(made) -> None:
    folder, done = made
    cache = folder / "cache.json"
    again = _run(*ARGS, "--cache", str(cache), str(folder / "study"))
    assert again.returncode == 0, again.stderr
    assert "CP-SAT" not in again.stderr and _rows(again.stdout) == _rows(done.stdout)  # nothing recomputed
    saved = json.loads(cache.read_text())
    assert len(saved) == 2 and all(r["witness"] and r["kind"] in ("optimal", "best_known") for r in saved.values())
    key = next(iter(saved))
    saved[key]["value"] -= 1
    tampered = folder / "tampered.json"
    tampered.write_text(json.dumps(saved))
    refused = _run(*ARGS, "--cache", str(tampered))
    assert refused.returncode != 0 and "reference is not attained by its schedule" in refused.stderr


def test_the_written_instance_file_scores_the_same_through_evolve_eval(made) -> None:
    folder, done = made
    document = json.loads((folder / "sets" / "abz-wide.json").read_text())
    durations = [d for row in document["instances"] for job in row["jobs"] for _, d in job]
    assert len(document["instances"]) == 2 and min(durations) >= 50 and max(durations) <= 100
    evaluated = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", "jssp", "problems/jssp/baselines/mwkr.py",
                                "--instances", str(folder / "sets" / "abz-wide.json"), "--json"],
                               capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)["metrics"]  # the sandbox's schedules, the file's references
    assert f"{metrics['gap_mean_pct']:.2f}" == _rows(done.stdout)["mwkr"][0]


def test_an_unknown_family_is_one_line_naming_it() -> None:
    done = _run("--families", "abz-wide,orb")
    assert done.returncode == 2 and "--families: unknown orb" in done.stderr and "Traceback" not in done.stderr


def test_first_draws_past_the_read_ones_and_reuses_the_overlap(made, tmp_path: Path) -> None:
    folder, _ = made
    cache = tmp_path / "cache.json"
    cache.write_text((folder / "cache.json").read_text())
    later = _run(*ARGS, "--first", "1", "--cache", str(cache), "--write-instances", str(tmp_path / "sets"))
    assert later.returncode == 0, later.stderr
    # draw 1 was read before (cached), draw 2 is fresh: only it needs CP-SAT
    assert later.stderr.count("CP-SAT valid-abz-wide-10x10-") == 1 and "CP-SAT valid-abz-wide-10x10-2 " in later.stderr
    names = [row["name"] for row in json.loads((tmp_path / "sets" / "abz-wide.json").read_text())["instances"]]
    assert names == ["valid-abz-wide-10x10-1", "valid-abz-wide-10x10-2"]
    assert len(json.loads(cache.read_text())) == 3


def test_a_negative_first_is_one_line_naming_it() -> None:
    done = _run(*ARGS, "--first", "-1")
    assert done.returncode == 2 and "--first: expected 0 or more, got -1" in done.stderr and "Traceback" not in done.stderr


def test_scaled_times_leave_scale_free_rules_where_they_were(made) -> None:
    folder, done = made
    twice = _run(*ARGS, "--scale", "3", "--cache", str(folder / "cache.json"), str(folder / "study"))
    assert twice.returncode == 0, twice.stderr
    assert "every processing time x3, references too" in twice.stdout and "CP-SAT" not in twice.stderr
    before, after = _rows(done.stdout), _rows(twice.stdout)
    # FDD/MWKR and MWKR read only ratios and orders of times: the same gaps on every time scale
    assert after["fdd_mwkr"] == before["fdd_mwkr"] and after["mwkr"] == before["mwkr"] == after["seed-0"]
    refused = _run(*ARGS, "--scale", "0")
    assert refused.returncode == 2 and "--scale: expected 1 or more, got 0" in refused.stderr


def test_top_reads_a_runs_best_programs_on_train_from_its_archive(made, tmp_path: Path) -> None:
    """A real run's archive (SQLite): --top scores its best programs on train as trees."""
    folder, _ = made
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "run", "jssp", "--iterations", "6", "--seed", "1",
                           "--out", str(run)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr
    scored = _run(*ARGS, "--cache", str(folder / "cache.json"), "--top", "3", str(run))
    assert scored.returncode == 0, scored.stderr
    line = next(x for x in scored.stdout.splitlines() if x.startswith("run: its "))
    assert "best on train (of 3 read): abz-wide " in line
    low, high = (float(v) for v in line.rsplit("abz-wide ", 1)[1].split("-"))
    assert low <= float(_rows(scored.stdout)["run"][0]) <= high  # the run's best is one of them


def test_per_instance_rows_average_to_the_table(made) -> None:
    folder, done = made
    again = _run(*ARGS, "--cache", str(folder / "cache.json"), "--per-instance", str(folder / "study"))
    assert again.returncode == 0, again.stderr
    rows = {k: v for k, v in _rows(again.stdout).items() if k.startswith("valid-abz-wide-10x10-")}
    assert len(rows) == 2 and all(len(v) == 3 for v in rows.values())  # fdd_mwkr, mwkr, seed-0
    for column, name in enumerate(("fdd_mwkr", "mwkr", "seed-0")):
        mean = sum(float(v[column]) for v in rows.values()) / 2
        assert abs(mean - float(_rows(done.stdout)[name][0])) <= 0.01
