"""Baseline (and program) figures on a built-in split, as a markdown table.

    python -m evolve.evaluators.serving.report --split test [--router] [--option K=V] [PROGRAM.py ...]

Runs the seed, every baseline and the given programs through the same sandbox,
trusted simulation and score as ``evolve eval`` (``Evaluator.run_split``), and
prints the figures behind the score: goodput, starved requests, mean E2E
latency relative to the reference, tail latency and preemptions, averaged over
the split's instances.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evolve.problem import parse_options

COLUMNS = (
    ("score", "score", "{:.2f}"),
    ("goodput %", "goodput_pct", "{:.1f}"),
    ("starved %", "starved_pct", "{:.2f}"),
    ("mean E2E vs ref", "gap_mean_pct", "{:+.1f}%"),
    ("mean E2E s", "e2e_mean_s", "{:.2f}"),
    ("p99 E2E / ref", "e2e_p99_ratio", "{:.3f}"),
    ("p99 TTFT s", "ttft_p99_s", "{:.2f}"),
    ("preemptions", "preemptions", "{:.0f}"),
    ("max slowdown", "slowdown_max", "{:.0f}"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evolve.evaluators.serving.report", description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="test", choices=["quick", "train", "test"])
    parser.add_argument("--router", action="store_true", help="the serving_router problem")
    parser.add_argument("--option", action="append", default=[], help="verifier option KEY=VALUE")
    parser.add_argument("programs", nargs="*", type=Path)
    args = parser.parse_args(argv)
    from evolve.config import RunSettings
    from evolve.evaluation import Evaluator
    from evolve.problem import load_problem

    name = "serving_router" if args.router else "serving"
    problem = load_problem(name).with_options(parse_options(args.option))
    instances = problem.instances(args.split)
    programs = [("seed", problem.dir / problem.spec.seed), *problem.baselines.items()]
    programs += [(str(p), p) for p in args.programs]
    reference = "round robin" if args.router else "FCFS"
    print(f"## {name}, split {args.split} ({len(instances)} instances; reference: {reference}; "
          f"{problem.verifier.opts.describe(args.router)})\n")
    print("| program | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        for label, path in programs:
            evaluation = evaluator.run_split(Path(path).read_text(), instances, args.split)
            if not evaluation.ok:
                raise SystemExit(f"{label}: {evaluation.status}: {evaluation.feedback}")
            metrics = {**evaluation.metrics, "score": evaluation.score}
            oracle = " (oracle)" if metrics.get("oracle") else ""
            cells = [fmt.format(metrics[key]) for _, key, fmt in COLUMNS]
            print(f"| {label}{oracle} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
