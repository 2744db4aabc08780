"""SMTT rules on a large fresh set of our own generator: `python bench/smtt_validation.py [RUN ...]`.

Not the test split, and not train: REPLICATES instances per TF/RDD point and size (default 4:
100 per size, 500 in all) from a seed stream no split uses. It is where the offline search's
design was checked (docs/smtt.md "Train split and score for a GP"), because a per-size mean of
relative gaps over the test split's 25 instances, or train's 75, is carried by one or two
instances with tiny optima.

References are proxies, the same for every rule: the DP optimum for n <= 20, otherwise the
best shipped baseline polished by an insertion descent and an iterated descent (CPU-bounded).
They are computed once into --cache. `--on train` (or `smtt-train`) scores the same rules on a
shipped train split instead, against its shipped references: what the search sees. Prints
each rule's mean gap per size and the mean over sizes: the published rules through the rule
track's dispatcher (ties as published), and the best program of every run folder given (e.g.
the seeds of `bench/offline_study.py`), or with `--top K` its K best programs on train, with
the one its run reported marked; with `--selections` too, what a choice among those K would report
on this set: the run's own (the best on `valid`), the best per size on `valid`, and the best per
size on this set itself (an oracle: no choice among the K can do better). `--on valid` scores on
smtt_rule's validation split, `--on fit` on its fit split (what `refit_on` fits on); `--write-instances FILE` writes the fresh set as an instance file for
`evolve eval/compare --instances` (programs that are not one expression, e.g. a model's);
`--min-reference R` leaves out the instances whose reference is below R. `--subsets` also scores every
rule per subset of the test split's design (a stream's replicate r: one instance per TF/RDD point,
25 per size) and counts the subsets where it is above MDD and where it is above MDDC: how often a
25-instance set disagrees with the pooled verdict. A `--rule`
may be a tuple, `'np.maximum(d, t + p), d, p'`: compared lexicographically (ties by d, then p).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from evolve import problems as builtin_problems
from evolve.evaluators.smtt.dispatch import dispatch
from evolve.evaluators.smtt.exact import dp_optimum
from evolve.evaluators.smtt.generator import GRID, SIZES, generate
from evolve.evaluators.smtt.local_search import iterated_descent, warm_start
from evolve.evaluators.smtt.objective import total_tardiness
from evolve.gp.codegen import parse
from evolve.gp.program import rule_tree
from evolve.gp.tree import compile_tree
from evolve.problem import load_problem

VALIDATION_SEED = 86420  # never used by the shipped splits (generator.py) nor bench/smtt_train_split.py
BASELINES = ("mdd", "mddc", "eddc")


def draw(n: int, index: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(p, d) of the fresh set's instance `index` at size n: `stream` 0 is the set the docs' tables
    use, another stream an independent set of the same design (a second opinion on a decision)."""
    tf, rdd = GRID[index % len(GRID)]
    key = [VALIDATION_SEED, n, index] if not stream else [VALIDATION_SEED, stream, n, index]
    return generate(n, tf, rdd, np.random.default_rng(key))


def instances(replicates: int, cache: Path, stream: int = 0) -> list[tuple[int, np.ndarray, np.ndarray, float]]:
    """The fresh set of `stream` (draw()) with its proxy references, cached."""
    if cache.is_file():
        saved = np.load(cache)
        if int(saved["replicates"]) == replicates and int(saved["stream"] if "stream" in saved.files else 0) == stream:
            return [(int(n), p, d, float(r)) for n, p, d, r in
                    zip(saved["n"], np.split(saved["p"], saved["cut"]), np.split(saved["d"], saved["cut"]),
                        saved["ref"], strict=True)]
    out = []
    for n in SIZES:
        started = time.process_time()
        for index in range(replicates * len(GRID)):
            p, d = draw(n, index, stream)
            if n <= 20:
                ref = dp_optimum(p, d)[0]
            else:
                _, seq, _ = warm_start(p, d, budget_s=0.5)
                ref = total_tardiness(p, d, iterated_descent(p, d, seq, budget_s=0.3 if n <= 100 else 0.5))
            out.append((n, p, d, float(ref)))
        print(f"references n={n}: {time.process_time() - started:.0f} s CPU", file=sys.stderr, flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, replicates=replicates, stream=stream, n=[c[0] for c in out], p=np.concatenate([c[1] for c in out]),
             d=np.concatenate([c[2] for c in out]), ref=[c[3] for c in out],
             cut=np.cumsum([c[0] for c in out])[:-1])
    return out


def write_instances(cases: list[tuple[int, np.ndarray, np.ndarray, float]], path: Path, streams: str) -> None:
    """The fresh set as an smtt instance file (docs/smtt.md, "Custom instances"): a program that is
    not one GP expression (a model's) scores on it through the sandbox and the verifier."""
    rows = []
    for k, (n, p, d, ref) in enumerate(cases):
        kind = "optimum" if n <= 20 else "best_known"  # the DP's optimum; a polished heuristic's value
        rows.append({"name": f"fresh{streams.replace(',', '+')}-n{n}-{k}", "p": p.tolist(), "d": d.tolist(),
                     kind: int(round(ref))})
    path.write_text(json.dumps({"instances": rows}))
    print(f"{len(rows)} instances written to {path}")


def baseline(name: str):
    path = Path(builtin_problems.__file__).resolve().parent / "smtt_rule" / "baselines" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_validation_{name}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.priority


def tree_rule(tree, ties: tuple = ()):
    """The tree as a priority; with ``ties`` (trees too), a tuple compared lexicographically."""
    run = {id(t): compile_tree(t) for t in (tree, *ties)}  # evaluate()'s values, without a call per node

    def value(t, kw):
        return np.broadcast_to(np.asarray(run[id(t)](kw), dtype=float), kw["p"].shape)

    def priority(**kw):
        return (value(tree, kw), *(value(t, kw) for t in ties)) if ties else value(tree, kw)
    return priority


def expression_rule(expr: str, names: set[str]):
    """``--rule EXPR``: one GP expression, or a tuple of them (compared lexicographically)."""
    try:
        body = ast.parse(expr, mode="eval").body
    except SyntaxError:
        body = None
    parts = [ast.unparse(e) for e in body.elts] if isinstance(body, ast.Tuple) else [expr]
    trees = [parse(part, names) for part in parts]
    return tree_rule(trees[0], tuple(trees[1:]))


def archive_rows(folder: Path, rule_spec, top: int, chosen_among: bool = False):
    """The ``top`` best programs on train of every run under ``folder`` (* marks the one `valid`
    chose). With ``chosen_among``, only those the run's choice chose among: a refit of the chosen
    one (``refit_on``, origin ``refit``) is made after the choice and is left out."""
    rows = []
    for db_path in sorted(folder.glob("**/archive.sqlite")):
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        saved = db.execute("SELECT value FROM meta WHERE key = 'best_selection'").fetchone()
        chosen = json.loads(saved[0]).get("program_id") if saved and saved[0] != "null" else None
        programs = db.execute("SELECT id, score, code FROM programs WHERE score IS NOT NULL AND origin != ? "
                              "ORDER BY score DESC, id LIMIT ?", ("refit" if chosen_among else "", top)).fetchall()
        db.close()
        for pid, score, code in programs:
            tree = rule_tree(code, rule_spec)
            if tree is not None:
                mark = "*" if pid == chosen else ""
                rows.append((f"{db_path.parent.name} {mark}#{pid} (train {score:.4f})", tree_rule(tree)))
    return rows


SELECTIONS = ("best on valid (the run's choice)", "best per size on valid", "best per size on this set (oracle)")


def selections(programs: dict[str, list[tuple[str, dict[int, float], dict[int, float]]]]) -> None:
    """``--selections``: per run, the program each choice picks for each size among its top K, and
    the study's median (min-max) over runs of the picked programs' gaps on the scored set.
    ``programs``: per run, (name, gaps on `valid` floored as the run's choice sees them, gaps here)."""
    picks: dict[str, list[dict[int, tuple[str, float]]]] = {label: [] for label in SELECTIONS}
    for rows in programs.values():
        # Train's order breaks ties, as evolve/selection.py does (rows come best on train first).
        whole = min(rows, key=lambda r: statistics.fmean(r[1].values()))
        picks[SELECTIONS[0]].append({n: (whole[0], whole[2][n]) for n in SIZES})
        for label, on in ((SELECTIONS[1], 1), (SELECTIONS[2], 2)):
            best = {n: min(rows, key=lambda r, n=n: r[on][n]) for n in SIZES}
            picks[label].append({n: (best[n][0], best[n][2][n]) for n in SIZES})
    print("| choice among each run's top programs, median (min-max) over runs | "
          + " | ".join(f"n={n}" for n in SIZES) + " |")
    print("|---" * (len(SIZES) + 1) + "|")
    for label, runs in picks.items():
        cells = [[run[n][1] for run in runs] for n in SIZES]
        print(f"| {label} | " + " | ".join(f"{statistics.median(c):.3f} ({min(c):.2f}-{max(c):.2f})" for c in cells) + " |")
    for label, runs in picks.items():
        print(f"{label}: " + "; ".join(" ".join(sorted({run[n][0] for n in SIZES})) for run in runs))


def instance_gaps(rule, cases, min_reference: float = 0.0, floor: float = 0.0,
                  floor_from: int = 100) -> list[float | None]:
    """Gap % of every case (None where its reference is 0 or below `min_reference`: no mean counts
    it); with `floor`, each gap at n >= floor_from is measured against max(reference, floor x n)
    (what objective.reference_floor makes the search see)."""
    out: list[float | None] = []
    for n, p, d, ref in cases:
        if ref > 0 and ref >= min_reference:
            value = total_tardiness(p, d, dispatch(rule, p.astype(float), d.astype(float)))
            over = max(ref, floor * n) if n >= floor_from else ref
            out.append(100.0 * (value - ref) / over)
        else:
            out.append(None)
    return out


def by_size(cases, values: list[float | None], keep=lambda k: True) -> dict[int, float]:
    """Mean gap % per size over the cases whose position `keep` accepts."""
    sized: dict[int, list[float]] = {}
    for k, ((n, *_), value) in enumerate(zip(cases, values, strict=True)):
        if value is not None and keep(k):
            sized.setdefault(n, []).append(value)
    return {n: statistics.fmean(v) for n, v in sorted(sized.items())}


def gaps(rule, cases, min_reference: float = 0.0, floor: float = 0.0, floor_from: int = 100) -> dict[int, float]:
    """Mean gap % per size (instance_gaps)."""
    return by_size(cases, instance_gaps(rule, cases, min_reference, floor, floor_from))


def subsets_table(cases, labels: list[tuple[int, int]], rows: list[tuple[str, list[float | None]]]) -> None:
    """``--subsets``: each rule's mean gap per subset of the test split's design (one instance per
    TF/RDD point: a stream's replicate r, 25 instances per size), median (min-max) over the
    subsets, and in how many subsets it is above MDD there, and above MDDC; for a study, its
    median over seeds."""
    keys = sorted(set(labels))
    sizes = sorted({case[0] for case in cases})
    means = {name: {key: by_size(cases, values, lambda k, key=key: labels[k] == key) for key in keys}
             for name, values in rows}
    studies: dict[str, list[str]] = {}
    for name, _ in rows:
        if Path(name).name.startswith("seed-"):
            studies.setdefault(str(Path(name).parent), []).append(name)
    for study, seeds in studies.items():
        means[f"{study}, median over its {len(seeds)} seeds"] = {
            key: {n: statistics.median(means[s][key][n] for s in seeds) for n in sizes} for key in keys}
    print(f"mean gap % per subset of the test split's design ({len(keys)} subsets: a stream's replicate r, "
          "one instance per TF/RDD point and size), median (min-max) over the subsets; in brackets, the "
          "subsets where the rule is above MDD, and above MDDC, of all")
    print("| rule | " + " | ".join(f"n={n}" for n in sizes) + " |")
    print("|---" * (len(sizes) + 1) + "|")
    for name, per_key in means.items():
        cells = []
        for n in sizes:
            values = [per_key[key][n] for key in keys]
            above = [sum(per_key[key][n] > means[rule][key][n] for key in keys) for rule in ("mdd", "mddc")]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.2f}-{max(values):.2f}) "
                         f"[{above[0]}, {above[1]} / {len(keys)}]")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run folders (or studies) whose best programs to score")
    parser.add_argument("--rule", action="append", default=[], metavar="EXPR",
                        help="a rule as a GP expression over the inputs, e.g. 'np.maximum(d, t + (p + 5.83))'")
    parser.add_argument("--replicates", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the fresh set's references are kept (default runs/smtt-validation.npz, "
                             "runs/smtt-validation-sK.npz for stream K; one stream only)")
    parser.add_argument("--stream", default="0", metavar="K[,K...]",
                        help="the fresh set's seed stream (0, the default: the docs' tables; K >= 1: another "
                             "set of the same design), or several, pooled: 0,1 scores 200 instances per size")
    parser.add_argument("--on", choices=("fresh", "train", "valid", "fit", "smtt-train"), default="fresh",
                        help="the fresh set (default), or a shipped split with its references: "
                             "smtt_rule's train, valid or fit (refit_on's), or smtt's train (smtt-train)")
    parser.add_argument("--min-reference", type=float, default=0.0, metavar="R",
                        help="leave out the instances whose reference is below R (what the few instances "
                             "with tiny optima do to each mean; docs/smtt.md, tenth round)")
    parser.add_argument("--floor", type=float, default=0.0, metavar="F",
                        help="measure each gap at n >= 100 against max(reference, F x n), as smtt_rule's "
                             "objective.reference_floor does for the search (F = 2.5), instead of the reference")
    parser.add_argument("--medians", action="store_true",
                        help="every figure at three decimals, and after the rows each study's median (min-max) over its seeds")
    parser.add_argument("--top", type=int, default=0, metavar="K",
                        help="score each run's K best programs on train instead of its reported best")
    parser.add_argument("--selections", action="store_true",
                        help="with --top: what choosing among each run's K on `valid` (floored at n >= 100 as "
                             "smtt_rule's search sees it), or per size, would report here")
    parser.add_argument("--subsets", action="store_true",
                        help="also each rule's mean gap per subset of the test split's design (a stream's "
                             "replicate r: one instance per TF/RDD point and size), and how often it is above MDD and MDDC")
    parser.add_argument("--write-instances", type=Path, default=None, metavar="FILE",
                        help="write the fresh set with its references as an smtt instance file (optimum at "
                             "n <= 20, best_known above) and stop: any program then scores on it through the "
                             "sandbox, e.g. evolve compare A.py B.py --problem smtt_rule --instances FILE")
    args = parser.parse_args()
    if args.selections and not args.top:
        parser.error("--selections needs --top K")
    if args.subsets and args.on != "fresh":
        parser.error("--subsets needs the fresh set (--on fresh)")
    streams = [int(k) for k in args.stream.split(",")]
    if args.on == "fresh":
        cases = []
        labels: list[tuple[int, int]] = []  # (stream, replicate) of every case: --subsets
        for stream in streams:
            cache = args.cache if args.cache is not None and len(streams) == 1 else Path(
                "runs/smtt-validation.npz" if not stream else f"runs/smtt-validation-s{stream}.npz")
            drawn = instances(args.replicates, cache, stream)
            labels += [(stream, index % (args.replicates * len(GRID)) // len(GRID)) for index in range(len(drawn))]
            cases += drawn
        if args.write_instances is not None:
            write_instances(cases, args.write_instances, args.stream)
            return
        where = f"{len(cases)} fresh instances ({args.replicates} per TF/RDD point and size"
        where += f", streams {args.stream} pooled)" if len(streams) > 1 else (f", stream {streams[0]})" if streams[0] else ")")
    else:
        problem, split = ("smtt", "train") if args.on == "smtt-train" else ("smtt_rule", args.on)
        shipped = load_problem(problem).instances(split)
        cases = [(len(i.data["p"]), i.data["p"], i.data["d"], float(i.reference.value)) for i in shipped]
        where = f"the {len(cases)} instances of {problem}'s {split} split"
    rule_spec = load_problem("smtt_rule").spec.rule[0]
    rows = [(name, baseline(name)) for name in BASELINES]
    names = {i.name for i in rule_spec.inputs}
    rows += [(f"`{expr}`", expression_rule(expr, names)) for expr in args.rule]
    run_of: dict[str, str] = {}  # --top's rows: the run each came from
    for folder in args.runs:
        if args.top:
            found = archive_rows(folder, rule_spec, args.top, chosen_among=args.selections)
            if args.selections:
                run_of.update({name: f"{folder}/{name.split()[0]}" for name, _ in found})
            rows += found
            continue
        for best in sorted(folder.glob("**/best.py")):
            tree = rule_tree(best.read_text(), rule_spec)
            if tree is not None:
                rows.append((str(best.parent), tree_rule(tree)))
    if args.min_reference:
        where += f", those with a reference below {args.min_reference:g} left out"
    if args.floor:
        where += f"; gaps at n >= 100 against max(reference, {args.floor:g} n)"
    present = sorted({case[0] for case in cases})  # the sizes scored (all five but in a hand-made --cache)
    print(f"mean gap % on {where}")
    print("| rule | " + " | ".join(f"n={n}" for n in present) + " | mean over sizes |")
    print("|---" * (len(present) + 2) + "|")
    studies: dict[str, list[dict[int, float]]] = {}
    chosen: dict[str, list[tuple[str, dict[int, float], dict[int, float]]]] = {}
    valid = [(len(i.data["p"]), i.data["p"], i.data["d"], float(i.reference.value))
             for i in load_problem("smtt_rule").instances("valid")] if args.selections else []
    per_instance: list[tuple[str, list[float | None]]] = []
    for name, rule in rows:
        values = instance_gaps(rule, cases, args.min_reference, args.floor)
        per_instance.append((name, values))
        sizes = by_size(cases, values)
        if name in run_of:
            chosen.setdefault(run_of[name], []).append((name.split()[1], gaps(rule, valid, floor=2.5), sizes))
        digits = 3 if args.medians else 2
        print(f"| {name} | " + " | ".join(f"{sizes[n]:.{digits}f}" for n in present)
              + f" | {statistics.fmean(sizes.values()):.{digits}f} |", flush=True)
        if not args.top and Path(name).name.startswith("seed-"):  # --top: programs, not a study's seeds
            studies.setdefault(str(Path(name).parent), []).append(sizes)
    if args.medians:
        print("| study, median (min-max) over seeds | " + " | ".join(f"n={n}" for n in present) + " | mean over sizes |")
        print("|---" * (len(present) + 2) + "|")
        for study, seeds in studies.items():
            cells = [[s[n] for s in seeds] for n in present] + [[statistics.fmean(s.values()) for s in seeds]]
            print(f"| {study} ({len(seeds)} seeds) | " + " | ".join(
                f"{statistics.median(c):.3f} ({min(c):.2f}-{max(c):.2f})" for c in cells) + " |", flush=True)
    if chosen:
        selections(chosen)
    if args.subsets:
        subsets_table(cases, labels, per_instance)


if __name__ == "__main__":
    main()
