"""A parallel study stops every seed, whenever the stop comes: while a seed's process is being
started (before the study has registered it), and while a seed's model calls hang in their
threads on a server that never answers (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from llm_server import FakeLLMServer, hang, ok
from process_tree import assert_all_gone, descendants, start_time
from test_model_failures import GOOD_EDIT

import evolve
from evolve import study_processes

CLI = [sys.executable, "-m", "evolve.cli"]


@pytest.mark.parametrize("how", ["sigint", "sigterm", "sigterm, SIGINT ignored"])
def test_a_stop_while_a_seeds_process_starts_stops_that_seed_too(
    toy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    spawned: dict[tuple[int, str], str] = {}
    heard: list[tuple[int, str]] = []

    def stop_now(pid: int) -> None:  # the seed's process runs; the study has not registered it
        spawned.update({(pid, start_time(pid) or ""): "seed process"})
        os.kill(os.getpid(), signal.SIGINT if how == "sigint" else signal.SIGTERM)
        time.sleep(0.2)  # were the signal not held back, it would be raised here, in the window

    monkeypatch.setattr(study_processes, "after_spawn", stop_now)
    if how == "sigterm, SIGINT ignored":  # as under nohup: the seed starts with SIGINT ignored too
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        previous = None
    try:
        with pytest.raises(KeyboardInterrupt):
            evolve.run_study(str(toy_dir), [0, 1], parallel=2, out=tmp_path / "s", iterations=100_000,
                             on_message=lambda seed, text: heard.append((seed, text)))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        for pid, start in spawned:  # were it missed, it would run on: leave nothing behind
            if start_time(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
    assert len(spawned) == 1  # the stop came while the first seed started: no second one began
    (pid, start), = spawned
    assert start_time(pid) != start, "the seed's process outlived the stop"  # reaped, not running on
    assert not [text for _, text in heard if "did not stop" in text]  # it stopped, it was not killed
    assert not (tmp_path / "s").exists()  # it never ran: nothing to keep, no folder left


def _programs(run_dir: Path) -> list[tuple[int, str]]:
    if not (run_dir / "archive.sqlite").is_file():
        return []
    try:
        db = sqlite3.connect(f"file:{run_dir / 'archive.sqlite'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT id, code_hash FROM programs ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:  # the file exists, its tables not yet
        return []


class _AnswersThenHangs:
    """The first ``answers`` chat requests get an edit; every later one hangs for ten minutes."""

    def __init__(self, answers: int) -> None:
        self.answers, self.count, self._lock = answers, 0, threading.Lock()

    def __call__(self, body: object) -> object:
        with self._lock:
            self.count += 1
            answered = self.count <= self.answers
        return ok(GOOD_EDIT) if answered else hang(600)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_seed_whose_model_calls_hang_stops_at_once_and_keeps_every_committed_program(
    toy_dir: Path, tmp_path: Path, how: str
) -> None:
    out = tmp_path / "s"
    settings = tmp_path / "settings.toml"
    settings.write_text("llm_timeout_s = 600.0\nllm_retries = 0\n")  # a call would hang for ten minutes
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-0123456789"}
    responder = _AnswersThenHangs(answers=6)
    with FakeLLMServer(responder=responder) as server:
        proc = subprocess.Popen([*CLI, "run", str(toy_dir), "--seeds", "0-1", "--workers", "2", "--iterations",
                                 "100000", "--llm", "openai/m", "--api-base", server.base_url, "--no-preflight",
                                 "--config", str(settings), "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        seen: dict[tuple[int, str], str] = {}
        try:
            deadline = time.monotonic() + 240
            while responder.count < responder.answers + 2:  # both seeds wait on a call that hangs
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                seen.update(descendants(proc.pid))
                time.sleep(0.2)
            seen.update(descendants(proc.pid))
            committed = {seed: _programs(out / f"seed-{seed}") for seed in (0, 1)}
            if how == "ctrl-c":
                os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
            else:
                os.kill(proc.pid, signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=180)  # the grace before a kill is 20 s
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert_all_gone(seen)
    assert proc.returncode == 130, stdout + stderr
    assert "did not stop" not in stdout + stderr  # each seed stopped itself: none was killed
    assert "Traceback" not in stdout + stderr
    assert sum("evolve.study_processes" in c for c in seen.values()) == 2
    for seed in (0, 1):
        assert committed[seed], f"seed {seed} committed nothing before the stop"
        assert _programs(out / f"seed-{seed}")[: len(committed[seed])] == committed[seed]


def test_the_suite_hears_ctrl_c_as_a_terminal_would() -> None:
    """However the suite was started, Ctrl-C interrupts it and the processes its tests start
    (the Ctrl-C tests above and in test_study_processes.py rely on it)."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    child = subprocess.run([sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT))"],
                           capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == str(signal.default_int_handler)


def test_a_suite_started_in_the_background_by_a_script_still_hears_ctrl_c() -> None:
    # `cmd &` in a shell without job control (a script, `sh -c`, CI) starts cmd with SIGINT
    # ignored, and nohup does not undo it: the suite so started never stopped the studies its
    # Ctrl-C tests start, and one of them waited for 100,000 iterations.
    test = f"{Path(__file__)}::test_the_suite_hears_ctrl_c_as_a_terminal_would"
    done = subprocess.run(["sh", "-c", '"$0" -m pytest -q -p no:cacheprovider "$1" </dev/null & wait $!',
                           sys.executable, test], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stdout + done.stderr
