"""Which instances make a 25-instance set lose: `python bench/smtt_subset_losses.py STUDY [--size N]`.

`bench/smtt_validation.py --subsets` counts the sets of the test split's design (a fresh stream's
replicate r: one instance per TF/RDD point, 25 per size) where a study's rules are above MDD (n < 75)
or MDDC (n >= 75). This says why, at one size: each seed's mean gap per set; for every set where
the median over seeds is above the baseline, the instances that add most to the difference (TF/RDD
cell, reference, the baselines' and each seed's gap); how much of each pooled mean comes from
instances with a small reference (sum of their gaps over all instances); and how many instances
with a small reference each split holds (train, valid, fit and the streams, never test). A mean of
relative gaps at n = 20 is carried by the few instances whose optimum is a few units of tardiness:
one with optimum 1 scheduled at 3 is 200 %, 8 points of a 25-instance mean.

The fresh streams and their references are bench/smtt_validation.py's (its cache, runs/smtt-validation-sK.npz).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from smtt_validation import baseline, instance_gaps, instances, tree_rule  # bench/ is on sys.path

from evolve.evaluators.smtt.generator import GRID
from evolve.gp.program import rule_tree
from evolve.problem import load_problem

BUCKETS = ((1, 20), (20, 100), (100, 500), (500, 2000), (2000, float("inf")))


def bucket_name(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g})" if hi != float("inf") else f">= {lo:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path, help="studies (folders of seed-K runs) whose reported bests to read")
    parser.add_argument("--size", type=int, default=20, help="the size n to look at (default 20)")
    parser.add_argument("--stream", default="3,4,5,7", metavar="K[,K...]", help="the fresh streams, pooled")
    parser.add_argument("--show", type=int, default=3, help="instances shown per losing set (default 3)")
    parser.add_argument("--replicates", type=int, default=4, help="instances per TF/RDD point and size in a stream (default 4)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="the stream's references (default runs/smtt-validation-sK.npz; one stream only)")
    args = parser.parse_args()
    n = args.size
    against = "mdd" if n < 75 else "mddc"
    cases, where = [], []
    streams = [int(k) for k in args.stream.split(",")]
    if args.cache is not None and len(streams) > 1:
        parser.error("--cache names one stream's file: give one --stream")
    for stream in streams:
        cache = args.cache or Path("runs/smtt-validation.npz" if not stream else f"runs/smtt-validation-s{stream}.npz")
        for index, case in enumerate(instances(args.replicates, cache, stream)):
            if case[0] == n:
                cases.append(case)
                where.append((stream, index % (args.replicates * len(GRID)) // len(GRID), GRID[index % len(GRID)]))
    if not cases:
        parser.error(f"no instance of size {n} in the streams {args.stream}")
    problem = load_problem("smtt_rule")
    spec = problem.spec.rule[0]
    rules = {name: baseline(name) for name in ("mdd", "mddc")}
    for study in args.studies:
        for best in sorted(study.glob("seed-*/best.py")):
            tree = rule_tree(best.read_text(), spec)
            if tree is not None:
                rules[str(best.parent)] = tree_rule(tree)
    gaps = {name: instance_gaps(rule, cases) for name, rule in rules.items()}
    sets = sorted({w[:2] for w in where})

    def set_mean(name: str, key: tuple[int, int]) -> float:
        return statistics.fmean(g for g, w in zip(gaps[name], where, strict=True) if w[:2] == key and g is not None)

    seeds = [name for name in rules if name not in ("mdd", "mddc")]
    print(f"n = {n}, streams {args.stream} ({len(cases)} instances, {len(sets)} sets of {len(cases) // len(sets)}); "
          f"mean gap % per set, * where above {against.upper()}")
    print("| set (stream, r) | mdd | mddc | " + " | ".join(Path(s).name for s in seeds) + " | median of seeds |")
    print("|---" * (len(seeds) + 4) + "|")
    losing = []
    for key in sets:
        base = set_mean(against, key)
        values = [set_mean(s, key) for s in seeds]
        median = statistics.median(values) if values else float("nan")
        if values and median > base:
            losing.append(key)
        print(f"| {key} | {set_mean('mdd', key):.3f} | {set_mean('mddc', key):.3f} | "
              + " | ".join(f"{v:.3f}{'*' if v > base else ''}" for v in values)
              + f" | {median:.3f}{'*' if values and median > base else ''} |")
    for key in losing:
        rows = []
        for k, w in enumerate(where):
            if w[:2] == key and gaps[against][k] is not None:
                rows.append((statistics.median(gaps[s][k] for s in seeds) - gaps[against][k], k))
        rows.sort(reverse=True)
        print(f"set {key}: median of seeds above {against.upper()}; the instances that add most "
              f"(cell TF/RDD in tenths, reference, gaps %)")
        for diff, k in rows[:args.show]:
            print(f"  cell {where[k][2]}, reference {cases[k][3]:.0f}: mdd {gaps['mdd'][k]:.2f}, mddc {gaps['mddc'][k]:.2f}, "
                  f"seeds {', '.join(f'{gaps[s][k]:.2f}' for s in seeds)} (median - {against}: {diff / len(rows):+.3f} of the set's mean)")
    counted = sum(g is not None for g in gaps["mdd"])
    print(f"\nshare of each pooled mean from instances by reference (sum of their gaps / {counted})")
    print("| rule | " + " | ".join(bucket_name(lo, hi) for lo, hi in BUCKETS) + " | pooled |")
    print("|---" * (len(BUCKETS) + 2) + "|")
    for name, values in gaps.items():
        parts = [sum(g for g, c in zip(values, cases, strict=True) if g is not None and lo <= c[3] < hi) / counted
                 for lo, hi in BUCKETS]
        print(f"| {name} | " + " | ".join(f"{p:.3f}" for p in parts) + f" | {sum(parts):.3f} |")
    print(f"\ninstances at n = {n} by reference, per split (test not read)")
    print("| split | instances | reference 0 | " + " | ".join(bucket_name(lo, hi) for lo, hi in BUCKETS) + " |")
    print("|---" * (len(BUCKETS) + 3) + "|")
    splits = {split: [float(i.reference.value) for i in problem.instances(split) if len(i.data["p"]) == n]
              for split in ("train", "valid", "fit")}
    splits[f"streams {args.stream}"] = [c[3] for c in cases]
    for split, refs in splits.items():
        print(f"| {split} | {len(refs)} | {sum(r == 0 for r in refs)} | "
              + " | ".join(str(sum(lo <= r < hi for r in refs)) for lo, hi in BUCKETS) + " |")


if __name__ == "__main__":
    main()
