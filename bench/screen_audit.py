"""What the cascade's quick screen did in a run: `PYTHONPATH=. python bench/screen_audit.py RUN_DIR [...] [--recheck]`.

Reads each run's archive (read-only) and counts, for the children that reached evaluation: how
many the quick split stopped (failed there: crash, error, infeasible, timeout; or ``rejected``:
scored below the cascade's floor, 0.5 x |parent's quick score| under the parent's), how many went
on to train, and the evaluation seconds each kind cost (the archive's ``eval_seconds``: quick
only, or quick + train). "Saved" is what the stopped children would have cost on train, taken as
the median train-stage evaluation of the run. With ``--recheck`` every ``rejected`` child is
evaluated on train (``evolve.evaluate``, the real sandbox and verifier; the search's own split,
never test) and compared with its parent's train score: a rejected child that beats its parent
there is a good child the screen threw away. Children that passed are compared with their
parents too: how many were worse on train (what the screen let through).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402  (bench/machine.py)

import evolve  # noqa: E402


def audit(run: Path, recheck: bool) -> dict[str, float]:
    db = sqlite3.connect(f"file:{run / 'archive.sqlite'}?mode=ro", uri=True)
    problem = json.loads((run / "config.json").read_text()).get("problem", "smtt") if (run / "config.json").exists() else "smtt"
    rows = db.execute("SELECT id, parent_id, status, stage, score, eval_seconds, code FROM programs "
                      "WHERE parent_id IS NOT NULL").fetchall()
    scores = dict(db.execute("SELECT id, score FROM programs WHERE stage = 'train'").fetchall())
    kinds: Counter[str] = Counter()
    seconds: dict[str, list[float]] = {}
    worse = better = 0
    rejected_better = rechecked = 0
    for _pid, parent, status, stage, score, secs, code in rows:
        kind = "train" if stage == "train" else ("rejected" if status == "rejected" else f"quick {status}")
        kinds[kind] += 1
        seconds.setdefault(kind, []).append(secs or 0.0)
        if stage == "train" and status == "ok" and parent in scores and score is not None:
            worse += score < scores[parent]
            better += score > scores[parent]
        if recheck and status == "rejected" and parent in scores:
            evaluation = evolve.evaluate(problem, code, split="train")
            rechecked += 1
            if evaluation.score is not None and evaluation.score > scores[parent]:
                rejected_better += 1
    train_cost = statistics.median(seconds["train"]) if seconds.get("train") else 0.0
    stopped = sum(v for k, v in kinds.items() if k != "train")
    spent = sum(sum(v) for v in seconds.values())
    saved = sum(train_cost - s for k, v in seconds.items() if k != "train" for s in v)
    print(f"{run}: {problem}, {sum(kinds.values())} children evaluated: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    print(f"  stopped at quick: {stopped} ({100 * stopped / max(1, sum(kinds.values())):.0f} %); quick-only evaluations "
          f"{statistics.median([s for k, v in seconds.items() if k != 'train' for s in v] or [0]):.3f} s median, "
          f"train-stage {train_cost:.3f} s median; evaluation seconds spent {spent:.1f}, saved about {saved:.1f}")
    print(f"  passed to train and ok: {better} better than their parent there, {worse} worse")
    if recheck:
        print(f"  rejected, re-evaluated on train: {rechecked}, of which better than their parent there: {rejected_better}")
    return {"stopped": stopped, "children": sum(kinds.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--recheck", action="store_true")
    args = parser.parse_args()
    print(f"{cpu_model()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")
    for run in args.runs:
        audit(run, args.recheck)


if __name__ == "__main__":
    main()
