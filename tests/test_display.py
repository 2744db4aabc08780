"""The run display: failures visible as they happen, and plain lines outside a terminal."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from evolve.display import RunDisplay, rate
from evolve.formats import count, digits_to_tell_apart, fmt
from evolve.progress import Progress
from evolve.stop import Stop, StopKind


def progress(done: int, target: int = 200, **kw: object) -> Progress:
    p = Progress(done=done, target=target, best_score=-1.5, best_gap=1.5, failures=0, evaluations=done,
                 prompt_tokens=1000, completion_tokens=200, cost_usd=0.01, started=time.time() - 10)
    p.session_done = done
    for key, value in kw.items():
        setattr(p, key, value)
    return p


def test_live_bar_shows_failures_by_kind_the_last_reasons_and_an_eta() -> None:
    buf = io.StringIO()
    display = RunDisplay("smtt", out=Console(file=buf, force_terminal=True, width=160))
    with display:
        display.update(progress(
            5, target=20, failures=2,
            failures_by_kind={"model": 1, "edit": 1, "evaluation": 0},
            last_failure={"model": "iteration 3: openai/x: HTTP 503 server error: overloaded",
                          "edit": "iteration 4: edit 1: its SEARCH text was not found"}))
    out = buf.getvalue()
    assert "fail 2 (model 1, edit 1, evaluation 0)" in out
    assert "last model failure: iteration 3: openai/x: HTTP 503 server error: overloaded" in out
    assert "last edit failure: iteration 4" in out
    assert "eta 0:30" in out  # 5 done in ~10 s, 15 to go


def test_a_slow_run_shows_its_evaluation_rate_not_zero() -> None:
    """A newcomer's first run on a loaded machine read "0.0 eval/s" while it evaluated one program
    every 30 to 40 s."""
    buf = io.StringIO()
    display = RunDisplay("smtt", out=Console(file=buf, force_terminal=False, width=200))
    with display:
        display.update(progress(1, target=3, started=time.time() - 38))
    line = next(x for x in buf.getvalue().splitlines() if " smtt " in x)
    assert "| 0.026 eval/s |" in line or "| 0.025 eval/s |" in line  # 1 in 38 s (39 on a slow machine)
    assert rate(0.0) == "0.0" and rate(2.345) == "2.3" and rate(0.35) == "0.35"


def test_outside_a_terminal_a_plain_line_every_5_percent_with_new_failure_reasons() -> None:
    buf = io.StringIO()
    display = RunDisplay("jssp", out=Console(file=buf, force_terminal=False, width=80))
    with display:
        for done in range(0, 41):
            last = {"evaluation": "iteration 12: timeout: instance ta01"} if done >= 12 else {}
            display.update(progress(done, failures=int(done >= 12), last_failure=last,
                                    failures_by_kind={"model": 0, "edit": 0,
                                                      "evaluation": int(done >= 12)}))
        display.update(progress(40, stop=Stop(StopKind.COMPLETED, "iterations")))
    lines = buf.getvalue().splitlines()
    progress_lines = [line for line in lines if " jssp " in line]
    assert [line.split(" jssp ")[1].split(" ")[0] for line in progress_lines] == [
        "0/200", "10/200", "20/200", "30/200", "40/200"]
    assert "failures 1 (model 0, edit 0, evaluation 1)" in progress_lines[2]
    assert "eval/s" in progress_lines[1] and "eta" in progress_lines[1] and "best -1.5" in progress_lines[1]
    # the reason is printed once, when it first appears; lines are never cut at 80 columns
    assert lines.count("  last evaluation failure: iteration 12: timeout: instance ta01") == 1
    assert max(len(line) for line in progress_lines) > 80


def test_outside_a_terminal_a_line_every_interval_even_without_progress() -> None:
    buf = io.StringIO()
    display = RunDisplay("serving_router", out=Console(file=buf, force_terminal=False),
                         interval_s=0.05)
    with display:
        display.update(progress(3))
        display.update(progress(3))  # too soon: nothing
        time.sleep(0.06)
        display.update(progress(3))  # a tick of a slow run: a line anyway
    assert buf.getvalue().count("serving_router 3/200") == 2


def test_a_run_piped_to_a_file_logs_progress_lines(toy_dir: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "evolve.cli", "run", str(toy_dir), "--iterations", "20",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if " toy " in line]
    assert [line.split(" toy ")[1].split(" ")[0] for line in lines] == ["0/20", "10/20", "20/20"]
    assert "\x1b[" not in result.stdout  # no terminal control codes in a log


def test_a_run_without_a_model_shows_no_token_or_cost_figures() -> None:
    for terminal in (True, False):
        buf = io.StringIO()
        with RunDisplay("smtt", out=Console(file=buf, force_terminal=terminal, width=200), model=False) as shown:
            shown.update(progress(5, target=20))
        out = buf.getvalue()
        assert "eval/s" in out and "-1.5" in out and "tok " not in out and "$" not in out
        buf = io.StringIO()
        with RunDisplay("smtt", out=Console(file=buf, force_terminal=terminal, width=200)) as shown:
            shown.update(progress(5, target=20))
        assert "tok 1.2k" in buf.getvalue() and "$0.01" in buf.getvalue()


def test_counts_say_one_instance_and_two_instances() -> None:
    assert [count(k, "instance") for k in (0, 1, 2)] == ["0 instances", "1 instance", "2 instances"]


def test_a_leaderboard_prints_scores_with_the_digits_that_tell_them_apart() -> None:
    """QA as a new user: `evolve review` of a default smtt run showed "-1.169", "-1.169", "-1.17"
    (below them), then six rows of "-1.171" that were not all equal: four significant digits."""
    scores = [-1.168994, -1.169031, -1.169870, -1.170610, -1.170610, -1.170662]
    digits = digits_to_tell_apart(scores)
    assert digits == 6 and [fmt(s, digits) for s in scores] == [
        "-1.16899", "-1.16903", "-1.16987", "-1.17061", "-1.17061", "-1.17066"]
    assert digits_to_tell_apart([-57.63, -1.2, None]) == 4  # four when they already differ
    assert digits_to_tell_apart([1.0, 1.0 + 1e-12]) == 8  # at most eight
