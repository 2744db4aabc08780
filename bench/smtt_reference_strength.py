"""How strong smtt's train references are: `PYTHONPATH=. python bench/smtt_reference_strength.py`.

The best-known values at n >= 50 had about 10 s of CPU each (the seven baselines polished by
insertion descent, an iterated local search for 3 s, CP-SAT for the rest: docs/smtt.md,
"References"). A model judging its own program locally needs to know how hard they are to beat.
Per train group at n >= 50, against the shipped references (train only, never test):

* ``warm``: the references' own warm start (``local_search.warm_start``: every baseline plus
  insertion descent);
* ``ils@budget``: the references' iterated local search from that start for 80 % of the
  candidate's CPU budget per instance (0.1 s + 2 ms per job), in this trusted process: about what
  a program of that kind gets within its budget;
* ``ils@3s``: the same for 3 s, the references' own share before CP-SAT.

Prints the mean gap (%) over instances whose reference is above 0, as the score counts them,
how many beat the reference (negative gap), and the proven bounds' slack ((value - bound) /
value, mean %), with the machine and the load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402  (bench/machine.py)

from evolve.evaluators.smtt.local_search import iterated_descent, warm_start  # noqa: E402
from evolve.evaluators.smtt.objective import total_tardiness  # noqa: E402
from evolve.problem import load_problem  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=float, default=0.8, help="of the candidate's CPU budget per instance")
    parser.add_argument("--long", type=float, default=3.0, help="seconds of the longer ILS (0: skip it)")
    parser.add_argument("--min-n", type=int, default=50)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.system()} {platform.machine()}, {cpu_model()}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f} at the start")
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for inst in load_problem("smtt").instances("train"):
        p, d = inst.data["p"], inst.data["d"]
        n, ref = len(p), inst.reference
        if n < args.min_n or not ref.value:
            continue
        group = rows[inst.group]
        value, seq, _ = warm_start(p, d)
        group["warm"].append(100 * (value - ref.value) / ref.value)
        short = iterated_descent(p, d, seq, args.share * (0.1 + 0.002 * n), seed=n)
        group["ils@budget"].append(100 * (total_tardiness(p, d, short) - ref.value) / ref.value)
        if args.long:
            long = iterated_descent(p, d, seq, args.long, seed=n)
            group["ils@long"].append(100 * (total_tardiness(p, d, long) - ref.value) / ref.value)
        if ref.kind == "best_known" and ref.bound is not None:
            group["slack"].append(100 * (ref.value - ref.bound) / ref.value)
    columns = ["warm", "ils@budget"] + (["ils@long"] if args.long else [])
    print(f"{'group':>7} {'count':>5} " + " ".join(f"{c + ' gap %':>16} {'beat':>4}" for c in columns)
          + f" {'bound slack %':>13}")
    for name in sorted(rows, key=lambda g: int(g.split("=")[1])):
        group = rows[name]
        cells = " ".join(f"{statistics.mean(group[c]):>16.3f} {sum(g < 0 for g in group[c]):>4}" for c in columns)
        slack = f"{statistics.mean(group['slack']):>13.1f}" if group["slack"] else f"{'-':>13}"
        print(f"{name:>7} {len(group['warm']):>5} {cells} {slack}")
    print(f"ils@budget: {args.share:g} x (0.1 s + 2 ms per job); ils@long: {args.long:g} s; "
          f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
