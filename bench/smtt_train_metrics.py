"""Which train figure ranks rules as the fresh set's mean gap does: `python bench/smtt_train_metrics.py RUN ...`.

The search ranks rules by the mean over sizes of each size's mean gap on train (and chooses
the reported best on `valid` the same way); the targets are mean gaps on held-out instances.
This takes every distinct rule tree in the archives under the folders given (plus MDD and
MDDC, written as trees with ties in input order), scores each on smtt_rule's train and valid
splits and on the fresh set of `bench/smtt_validation.py` (its cache), and prints, for several
per-size figures on train and valid, the Spearman correlation with the fresh set's mean gap
over the rules that are within 5 % of the references there, and the fresh mean gap of the
rule each figure ranks first. Trusted side only: trees dispatched by the GP's screen.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from smtt_validation import instances  # bench/smtt_validation.py (the script folder is on sys.path)

from evolve.evaluators.smtt.screen import dispatch_batch
from evolve.gp.codegen import parse
from evolve.gp.program import rule_tree
from evolve.gp.tree import Tree, compile_tree, reads
from evolve.problem import load_problem

PUBLISHED = {
    "MDD": "np.maximum(d, t + p)",
    "MDDC": "np.maximum(1.1 * p + t, d) * (1 + protected_div(np.square(np.minimum(protected_div(p, t + p_max), 1)),"
            " 1 + np.square(np.minimum(protected_div(p, t + p_max), 1)))) + protected_div(p, t + p_mean)",
}
Batches = dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _gaps(tardiness: np.ndarray, ref: np.ndarray) -> np.ndarray:
    positive = ref > 0
    return 100.0 * (tardiness[positive] - ref[positive]) / ref[positive]


# Per-size figures (lower is better) from (tardiness, reference, p) of one size's instances.
FIGURES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "mean gap (the search's)": lambda t, r, p: float(np.mean(_gaps(t, r))),
    "median gap": lambda t, r, p: float(np.median(_gaps(t, r))),
    "gap ratio (sums)": lambda t, r, p: float(100.0 * (t - r).sum() / r.sum()),
    "gap over max(ref, mean p)": lambda t, r, p: float(np.mean(100.0 * (t - r) / np.maximum(r, p.mean(axis=1)))),
    "gap over max(ref, 5 % of total p)": lambda t, r, p: float(np.mean(100.0 * (t - r) / np.maximum(r, 0.05 * p.sum(axis=1)))),
}
# Denominator floors in tardiness units (p ~ U{1..100}: 50 is about one mean job), and relative to
# the size's mean reference; a cap on each gap; trimming and winsorising each size's largest gaps.
for _floor in (25, 50, 100, 200):
    FIGURES[f"gap over max(ref, {_floor})"] = (
        lambda t, r, p, c=_floor: float(np.mean(100.0 * (t - r)[r > 0] / np.maximum(r[r > 0], c))))
for _share in (0.01, 0.05, 0.2):
    FIGURES[f"gap over max(ref, {_share:g} x the size's mean ref)"] = (
        lambda t, r, p, c=_share: float(np.mean(100.0 * (t - r)[r > 0] / np.maximum(r[r > 0], c * r.mean()))))
FIGURES["gap capped at 50 %"] = lambda t, r, p: float(np.mean(np.minimum(_gaps(t, r), 50.0)))
FIGURES["mean gap without the top 10 %"] = lambda t, r, p: float(np.mean(np.sort(_gaps(t, r))[: int(round(0.9 * (r > 0).sum()))]))
FIGURES["gap winsorised at the 90 % quantile"] = (
    lambda t, r, p: float(np.mean(np.minimum(_gaps(t, r), np.quantile(_gaps(t, r), 0.9)))))
# The blends objective.median_weight gives the search (evolve/scoring.py).
for _w in (0.25, 0.5, 0.75):
    FIGURES[f"{1 - _w:g} x mean + {_w:g} x median (median_weight = {_w:g})"] = (
        lambda t, r, p, w=_w: float((1 - w) * np.mean(_gaps(t, r)) + w * np.median(_gaps(t, r))))


def batches(cases: list[tuple[int, np.ndarray, np.ndarray, float]]) -> Batches:
    by_size: dict[int, list[tuple[np.ndarray, np.ndarray, float]]] = {}
    for n, p, d, ref in cases:
        by_size.setdefault(n, []).append((p, d, ref))
    return {n: (np.stack([c[0] for c in group]), np.stack([c[1] for c in group]), np.array([c[2] for c in group]))
            for n, group in sorted(by_size.items())}


def split_batches(split: str) -> Batches:
    shipped = load_problem("smtt_rule").instances(split)
    return batches([(len(i.data["p"]), i.data["p"], i.data["d"], float(i.reference.value)) for i in shipped])


def figures(tree: Tree, sets: Batches, sizes: list[int]) -> dict[str, float]:
    """Each figure's mean over ``sizes``."""
    rule, names = compile_tree(tree), reads(tree)
    per: dict[str, list[float]] = {name: [] for name in FIGURES}
    for n in sizes:
        p, d, ref = sets[n]
        sequences = dispatch_batch(rule, names, p, d)
        if sequences is None:
            return {name: float("inf") for name in FIGURES}
        completion = np.cumsum(np.take_along_axis(p, sequences, axis=1), axis=1)
        tardiness = np.maximum(completion - np.take_along_axis(d, sequences, axis=1), 0).sum(axis=1)
        for name, figure in FIGURES.items():
            per[name].append(figure(tardiness, ref, p))
    return {name: statistics.fmean(values) for name, values in per.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (or studies) whose archives to read")
    parser.add_argument("--cache", type=Path, default=Path("runs/smtt-validation.npz"))
    args = parser.parse_args()
    spec = load_problem("smtt_rule").spec.rule[0]
    names = {i.name for i in spec.inputs}
    trees: dict[Tree, str] = {parse(expr, names): label for label, expr in PUBLISHED.items()}
    for folder in args.runs:
        for path in sorted(folder.glob("**/archive.sqlite")):
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            for (code,) in db.execute("SELECT code FROM programs WHERE score IS NOT NULL"):
                tree = rule_tree(code, spec)
                if tree is not None:
                    trees.setdefault(tree, "")
            db.close()
    fresh, train, valid = batches(instances(4, args.cache)), split_batches("train"), split_batches("valid")
    every, large = sorted(fresh), [n for n in sorted(fresh) if n >= 100]
    rows = []
    for tree in trees:
        rows.append({"fresh": figures(tree, fresh, every)["mean gap (the search's)"],
                     "fresh>=100": figures(tree, fresh, large)["mean gap (the search's)"],
                     "train": figures(tree, train, every), "train>=100": figures(tree, train, large),
                     "valid": figures(tree, valid, every), "valid>=100": figures(tree, valid, large)})
    kept = [r for r in rows if r["fresh"] < 5.0]
    published = {label: rows[k]["fresh>=100"] for k, label in enumerate(trees.values()) if label}
    print(f"{len(trees)} distinct rules, {len(kept)} within 5 % on the fresh set; fresh mean gap at n >= 100: "
          + ", ".join(f"{label} {value:.3f}" for label, value in published.items())
          + f", best rule {min(r['fresh>=100'] for r in kept):.3f}; over sizes: best {min(r['fresh'] for r in kept):.3f}")
    print("| figure | ranks on | Spearman with fresh mean gap | fresh mean gap of its first |")
    print("|---|---|---|---|")
    for name in FIGURES:
        for where, target in (("train", "fresh"), ("train>=100", "fresh>=100"), ("valid", "fresh"), ("valid>=100", "fresh>=100")):
            xs = [r[where][name] for r in kept]
            ys = [r[target] for r in kept]
            first = min(range(len(kept)), key=lambda i: xs[i])
            print(f"| {name} | {where.replace('>=100', ', n >= 100')} | {spearmanr(xs, ys)[0]:.2f} | {ys[first]:.3f} |")


if __name__ == "__main__":
    main()
