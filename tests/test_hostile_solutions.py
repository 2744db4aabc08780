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

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.sandbox.outcome import (
    MAX_NESTING,
    MAX_VALUES,
    encoding_of,
    parse_lines,
    too_many_values,
)

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


def test_a_line_is_read_in_the_encoding_json_itself_would_detect() -> None:
    # Every text of up to 4 bytes made of those json's tests of byte-order marks and UTF-16/32 look at.
    telling = (0x00, 0x01, 0x22, 0x5B, 0x7F, 0x80, 0xBB, 0xBF, 0xEF, 0xFE, 0xFF)
    short = [bytes(p) for n in range(5) for p in itertools.product(telling, repeat=n)]
    encoded = [text.encode(codec) for text in ('["x"]', "7") for codec in
               ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")]
    for raw in short + encoded:
        assert encoding_of(raw) == json.detect_encoding(raw), raw
        assert encoding_of(bytearray(raw)) == json.detect_encoding(raw), raw


def _nested(levels: int) -> object:
    """Objects and lists in turn, ``levels`` deep, each (but the innermost) beside numbers and a
    flat list."""
    value: object = 7
    for level in range(levels):
        value = [1, value, [2, 3]] if level % 2 else {"a": [4] if level else 4, "v": value, "n": 5}
    return value


@pytest.mark.parametrize(("levels", "refused"), [(MAX_NESTING, False), (MAX_NESTING + 1, True)])
def test_a_result_line_is_refused_from_the_first_level_past_the_limit(levels: int, refused: bool) -> None:
    # ``levels`` in all: the wide list, then the nested part, after and before many numbers
    wide = list(range(5000)) + [_nested(levels - 1)] + list(range(5000))
    blob = b'{"event": "loaded"}\n' + _line(wide)
    loaded, runs, fatal = parse_lines(blob, 1)
    assert loaded and fatal is None
    assert (runs[0].error is not None and runs[0].error.startswith("solution is nested")) is refused
    assert (runs[0].solution is None) is refused


# Each call's reply forged onto the channel ahead of the real one (a well-formed forged reply for
# the current call replaces it): just over MAX_VALUES empty lists, 6 MiB.
FLAT_BOMB = """
import sys

_channel = sys.modules["evolve.sandbox.channel"]
_calls = [0]
_BOMB = b"[" + b"[]," * 2_100_000 + b"[]]"


def FUNCTION(*args):
    _calls[0] += 1
    _channel.send(3, _channel.JSON, _calls[0], b"", _BOMB)
    return list(range(len(args[0])))
"""


def test_a_reply_of_millions_of_values_is_refused_before_it_is_parsed() -> None:
    """A call that bounds nothing (the sandbox's 64 MiB): every reply is refused on its own."""
    from evolve.sandbox import Sandbox, SandboxLimits

    with Sandbox("sandbox_fixtures:InteractiveVerifier", SandboxLimits(timeout_s=60), slot=23,
                 extra_sys_path=[str(REPO / "tests")]) as sandbox, \
            sandbox.session(FLAT_BOMB.replace("FUNCTION", "f"), "f", timeout_s=60) as session:
        replies = [session.call([0, 1, 2]) for _ in range(3)]
    assert [r.value for r in replies] == [None] * 3
    assert all(f"reply holds more than {MAX_VALUES:,} JSON values" in (r.error or "") for r in replies), replies


def test_a_reply_bomb_ends_an_smtt_session_unread(tmp_path: Path) -> None:
    """smtt's calls bound their replies (a sequence: 64 KiB + 32 bytes per job), so the bomb
    ends the session before the controller reads it; before, each of its 6 MiB was parsed."""
    program = tmp_path / "flat.py"
    program.write_text(FLAT_BOMB.replace("FUNCTION", "schedule"))
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", "smtt", str(program), "--split", "quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "killed: a reply over the 66,176 bytes the call allows on call 1" in done.stdout, done.stdout[-2000:]


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
    return np.arange(p[0])  # 8 million: 61 MiB of int64, under the 64 MiB a reply may hold
"""


def test_a_sequence_of_millions_is_refused_by_its_length_before_a_list_is_made() -> None:
    """smtt's ``interact`` made a Python list of a reply's array before ``score`` checked its
    length: 8 million numbers cost the controller ~300 MiB and a second per instance.  Now
    the array stays one and ``score`` names its length (infeasible, as any wrong length), and a
    reply beyond what a sequence can hold (64 KiB + 32 bytes per job) ends the session unread."""
    import numpy as np

    from evolve.evaluators.smtt.verifier import SmttVerifier
    from evolve.sandbox import Sandbox, SandboxLimits, SessionEnded
    from evolve.verifier import Instance

    def instance(entries: int) -> Instance:  # p[0] says how many entries the reply has
        return Instance("n5000", "n=5000", {"p": np.r_[entries, np.arange(2, 5001)], "d": np.arange(5000)})

    verifier = SmttVerifier(REPO / "problems" / "smtt", {})
    with Sandbox("evolve.evaluators.smtt:SmttVerifier", SandboxLimits(timeout_s=60)) as sandbox, \
            sandbox.session(HUGE_SEQUENCE, "schedule", timeout_s=60) as session:  # 10 s of CPU allowed per call
        got = SmttVerifier.interact(instance(20_000), session)
        assert isinstance(got, np.ndarray), type(got)  # not a list
        result = verifier.score(instance(20_000), got)
        assert not result.feasible and result.error == "sequence has 20000 entries, expected 5000", result.error
        with pytest.raises(SessionEnded) as ended:
            SmttVerifier.interact(instance(8_000_000), session)
    assert ended.value.outcome.error == "killed: a reply over the 225,536 bytes the call allows on call 2"
