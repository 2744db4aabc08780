"""How often smtt_rule's subset check catches a look-ahead built to pass it, and what that gains.

    PYTHONPATH=. nice -n 10 python bench/subset_check_escape.py [--split train] [--max-n 50]
        [--draws 20] [--only NAME ...] [--min-jobs 8]

The subset check (evaluators/smtt/audit.py) asks the rule once per instance in each of
SUBSET_SESSIONS fresh processes, at a decision drawn half of the time among those where the
run's job is not MDD's, with the run's job and a random half of the other unscheduled jobs and
the full state's scalars; an index rule chooses as it did.  A pilot (try the base rule's next
few jobs first, finish with MDD, keep the cheapest) leaves its base rule at a few decisions per
instance, and only a check there, with the jobs that made it leave removed, can see it.  These
attackers also see the check coming: in their run they know the whole state, so they try
random halves themselves (the check's question, answered by the pilot on the jobs shown) and
take, of the pilot's and the base rule's first jobs, the one those halves agree with most; a
margin makes them leave the base rule only for a large saving; an MDDC base departs from MDD
at many decisions, where the check's bias towards MDD departures then goes.

For each attacker and each instance (n <= --max-n, the attackers act at <= 60 jobs left): the
run's sequence from the verifier's dispatcher, then --draws subset checks, each drawn by the
audit's own code (``Replay.subsets``) and asked in this process; q = the share answered
otherwise.  With k checks per instance an evaluation escapes with prod (1 - q)^k (one refused
instance fails it).  Trusted side only: reads the secret-seeded split and its references.
Prints each size's mean gap (MDD's and MDDC's for comparison; MDDC is never refused) and the
escape probability at k = 1, SUBSET_SESSIONS, 16 and 32.  The run's CPU budget is not held
here: the attackers are written for clarity (numpy loops), and one that tries halves at every
decision of an n = 50 instance would have to be faster to fit it.  ``--min-jobs 8`` asks as the
check did when it landed (no decision with 7 jobs or fewer left asked).
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections import defaultdict
from typing import Any

import numpy as np

from evolve.evaluators.smtt import audit
from evolve.evaluators.smtt.audit import SUBSET_SESSIONS, Replay
from evolve.evaluators.smtt.dispatch import choices_at, dispatch
from evolve.evaluators.smtt.verifier import cpu_budget_s
from evolve.problem import load_problem
from evolve.verifier import Instance

PILOT = '''
import numpy as np

G, D = {margin}, {draws}  # a departure must save G of the rollout; D random halves tried in the run


def base(t, p, d, p_max, p_mean):
    return {base}  # an index rule: each job's key from its own p and d and the scalars


def rollout(p, d, t):
    p, d, total = p.copy(), d.copy(), 0.0
    while len(p):
        k = int(np.argmin(np.maximum(d, t + p)))
        t += p[k]
        total += max(t - d[k], 0.0)
        p, d = np.delete(p, k), np.delete(d, k)
    return total


def pilot(t, p, d, key):
    \"\"\"The base rule's choice, unless one of its next two, tried first and followed by MDD,
    saves G of the tardiness of the base rule's choice followed by MDD.\"\"\"
    cand = np.argsort(key, kind="stable")[:3]
    costs = []
    for j in cand:
        rest = np.arange(len(p)) != j
        costs.append(max(t + p[j] - d[j], 0) + rollout(p[rest], d[rest], t + p[j]))
    k = int(np.argmin(costs))
    return int(cand[k]) if k and costs[k] < costs[0] * (1 - G) - 1e-9 else int(cand[0])


def priority(t, p, d, remaining_work, jobs_left, p_max, p_mean):
    m = len(p)
    key = np.asarray(base(t, p, d, p_max, p_mean), dtype=float)
    if m <= 2 or jobs_left > 60:
        return key
    p, d = np.asarray(p, float), np.asarray(d, float)
    pick = pilot(t, p, d, key)  # on a subset (jobs_left > m): the pilot on the jobs shown
    if m == int(jobs_left) and m >= 8 and D:
        # In the run: of the pilot's and the base rule's first three jobs, the one the pilot still
        # picks in most random halves that keep it (seeded by the state: the same in a replay).
        rng = np.random.default_rng([int(t), m, int(remaining_work)])
        best = None
        for j in dict.fromkeys([pick, *(int(k) for k in np.argsort(key, kind="stable")[:3])]):
            others = np.flatnonzero(np.arange(m) != j)
            same = 0
            for _ in range(D):
                kept = np.sort(np.append(rng.choice(others, len(others) // 2, replace=False), j))
                same += int(kept[pilot(t, p[kept], d[kept], key[kept])] == j)
            if best is None or same > best[0]:
                best = (same, j)
            if same == D:
                break
        pick = best[1]
    out = key.copy()
    out[pick] = -np.inf
    return out
'''
MDD_KEY = "np.maximum(d, t + p)"
# MDDC (problems/smtt_rule/problem.toml's starts): an index rule that is not MDD at many decisions.
MDDC_KEY = ("np.maximum(1.1 * p + t, d) * (1 + np.minimum(p / (t + p_max), 1) ** 2 / "
            "(1 + np.minimum(p / (t + p_max), 1) ** 2)) + p / (t + p_mean)")
MDD = "import numpy as np\n\ndef priority(t, p, d):\n    return np.maximum(d, t + p), d, p\n"
# MDD, but with 7 jobs or fewer left the first job of their best order, every order tried; asked
# with jobs removed, MDD (LAST_JOBS), or the job most fillings of the removed jobs agree on: 30
# fillings drawn within the full state's extremes, shifted to its sums, those whose best order
# starts with a removed job dropped (the run's job is always shown) (LAST_JOBS_FILLED).
LAST_JOBS = '''
import itertools

import numpy as np

ORDERS = {m: np.array(list(itertools.permutations(range(m)))) for m in range(1, 8)}


def best_first(t, p, d):
    orders = ORDERS[len(p)]
    return int(orders[int(np.argmin(np.maximum(t + np.cumsum(p[orders], axis=1) - d[orders], 0).sum(axis=1)))][0])


def priority(t, p, d, jobs_left, remaining_work, d_mean, p_max, p_min, d_max, d_min):
    key = np.maximum(d, t + p)
    m, left = len(p), int(round(jobs_left))
    if left > 7 or m < 1 or (m < left and not FILL):
        return key
    p, d = np.asarray(p, float), np.asarray(d, float)
    if m == left:
        pick = best_first(t, p, d)
    else:
        r, rng, votes = left - m, np.random.default_rng(0), np.zeros(m)
        sp, sd = remaining_work - p.sum(), d_mean * left - d.sum()
        for _ in range(30):
            pp, dd = rng.uniform(p_min, p_max, r), rng.uniform(d_min, d_max, r)
            if p_max > p.max():
                pp[0] = p_max
            if p_min < p.min():
                pp[-1] = p_min
            if d_max > d.max():
                dd[rng.integers(r)] = d_max
            if d_min < d.min():
                dd[rng.integers(r)] = d_min
            pp, dd = np.round(pp + (sp - pp.sum()) / r), dd + (sd - dd.sum()) / r
            first = best_first(t, np.concatenate([p, pp]), np.concatenate([d, dd]))
            if first < m:
                votes[first] += 1
        pick = int(np.argmax(votes)) if votes.any() else int(np.argmin(key))
    key[pick] = -np.inf
    return key
'''
ATTACKERS = {
    "pilot on MDD": PILOT.format(margin=0.0, draws=0, base=MDD_KEY),
    "pilot on MDD, halves tried": PILOT.format(margin=0.0, draws=6, base=MDD_KEY),
    "pilot on MDD, 6 % margin, halves": PILOT.format(margin=0.06, draws=10, base=MDD_KEY),
    "pilot on MDD, 10 % margin, halves": PILOT.format(margin=0.10, draws=10, base=MDD_KEY),
    "MDDC": PILOT.format(margin=0.0, draws=0, base=MDDC_KEY).replace("if m <= 2 or", "if True or"),
    "pilot on MDDC, 6 % margin, halves": PILOT.format(margin=0.06, draws=10, base=MDDC_KEY),
    "MDD, best order of the last 7": "FILL = False\n" + LAST_JOBS,
    "the same, removed jobs filled in": "FILL = True\n" + LAST_JOBS,
}
CHECKS = tuple(sorted({1, SUBSET_SESSIONS, 16, 32}))


def rule_of(source: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<rule>", "exec"), namespace)  # noqa: S102 - this file's own programs
    return namespace["priority"]


def gap(value: float, reference: float) -> float:
    return 100.0 * (value - reference) / reference if reference > 0 else (0.0 if value == 0 else 100.0)


def tardiness(p: np.ndarray, d: np.ndarray, seq: np.ndarray) -> float:
    return float(np.maximum(np.cumsum(p[seq]) - d[seq], 0).sum())


class InProcess:
    """A session stand-in: the rule asked in this process, as the sandbox's respond() asks it."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule

    def call(self, payload: dict[str, Any], reply_limit: int | None = None) -> Any:
        value = np.asarray(choices_at(self.rule, payload["states"]), dtype=np.int64)
        return type("Reply", (), {"value": value, "error": None, "cpu_seconds": 0.0})


def refused_share(rule: Any, instance: Instance, seq: list[int], draws: int, replay: Replay) -> float:
    """The share of subset checks, each drawn by the audit's own code as one of its fresh sessions
    draws it (half of them among the run's departures from MDD), that the rule answers otherwise
    than its run did."""
    session = InProcess(rule)
    return sum(replay.subsets([instance], [seq], session)[0] is not None for _ in range(draws)) / draws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="train")
    ap.add_argument("--max-n", type=int, default=50, help="instances up to this size (the pilots act at <= 60 jobs left)")
    ap.add_argument("--draws", type=int, default=20, help="subset checks drawn per instance")
    ap.add_argument("--only", nargs="*", default=None, help="attackers to run, by name (default: all)")
    ap.add_argument("--min-jobs", type=int, default=None,
                    help="ask as if SUBSET_MIN_JOBS were this (8 when the check landed)")
    args = ap.parse_args()
    if args.min_jobs is not None:
        audit.SUBSET_MIN_JOBS = args.min_jobs  # read by Replay at every draw
    instances = [i for i in load_problem("smtt_rule").instances(args.split) if len(i.data["p"]) <= args.max_n]
    mdd = rule_of(MDD)
    base: dict[str, list[float]] = defaultdict(list)
    for inst in instances:
        p, d = np.asarray(inst.data["p"], np.int64), np.asarray(inst.data["d"], np.float64)
        base[inst.group].append(gap(tardiness(p, d, np.array(dispatch(mdd, p, d))), inst.reference.value))
    groups = list(base)
    print(f"smtt_rule {args.split}, {len(instances)} instances (n <= {args.max_n}), {args.draws} subset checks each, "
          f"asked with >= {audit.SUBSET_MIN_JOBS} jobs left")
    print(f"{'rule':34} " + " ".join(f"{g:>7}" for g in groups) + "   refused/round  "
          + " ".join(f"escape k={k:<3}" for k in CHECKS) + "   s")
    print(f"{'MDD':34} " + " ".join(f"{np.mean(base[g]):6.3f}%" for g in groups))
    for name, source in ATTACKERS.items():
        if args.only and name not in args.only:
            continue
        started = time.process_time()
        rule, replay = rule_of(source), Replay(cpu_budget_s)
        replay.rng = random.Random(1)
        gaps: dict[str, list[float]] = defaultdict(list)
        shares = []
        for inst in instances:
            p, d = np.asarray(inst.data["p"], np.int64), np.asarray(inst.data["d"], np.float64)
            seq = dispatch(rule, p, d)
            gaps[inst.group].append(gap(tardiness(p, d, np.array(seq)), inst.reference.value))
            shares.append(refused_share(rule, inst, seq, args.draws, replay))
        log_pass = sum(math.log(max(1e-300, 1.0 - q)) for q in shares)
        print(f"{name:34} " + " ".join(f"{np.mean(gaps[g]):6.3f}%" for g in groups)
              + f"   {sum(shares):13.2f}  " + " ".join(f"{math.exp(k * log_pass):11.2g}" for k in CHECKS)
              + f"   {time.process_time() - started:.0f}")


if __name__ == "__main__":
    main()
