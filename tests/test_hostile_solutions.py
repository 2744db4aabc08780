"""A solution nested hundreds of levels deep fails its instance, not the trusted side.

``json.loads`` reads lists in lists up to about 1,000 levels, but the trusted side walks
solutions recursively afterwards (``formats.json_safe`` for ``--solutions-out`` and the review
cache, ``json.dumps``): a schedule whose first element was a list 900 levels deep made
``evolve eval smtt PROGRAM --solutions-out FILE`` end in a RecursionError traceback, and would
have done the same to ``evolve review --test`` and ``evolve report`` for a best program that
answered so on the test split.  Now the sandbox's reader refuses such a reply or result line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from evolve.sandbox.outcome import MAX_NESTING, parse_lines

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
