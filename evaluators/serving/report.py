"""Baseline (and program) figures on a built-in split, as a markdown table.

    python -m evolve.evaluators.serving.report --split test [--router] [--option K=V] [PROGRAM.py ...]

Runs the seed, every baseline and the given programs in-process (they are
trusted files here, not sandboxed candidates) through the same solve and
trusted score as ``evolve eval``, and prints the figures behind the score:
goodput, starved requests, mean E2E latency relative to the reference, tail
latency and preemptions, averaged over the split's instances.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import linecache
from pathlib import Path
from typing import Any

from evolve.config import read_toml
from evolve.evaluators.serving.router import RouterVerifier
from evolve.evaluators.serving.verifier import ServingVerifier
from evolve.problem import parse_options

REPO = Path(__file__).resolve().parents[2]
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


def load_function(path: Path, name: str) -> Any:
    """Compile a program as the sandbox does (its source visible to linecache)."""
    source = path.read_text()
    filename = f"<program {hashlib.sha1(source.encode()).hexdigest()}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "candidate"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def evaluate(verifier: Any, instances: list[Any], fn: Any) -> tuple[float | None, dict[str, float]]:
    results = []
    for instance in instances:
        solution = json.loads(json.dumps(verifier.solve(fn, instance)))
        result = verifier.score(instance, solution)
        if not result.feasible:
            raise SystemExit(f"{instance.name}: {result.error}")
        results.append(result)
    return verifier.aggregate(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evolve.evaluators.serving.report", description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="test", choices=["quick", "train", "test"])
    parser.add_argument("--router", action="store_true", help="the serving_router problem")
    parser.add_argument("--option", action="append", default=[], help="verifier option KEY=VALUE")
    parser.add_argument("programs", nargs="*", type=Path)
    args = parser.parse_args(argv)
    name = "serving_router" if args.router else "serving"
    problem = REPO / "problems" / name
    options = {**read_toml(problem / "problem.toml")["verifier"]["options"], **parse_options(args.option)}
    verifier = (RouterVerifier if args.router else ServingVerifier)(problem, options)
    function = "route" if args.router else "priority"
    instances = verifier.instances(args.split)
    programs = [("seed", problem / "seed.py")]
    programs += [(p.stem, p) for p in sorted((problem / "baselines").glob("*.py"))]
    programs += [(str(p), p) for p in args.programs]
    reference = "round robin" if args.router else "FCFS"
    print(f"## {name}, split {args.split} ({len(instances)} instances; reference: {reference}; "
          f"{verifier.opts.describe(args.router)})\n")
    print("| program | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for label, path in programs:
        score, metrics = evaluate(verifier, instances, load_function(path, function))
        metrics["score"] = score if score is not None else float("nan")
        oracle = " (oracle)" if metrics.get("oracle") else ""
        cells = [fmt.format(metrics[key]) for _, key, fmt in COLUMNS]
        print(f"| {label}{oracle} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
