"""Does the SMTT train split predict held-out gaps?  `python bench/smtt_train_split.py`.

A study behind the train split's design (docs/smtt.md), run on instances of
our own generator only: no public set, and not our test split either.

* ``rules``: a population of dispatching rules of MDD/MDDC quality that differ
  where the mean gap is fragile (long jobs, late jobs, loose due dates): a
  seeded family around MDDC plus seeded random perturbations of MDD, and the
  published rules.  They run through the rule track's dispatcher.
* ``held out``: a large fresh set (its own seed stream), the full TF/RDD grid
  with REPLICATES instances per point and size.
* candidate train designs, each from its own seed stream: the old split (8
  instances per size cycling through the grid), the full grid once per size,
  and the full grid with more replicates at small sizes.

References are proxies, the same for every design: the DP optimum for
n <= 20, otherwise the best sequence any rule found, polished by an insertion
descent.  For each design the script prints the rank correlation (Spearman)
between the rules' mean gap on the design and on the held-out set, and the
held-out regret of the rule the design ranks first.  Repeated over several
independent draws of each design, because one draw is one sample.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

from evolve.evaluators.smtt.dispatch import dispatch
from evolve.evaluators.smtt.exact import dp_optimum
from evolve.evaluators.smtt.generator import GRID, SIZES, generate
from evolve.evaluators.smtt.local_search import insertion_descent
from evolve.evaluators.smtt.objective import total_tardiness

STUDY_SEED = 97531  # never used by the shipped splits
Rule = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Case:
    n: int
    tf: int
    rdd: int
    p: np.ndarray
    d: np.ndarray


def draw(stream: int, replicates: dict[int, int]) -> list[Case]:
    """The full grid, ``replicates[n]`` instances per point at size n, from one seed stream."""
    out = []
    for n, count in replicates.items():
        for rep in range(count):
            for g, (tf, rdd) in enumerate(GRID):
                rng = np.random.default_rng([STUDY_SEED, stream, n, rep * len(GRID) + g])
                out.append(Case(n, tf, rdd, *generate(n, tf, rdd, rng)))
    return out


def old_design(stream: int) -> list[Case]:
    """The train split before this study: 8 per size, cycling through the grid across sizes."""
    out = []
    for s, n in enumerate(SIZES):
        for k in range(8):
            tf, rdd = GRID[(s * 8 + k) % len(GRID)]
            rng = np.random.default_rng([STUDY_SEED, stream, n, k])
            out.append(Case(n, tf, rdd, *generate(n, tf, rdd, rng)))
    return out


def mddc_family(a: float, b: float, c: float, e: float) -> Rule:
    def rule(t, p, d, p_max, p_mean):  # noqa: ANN001, ANN202
        u = np.maximum(a * p + t, d)
        r = np.minimum(p / (t + p_max), 1.0)
        return u * (1.0 + b * r**2 / (1.0 + r**2)) + c * p / (t + p_mean) + e * np.maximum(d - t - p, 0.0) / p_mean
    return rule


def perturbed_mdd(w: np.ndarray) -> Rule:
    def rule(t, p, d, p_mean, remaining_work):  # noqa: ANN001, ANN202
        slack = d - t - p
        terms = (p, np.maximum(slack, 0.0), np.minimum(slack, 0.0), p * p / p_mean, t * p / remaining_work)
        return np.maximum(d, t + p) + sum(wi * x for wi, x in zip(w, terms, strict=True))
    return rule


def population(size: int) -> dict[str, Rule]:
    rng = np.random.default_rng(STUDY_SEED)
    rules: dict[str, Rule] = {
        "mdd": lambda t, p, d: np.maximum(d, t + p),
        "mddc": mddc_family(1.1, 1.0, 1.0, 0.0),
    }
    while len(rules) < size:
        k = len(rules)
        if k % 2:
            a, b, c, e = rng.uniform(0.9, 1.3), rng.uniform(0, 1.5), rng.uniform(0, 3), rng.uniform(-0.3, 0.3)
            rules[f"mddc({a:.2f},{b:.2f},{c:.2f},{e:.2f})"] = mddc_family(a, b, c, e)
        else:
            w = rng.normal(0, 1, 5) * np.array([0.2, 0.2, 0.2, 0.5, 0.5]) * rng.uniform(0, 1)
            rules[f"mdd+{np.round(w, 2).tolist()}"] = perturbed_mdd(w)
    return rules


def values(rules: dict[str, Rule], cases: list[Case]) -> tuple[np.ndarray, np.ndarray]:
    """(objective of every rule on every case, proxy reference of every case)."""
    table = np.zeros((len(rules), len(cases)))
    refs = np.zeros(len(cases))
    for j, case in enumerate(cases):
        best_value, best_seq = None, None
        for i, rule in enumerate(rules.values()):
            seq = dispatch(rule, case.p, case.d)
            table[i, j] = total_tardiness(case.p, case.d, seq)
            if best_value is None or table[i, j] < best_value:
                best_value, best_seq = table[i, j], seq
        if case.n <= 20:
            refs[j] = dp_optimum(case.p, case.d)[0]
        else:
            polished = insertion_descent(case.p, case.d, best_seq, time.monotonic() + 2.0)
            refs[j] = min(best_value, total_tardiness(case.p, case.d, polished))
    return table, refs


def mean_gaps(table: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Mean relative gap per rule, over cases with a non-zero reference (as the score)."""
    keep = refs > 0
    return ((table[:, keep] - refs[keep]) / refs[keep]).mean(axis=1) * 100


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=int, default=40)
    parser.add_argument("--draws", type=int, default=3, help="independent draws of each design")
    parser.add_argument("--replicates", type=int, default=4, help="held-out instances per grid point and size")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.system()} "
          f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")
    started = time.process_time()
    rules = population(args.rules)
    held_out = draw(0, dict.fromkeys(SIZES, args.replicates))
    truth = mean_gaps(*values(rules, held_out))
    print(f"{len(rules)} rules; held out: {len(held_out)} instances; mean gap there: best "
          f"{truth.min():.2f} %, MDD {truth[0]:.2f} %, MDDC {truth[1]:.2f} %, median {np.median(truth):.2f} %")
    designs: dict[str, Callable[[int], list[Case]]] = {
        "old: 8 per size, grid cycled": old_design,
        "grid x1 per size": lambda s: draw(s, dict.fromkeys(SIZES, 1)),
        "grid x2 (n<=100), x1 (200, 500)": lambda s: draw(s, {20: 2, 50: 2, 100: 2, 200: 1, 500: 1}),
        "grid x3 (n<=100), x1 (200, 500)": lambda s: draw(s, {20: 3, 50: 3, 100: 3, 200: 1, 500: 1}),
        "grid x2 per size": lambda s: draw(s, dict.fromkeys(SIZES, 2)),
    }
    print("\n| design | instances | jobs | Spearman with held out (per draw) | regret of its best, pp (per draw) |")
    print("|---|---|---|---|---|")
    for name, make in designs.items():
        rhos, regrets = [], []
        for stream in range(1, args.draws + 1):
            cases = make(stream)
            gaps = mean_gaps(*values(rules, cases))
            rhos.append(spearman(gaps, truth))
            regrets.append(truth[int(np.argmin(gaps))] - truth.min())
        jobs = sum(c.n for c in cases)
        print(f"| {name} | {len(cases)} | {jobs} | {', '.join(f'{r:.2f}' for r in rhos)} | "
              f"{', '.join(f'{r:.3f}' for r in regrets)} |", flush=True)
    print(f"\nCPU {time.process_time() - started:.0f} s")


if __name__ == "__main__":
    main()
