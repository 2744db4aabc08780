"""MoE rules on held-out workloads drawn like train: a validation set that is not the test split.

    python bench/moe_validation.py                       # LPT against the shipped [rule] starts
    python bench/moe_validation.py runs/moe/RUN/best.py  # ... and each program's rules (GP trees)
    python bench/moe_validation.py --rules "load / count;item_load;gpu_load + 0.5 * group_load"
    python bench/moe_validation.py --deployments qwen --scale 25   # 200 qwen workloads per set

The search sees the train split; choosing the search's settings by its own train figure
rewards luck, and the test split must not be looked at while tuning. This script draws fresh
workloads from the **train** generator settings (``TRAIN_DRIFT``) under seeds no split uses
(``VALIDATION_IDS``), and a second set from a *faster-drifting* variant (``FAST_DRIFT``: more
drift, more hot-set shifts; a stress test of hedging, not the test split's settings), and
scores each rule triple (replica_priority; item_order; gpu_cost as GP expressions) by the
seed's frame (``evaluators/moe/screen.place``), on the next window, as the verifier does. It
prints, per set, the mean balancedness over workloads, the mean difference to LPT overall and
per deployment, and wins/losses of workloads against LPT, with the standard error of the mean
difference (over workloads). ``--deployments`` keeps some deployments only, ``--scale K`` draws K
times as many workloads of each (the first ones are the default set's). Nothing is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np

from evolve.evaluators.moe.candidate_side import pack
from evolve.evaluators.moe.configs import QWEN, SMALL, TINY, V3
from evolve.evaluators.moe.generator import (
    TRAIN_DRIFT,
    Drift,
    Workload,
    WorkloadSpec,
    generate,
)
from evolve.evaluators.moe.harness import unpack
from evolve.evaluators.moe.placement import loads, parse_placement
from evolve.evaluators.moe.screen import place
from evolve.gp.codegen import parse
from evolve.gp.program import rule_tree
from evolve.gp.tree import evaluate
from evolve.problem import load_problem

# Validation workloads are public-seeded (nobody is judged on them here; the built-in splits are
# keyed by the secret in problems/moe/data/seeds.json); the base seed the splits had before.
BASE_SEED = 20251023
VALIDATION_IDS = (20, 21)  # split ids the built-in splits had (quick 1, train 2, test 3) are not used
SPECS = (WorkloadSpec(TINY, 2, 5, 8), WorkloadSpec(SMALL, 4, 5, 8), WorkloadSpec(V3, 58, 4, 4),
         WorkloadSpec(QWEN, 48, 4, 4))
FAST_DRIFT = dataclasses.replace(TRAIN_DRIFT, skew_sigma=0.8, hot_experts=8, hot_boost=2.0, rho=0.7,
                                 drift_sigma=0.4, group_drift_sigma=0.2, shift_prob=0.35)
LPT = "load / count;item_load;gpu_load"


def workloads(drift: Drift, offset: int, forecasts: list[np.ndarray] | None = None, scale: int = 1,
              deployments: tuple[str, ...] | None = None) -> list[Workload]:
    """The validation set; ``forecasts``, when given, receives each workload's clairvoyant
    forecast of its next windows (``generate(expected=...)``, for bench/moe_headroom.py);
    ``scale`` draws that many times as many workloads of each deployment (``deployments``,
    default all), the default set's first."""
    out = []
    for split_id in VALIDATION_IDS:
        index = 0
        extra = 1000  # the scaled set's further workloads: indices no default set uses
        for spec in SPECS:
            for k in range(spec.count * scale):
                if k < spec.count:
                    rng = np.random.default_rng([BASE_SEED, split_id + offset, index])
                    index += 1
                else:
                    rng = np.random.default_rng([BASE_SEED, split_id + offset, extra])
                    extra += 1
                if deployments is not None and spec.config.name not in deployments:
                    continue
                expected = None if forecasts is None else np.empty((spec.windows, spec.layers, spec.config.experts))
                out.append(Workload(f"val{split_id}-{spec.config.name}-{k}", spec.config,
                                    generate(spec.config, spec.layers, spec.windows, drift, rng, expected=expected)))
                if forecasts is not None and expected is not None:
                    forecasts.append(expected)
    return out


def balancedness(rules: dict, workload: Workload) -> float:
    c = workload.config
    mean_sum = max_sum = 0.0
    for k in range(workload.windows.shape[0] - 1):
        raw = unpack(pack(place(rules, workload.windows[k], c.replicas, c.gpus, c.groups)))
        placement, why = parse_placement(raw, c, workload.windows.shape[1])
        assert placement is not None and why is None, why
        balance = loads(placement, c, workload.windows[k + 1])
        mean_sum += balance.mean_sum
        max_sum += balance.max_sum
    return mean_sum / max_sum


def scores(trees: dict, sets: list[Workload]) -> np.ndarray:
    rules = {name: ((lambda env, t=tree: evaluate(t, env)), set()) for name, tree in trees.items()}
    with np.errstate(all="ignore"):
        return np.array([balancedness(rules, w) for w in sets])


def triple(problem, text: str) -> dict:
    """Rules from 'replica_priority;item_order;gpu_cost' expressions."""
    parts = text.split(";")
    if len(parts) != 3:
        raise SystemExit(f"--rules {text!r}: expected three expressions separated by ';'")
    return {r.function: parse(p.strip(), {i.name for i in r.inputs}) for r, p in zip(problem.spec.rule, parts, strict=True)}


def from_program(problem, path: Path) -> dict:
    code = path.read_text()
    trees = {r.function: rule_tree(code, r) for r in problem.spec.rule}
    missing = [name for name, tree in trees.items() if tree is None]
    if missing:
        raise SystemExit(f"{path}: {', '.join(missing)} is not a single GP expression")
    return trees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("programs", nargs="*", type=Path)
    parser.add_argument("--rules", action="append", default=[], help="'replica_priority;item_order;gpu_cost'")
    parser.add_argument("--deployments", nargs="+", help="only these deployments (qwen, small64, tiny16, v3)")
    parser.add_argument("--scale", type=int, default=1, help="K times as many workloads of each deployment")
    args = parser.parse_args()
    problem = load_problem("moe")
    starts = [r.starts for r in problem.spec.rule]
    # Every combination of the starts other than LPT itself (the seed's -expert order excluded).
    candidates = {f"starts: {a}; {b}; {c}": triple(problem, f"{a};{b};{c}")
                  for a in starts[0] for b in starts[1] if b != "-expert" for c in starts[2]
                  if f"{a};{b};{c}" != LPT}
    candidates.update({text: triple(problem, text) for text in args.rules})
    candidates.update({str(path): from_program(problem, path) for path in args.programs})
    kept = tuple(args.deployments) if args.deployments else None
    count = sum(s.count for s in SPECS if kept is None or s.config.name in kept) * args.scale * len(VALIDATION_IDS)
    print(f"load {os.getloadavg()[0]:.1f}; {count} workloads per set")
    for label, drift, offset in (("train drift", TRAIN_DRIFT, 0), ("faster drift", FAST_DRIFT, 10)):
        sets = workloads(drift, offset, scale=args.scale, deployments=kept)
        names = sorted({w.config.name for w in sets})

        base = scores(triple(problem, LPT), sets)
        print(f"\n{label}: LPT {base.mean():.4f}")
        print("| rules | balancedness | vs LPT (s.e.) | wins/losses | " + " | ".join(names) + " |")
        print("|---" * (4 + len(names)) + "|")
        for name, trees in candidates.items():
            diff = scores(trees, sets) - base
            per = [diff[[w.config.name == n for w in sets]].mean() for n in names]
            error = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            print(f"| {name} | {base.mean() + diff.mean():.4f} | {diff.mean():+.4f} ({error:.4f}) | "
                  f"{int((diff > 1e-12).sum())}/{int((diff < -1e-12).sum())} | "
                  + " | ".join(f"{p:+.4f}" for p in per) + " |")


if __name__ == "__main__":
    main()
