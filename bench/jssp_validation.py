"""JSSP rules on generated validation sets shaped like the test split's families: `python bench/jssp_validation.py [RUN ...]`.

Not the test split, and not train or quick: instances of the public generators of the test
split's families, drawn from jssp's secret (problems/jssp/data/seeds.json) under labels no
split uses (``instance validation FAMILY NxM i``), so they are disjoint from train and quick
(checked by content hash here) and no candidate can rebuild them. Families:

* ``abz-wide``: 10x10, processing times uniform on 50..100, random routes: the generator
  Adams, Balas and Zawack (1988) describe for abz5-6;
* ``abz-narrow``: 20x15, processing times uniform on 11..40, random routes: their abz7-9;
* ``ta``: Taillard's generator (1..99, random routes, as train) at train's five larger sizes
  (15x15 ... 30x20): the Taillard groups the trade-off is about;
* ``yn``: 20x20, processing times uniform on 10..50, random routes: Yamada and Nakano's (1992) yn1-4.

References come from the shipped CP-SAT pipeline (evaluators/jssp/references.py: hinted by the
rules, limit scaled by size, ``--time-limit`` at 600 operations, at least 5 s), computed once
into ``--cache`` with the schedule that attains each, re-checked on load. Each is an optimum
(CP-SAT proved it) or CP-SAT's best makespan with its lower bound: the table says how many of
each. Prints the mean gap % per family and size of FDD/MWKR, MWKR and the best program of every
run folder given (a seed's folder, or a study's), rules evaluated here as GP trees (only trees
this process builds from the program's return expression ever run here, never the program's code).
`--write-instances DIR` writes each family as an instance file with its references, for
`evolve eval jssp PROGRAM --instances FILE` (any program, through the sandbox).

    python bench/jssp_validation.py /tmp/study            # the five seeds of an offline_study
    python bench/jssp_validation.py --replicates 4 --families abz-wide
    python bench/jssp_validation.py /tmp/study --subsets 20000   # and how often five abz-like instances
                                                                 # put the median above FDD/MWKR
    python bench/jssp_validation.py /tmp/study --first 20        # fresh draws (20-39): a final check
    python bench/jssp_validation.py /tmp/study --scale 2         # every time x2: scale-free rules gap the same
    python bench/jssp_validation.py /tmp/study --top 24          # the range over each run's 24 best on train
    python bench/jssp_validation.py /tmp/study --per-instance    # every instance's gap, one row each
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from evolve import problems as builtin_problems
from evolve.evaluators.jssp.builder import build_schedule
from evolve.evaluators.jssp.generator import generated_split
from evolve.evaluators.jssp.model import JobShop
from evolve.evaluators.jssp.references import (
    attained_by_schedule,
    compute_reference,
    scaled_time_limit,
)
from evolve.evaluators.secret_seeds import load_secret, streams
from evolve.gp.program import rule_tree
from evolve.gp.tree import compile_tree
from evolve.problem import load_problem
from evolve.references import StoredReference

PROBLEM_DIR = Path(builtin_problems.__file__).resolve().parent / "jssp"
# family -> (sizes, lowest and highest processing time)
FAMILIES: dict[str, tuple[tuple[tuple[int, int], ...], int, int]] = {
    "abz-wide": (((10, 10),), 50, 100),
    "abz-narrow": (((20, 15),), 11, 40),
    "ta": (((15, 15), (20, 15), (20, 20), (30, 15), (30, 20)), 1, 99),
    "yn": (((20, 20),), 10, 50),
}
BASELINES = ("fdd_mwkr", "mwkr")


def draw(secret: bytes, family: str, n: int, m: int, index: int) -> JobShop:
    _, low, high = FAMILIES[family]
    (rng,) = streams(secret, f"instance validation {family} {n}x{m} {index}", 1)
    durations = rng.integers(low, high + 1, size=(n, m))
    machines = np.stack([rng.permutation(m) for _ in range(n)])
    return JobShop.from_matrices(f"valid-{family}-{n}x{m}-{index}", machines.tolist(), durations.tolist())


def instances(families: list[str], replicates: dict[str, int], cache: Path,
              time_limit: float, first: int = 0) -> list[tuple[str, JobShop, StoredReference]]:
    """The validation set with its CP-SAT references (computed once into ``cache``): draws
    ``first`` .. ``first + replicates - 1`` of every family and size."""
    secret = load_secret(PROBLEM_DIR, "the validation set is drawn")
    seen = {s.content_hash() for split in ("quick", "train") for s in generated_split(split, secret)}
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    out = []
    for family in families:
        for n, m in FAMILIES[family][0]:
            for i in range(first, first + replicates[family]):
                shop = draw(secret, family, n, m, i)
                key = shop.content_hash()
                if key in seen:
                    raise SystemExit(f"{shop.name} coincides with a train or quick instance")
                row = saved.get(key)
                record = None
                if row is not None:
                    record = StoredReference(row["name"], row["value"], row["kind"], row["bound"], row["source"],
                                             row.get("seconds", 0.0), row.get("witness"))
                    if not attained_by_schedule(record, shop):
                        raise SystemExit(f"{cache}: {shop.name}'s reference is not attained by its schedule")
                else:
                    limit = scaled_time_limit(shop, time_limit)
                    print(f"  CP-SAT {shop.name} ({limit:g} s)", file=sys.stderr, flush=True)
                    record = compute_reference(shop, limit)
                    saved[key] = record.to_json()
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    cache.write_text(json.dumps(saved))
                out.append((family, shop, record))
    return out


def scaled(cases, factor: int):
    """Every processing time times ``factor``: the same instances on another time scale. Their
    references scale exactly (each schedule's start times times ``factor`` attain them), so a rule
    that reads only ratios of times (FDD/MWKR, MWKR) gaps the same, and one that adds counts or
    constants to times (``n_machines + proc_time``) may not: how much a rule's figure on a family
    owes to that family's time scale."""
    if factor == 1:
        return cases
    out = []
    for family, shop, record in cases:
        jobs = [[(m, d * factor) for m, d in job] for job in shop.jobs()]
        witness = None if record.witness is None else [[t * factor for t in row] for row in record.witness]
        out.append((family, JobShop.from_jobs(shop.name, jobs),
                    StoredReference(record.name, record.value * factor, record.kind,
                                    None if record.bound is None else record.bound * factor,
                                    f"{record.source}, times x{factor}", record.seconds, witness)))
    return out


def baseline(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_jssp_validation_{name}", PROBLEM_DIR / "baselines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.priority


def tree_rule(tree):
    run = compile_tree(tree)

    def priority(**kw):
        return np.broadcast_to(np.asarray(run(kw), dtype=float), kw["proc_time"].shape)
    return priority


def makespan(rule, shop: JobShop, scheme: str) -> int:
    start = build_schedule(rule, shop.machines, shop.durations, shop.lengths, shop.n_machines, scheme)
    return int(np.where(start >= 0, start + shop.durations, 0).max())


def groups_of(cases) -> list[str]:
    out = []
    for family, shop, _ in cases:
        label = f"{family} {shop.size}"
        if label not in out:
            out.append(label)
    return out


def instance_gaps(rule, cases, scheme: str) -> list[float]:
    return [100.0 * (makespan(rule, shop, scheme) - record.value) / record.value for _, shop, record in cases]


def gaps(cases, values: list[float]) -> dict[str, float]:
    """Mean gap % per family and size, per family, and over the abz families (weighted as the
    test split's abz group: 2 of 5 instances 10x10, 3 of 5 20x15)."""
    per: dict[str, list[float]] = {}
    for (family, shop, _), gap in zip(cases, values, strict=True):
        per.setdefault(f"{family} {shop.size}", []).append(gap)
        per.setdefault(family, []).append(gap)
    out = {k: float(np.mean(v)) for k, v in per.items()}
    if "abz-wide" in out and "abz-narrow" in out:
        out["abz (2:3)"] = 0.4 * out["abz-wide"] + 0.6 * out["abz-narrow"]
    return out


def abz_subsets(cases, baseline_gaps: list[float], evolved: list[list[float]], draws: int, seed: int = 0) -> None:
    """How often a group like the test split's abz (two 10x10 instances of the wide generator,
    three 20x15 of the narrow one) puts the evolved median above the baseline, drawn from the
    validation instances: how much a five-instance group can say."""
    wide = [i for i, (f, _, _) in enumerate(cases) if f == "abz-wide"]
    narrow = [i for i, (f, _, _) in enumerate(cases) if f == "abz-narrow"]
    if len(wide) < 2 or len(narrow) < 3:
        print("\n--subsets needs at least 2 abz-wide and 3 abz-narrow instances (--replicates 3)")
        return
    rng = np.random.default_rng(seed)
    base = np.asarray(baseline_gaps)
    runs = np.asarray(evolved)
    above = 0
    seeds_above = np.zeros(len(evolved))
    for _ in range(draws):
        pick = np.concatenate([rng.choice(wide, 2, replace=False), rng.choice(narrow, 3, replace=False)])
        means = runs[:, pick].mean(axis=1)
        target = base[pick].mean()
        above += float(np.median(means)) >= target
        seeds_above += means >= target
    print(f"\nabz-like groups of 5 (2 wide + 3 narrow) drawn {draws} times from the validation set: the median "
          f"of {len(evolved)} seeds is at or above the baseline in {100.0 * above / draws:.1f} %; per seed "
          + ", ".join(f"{100.0 * k / draws:.1f} %" for k in seeds_above))


def top_on_train(folder: Path, cases, scheme: str, k: int, rule_spec) -> str:
    """The range over a run's ``k`` best programs on train (its archive) of each family's mean gap:
    how far a choice among them on another split could move the run's reported figure."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{folder / 'archive.sqlite'}?mode=ro", uri=True)) as db:
        codes = [c for (c,) in db.execute("SELECT code FROM programs WHERE score IS NOT NULL AND stage = 'train' "
                                          "ORDER BY score DESC, id LIMIT ?", (k,))]
    trees = [t for t in (rule_tree(code, rule_spec) for code in codes) if t is not None]
    rows = [gaps(cases, instance_gaps(tree_rule(t), cases, scheme)) for t in trees]
    if not rows:
        return f"{folder.name}: none of its {len(codes)} best on train is one GP expression"
    columns = [c for c in rows[0] if " " not in c or c == "abz (2:3)"]  # families, not sizes
    spans = ", ".join(f"{c} {min(r[c] for r in rows):.2f}-{max(r[c] for r in rows):.2f}" for c in columns)
    return f"{folder.name}: its {len(rows)} best on train (of {len(codes)} read): {spans}"


def run_folders(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if (path / "best.py").is_file():
            found.append(path)
        else:
            found.extend(sorted(p.parent for p in path.glob("*/best.py")))
    return found


def write_instances(cases, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for family in dict.fromkeys(f for f, _, _ in cases):
        rows = []
        for f, shop, record in cases:
            if f != family:
                continue
            row = {"name": shop.name, "jobs": shop.jobs()}
            if record.kind == "optimal":
                row["optimum"] = int(record.value)
            else:
                row["upper_bound"], row["lower_bound"] = int(record.value), int(record.bound)
            rows.append(row)
        (folder / f"{family}.json").write_text(json.dumps({"instances": rows}))
        print(f"{len(rows)} instances written to {folder / f'{family}.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (or studies) whose best programs to score")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated: " + ", ".join(FAMILIES))
    parser.add_argument("--replicates", type=int, default=20, help="instances per abz size (default 20)")
    parser.add_argument("--other-replicates", type=int, default=6, help="instances per ta and yn size (default 6)")
    parser.add_argument("--time-limit", type=float, default=10.0,
                        help="CP-SAT seconds at 600 operations, a share below, at least 5 (default 10)")
    parser.add_argument("--first", type=int, default=0, metavar="K",
                        help="index of each size's first draw (default 0); a fresh set that no choice has seen "
                             "starts past the draws already read (--first 20: abz 20-39, ta and yn 20-25)")
    parser.add_argument("--scale", type=int, default=1, metavar="K",
                        help="every processing time times K (references scale exactly): does a rule's figure "
                             "depend on the family's time scale? (default 1)")
    parser.add_argument("--scheme", default="non_delay", choices=("non_delay", "active"))
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    parser.add_argument("--cache", type=Path, default=cache_home / "evolve" / "jssp-validation.json")
    parser.add_argument("--subsets", type=int, default=0, metavar="K",
                        help="draw K abz-like groups of five (as the test split's) and count where the median is "
                             "at or above FDD/MWKR")
    parser.add_argument("--per-instance", action="store_true", help="also every instance's gap, one row each")
    parser.add_argument("--top", type=int, default=0, metavar="K",
                        help="also the range of each family's gap over each run's K best programs on train")
    parser.add_argument("--write-instances", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        parser.error(f"--families: unknown {', '.join(unknown)} (expected {', '.join(FAMILIES)})")
    replicates = {f: args.replicates if f.startswith("abz") else args.other_replicates for f in families}

    started = time.perf_counter()
    if args.first < 0:
        parser.error(f"--first: expected 0 or more, got {args.first}")
    if args.scale < 1:
        parser.error(f"--scale: expected 1 or more, got {args.scale}")
    cases = instances(families, replicates, args.cache, args.time_limit, args.first)
    optimal = {g: 0 for g in groups_of(cases)}
    for family, shop, record in cases:
        optimal[f"{family} {shop.size}"] += record.kind == "optimal"
    print(f"{len(cases)} instances ({time.perf_counter() - started:.0f} s with references); proved optimal: "
          + ", ".join(f"{g} {k}/{sum(1 for f, s, _ in cases if f'{f} {s.size}' == g)}" for g, k in optimal.items()))
    cases = scaled(cases, args.scale)
    if args.scale != 1:
        if not all(attained_by_schedule(record, shop) for _, shop, record in cases):
            raise SystemExit(f"--scale {args.scale}: a scaled reference is not attained by its scaled schedule")
        print(f"every processing time x{args.scale}, references too")
    if args.write_instances:
        write_instances(cases, args.write_instances)

    rule_spec = load_problem("jssp").spec.rule[0]
    base = {name: instance_gaps(baseline(name), cases, args.scheme) for name in BASELINES}
    rows: list[tuple[str, dict[str, float]]] = [(name, gaps(cases, base[name])) for name in BASELINES]
    evolved, per_instance, names = [], [], []
    for folder in run_folders(args.runs):
        tree = rule_tree((folder / "best.py").read_text(), rule_spec)
        if tree is None:
            print(f"{folder}: best.py is not one GP expression; score it with --write-instances and evolve eval")
            continue
        per_instance.append(instance_gaps(tree_rule(tree), cases, args.scheme))
        names.append(folder.name)
        row = gaps(cases, per_instance[-1])
        evolved.append(row)
        rows.append((folder.name, row))
    columns = [*groups_of(cases), *families, *(["abz (2:3)"] if {"abz-wide", "abz-narrow"} <= set(families) else [])]
    columns = list(dict.fromkeys(columns))
    if evolved:
        rows.append((f"median of {len(evolved)}", {c: statistics.median(r[c] for r in evolved) for c in columns}))
    print(f"\nmean gap % ({args.scheme}), lower is better")
    print("| rule | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in rows:
        print(f"| {name} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    if args.per_instance:
        print(f"\ngap % per instance ({args.scheme}; reference kind)")
        print("| instance | " + " | ".join([*BASELINES, *names]) + " |")
        print("|---" * (len(BASELINES) + len(names) + 1) + "|")
        for i, (_, shop, record) in enumerate(cases):
            cells = [base[b][i] for b in BASELINES] + [g[i] for g in per_instance]
            print(f"| {shop.name} ({record.kind}) | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    if args.top > 0:
        print(f"\nthe {args.top} best programs on train of each run (gap % ranges)")
        for folder in run_folders(args.runs):
            print(top_on_train(folder, cases, args.scheme, args.top, rule_spec))
    if args.subsets and per_instance and {"abz-wide", "abz-narrow"} <= set(families):
        abz_subsets(cases, base[BASELINES[0]], per_instance, args.subsets)


if __name__ == "__main__":
    main()
