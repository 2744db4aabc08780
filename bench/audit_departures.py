"""What a planner that departs from its rule at one decision per instance could gain past the replay.

    PYTHONPATH=. python bench/audit_departures.py [--max-n 100] [--first 0] [--states 4]

smtt_rule's replay (evaluators/smtt/audit.py) asks the rule again at --states of the decisions
1 .. n-2 of each instance, drawn at random per evaluation; a sequence that departs from the
rule at one decision is caught with probability states / (n - 2), and one caught instance fails
the whole evaluation.  For every train instance (n <= --max-n) this takes MDD's sequence,
tries the 3 next-best jobs by MDD's key at each decision 1 .. n-2 (or the first --first of
them), lets MDD finish, and keeps the best single departure; then it departs greedily where
the gain per unit of risk is highest and prints the mean train gap gained at a few escape
probabilities.  Trusted side only (reads the secret-seeded train split and its references).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict

import numpy as np

from evolve.evaluators.smtt.audit import STATES_PER_INSTANCE
from evolve.problem import load_problem


def mdd_from(p: np.ndarray, d: np.ndarray, left: list[int], t: int) -> tuple[list[int], int]:
    """MDD (ties by d, then p, then input order) over ``left`` from time t: (order, tardiness)."""
    idx, pl, dl = np.array(left), p[left], d[left]
    alive = np.ones(len(left), bool)
    order, tardiness = [], 0
    for _ in range(len(left)):
        key = np.where(alive, np.maximum(dl, t + pl), np.inf)
        cand = np.flatnonzero(key == key.min())
        cand = cand[dl[cand] == dl[cand].min()]
        cand = cand[pl[cand] == pl[cand].min()]
        j = cand[0]
        alive[j] = False
        t += int(pl[j])
        tardiness += max(0, t - int(dl[j]))
        order.append(int(idx[j]))
    return order, tardiness


def best_single_departure(p: np.ndarray, d: np.ndarray, first: int) -> tuple[int, int]:
    """(MDD's total tardiness, the best with one departure at a decision 1 .. n-2)."""
    n = len(p)
    order, base = mdd_from(p, d, list(range(n)), 0)
    best, t, prefix, done = base, 0, 0, set()
    last = n - 2 if not first else min(n - 2, first)
    for i in range(n - 1):
        left = [j for j in range(n) if j not in done]
        if 1 <= i <= last:
            key = np.maximum(d[left], t + p[left])
            alternatives = [left[k] for k in np.argsort(key, kind="stable")[:4] if left[k] != order[i]][:3]
            for a in alternatives:
                ta = t + int(p[a])
                _, tail = mdd_from(p, d, [j for j in left if j != a], ta)
                best = min(best, prefix + max(0, ta - int(d[a])) + tail)
        j = order[i]
        done.add(j)
        t += int(p[j])
        prefix += max(0, t - int(d[j]))
    return base, best


def gap(value: float, reference: float) -> float:
    return 100.0 * (value - reference) / reference if reference > 0 else (0.0 if value == 0 else 100.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-n", type=int, default=100)
    parser.add_argument("--first", type=int, default=0, help="departures only at decisions 1..FIRST (0: all)")
    parser.add_argument("--states", type=int, default=STATES_PER_INSTANCE, help="decisions the replay asks")
    args = parser.parse_args()
    instances = load_problem("smtt_rule").instances("train")
    started = time.process_time()
    rows = []
    for inst in instances:
        p, d = inst.data["p"].astype(np.int64), inst.data["d"].astype(np.int64)
        if len(p) <= args.max_n:
            base, best = best_single_departure(p, d, args.first)
            rows.append((len(p), gap(base, inst.reference.value), gap(best, inst.reference.value)))
    print(f"{len(rows)} of {len(instances)} train instances, {time.process_time() - started:.0f} s of CPU")
    by_n: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for n, base, best in rows:
        by_n[n].append((base, best))
    for n, pairs in sorted(by_n.items()):
        print(f"n = {n}: MDD {np.mean([b for b, _ in pairs]):.2f} %, best single departure "
              f"{np.mean([x for _, x in pairs]):.2f} %, pays on {sum(x < b for b, x in pairs)} of {len(pairs)}; "
              f"caught with probability {min(1.0, args.states / (n - 2)):.3f} per departing instance")
    risky = sorted(((base - best, -math.log(max(1e-12, 1 - args.states / (n - 2)))) for n, base, best in rows
                    if best < base),
                   key=lambda item: -item[0] / item[1])
    risk = gain = 0.0
    targets = [0.5, 0.2, 0.1, 0.01]
    for g, r in risky:
        while targets and math.exp(-(risk + r)) < targets[0]:
            print(f"escape probability {targets.pop(0)}: mean train gap lower by {gain / len(instances):.3f} points")
        risk, gain = risk + r, gain + g
    print(f"departing wherever it pays: {gain / len(instances):.3f} points, escape probability {math.exp(-risk):.1e}")


if __name__ == "__main__":
    main()
