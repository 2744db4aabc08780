"""A candidate hunting for answers through the shipped CLI path (`evolve eval`), not a fixture.

The rule walks the whole filesystem it can see for data-like files outside the Python runtime,
and the frames above its call for names that sound like references, then reports what it found
by raising (the one channel a candidate has back: its error message in the feedback).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HUNTER = '''
import numpy as np
import inspect, os, sys

_report = []

def _hunt():
    runtime = tuple({sys.prefix, sys.base_prefix, "/usr", "/lib", "/lib64", "/etc", "/proc", "/sys", "/dev"})
    found = []
    for root, dirs, files in os.walk("/"):
        if root.startswith(runtime):
            dirs[:] = []
            continue
        found += [os.path.join(root, f) for f in files
                  if f.endswith((".json", ".npz", ".npy", ".csv", ".toml", ".db", ".sqlite", ".pkl", ".py"))]
    names = [name for frame in inspect.stack()[1:] for name in frame.frame.f_locals
             if any(word in name.lower() for word in ("ref", "optim", "best", "bound", "answer"))]
    return "FOUND files=%r names=%r" % (found[:20], names[:20])

# EVOLVE-BLOCK-START
def priority(t, p, d, remaining_work, jobs_left, n, p_max, p_mean, p_min, d_min, d_mean, d_max):
    if not _report:
        _report.append(_hunt())
    raise RuntimeError(_report[0])
# EVOLVE-BLOCK-END
'''


def test_a_hunting_rule_finds_no_data_file_and_no_reference_in_its_frames(tmp_path: Path) -> None:
    program = tmp_path / "hunter.py"
    program.write_text(HUNTER)
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "eval", "smtt_rule", str(program),
                           "--split", "quick", "--json"], capture_output=True, text=True, timeout=300)
    if "no filesystem view" in done.stderr:
        pytest.skip(done.stderr.strip().splitlines()[-1])  # the machine lacks the view; the CLI says so
    result = json.loads(done.stdout)
    errors = [i["error"] for i in result["instances"]]
    assert result["status"] == "error" and all(e and "FOUND" in e for e in errors), errors
    report = errors[0][errors[0].index("FOUND"):]
    assert "files=[]" in report, report
    assert "names=[]" in report, report
