"""Runs killed at any moment resume without losing an evaluated program."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evolve.archive import Archive
from evolve.config import resolve_settings
from evolve.llm import make_llm
from evolve.loop import Controller
from evolve.problem import load_problem


def _slow_toy(toy_dir: Path, delay_s: float) -> None:
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text().replace("delay_s = 0.0", f"delay_s = {delay_s}"))


def _evolve(*args: str, **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "evolve.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs,
    )


def _programs(archive: Path) -> set[tuple[int, str]]:
    db = sqlite3.connect(archive)
    try:
        return {(int(i), str(h)) for i, h in db.execute("SELECT id, code_hash FROM programs")}
    finally:
        db.close()


def _wait_for_programs(archive: Path, count: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if archive.exists():
            try:
                if len(_programs(archive)) >= count:
                    return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} programs after {timeout}s")


def test_offline_run_archives_every_iteration_and_keeps_the_best(toy_dir: Path, tmp_path: Path) -> None:
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(problem.spec.run, None, {"iterations": 15})
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    progress = Controller(problem, settings, archive, make_llm("stub"), tmp_path).run()
    assert progress.stop_reason == "iterations" and archive.attempt_count() == 15
    seed, best = archive.seed(), archive.best()
    assert seed is not None and best is not None and best.score >= seed.score
    assert (tmp_path / "best.py").read_text() == best.code


def test_kill_9_then_resume_loses_no_evaluated_program_and_stops_at_target(toy_dir: Path, tmp_path: Path) -> None:
    _slow_toy(toy_dir, 0.03)
    out = tmp_path / "run"
    proc = _evolve("run", str(toy_dir), "--iterations", "30", "--out", str(out))
    _wait_for_programs(out / "archive.sqlite", 6, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    before = _programs(out / "archive.sqlite")
    assert len(before) >= 6

    resumed = _evolve("resume", str(out))
    stdout, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr
    after = _programs(out / "archive.sqlite")
    assert before <= after  # every program evaluated before the kill is still there
    archive = Archive(out / "archive.sqlite", readonly=True)
    assert archive.attempt_count() == 30  # and the run stopped at its target
    assert archive.program_count() == len(after)
    archive.close()


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(toy_dir: Path, tmp_path: Path) -> None:
    _slow_toy(toy_dir, 0.03)
    out = tmp_path / "run"
    proc = _evolve("run", str(toy_dir), "--iterations", "40", "--out", str(out))
    _wait_for_programs(out / "archive.sqlite", 4, proc)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert f"evolve resume {out}" in stdout
    assert len(_programs(out / "archive.sqlite")) >= 4


@pytest.mark.parametrize("target", [3])
def test_resume_with_a_new_target_extends_the_run(toy_dir: Path, tmp_path: Path, target: int) -> None:
    out = tmp_path / "run"
    assert _evolve("run", str(toy_dir), "--iterations", str(target), "--out", str(out)).wait(120) == 0
    assert _evolve("resume", str(out), "--iterations", str(target + 4)).wait(120) == 0
    archive = Archive(out / "archive.sqlite", readonly=True)
    assert archive.attempt_count() == target + 4
    archive.close()


def test_resume_with_a_target_below_what_is_done_says_it_is_a_target(toy_dir: Path, tmp_path: Path) -> None:
    """'--iterations 2' meant as '2 more' used to do nothing and exit 0; it is one line naming both numbers."""
    out = tmp_path / "run"
    assert _evolve("run", str(toy_dir), "--iterations", "4", "--out", str(out)).wait(120) == 0
    proc = _evolve("resume", str(out), "--iterations", "2")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert stderr == (f"error: --iterations 2 is the run's new target (not a number more), and {out} has already "
                      "done 4 iterations; for 2 more: --iterations 6\n")
    assert _evolve("resume", str(out), "--iterations", "6").wait(120) == 0  # as the message says
    archive = Archive(out / "archive.sqlite", readonly=True)
    assert archive.attempt_count() == 6
    archive.close()


def test_a_negative_resume_target_is_refused_before_the_folder_is_read(tmp_path: Path) -> None:
    from evolve.errors import UserError
    from evolve.runner import plan_resume

    with pytest.raises(UserError, match=r"^--iterations -5: expected the run's new target, a number of iterations >= 0$"):
        plan_resume(tmp_path, -5)


def test_parallel_evaluations_and_proposals_complete_every_iteration(toy_dir: Path, tmp_path: Path) -> None:
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(problem.spec.run, None, {"iterations": 24, "workers": 2, "concurrency": 4})
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    progress = Controller(problem, settings, archive, make_llm("stub"), tmp_path).run()
    assert progress.stop_reason == "iterations" and archive.attempt_count() == 24
    iterations = [p.iteration for p in (archive.program(i) for i in range(1, archive.program_count() + 1))]
    assert len(iterations) == len(set(iterations))  # one program per iteration at most


def test_a_run_repeats_exactly_from_its_seed(toy_dir: Path, tmp_path: Path) -> None:
    """Default concurrency: each parent is sampled after the previous child is archived."""
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(problem.spec.run, None, {"iterations": 25, "seed": 3})
    archives = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        archive = Archive(folder / "archive.sqlite", create=True)
        Controller(problem, settings, archive, make_llm("stub", seed=3), folder).run()
        archives.append([(p.code_hash, p.parent_id, p.score) for p in map(archive.program, range(1, archive.program_count() + 1))])
    assert archives[0] == archives[1] and len(archives[0]) > 10


def test_resume_refuses_a_run_whose_search_instances_changed(toy_dir: Path, tmp_path: Path) -> None:
    """Programs scored on other instances would be ranked against the old ones: one line, exit 2."""
    out = tmp_path / "run"
    assert _evolve("run", str(toy_dir), "--iterations", "3", "--out", str(out)).wait(120) == 0
    verifier = toy_dir / "toy_verifier.py"
    verifier.write_text(verifier.read_text().replace('"train": 100', '"train": 150'))  # new train seeds
    resumed = _evolve("resume", str(out), "--iterations", "6")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 2, stdout + stderr
    error = [line for line in stderr.splitlines() if line.strip()]
    assert len(error) == 1 and "different quick/train instances" in error[0], stderr
    archive = Archive(out / "archive.sqlite", readonly=True)
    assert archive.attempt_count() == 3  # nothing was added on the new instances
    archive.close()


def test_a_run_whose_problem_folder_moved_says_where_it_looked_and_how_to_go_on(toy_dir: Path, tmp_path: Path) -> None:
    """A plug-in folder renamed after its run: resume said "unknown problem 'toy' (known: jssp,
    ...)", naming neither the folder it looked in nor the file that records it."""
    out = tmp_path / "run"
    assert _evolve("run", str(toy_dir), "--iterations", "2", "--out", str(out)).wait(120) == 0
    moved = toy_dir.with_name("moved")
    toy_dir.rename(moved)
    proc = _evolve("resume", str(out), "--iterations", "3")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith(f"error: {out / 'config.json'}: the run's problem folder {toy_dir} holds no "
                             "problem.toml any more"), stderr
    assert "set problem_dir in that file to where it is now" in stderr
    config = out / "config.json"
    config.write_text(config.read_text().replace(f'"problem_dir": "{toy_dir}"', f'"problem_dir": "{moved}"'))
    assert _evolve("resume", str(out), "--iterations", "3").wait(120) == 0  # as the message says
