"""Parallel seeds: a study's wall time with its seeds one at a time and N at a time.

Runs ``evolve run P --seeds S --workers W --iterations N`` through the CLI for every W of
``--workers`` (default 1 and 2), interleaved ``--repeats`` times, and prints for each run the
wall time, the CPU time of the study and everything it started (seed processes, zygotes,
candidates: the children it reaped), the machine's load before and after, and each seed's best
train gap (the seeds are deterministic, so they must agree across W); then the median speed-up.

    python bench/parallel_seeds.py                                  # smtt, seeds 0-1, 15 iterations
    python bench/parallel_seeds.py --problem jssp --iterations 40 --repeats 3

With W > 1 each seed is an OS process of its own (evolve/study_processes.py); with W = 1 they
run in turn in the study's process. The machine is shared: read the load next to every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_study(problem: str, seeds: str, workers: int, iterations: int, out: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "run", problem, "--seeds", seeds, "--workers",
                           str(workers), "--iterations", str(iterations), "--out", str(out)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"evolve run {problem} --seeds {seeds} failed:\n{done.stderr[-3000:]}")
    review = subprocess.run([sys.executable, "-m", "evolve.cli", "review", str(out), "--json"],
                            capture_output=True, text=True, check=True)
    runs = json.loads(review.stdout)["runs"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"workers": workers, "wall": wall, "cpu": cpu, "load_before": load, "load_after": os.getloadavg()[0],
            "gaps": {r["seed"]: r["train"].get("gap_mean_pct") for r in runs}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="smtt")
    parser.add_argument("--seeds", default="0-1")
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"{args.problem}, seeds {args.seeds}, {args.iterations} iterations; {os.cpu_count()} cpus")
    print(f"{'workers':>7} {'wall s':>8} {'cpu s':>8} {'load before':>11} {'load after':>10}  best train gap % by seed")
    rows: list[dict] = []
    base = Path(tempfile.mkdtemp(prefix="parallel-seeds-"))
    try:
        for repeat in range(args.repeats):
            for workers in args.workers:
                row = one_study(args.problem, args.seeds, workers, args.iterations, base / f"{repeat}-w{workers}")
                rows.append(row)
                gaps = ", ".join(f"{s}: {g:.3f}" for s, g in sorted(row["gaps"].items()))
                print(f"{workers:>7} {row['wall']:>8.1f} {row['cpu']:>8.1f} {row['load_before']:>11.2f} "
                      f"{row['load_after']:>10.2f}  {gaps}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    medians = {w: statistics.median(r["wall"] for r in rows if r["workers"] == w) for w in args.workers}
    one = medians[args.workers[0]]
    print("median wall: " + ", ".join(f"--workers {w}: {m:.1f} s (speed-up {one / m:.2f}x)"
                                      for w, m in medians.items()))
    agree = len({json.dumps(r["gaps"], sort_keys=True) for r in rows}) == 1
    print("best train gaps identical across runs: " + ("yes" if agree else "NO"))


if __name__ == "__main__":
    main()
