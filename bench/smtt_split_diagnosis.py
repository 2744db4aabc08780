"""Why a split ranks MDD and MDDC as it does: `python bench/smtt_split_diagnosis.py [--on SPLIT ...]`.

For each split (smtt_rule's train or valid against their shipped references, or the fresh set of
bench/smtt_validation.py against its proxy references), per size: both rules' mean gap %, the
paired difference MDD - MDDC with a bootstrap 90 % interval (instances resampled within the size),
how many instances with a non-zero reference, the instances that carry most of the difference
(name, TF/RDD, reference, reference kind, both rules' gaps) and the difference with every
instance whose reference is below --tiny left out. Never reads the test split.

`--polish S --sample K` checks the references instead: every instance at the sizes with a
reference below --tiny, and K others per size drawn at random, are searched again for S CPU
seconds each (an iterated insertion descent, `local_search.py`) from the reference's own sequence
(train, valid) or from the fresh set's warm start (its proxies keep no sequence), and the table
says how many got lower and how that moves MDD - MDDC.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from smtt_validation import baseline, instances

from evolve import problems as builtin_problems
from evolve.evaluators.smtt.dispatch import dispatch
from evolve.evaluators.smtt.generator import GRID
from evolve.evaluators.smtt.local_search import iterated_descent, warm_start
from evolve.evaluators.smtt.objective import content_hash, total_tardiness
from evolve.problem import load_problem


def cases(split: str, replicates: int, cache: Path) -> list[tuple[str, int, np.ndarray, np.ndarray, float, str]]:
    """(name, n, p, d, reference, kind) of every instance of the split."""
    if split == "fresh":
        out, seen = [], {}
        for n, p, d, ref in instances(replicates, cache):
            k = seen.get(n, 0)
            seen[n] = k + 1
            tf, rdd = GRID[k % len(GRID)]
            out.append((f"fresh-n{n}-tf{tf / 10}-rdd{rdd / 10}-{k}", n, p, d, ref, "proxy"))
        return out
    shipped = load_problem("smtt_rule").instances(split)
    return [(i.name, len(i.data["p"]), i.data["p"], i.data["d"], float(i.reference.value), i.reference.kind)
            for i in shipped]


def polish(split: str, sizes: list[int], args: argparse.Namespace) -> None:
    """Search the sampled references again from their witnesses; print what changed."""
    path = Path(builtin_problems.__file__).resolve().parent / "smtt_rule" / "data" / "references.json"
    stored = json.loads(path.read_text())["references"] if split != "fresh" else {}
    mdd, mddc = baseline("mdd"), baseline("mddc")
    rng = np.random.default_rng(1)
    start = "the warm start" if split == "fresh" else "each reference's sequence"
    print(f"\n## {split}: references searched again from {start} for {args.polish:g} s of CPU each\n")
    print("| n | searched (tiny + random) | lower | mean / max lowering % | MDD - MDDC on them, shipped -> searched |")
    print("|---|---|---|---|---|")
    for n in sizes:
        rows = [c for c in cases(split, args.replicates, args.cache) if c[1] == n and c[4] > 0]
        tiny = [c for c in rows if c[4] < args.tiny]
        rest = [c for c in rows if c[4] >= args.tiny]
        picked = tiny + [rest[i] for i in rng.choice(len(rest), min(args.sample, len(rest)), replace=False)]
        lowered, before, after = [], [], []
        for name, _, p, d, ref, _kind in picked:
            if split == "fresh":
                witness = warm_start(p, d, budget_s=0.5)[1]
            else:
                witness = stored[content_hash(p, d)]["witness"]
            value = total_tardiness(p, d, iterated_descent(p, d, witness, args.polish, seed=7))
            lowered.append(100.0 * (ref - value) / ref)
            pf, df = p.astype(float), d.astype(float)
            a = total_tardiness(p, d, dispatch(mdd, pf, df))
            b = total_tardiness(p, d, dispatch(mddc, pf, df))
            before.append(100.0 * (a - b) / ref)
            after.append(100.0 * (a - b) / value if value > 0 else 0.0)
            if value < ref:
                print(f"|  | {name}: {ref:g} -> {value:g} |  |  |  |", flush=True)
        low = np.array(lowered)
        print(f"| {n} | {len(picked)} ({len(tiny)} + {len(picked) - len(tiny)}) | {int((low > 0).sum())}"
              f" | {low.mean():.3f} / {low.max():.3f} | {np.mean(before):+.3f} -> {np.mean(after):+.3f} |",
              flush=True)


def bootstrap(diff: np.ndarray, draws: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """Share of resamples with MDD worse, and the 5 % / 95 % quantiles of the mean difference."""
    means = diff[rng.integers(0, len(diff), (draws, len(diff)))].mean(axis=1)
    return float((means > 0).mean()), float(np.quantile(means, 0.05)), float(np.quantile(means, 0.95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--on", action="append", choices=("train", "valid", "fresh"), default=[])
    parser.add_argument("--replicates", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=Path("runs/smtt-validation.npz"))
    parser.add_argument("--sizes", default="100,200,500")
    parser.add_argument("--carriers", type=int, default=3, help="instances listed per size")
    parser.add_argument("--tiny", type=float, default=100.0, help="reference below which an instance is tiny")
    parser.add_argument("--draws", type=int, default=10000)
    parser.add_argument("--polish", type=float, default=0.0, metavar="S",
                        help="search the shipped references of --on again for S CPU seconds each")
    parser.add_argument("--sample", type=int, default=5, metavar="K", help="random instances per size for --polish")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.polish:
        for split in args.on or ["train"]:
            polish(split, sizes, args)
        return
    mdd, mddc = baseline("mdd"), baseline("mddc")
    rng = np.random.default_rng(0)
    for split in args.on or ["train", "valid", "fresh"]:
        print(f"\n## {split}\n")
        print("| n | instances (ref > 0) | MDD | MDDC | MDD - MDDC | P(MDD worse) | 90 % interval"
              f" | without ref < {args.tiny:g} (left out) |")
        print("|---|---|---|---|---|---|---|---|")
        carriers = []
        for n in sizes:
            rows = []
            for name, size, p, d, ref, kind in cases(split, args.replicates, args.cache):
                if size != n or ref <= 0:
                    continue
                pf, df = p.astype(float), d.astype(float)
                a = 100.0 * (total_tardiness(p, d, dispatch(mdd, pf, df)) - ref) / ref
                b = 100.0 * (total_tardiness(p, d, dispatch(mddc, pf, df)) - ref) / ref
                rows.append((name, ref, kind, a, b))
            a = np.array([r[3] for r in rows])
            b = np.array([r[4] for r in rows])
            diff = a - b
            share, low, high = bootstrap(diff, args.draws, rng)
            big = np.array([r[1] >= args.tiny for r in rows])
            print(f"| {n} | {len(rows)} | {a.mean():.2f} | {b.mean():.2f} | {diff.mean():+.2f} | {share:.2f}"
                  f" | {low:+.2f} .. {high:+.2f} | {diff[big].mean():+.2f} ({int((~big).sum())}) |")
            order = np.argsort(-np.abs(diff))[: args.carriers]
            carriers += [(n, rows[i], diff[i] / len(rows)) for i in order]
        print("\n| n | instance | reference (kind) | MDD gap | MDDC gap | share of the size's difference |")
        print("|---|---|---|---|---|---|")
        for n, (name, ref, kind, a, b), share in carriers:
            print(f"| {n} | {name} | {ref:g} ({kind}) | {a:.2f} | {b:.2f} | {share:+.2f} |")
    print(f"\n(bootstrap: {args.draws} resamples per size; mean gaps as every table reports them)")


if __name__ == "__main__":
    main()
