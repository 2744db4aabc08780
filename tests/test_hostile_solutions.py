"""A solution nested hundreds of levels deep fails its instance, not the trusted side.

``json.loads`` reads lists in lists up to about 1,000 levels, but the trusted side walks
solutions recursively afterwards (``formats.json_safe`` for ``--solutions-out`` and the review
cache, ``json.dumps``): a schedule whose first element was a list 900 levels deep made
``evolve eval smtt PROGRAM --solutions-out FILE`` end in a RecursionError traceback, and would
have done the same to ``evolve review --test`` and ``evolve report`` for a best program that
answered so on the test split.  Now the sandbox's reader refuses such a reply or result line.

A flat one can be as bad for memory: ``json.loads`` makes an object of every value, and 60 MiB
of empty lists forged onto the channel as each call's reply ran ``evolve eval smtt`` to 3 GiB
and 30 s of CPU, and its worker into a restart ("no reply within 29 s"): the parsing held the
controller past the session's deadline.  Now a reply or line that may hold more than
``MAX_VALUES`` values is refused before it is parsed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from evolve.sandbox.outcome import MAX_NESTING, MAX_VALUES, parse_lines, too_many_values

REPO = Path(__file__).resolve().parents[1]

DEEP_SCHEDULE = """
def schedule(p, d):
    first = 0
    for _ in range(900):
        first = [first]
    return [first] + list(range(1, len(p)))
"""


def test_a_deeply_nested_schedule_is_an_error_of_the_candidate(tmp_path: Path) -> None:
    program = tmp_path / "deep.py"
    program.write_text(DEEP_SCHEDULE)
    out = tmp_path / "solutions.json"
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", "smtt", str(program), "--split", "quick",
                           "--solutions-out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stdout + done.stderr
    assert f"nested more than {MAX_NESTING} levels deep" in done.stdout, done.stdout[-2000:]
    assert json.loads(out.read_text())  # the solutions file is written, without the deep ones


def _line(solution: object) -> bytes:
    return json.dumps({"solution": solution, "error": None, "seconds": 0.01}).encode() + b"\n"


def test_a_forged_result_line_nested_too_deeply_fails_only_its_instance() -> None:
    deep: object = 0
    for _ in range(900):
        deep = [deep]
    shallow = {"scheme": "non_delay", "start": [[0, 3]], "end": [[3, 5]]}  # jssp's shape, 3 levels
    blob = b'{"event": "loaded"}\n' + _line(deep) + _line(shallow)
    loaded, runs, fatal = parse_lines(blob, 2)
    assert loaded and fatal is None
    assert runs[0].solution is None and runs[0].error is not None and runs[0].error.startswith("solution is nested")
    assert runs[1].solution == shallow and runs[1].error is None


# Each call's reply forged onto the channel ahead of the real one (a well-formed forged reply for
# the current call replaces it): just over MAX_VALUES empty lists, 6 MiB.
FLAT_BOMB = """
import sys

_channel = sys.modules["evolve.sandbox.channel"]
_calls = [0]
_BOMB = b"[" + b"[]," * 2_100_000 + b"[]]"


def schedule(p, d):
    _calls[0] += 1
    _channel.send(3, _channel.JSON, _calls[0], b"", _BOMB)
    return list(range(len(p)))
"""


def test_a_reply_of_millions_of_values_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    program = tmp_path / "flat.py"
    program.write_text(FLAT_BOMB)
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", "smtt", str(program), "--split", "quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    # every call of the session was answered, each refused on its own
    assert "6 of 6 instances failed" in done.stdout, done.stdout[-2000:]
    assert f"reply holds more than {MAX_VALUES:,} JSON values" in done.stdout, done.stdout[-2000:]


def test_a_result_line_of_millions_of_values_fails_only_its_instance() -> None:
    flat = b'{"solution": [' + b"[]," * 2_100_000 + b'[]], "error": null, "seconds": 0.01}\n'
    assert too_many_values(flat) and not too_many_values(_line(list(range(1000))))
    blob = b'{"event": "loaded"}\n' + flat + _line([1, 0])
    loaded, runs, fatal = parse_lines(blob, 2)
    assert loaded and fatal is None
    assert runs[0].solution is None and runs[0].error is not None and "more than 2,000,000" in runs[0].error
    assert runs[1].solution == [1, 0] and runs[1].error is None


HUGE_SEQUENCE = """
import numpy as np

def schedule(p, d):
    return np.arange(8_000_000)  # 61 MiB of int64: under the 64 MiB a reply may hold
"""


def test_a_sequence_of_millions_is_refused_by_its_length_before_a_list_is_made() -> None:
    """smtt's ``interact`` made a Python list of a reply's array before ``score`` checked its
    length: 8 million numbers cost the controller ~300 MiB and a second per instance.  Now
    the array stays one and ``score`` names its length (infeasible, as any wrong length)."""
    import numpy as np

    from evolve.evaluators.smtt.verifier import SmttVerifier
    from evolve.sandbox import Sandbox, SandboxLimits
    from evolve.verifier import Instance

    instance = Instance("n5000", "n=5000", {"p": np.arange(1, 5001), "d": np.arange(5000)})  # 10 s of CPU allowed
    with Sandbox("evolve.evaluators.smtt:SmttVerifier", SandboxLimits(timeout_s=60)) as sandbox, \
            sandbox.session(HUGE_SEQUENCE, "schedule", timeout_s=60) as session:
        got = SmttVerifier.interact(instance, session)
    assert isinstance(got, np.ndarray), type(got)  # not a list of 8 million
    result = SmttVerifier(REPO / "problems" / "smtt", {}).score(instance, got)
    assert not result.feasible and result.error == "sequence has 8000000 entries, expected 5000", result.error
