"""Baseline gaps and reference statistics for a built-in split, as markdown tables.

    python -m evolve.evaluators.smtt.report --split test

Gap of an instance = (objective - reference) / reference, in percent, averaged
over the instances of a size whose reference is non-zero (the gap is
undefined at 0).  Where a reference is only best-known, the gap to the true
optimum is at least the one shown.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from evolve.evaluators.smtt.generator import SPLIT_IDS
from evolve.evaluators.smtt.local_search import BASELINE_NAMES, load_baseline
from evolve.evaluators.smtt.objective import total_tardiness
from evolve.evaluators.smtt.references import SHIPPED_PATH, load_shipped
from evolve.evaluators.smtt.verifier import SmttVerifier
from evolve.verifier import Instance


def _by_size(instances: list[Instance]) -> dict[int, list[Instance]]:
    groups: dict[int, list[Instance]] = defaultdict(list)
    for inst in instances:
        groups[len(inst.data["p"])].append(inst)
    return dict(sorted(groups.items()))


def _method(source: str) -> str:
    """A source without its time budget: 'ils 3s + cp-sat disjunctive 7s/1w' -> 'ils + cp-sat disjunctive'."""
    if "zero tardiness" in source:
        return "heuristic, zero tardiness"
    return " ".join(w for w in source.split() if not w[0].isdigit())


def reference_table(instances: list[Instance], seconds: dict[str, float] | None = None) -> str:
    rows = ["| n | instances | optimal (zero) | best known | mean / max bound gap % | mean s | methods |",
            "|---|---|---|---|---|---|---|"]
    for n, group in _by_size(instances).items():
        optimal = [i for i in group if i.reference.kind == "optimal"]
        zero = sum(1 for i in optimal if i.reference.value == 0)
        open_ = [i for i in group if i.reference.kind == "best_known"]
        gaps = [100 * (i.reference.value - i.reference.bound) / i.reference.value for i in open_
                if i.reference.value and i.reference.bound is not None]
        methods = sorted({_method(i.reference.source) for i in group})
        gap = f"{np.mean(gaps):.2f} / {np.max(gaps):.2f}" if gaps else "-"
        secs = f"{np.mean([seconds[i.name] for i in group]):.1f}" if seconds else "-"
        rows.append(f"| {n} | {len(group)} | {len(optimal)} ({zero}) | {len(open_)} | {gap} | {secs} | "
                    f"{', '.join(methods)} |")
    return "\n".join(rows)


def baseline_table(instances: list[Instance], names: tuple[str, ...] = BASELINE_NAMES) -> str:
    groups = _by_size(instances)
    header = "| baseline | " + " | ".join(f"n={n}" for n in groups) + " | ms/instance (n=500) |"
    rows = [header, "|---" * (len(groups) + 2) + "|"]
    for name in names:
        schedule = load_baseline(name)
        cells, timing = [], "-"
        for n, group in groups.items():
            gaps = []
            started = time.perf_counter()
            for inst in group:
                p, d = inst.data["p"], inst.data["d"]
                value = total_tardiness(p, d, schedule(p.copy(), d.copy()))
                if inst.reference.value:
                    gaps.append(100 * (value - inst.reference.value) / inst.reference.value)
            if n == 500:
                timing = f"{(time.perf_counter() - started) / len(group) * 1e3:.1f}"
            cells.append(f"{np.mean(gaps):.2f}" if gaps else "-")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {timing} |")
    counts = " | ".join(str(sum(1 for i in g if i.reference.value)) for g in groups.values())
    rows.append(f"| *instances with reference > 0* | {counts} | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evolve.evaluators.smtt.report", description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="test", choices=list(SPLIT_IDS))
    args = parser.parse_args(argv)
    verifier = SmttVerifier(Path(SHIPPED_PATH).parents[1], {})
    instances = verifier.instances(args.split)
    seconds = {r.name: r.seconds for r in load_shipped(verifier.shipped_path).values()}
    print(f"## references ({args.split})\n\n{reference_table(instances, seconds)}\n")
    print(f"## baseline mean gaps to the reference, % ({args.split})\n\n{baseline_table(instances)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
