"""A candidate's words reach a terminal as text, never as control sequences.

Errors, printouts and load failures are the candidate's own text, and ``evolve eval``,
``run`` and ``review`` print them: an ESC sequence there could clear the screen and draw a
fake result, an OSC one retitle the window, a bidirectional override reorder what is read.
The controller writes every control character out (``\\x1b``) where the text enters it,
for batch runs (jssp) and sessions (smtt_rule); a control checks the text did arrive.
"""

from __future__ import annotations

import re

import pytest

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
