"""bench/smtt_split_diagnosis.py: MDD against MDDC per size with a bootstrap, and the reference check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "smtt_split_diagnosis.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)


def test_the_difference_per_size_its_interval_and_the_instances_that_carry_it() -> None:
    done = _run("--on", "valid", "--sizes", "50,500", "--draws", "500")
    assert done.returncode == 0, done.stderr
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines() if line.startswith("| ")]
    sizes = {cells[0].strip(): cells for cells in rows if cells[0].strip() in ("50", "500") and len(cells) == 8}
    assert set(sizes) == {"50", "500"}
    low, high = (float(x) for x in sizes["50"][6].split(".."))
    assert low <= float(sizes["50"][4]) <= high  # the mean difference lies inside its bootstrap interval
    # valid n = 50: one instance with optimum 4 carries MDDC's mean above MDD's; without it, MDDC is ahead.
    assert float(sizes["50"][4]) < 0 < float(sizes["50"][7].split("(")[0])
    assert "valid-n50-tf0.2-rdd0.4-26" in done.stdout


def test_the_reference_check_searches_the_shipped_witnesses_again() -> None:
    done = _run("--on", "valid", "--sizes", "100", "--polish", "0.2", "--sample", "1")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| 100 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "4 (3 + 1)"  # valid's three instances below 100 at n = 100, and one drawn at random
    assert int(cells[2]) >= 0 and "->" in cells[4]
