"""Where `evolve report` spends its time on a fresh run: `python bench/report_time.py RUN_DIR`.

Copies the run folder, drops the copy's cached split evaluations (a run's first report pays
for them; later ones read them from the archive), builds the report and prints its total
time and each evaluated program's share: the best, the seed and every baseline on the test
split, then every baseline on train (the progress plot's lines), in the order the report
evaluated them. The rest of the total is the review, the plots and the page.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from loop_overhead import machine_line  # bench/loop_overhead.py (the script folder is on sys.path)

from evolve.report import build_report


def main(run_dir: Path) -> None:
    print(machine_line())
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "run"
        shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("run.lock"))
        with sqlite3.connect(copy / "archive.sqlite") as db:
            db.execute("DROP TABLE IF EXISTS split_evaluations")
        started = time.time()
        seconds = build_report(copy, copy / "report.html")
        with sqlite3.connect(copy / "archive.sqlite") as db:
            rows = db.execute("SELECT name, split, created_at FROM split_evaluations ORDER BY created_at").fetchall()
    print(f"report of {run_dir}: {seconds:.1f} s in all")
    last = started
    for name, split, created in rows:
        print(f"  {split:5} {name:24} {created - last:6.1f} s")
        last = created
    print(f"  evaluations {last - started:.1f} s; the rest (review, plots, page) {seconds - (last - started):.1f} s")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/report_time.py RUN_DIR")
    main(Path(sys.argv[1]))
