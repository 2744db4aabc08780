"""--workers N on one machine: one trusted worker process per slot, real processes throughout.

Each worker owns its slot's sandbox (started at launch) and runs the whole
evaluation, trusted scoring included, off the controller's GIL.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.archive import Archive
from evolve.config import SandboxSettings, resolve_settings
from evolve.edits import code_hash
from evolve.errors import UserError
from evolve.evaluation import Evaluator, results_json
from evolve.executors import LocalExecutor
from evolve.problem import load_problem
from evolve.records import program_record
from evolve.sandbox.controller import wait_for_exit
from evolve.workers import WorkerProcesses, make_executor

PID_VERIFIER = '''
import os

from toy_verifier import ToyVerifier


class PidVerifier(ToyVerifier):
    """The toy verifier, saying which process scored each instance."""

    def score(self, instance, solution):
        result = super().score(instance, solution)
        result.extra["scorer_pid"] = float(os.getpid())
        return result
'''


@pytest.fixture
def pid_problem(toy_dir: Path) -> Path:
    (toy_dir / "pid_verifier.py").write_text(PID_VERIFIER)
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text().replace('entry = "toy_verifier:ToyVerifier"', 'entry = "pid_verifier:PidVerifier"'))
    return toy_dir


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def splits_of(problem_dir: Path) -> dict:
    problem = load_problem(str(problem_dir))
    return {"quick": problem.instances("quick"), "train": problem.instances("train")}


def test_each_slot_is_a_worker_process_whose_sandbox_starts_at_launch_and_which_scores(pid_problem: Path) -> None:
    problem = load_problem(str(pid_problem))
    workers = WorkerProcesses(problem, SandboxSettings(), 2, splits_of(pid_problem))
    try:
        pids = [w.proc.pid for w in workers._workers]
        assert len(set(pids)) == 2 and os.getpid() not in pids
        for pid in pids:  # before any candidate: each worker already has its zygote
            assert len(children_of(pid)) == 1
        results = [workers.evaluate(problem.seed_code, None, 0.05, True) for _ in range(4)]
    finally:
        workers.close()
    assert all(r.status == "ok" for r in results)
    scorers = {int(i.extra["scorer_pid"]) for r in results for i in r.instances}
    assert scorers <= set(pids) and os.getpid() not in scorers
    # The same judgement as the controller's own evaluator gives.
    with Evaluator(problem, SandboxSettings()) as local:
        here = local.evaluate(problem.seed_code, problem.instances("quick"), problem.instances("train"), None, 0.05)
    assert [r.score for r in results] == [here.score] * 4
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # closed and reaped


def test_a_worker_encodes_its_results_and_the_archive_commits_them_as_the_controller_would(
        toy_dir: Path, tmp_path: Path) -> None:
    problem = load_problem(str(toy_dir))
    workers = WorkerProcesses(problem, SandboxSettings(), 1, splits_of(toy_dir))
    try:
        evaluation = workers.evaluate(problem.seed_code, None, 0.05, True)
    finally:
        workers.close()
    assert evaluation.status == "ok" and evaluation.instances
    assert evaluation.instances_json == results_json(evaluation.instances)
    code = problem.seed_code
    program = program_record(problem, code, code_hash(code), None, 0, 1, 0, "llm", None, evaluation)
    archive = Archive(tmp_path / "archive.sqlite", create=True)
    archive.add_program(program, None, evaluation.instances_json)
    archive.close()
    with sqlite3.connect(tmp_path / "archive.sqlite") as db:
        (stored,) = db.execute("SELECT instances FROM programs WHERE id=?", (program.id,)).fetchone()
    assert stored == json.dumps(program.instances)  # byte for byte what the controller writes itself


def test_a_worker_that_dies_costs_one_crash_and_its_slot_gets_a_new_one(toy_dir: Path) -> None:
    problem = load_problem(str(toy_dir))
    workers = WorkerProcesses(problem, SandboxSettings(), 1, splits_of(toy_dir))
    try:
        old = workers._workers[0].proc.pid
        os.kill(old, signal.SIGKILL)
        first = workers.run_split(problem.seed_code, "quick")
        assert first.status == "crash" and "evaluation worker failed" in first.feedback
        again = workers.run_split(problem.seed_code, "quick")
        assert again.status == "ok" and workers._workers[0].proc.pid != old
    finally:
        workers.close()


def test_a_slot_that_cannot_start_is_the_same_one_line_user_error_as_in_process(toy_dir: Path) -> None:
    (toy_dir / "broken_verifier.py").write_text(
        "from toy_verifier import ToyVerifier\n\n\n"
        "class BrokenVerifier(ToyVerifier):\n    sandbox_modules = ('evolve_no_such_module',)\n")
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text().replace("toy_verifier:ToyVerifier", "broken_verifier:BrokenVerifier"))
    problem = load_problem(str(toy_dir))  # loads here; only the sandbox's import fails
    with pytest.raises(UserError) as here:
        LocalExecutor(problem, SandboxSettings(), 1, splits_of(toy_dir)).start()
    with pytest.raises(UserError) as there:
        WorkerProcesses(problem, SandboxSettings(), 2, splits_of(toy_dir))
    assert str(there.value) == str(here.value) and "\n" not in str(there.value)
    assert "evolve_no_such_module" in str(here.value)


def test_make_executor_uses_worker_processes_for_several_local_workers(toy_dir: Path) -> None:
    problem = load_problem(str(toy_dir))
    for workers, kind in ((1, LocalExecutor), (2, WorkerProcesses)):
        settings = resolve_settings(problem.spec.run, None, {"workers": workers})
        executor = make_executor(problem, settings, splits_of(toy_dir), [])
        try:
            assert isinstance(executor, kind)
            assert executor.run_split(problem.seed_code, "train").status == "ok"
        finally:
            executor.close()


def test_an_interactive_verifier_drives_its_sessions_from_the_worker(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parent / "toy_interactive"
    problem = load_problem(str(source))
    splits = {"quick": problem.instances("quick"), "train": problem.instances("train")}
    workers = WorkerProcesses(problem, SandboxSettings(), 2, splits)
    try:
        remote = workers.run_split(problem.seed_code, "train")
    finally:
        workers.close()
    with Evaluator(problem, SandboxSettings()) as local:
        here = local.run_split(problem.seed_code, splits["train"], "train")
    assert remote.status == here.status == "ok" and remote.score == here.score
    assert remote.feedback == here.feedback


EXIT_VERIFIER = '''
import atexit
import os
from pathlib import Path

from toy_verifier import ToyVerifier

# The workers inherit these; the zygote's environment has neither; the test's process is left out.
MARKS = os.environ.get("EVOLVE_TEST_EXIT_DIR")
if MARKS and os.environ.get("EVOLVE_TEST_PARENT") != str(os.getpid()):
    atexit.register(lambda: (Path(MARKS) / str(os.getpid())).write_text("exited"))


class ExitVerifier(ToyVerifier):
    pass
'''


def test_closing_the_workers_runs_each_ones_exit_handlers_and_reaps_them(
    toy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker skips the interpreter's teardown once its slot is closed, but not the exit
    # handlers (a Python problem's temp dirs are removed by one).
    (toy_dir / "exit_verifier.py").write_text(EXIT_VERIFIER)
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text().replace("toy_verifier:ToyVerifier", "exit_verifier:ExitVerifier"))
    marks = tmp_path / "exited"
    marks.mkdir()
    monkeypatch.setenv("EVOLVE_TEST_EXIT_DIR", str(marks))
    monkeypatch.setenv("EVOLVE_TEST_PARENT", str(os.getpid()))
    problem = load_problem(str(toy_dir))
    workers = WorkerProcesses(problem, SandboxSettings(), 2, splits_of(toy_dir))
    procs = [w.proc for w in workers._workers]
    try:
        assert workers.run_split(problem.seed_code, "quick").status == "ok"
    finally:
        workers.close()
    assert [p.returncode for p in procs] == [0, 0]
    assert sorted(m.name for m in marks.iterdir()) == sorted(str(p.pid) for p in procs)


def test_waiting_for_a_worker_to_exit_gives_its_status_or_times_out_leaving_it_unreaped() -> None:
    # How the controller waits for a closing worker (and a worker for its zygote): woken by the
    # process's exit, not by polling; a timeout raises as Popen.wait's does.
    done = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert wait_for_exit(done, 60.0) == 3
    assert wait_for_exit(done, 0.0) == 3  # reaped already: its status again
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_for_exit(slow, 0.05)
        assert slow.poll() is None  # still running, still ours to reap
    finally:
        slow.kill()
        slow.wait()
    assert slow.returncode == -signal.SIGKILL


def test_waiting_for_exit_works_when_the_waiter_holds_over_a_thousand_fds() -> None:
    # select() refuses an fd numbered 1024 or more: a controller with many open files (workers,
    # archives, sockets) got its pidfd past that line, and closing a worker raised ValueError.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert max(held) >= 1024
        done = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
        assert wait_for_exit(done, 60.0) == 4
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
