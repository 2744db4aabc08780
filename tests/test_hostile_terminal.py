"""A candidate's words reach a terminal as text, never as control sequences.

Errors, printouts and load failures are the candidate's own text, and ``evolve eval``,
``run`` and ``review`` print them: an ESC sequence there could clear the screen and draw a
fake result, an OSC one retitle the window, a bidirectional override reorder what is read.
The controller writes every control character out (``\\x1b``) where the text enters it,
for batch runs (jssp) and sessions (smtt_rule); a control checks the text did arrive.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_hostile_text import forged_moe_program

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.problem import load_problem

SEQUENCES = "\\x1b[2J\\x1b[H\\x1b[32mgap 0.000 %\\x1b[0m\\x1b]0;pwned\\x07\\u202eevil\\x9b"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

AT_RUN = f'''
import sys


def priority(**_):
    print("{SEQUENCES}")
    print("{SEQUENCES}", file=sys.stderr)
    raise RuntimeError("{SEQUENCES}")
'''

AT_LOAD = f'''
raise RuntimeError("{SEQUENCES}")


def priority(**_):
    return 0
'''


@pytest.mark.parametrize("name", ["jssp", "smtt_rule"])
@pytest.mark.parametrize("source", [AT_RUN, AT_LOAD], ids=["at_run", "at_load"])
def test_control_sequences_from_a_candidate_arrive_written_out(name: str, source: str) -> None:
    problem = load_problem(name)
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        evaluation = evaluator.run_split(source, problem.instances("quick")[:2], "quick")
    texts = [evaluation.feedback, *(r.error or "" for r in evaluation.instances)]
    assert not evaluation.ok
    assert "pwned" in evaluation.feedback and "\\x1b" in evaluation.feedback  # the control: it arrived
    for text in texts:
        assert not RAW.search(text), repr(text)


# The program's own text (the model's) is printed too: `evolve review` shows the best program's
# diff against the seed, `evolve prompt --run` the next prompt, `evolve export` without -o the
# module. A comment holding control sequences reached the terminal raw from all three (seventh
# red team); on a terminal they are written out now, piped the text is exact.
HOSTILE_COMMENT = "# \x1b[2J\x1b[H\x1b]0;pwned\x07 \u202eevil \x9b"
ACTIVE = ("\x1b[2J", "\x1b[H", "\x1b]0;", "\u202e", "\x9b")


def on_a_terminal(args: list[str], cwd: Path) -> str:
    """What ``args`` print on a pseudo-terminal (stdout and stderr)."""
    master, slave = pty.openpty()
    child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=cwd,
                             env={**os.environ, "COLUMNS": "200"})
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert child.wait(timeout=120) == 0, out.decode(errors="replace")[-2000:]
    return out.decode(errors="replace")


def test_a_programs_control_sequences_reach_a_terminal_written_out(toy_dir: Path, tmp_path: Path) -> None:
    reply = f"Idea: bigger first\n<<<<<<< SEARCH\n    return x * 1.0\n=======\n    {HOSTILE_COMMENT}\n    return -x\n>>>>>>> REPLACE\n"
    replies = tmp_path / "completions.jsonl"
    replies.write_text(json.dumps({"iteration": 1, "model": "replayed", "text": reply, "prompt_tokens": 0,
                                   "completion_tokens": 0, "cost_usd": 0.0}) + "\n")
    cli = [sys.executable, "-m", "evolve.cli"]
    done = subprocess.run([*cli, "run", str(toy_dir), "--llm", f"replay:{replies}", "--iterations", "1",
                           "--out", "run", "--no-preflight"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for command in (["review", "run"], ["prompt", "--run", "run"], ["prompt", "--run", "run", "--json"],
                    ["export", "run"]):
        shown = on_a_terminal([*cli, *command], tmp_path)
        assert "pwned" in shown, command  # the control: the comment was printed
        assert not [s for s in ACTIVE if s in shown], command
    piped = subprocess.run([*cli, "export", "run"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert HOSTILE_COMMENT in piped.stdout  # to a file, the code is exact


# A verifier's verdict may quote the candidate's reply: moe names what rebalance_experts
# "returned", a string the program can forge (it shares the process with the reply's encoder).
FORGED_MOE = forged_moe_program(b'{"returned": "\\u001b]0;pwned\\u0007\\u001b[2J\\u202eevil"}')


def test_a_verdict_quoting_a_forged_reply_reaches_the_terminal_written_out(tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(FORGED_MOE)
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", "moe", str(program), "--split", "quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "returned a \\x1b]0;pwned" in done.stdout  # the control: the verdict quoted it
    assert not RAW.search(done.stdout.replace("\n", "")), repr(done.stdout[-600:])
