"""Replaying a recording past its end stops the run with one line and exit 3 (real subprocesses)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def evolve(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_replaying_past_the_recordings_end_stops_with_one_line_and_exit_3(tmp_path: Path) -> None:
    shutil.copytree(TESTS / "toy_problem", tmp_path / "toy", ignore=shutil.ignore_patterns("__pycache__"))
    recorded = evolve("run", "toy", "--llm", "mutate", "--iterations", "4", "--record", "r.jsonl",
                      "--out", "first", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr

    same = evolve("run", "toy", "--llm", "replay:r.jsonl", "--iterations", "4", "--out", "same", cwd=tmp_path)
    assert same.returncode == 0, same.stderr

    longer = evolve("run", "toy", "--llm", "replay:r.jsonl", "--iterations", "9", "--out", "longer",
                    cwd=tmp_path)
    assert longer.returncode == 3, longer.stdout + longer.stderr
    assert "Traceback" not in longer.stderr
    error = longer.stderr.strip().splitlines()
    assert len(error) == 1, longer.stderr
    assert ("replay r.jsonl ends at iteration 4 (its last recorded completion) and the run asked for "
            "iteration 5; replay with --iterations 4 or fewer") in error[0]
    # What the recording held was evaluated and kept; nothing was asked past iteration 5.
    with sqlite3.connect(tmp_path / "longer" / "archive.sqlite") as db:
        asked = sorted(row[0] for row in db.execute("SELECT iteration FROM attempts"))
    assert asked == [1, 2, 3, 4, 5]
