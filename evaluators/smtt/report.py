"""Baseline gaps and reference statistics for a built-in split, as markdown tables.

    python -m evolve.evaluators.smtt.report --split test

Gap of an instance = (objective - reference) / reference, in percent, averaged
over the instances of a size whose reference is non-zero (the gap is
undefined at 0).  Where a reference is only best-known, the gap to the true
optimum is at least the one shown.  Baselines run through the sandbox and the
verifier exactly as evolved programs do; the time next to each gap is the
kernel's count of the candidate's CPU per instance (machine load inflates it
only a little: report ``uptime`` with it).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from evolve.evaluators.smtt.generator import SPLIT_IDS
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
    return " ".join(w for w in source.split() if not w[0].isdigit() and w != "cpu")


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


def baseline_table(problem_name: str, split: str) -> str:
    """Every baseline of a track through the same sandbox, sessions and verifier as evolved
    programs: the mean gap per size, with the CPU time per instance next to it."""
    from evolve.config import RunSettings
    from evolve.evaluation import Evaluator
    from evolve.problem import load_problem

    problem = load_problem(problem_name)
    instances = problem.instances(split)
    sizes = [f"n={n}" for n in _by_size(instances)]
    rows = [f"| {problem_name} baseline | " + " | ".join(sizes) + " | all |", "|---" * (len(sizes) + 2) + "|"]
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        for name, path in problem.baselines.items():
            m = evaluator.run_split(path.read_text(), instances, split).metrics
            cells = [_cell(m.get(f"gap_mean_pct[{g}]"), m.get(f"ms_per_instance[{g}]")) for g in sizes]
            rows.append(f"| {name} | " + " | ".join(cells) + f" | {_cell(m.get('gap_mean_pct'), m.get('ms_per_instance'))} |")
    counts = " | ".join(str(sum(1 for i in g if i.reference.value)) for g in _by_size(instances).values())
    rows.append(f"| *instances with reference > 0* | {counts} | {sum(1 for i in instances if i.reference.value)} |")
    return "\n".join(rows)


def _cell(gap: float | None, ms: float | None) -> str:
    if gap is None:
        return "-"
    return f"{gap:.2f}" + ("" if ms is None else f" · {ms:.3g} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evolve.evaluators.smtt.report", description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="test", choices=list(SPLIT_IDS))
    parser.add_argument("--tracks", default="smtt,smtt_rule", help="baseline tables for these problems")
    parser.add_argument("--no-references", action="store_true", help="skip the reference table")
    args = parser.parse_args(argv)
    if not args.no_references:
        from evolve.problem import load_problem

        verifier = load_problem("smtt").verifier
        instances = verifier.instances(args.split)
        seconds = {r.name: r.seconds for r in verifier.references.shipped.values()}  # type: ignore[attr-defined]
        print(f"## references ({args.split})\n\n{reference_table(instances, seconds)}\n")
    for track in filter(None, args.tracks.split(",")):
        print(f"## {track}: baseline mean gap to the reference, % · CPU ms per instance ({args.split})\n")
        print(baseline_table(track, args.split) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
