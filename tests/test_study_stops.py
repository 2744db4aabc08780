"""A parallel study stops every seed, whenever the stop comes: even while a seed's process is
being started (before the study has registered it)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from process_tree import start_time

import evolve
from evolve import study_processes


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
