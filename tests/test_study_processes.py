"""Parallel seeds of a study run as OS processes: the same runs as in turn, live progress,
a failed seed reported while the others finish, Ctrl-C and SIGTERM stop everything, and
nothing (seed processes, zygotes, candidates) is left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_tree import assert_all_gone, descendants, uid_of

import evolve
from evolve.archive import Archive
from evolve.study import SeedOutcome, SeedsFailed

CLI = [sys.executable, "-m", "evolve.cli"]


def _programs(run_dir: Path) -> list[tuple[str, float | None, str]]:
    db = sqlite3.connect(f"file:{run_dir / 'archive.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT code_hash, score, status FROM programs ORDER BY id").fetchall()
    finally:
        db.close()


def _committed(run_dir: Path) -> int:
    """Programs in a run's archive so far (0 while the run is still creating it)."""
    if not (run_dir / "archive.sqlite").is_file():
        return 0
    try:
        return len(_programs(run_dir))
    except sqlite3.OperationalError:  # the file exists, its tables not yet
        return 0


def _attempts(run_dir: Path) -> int:
    archive = Archive(run_dir / "archive.sqlite", readonly=True)
    try:
        return archive.attempt_count()
    finally:
        archive.close()


def test_parallel_seeds_run_in_processes_of_their_own_and_match_the_seeds_run_in_turn(
    toy_dir: Path, tmp_path: Path
) -> None:
    in_turn = evolve.run_study(str(toy_dir), [0, 1], parallel=1, out=tmp_path / "a", iterations=10)
    reports: dict[int, list[int]] = {}
    ended: list[SeedOutcome] = []
    seen: dict[tuple[int, str], str] = {}

    sandbox_uids: dict[int, set[int]] = {0: set(), 1: set()}  # what each seed's sandbox runs as

    def progress(seed: int, p: object) -> None:
        reports.setdefault(seed, []).append(p.done)  # type: ignore[attr-defined]
        seen.update(descendants(os.getpid()))
        with contextlib.suppress(OSError, ValueError):  # the seed's run.lock holds its process's pid
            below = descendants(int((tmp_path / "b" / f"seed-{seed}" / "run.lock").read_text()))
            sandbox_uids[seed] |= {uid for pid, _ in below if (uid := uid_of(pid)) not in (None, 0)}

    both = evolve.run_study(str(toy_dir), [0, 1], parallel=2, out=tmp_path / "b", iterations=10,
                            on_progress=progress, on_done=ended.append)
    if os.geteuid() == 0:  # as root candidates run as claimed uids; never two seeds on one
        assert sandbox_uids[0] and sandbox_uids[1] and not sandbox_uids[0] & sandbox_uids[1]
    for seed in (0, 1):
        alone, parallel = in_turn / f"seed-{seed}", both / f"seed-{seed}"
        assert _programs(parallel) == _programs(alone) and len(_programs(alone)) > 3
        assert evolve.open_run(parallel).best.code == evolve.open_run(alone).best.code
        assert evolve.open_run(parallel).best.score == evolve.open_run(alone).best.score
    # Each seed ran in a process of its own (run.lock holds the pid of the run's process).
    pids = {int((both / f"seed-{s}" / "run.lock").read_text()) for s in (0, 1)}
    assert len(pids) == 2 and os.getpid() not in pids
    assert sorted(reports) == [0, 1] and reports[0][-1] == reports[1][-1] == 10  # live, across processes
    assert sorted((o.seed, o.ok) for o in ended) == [(0, True), (1, True)]
    assert pids <= {pid for pid, _ in seen}  # children of this process, gone now like their zygotes
    assert any("evolve.sandbox.zygote" in c for c in seen.values())
    assert_all_gone(seen)


def test_a_seed_process_that_dies_is_reported_and_the_other_seeds_finish(toy_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    target = 30  # seed 1 is killed after its 2nd; the others, and seed 1 resumed, run to the end
    killed: list[int] = []
    seen: dict[tuple[int, str], str] = {}

    def progress(seed: int, p: object) -> None:
        seen.update(descendants(os.getpid()))
        if seed == 1 and not killed and p.done >= 2:  # type: ignore[attr-defined]
            pid = int((out / "seed-1" / "run.lock").read_text())
            os.kill(pid, signal.SIGKILL)  # as the OOM killer would
            killed.append(pid)

    with pytest.raises(SeedsFailed) as caught:
        evolve.run_study(str(toy_dir), [0, 1, 2], parallel=2, out=out, iterations=target, on_progress=progress)
    failed = caught.value.failed
    assert [o.seed for o in failed] == [1] and "killed by signal 9" in (failed[0].error or "")
    assert "seed 1: its process killed by signal 9" in str(caught.value)
    assert _attempts(out / "seed-0") == _attempts(out / "seed-2") == target
    kept = _attempts(out / "seed-1")
    assert 2 <= kept < target  # every program evaluated before the kill is committed
    assert_all_gone(seen)  # its sandbox went once its controller's channel closed
    resumed = evolve.resume(out / "seed-1")
    assert resumed.last_progress is not None and resumed.last_progress.done == target


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "study killed"])
def test_interrupting_a_parallel_study_stops_every_seed_and_leaves_them_resumable(
    toy_dir: Path, tmp_path: Path, how: str
) -> None:
    out = tmp_path / "s"
    proc = subprocess.Popen([*CLI, "run", str(toy_dir), "--seeds", "0-1", "--workers", "2", "--iterations",
                             "100000", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    seen: dict[tuple[int, str], str] = {}
    try:
        deadline = time.monotonic() + 120
        while not all(_committed(out / f"seed-{s}") >= 3 for s in (0, 1)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            seen.update(descendants(proc.pid))
            time.sleep(0.2)
        seen.update(descendants(proc.pid))
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
        elif how == "sigterm":
            os.kill(proc.pid, signal.SIGTERM)  # the study's process only
        else:
            os.kill(proc.pid, signal.SIGKILL)  # no clean-up of its own: its seeds stop on their parent's death
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert_all_gone(seen)
    if how == "study killed":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, stderr
        assert "interrupted; every evaluated program of every seed is saved" in stdout
        assert "Traceback" not in stderr
    assert sum("evolve.study_processes" in c for c in seen.values()) == 2
    for seed in (0, 1):
        run_dir = out / f"seed-{seed}"
        kept = _attempts(run_dir)
        assert kept >= 2
        resumed = subprocess.run([*CLI, "resume", str(run_dir), "--iterations", str(kept + 3)],
                                 capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert _attempts(run_dir) == kept + 3


def test_study_mistakes_are_one_line_before_any_process_and_a_failed_seed_names_itself(
    toy_dir: Path, tmp_path: Path
) -> None:
    bad = subprocess.run([*CLI, "run", str(toy_dir), "--seeds", "0-1", "--workers", "2", "--edit-mode", "nonsense",
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "edit_mode" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stdout == "" and not (tmp_path / "bad").exists()  # no table, no folder: nothing started
    out = tmp_path / "s"
    out.mkdir()
    (out / "seed-1").write_text("in the way")
    done = subprocess.run([*CLI, "run", str(toy_dir), "--seeds", "0-2", "--workers", "2", "--iterations", "4",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"seed 1: {out / 'seed-1'}: exists and is not a folder" in done.stderr
    assert _attempts(out / "seed-0") == _attempts(out / "seed-2") == 4
    assert f"review it with: evolve review {out}" in done.stdout


def test_a_problem_defined_in_python_runs_as_a_parallel_study(tmp_path: Path) -> None:
    # py_problem is importable from tests/ only: the seeds' processes get this one's sys.path.
    from py_problem import SEED, CompletionVerifier

    problem = evolve.define_problem("weights", CompletionVerifier, SEED, options={"jobs": 10}, run={"islands": 2})
    folder = evolve.run_study(problem, [0, 1], parallel=2, out=tmp_path / "s", iterations=4)
    for seed in (0, 1):
        run_dir = folder / f"seed-{seed}"
        assert (run_dir / "problem" / "problem.toml").is_file()  # kept as a run of it alone keeps it
        assert _attempts(run_dir) == 4


def test_a_parallel_study_records_one_replayable_file_per_seed(toy_dir: Path, tmp_path: Path) -> None:
    record = tmp_path / "completions.jsonl"
    study = evolve.run_study(str(toy_dir), [0, 1], parallel=2, out=tmp_path / "s", iterations=4,
                             llm="mutate", record=record)
    assert not record.exists()  # parallel seeds would interleave their lines in one file
    for seed in (0, 1):
        mine = tmp_path / f"completions.seed-{seed}.jsonl"
        assert len(mine.read_text().splitlines()) >= 3
        again = evolve.run(str(toy_dir), seed=seed, iterations=4, llm=f"replay:{mine}", out=tmp_path / f"r{seed}")
        assert _programs(again.dir) == _programs(study / f"seed-{seed}")
