"""End to end through the real CLI and sandbox: eval, baselines, scheme, Gantt, solutions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "problems" / "jssp" / "seed.py"
BASELINES = ["fdd_mwkr", "fifo", "lpt", "lwkr", "mopnr", "mor", "mwkr", "random", "spt"]


def evolve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_eval_quick_json_names_the_scheme_and_reference_kinds() -> None:
    done = evolve("eval", "jssp", str(SEED), "--split", "quick", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "ok" and doc["split"] == "quick"
    assert all(row["group"].startswith("non_delay/") and row["feasible"] for row in doc["instances"])
    assert {row["reference_kind"] for row in doc["instances"]} <= {"optimal", "best_known"}
    assert "gap_mean_pct[non_delay/30x20]" in doc["metrics"]
    assert doc["metrics"]["refs_optimal[non_delay/6x6]"] == 1


def test_eval_active_scheme_with_gantt_and_solutions(tmp_path: Path) -> None:
    png, solutions = tmp_path / "gantt.png", tmp_path / "solutions.json"
    done = evolve("eval", "jssp", str(SEED), "--split", "test", "--instance", "ta01", "--scheme", "active",
                  "--gantt", str(png), "--solutions-out", str(solutions), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    [row] = doc["instances"]
    assert row["group"] == "active/ta15x15" and row["reference"] == 1231 and row["reference_kind"] == "optimal"
    assert "gap_mean_pct[active/ta15x15]" in doc["metrics"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    [saved] = json.loads(solutions.read_text())
    assert saved["name"] == "ta01" and saved["solution"]["scheme"] == "active"
    assert max(max(job) for job in saved["solution"]["end"]) == row["objective"]
    assert [len(job) for job in saved["solution"]["start"]] == [15] * 15


def test_baselines_run_through_the_sandbox_and_bad_scheme_is_one_line() -> None:
    done = evolve("baselines", "jssp", "--split", "quick", "--json")
    assert done.returncode == 0, done.stderr
    rows = {b["name"]: b for b in json.loads(done.stdout)["baselines"]}
    assert sorted(rows) == sorted(["seed", *BASELINES])
    assert all(b["status"] == "ok" for b in rows.values())
    assert rows["seed"]["score"] == rows["mwkr"]["score"]
    bad = evolve("eval", "jssp", str(SEED), "--split", "quick", "--scheme", "delay")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "--option scheme: Input should be 'non_delay' or 'active' (got 'delay')" in bad.stderr


def test_a_picture_format_matplotlib_cannot_write_is_refused_before_the_evaluation(tmp_path: Path) -> None:
    """--gantt g.txt was a matplotlib ValueError traceback (exit 1) after the whole evaluation."""
    done = evolve("eval", "jssp", str(SEED), "--split", "test", "--instance", "ta01", "--gantt", str(tmp_path / "g.txt"))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'g.txt'}: cannot draw a picture as '.txt' (expected one of: ")
    assert "pdf, " in line and "png, " in line and "svg" in line
