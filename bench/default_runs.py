"""How long each shipped problem's default run takes: `python bench/default_runs.py [PROBLEM ...]`.

Runs `evolve run PROBLEM` (the problem's own [run] defaults, no model: the offline search) in a
subprocess for each problem, one after the other, in a temporary folder, and prints a
table: wall-clock time, CPU time of the run and everything it started (sandboxes), the
iterations, and the load average before and after. The README's run times come from here.
Timings depend on machine load: the load columns say what the run competed with.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

PROBLEMS = ("smtt", "jssp", "moe", "serving", "serving_router")


def run_once(problem: str, folder: Path) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "run", problem, "--out", str(folder / problem)],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = [line for line in done.stdout.splitlines() if line.startswith("stopped:")]
    status = last[0] if last and done.returncode == 0 else f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
    return wall, cpu, status


def main() -> None:
    problems = sys.argv[1:] or list(PROBLEMS)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| problem | wall | CPU (run + sandboxes) | load before | load after | result |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for problem in problems:
            load_before = os.getloadavg()[0]
            wall, cpu, status = run_once(problem, Path(folder))
            load_after = os.getloadavg()[0]
            print(f"| {problem} | {wall:.0f} s | {cpu:.0f} s | {load_before:.1f} | {load_after:.1f} | {status} |",
                  flush=True)


if __name__ == "__main__":
    main()
