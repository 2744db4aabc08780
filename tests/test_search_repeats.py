"""The default offline search of moe and jssp repeats exactly from its seed.

Until 2026-12-07 their second MAP-Elites feature was a CPU time (moe's ``runtime_ms``, jssp's
``ms_per_instance``): it moves ~10 % run to run, so a program near a bin edge landed in another
cell and the run took another path from there (two default moe runs parted at iteration 6).
Now both are shapes of the solutions the trusted scorer measures (``colocated_share``,
``completion_share``). Two real runs (CLI, sandboxes) with the same seed must archive the same
programs, with the same parents, scores, features and cells.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.population import cell_key
from evolve.problem import load_problem

REPO = Path(__file__).resolve().parent.parent
TIMES = ("runtime_ms", "ms_per_instance", "wall_ms", "cpu_ms", "seconds")


def _run(problem: str, out: Path, iterations: int, *options: str) -> None:
    command = [sys.executable, "-m", "evolve.cli", "run", problem, "--seed", "3", "--iterations", str(iterations),
               "--out", str(out), *options]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"},
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def _archive(out: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{out / 'archive.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, code_hash, parent_id, island, iteration, status, score, features"
                          " FROM programs ORDER BY id").fetchall()
    return rows


@pytest.mark.parametrize(("problem", "iterations", "options"), [
    # moe: timing only costs time here (it changes no placement): no warm-up, one timed call a window
    ("moe", 4, ("--option", "timing_repeats=0", "--option", "warmup_calls=0")),
    ("jssp", 6, ()),
])
def test_the_default_search_repeats_program_by_program(problem: str, iterations: int, options: tuple[str, ...],
                                                        tmp_path: Path) -> None:
    spec = load_problem(problem).spec
    assert not any(f.name in TIMES or f.name.startswith(TIMES) for f in spec.features)
    _run(problem, tmp_path / "a", iterations, *options)
    _run(problem, tmp_path / "b", iterations, *options)
    first, second = _archive(tmp_path / "a"), _archive(tmp_path / "b")
    assert len(first) > 1 and first == second
    located = [json.loads(row[-1]) for row in first if row[-1]]
    assert located and all(len(f) == len(spec.features) for f in located)
    # the behaviour feature is measured (not the default a metric-less program gets) and separates
    cells = {cell_key(spec.features, f) for f in located}
    assert all(f[1] != spec.features[1].min for f in located) and len(cells) > 1
