"""bench/score_noise.py on jssp (real sandbox, verifier and subprocess): deterministic rules score
the same every time, and the paired standard error that the problems' context.md quote is printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_jssp_rules_have_no_evaluation_noise_and_a_paired_error_over_the_instances() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "score_noise.py"), "--problem", "jssp",
                          "--repeats", "2", "--only", "seed", "mwkr", "fdd_mwkr"],
                         capture_output=True, text=True, cwd=ROOT, timeout=900,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    first, second = ({cells[0]: cells[1:] for cells in
                      ([c.strip() for c in line.strip("|").split("|")] for line in part.splitlines()
                       if line.startswith("| ") and not line.startswith("| program"))}
                     for part in run.stdout.split("\n\n"))
    for name in ("seed", "mwkr", "fdd_mwkr"):
        assert first[name][1] == "0.000000" and first[name][2] == "0 of 40"  # the same score twice
    # MWKR is the seed: no difference and no error; FDD/MWKR differs on some instances.
    difference, error = second["fdd_mwkr"][0], float(second["fdd_mwkr"][1])
    assert second["mwkr"] == ["+0.0000", "0.0000"]
    assert difference == "-0.2251" and 0.3 < error < 1.5  # points, not fractions (context.md: +/- 0.66)
