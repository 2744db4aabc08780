"""The offline search against the published rules: five seeds per problem, one table.

Runs, for every problem, ``evolve run P --seeds 0-4`` with the default search (GP, no model),
then ``evolve review STUDY --test --json``, and prints the README's table: the median (and
min-max) over the seeds of the evolved rule's held-out figure per group, next to the target
baseline's, with the wall time of every run. Everything goes through the CLI, as a user would
type it, so the figures cannot drift from what the commands do.

    python bench/offline_study.py                          # every problem: runs, review, table
    python bench/offline_study.py --problems jssp --seeds 0-1 --iterations 100   # a quick look
    python bench/offline_study.py --review-only            # table from the studies already run
                                                           # (their saved review.json)

Never tune the search on a split you report: the runs see quick/train only; test is read once,
here, by review. Timings depend on the machine's load: the table states it.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from evolve.scoring import natural_key


# What each problem is measured on. "key" is a test metric (with [group] for each group),
# "lower" whether lower is better, "baselines" the published rules the target names.
# Iterations are sized for about five minutes per run with a core to itself (one worker), an
# estimate from the CPU cost of one proposal; the table states the wall time and the load.
@dataclass(frozen=True)
class Target:
    iterations: int
    key: str
    lower: bool
    baselines: tuple[str, ...]
    claim: str
    # Further baselines the median must beat, in the groups named (smtt_rule: MDDC at n >= 100).
    also: tuple[tuple[str, tuple[str, ...]], ...] = ()


TARGETS: dict[str, Target] = {
    "smtt": Target(45, "gap_mean_pct", True, ("mdd", "mddc"), "below MDD at every n"),
    "smtt_rule": Target(15, "gap_mean_pct", True, ("mdd", "mddc"), "below MDD at every n, and MDDC at n >= 100",
                        (("mddc", ("n=100", "n=200", "n=500")),)),
    "jssp": Target(600, "gap_mean_pct", True, ("fdd_mwkr", "mwkr"), "below FDD/MWKR in every group (non-delay)"),
    "moe": Target(30, "balancedness", False, ("lpt", "deepseek_eplb"), "above LPT's balancedness"),
    "serving": Target(15, "score", False, ("shortest_prompt", "fcfs"), "above shortest-prompt-first's score"),
}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evolve.cli", *args], capture_output=True, text=True)


def run_study(problem: str, out: Path, seeds: str, parallel: int, iterations: int) -> None:
    command = ["run", problem, "--seeds", seeds, "--workers", str(parallel), "--iterations", str(iterations),
               "--out", str(out)]
    print("$ evolve " + " ".join(command), flush=True)
    done = cli(*command)
    if done.returncode != 0:
        raise SystemExit(f"evolve run {problem} failed:\n{done.stderr[-3000:]}")


def review(out: Path, workers: int) -> dict:
    print(f"$ evolve review {out} --test --json --workers {workers}", flush=True)
    done = cli("review", str(out), "--test", "--json", "--workers", str(workers))
    if done.returncode != 0:
        raise SystemExit(f"evolve review {out} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def wall_seconds(run_dir: Path) -> float:
    db = sqlite3.connect(f"file:{run_dir / 'archive.sqlite'}?mode=ro", uri=True)
    try:
        first, last = db.execute("SELECT MIN(created_at), MAX(created_at) FROM programs").fetchone()
    finally:
        db.close()
    return float(last - first)


def _figure(metrics: dict | None, key: str) -> float | None:
    if not metrics:
        return None
    value = metrics.get(key)
    return float(value) if value is not None else None


def table(problem: str, document: dict, target: Target) -> tuple[list[str], dict[str, bool]]:
    """Markdown rows: evolved median (min-max) and the baselines, per group; and, per claim,
    whether it holds (the median beats the first baseline in every group, and each ``also``)."""
    groups = [""] + [f"[{g}]" for g in _groups(document, target.key)]
    runs = [r for r in document["runs"] if r.get("test")]
    names = ["all" if g == "" else g[1:-1] for g in groups]
    lines = [f"| {problem} ({target.key}, {'lower' if target.lower else 'higher'} is better) | "
             + " | ".join(names) + " |", "|---" * (len(groups) + 1) + "|"]
    medians = []
    cells = []
    for g in groups:
        values = [v for v in (_figure(r["test"], target.key + g) for r in runs) if v is not None]
        if not values:
            cells.append("-")
            medians.append(None)
            continue
        median = statistics.median(values)
        medians.append(median)
        cells.append(f"**{_fmt(median, target.key)}** ({_fmt(min(values), target.key)}-{_fmt(max(values), target.key)})")
    lines.append(f"| evolved, median of {len(runs)} seeds (min-max) | " + " | ".join(cells) + " |")
    holds: dict[str, bool] = {}
    for i, name in enumerate(target.baselines):
        metrics = document["baselines"].get(name)
        values = [_figure(metrics, target.key + g) for g in groups]
        lines.append(f"| {name} | " + " | ".join("-" if v is None else _fmt(v, target.key) for v in values) + " |")
        extra = dict(target.also).get(name)
        if i == 0 or extra:
            claim = f"vs {name}, " + ("every group" if i == 0 else ", ".join(extra or ()))
            pairs = [(median, value) for g, median, value in zip(names, medians, values, strict=True)
                     if median is not None and value is not None and (i == 0 or g in (extra or ()))]
            holds[claim] = bool(runs) and all(m < v if target.lower else m > v for m, v in pairs)
            if i == 0 and not holds[claim]:  # level somewhere (e.g. the same placements as the baseline)?
                holds[claim + ", level allowed"] = bool(runs) and all(m <= v if target.lower else m >= v
                                                                      for m, v in pairs)
    wins = [r["versus_strongest"] for r in runs if r.get("versus_strongest")]
    if wins:
        strongest = wins[0]["baseline"]
        lines.append("")
        lines.append(f"Wins/ties/losses per seed against the strongest baseline on test ({strongest}): "
                     + ", ".join(f"seed {r['seed']}: {r['versus_strongest']['wins']}/"
                                 f"{r['versus_strongest']['ties']}/{r['versus_strongest']['losses']}"
                                 for r in runs if r.get("versus_strongest")) + ".")
    return lines, holds


def _fmt(value: float, key: str) -> str:
    """Gaps in % to two decimals; fractions such as balancedness to four."""
    return f"{value:.4f}" if key.startswith("balancedness") else f"{value:.2f}"


def _groups(document: dict, key: str) -> list[str]:
    found: list[str] = []
    for metrics in [*(r.get("test") or {} for r in document["runs"]), *document["baselines"].values()]:
        for k in metrics:
            if k.startswith(key + "[") and k[len(key) + 1:-1] not in found:
                found.append(k[len(key) + 1:-1])
    return sorted(found, key=natural_key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--parallel", type=int, default=2, help="seeds at a time (each an OS process with one worker: evolve run --seeds --workers)")
    parser.add_argument("--iterations", type=int, help="override every problem's iterations")
    parser.add_argument("--out", type=Path, default=Path("runs/offline-study"))
    parser.add_argument("--review-only", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    started = time.time()
    report = [f"Machine load at start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min), "
              f"{os.cpu_count()} cpus."]
    verdicts = []
    for problem in args.problems:
        target = TARGETS[problem]
        iterations = args.iterations or target.iterations
        out = args.out / problem
        if not args.review_only:
            run_study(problem, out, args.seeds, args.parallel, iterations)
        saved = out / "review.json"
        if args.review_only and saved.is_file():  # the review of this study, already run
            document = json.loads(saved.read_text())
        else:
            document = review(out, args.parallel)
            saved.write_text(json.dumps(document))
        rows, holds = table(problem, document, target)
        times = [wall_seconds(Path(r["run_dir"])) for r in document["runs"]]
        report += ["", f"`evolve run {problem} --seeds {args.seeds} --workers {args.parallel} "
                   f"--iterations {iterations}`, then `evolve review {out} --test`; wall time per run "
                   f"{min(times):.0f}-{max(times):.0f} s ({args.parallel} runs at a time).", "", *rows]
        verdicts.append(f"- {problem}: target '{target.claim}': "
                        + "; ".join(f"{'holds' if ok else 'does NOT hold'} ({claim}, median of seeds)"
                                    for claim, ok in holds.items()))
    load = os.getloadavg()
    report += ["", *verdicts, "", f"Total {time.time() - started:.0f} s; load at the end {load[0]:.1f}."]
    text = "\n".join(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
