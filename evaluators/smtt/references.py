"""Reference values for SMTT instances: how they are computed, cached and shipped.

* n <= DP_MAX_N: subset DP, the optimum (kind "optimal", source "dp").
* larger n: warm start (best shipped baseline + insertion descent), an
  iterated local search for a share of the budget, then CP-SAT (positional
  model up to POSITIONAL_MAX_N jobs, disjunctive above) hinted with the best
  sequence.  "optimal" only when CP-SAT proves it (or the bound meets the
  value, or the value is 0); otherwise "best_known" with the solver's bound.

The built-in splits ship their references in problems/smtt/data/references.json,
produced by ``python -m evolve.evaluators.smtt.references --split all``; custom
instances are cached per content hash under $XDG_CACHE_HOME/evolve/smtt/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evolve.evaluators.smtt.exact import DP_MAX_N, dp_optimum, matching_lower_bound
from evolve.evaluators.smtt.generator import SPLIT_IDS, split_instances
from evolve.evaluators.smtt.local_search import iterated_descent, warm_start
from evolve.evaluators.smtt.objective import content_hash, total_tardiness
from evolve.verifier import Reference

SHIPPED_PATH = Path(__file__).resolve().parents[2] / "problems" / "smtt" / "data" / "references.json"
FORMAT = "evolve-smtt-references-v1"


# CP-SAT deterministic time units per CPU second (one worker), measured on the 2-vCPU
# development machine: 2 units took 3.8-4.1 s of CPU at n = 100.  Only a conversion, so
# that --time-limit keeps meaning roughly "CPU seconds"; what is recorded is the units.
DET_PER_CPU_S = 0.5
WALL_CAP = 20.0  # the wall clock a solve may take per CPU second of budget (a safety cap)


@dataclass(frozen=True)
class Budget:
    """Compute budget per instance beyond the DP range, in CPU time, not the wall clock.

    The local search stops on the process's CPU clock and CP-SAT (one worker) on its
    deterministic time, so a reference does not get weaker when the machine is busy,
    and CP-SAT's part repeats exactly.
    """

    time_limit_s: float = 10.0  # local search + CP-SAT, CPU seconds
    workers: int = 1  # CP-SAT workers (threads); with more, CP-SAT is not deterministic
    ils_share: float = 0.3  # of time_limit_s spent in the iterated local search


@dataclass(frozen=True)
class ReferenceRecord:
    """A reference value with its provenance and the sequence that attains it."""

    name: str
    n: int
    value: int
    kind: str  # "optimal" or "best_known"
    source: str
    bound: int | None
    seconds: float
    sequence: list[int]

    def to_reference(self) -> Reference:
        return Reference(value=float(self.value), kind=self.kind, source=self.source,  # type: ignore[arg-type]
                         bound=None if self.bound is None else float(self.bound))

    @staticmethod
    def from_json(row: dict[str, Any]) -> ReferenceRecord:
        return ReferenceRecord(**{k: row[k] for k in ReferenceRecord.__dataclass_fields__})


def compute_reference(name: str, p: np.ndarray, d: np.ndarray, budget: Budget) -> ReferenceRecord:
    """The best reference we can get for one instance within ``budget``."""
    from evolve.evaluators.smtt import cpsat  # ortools only here: the sandbox imports this package

    started = time.process_time()
    n = len(p)

    def record(value: int, kind: str, source: str, bound: int | None, seq: list[int]) -> ReferenceRecord:
        if total_tardiness(p, d, seq) != value:  # never ship a value we cannot attain
            raise RuntimeError(f"{name}: reference sequence does not attain {value}")
        return ReferenceRecord(name, n, int(value), kind, source, bound,
                               round(time.process_time() - started, 3), [int(j) for j in seq])

    if n <= DP_MAX_N:
        value, seq = dp_optimum(p, d)
        return record(value, "optimal", "dp", value, seq)
    value, seq, how = warm_start(p, d)
    if value == 0:
        return record(0, "optimal", f"{how} (zero tardiness)", 0, seq)
    ils_s = budget.ils_share * budget.time_limit_s
    seq = cpsat.respect_dominance(p, d, iterated_descent(p, d, seq, ils_s, seed=n))
    value = total_tardiness(p, d, seq)
    floor = matching_lower_bound(p, d)
    if value == floor:
        return record(value, "optimal", "local search (meets the matching bound)", value, seq)

    kind = "positional" if n <= cpsat.POSITIONAL_MAX_N else "disjunctive"
    built = (cpsat.build_positional if kind == "positional" else cpsat.build_disjunctive)(p, d)
    cpsat.add_hint(built, p, d, seq)
    solve_s = max(1.0, budget.time_limit_s - (time.process_time() - started))
    units = round(DET_PER_CPU_S * solve_s, 1)
    solver, status = cpsat.solve(built, WALL_CAP * solve_s, budget.workers, deterministic_time=units)
    outcome = cpsat.report(built, solver, status, p, d)

    source = f"ils {ils_s:g}s cpu + cp-sat {kind} {units:g}det/{budget.workers}w"
    if outcome.objective is not None and outcome.objective < value:
        value, seq = outcome.objective, outcome.sequence or seq
    bound = max(outcome.bound, floor)
    if outcome.proven_optimal or bound >= value:
        return record(value, "optimal", source, value, seq)
    return record(value, "best_known", source, bound, seq)


def refresh_bound(record: ReferenceRecord, p: np.ndarray, d: np.ndarray) -> ReferenceRecord:
    """Raise a stored bound to the matching bound (never lowers it; no solver)."""
    floor = matching_lower_bound(p, d)
    if record.bound is not None and record.bound >= floor:
        return record
    kind = "optimal" if floor >= record.value else record.kind
    return replace(record, bound=floor, kind=kind)


# -- shipped file and per-user cache ---------------------------------------------


def load_shipped(path: Path = SHIPPED_PATH) -> dict[str, ReferenceRecord]:
    """Content hash -> record; empty if the file does not exist."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: unexpected format {data.get('format')!r}, expected {FORMAT}")
    return {h: ReferenceRecord.from_json(row) for h, row in data["references"].items()}


def write_shipped(records: dict[str, ReferenceRecord], meta: dict[str, Any], path: Path = SHIPPED_PATH) -> None:
    """One entry per line (diffable, sequences inline), written atomically."""
    lines = [f"  {json.dumps(h)}: {json.dumps(asdict(r))}" for h, r in sorted(records.items(),
                                                                           key=lambda kv: kv[1].name)]
    head = {"format": FORMAT, **meta}
    text = json.dumps(head, indent=2)[:-2] + ',\n  "references": {\n  ' + ",\n  ".join(lines) + "\n  }\n}\n"
    json.loads(text)  # refuse to write a file we could not read back
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evolve" / "smtt"


def cached_reference(p: np.ndarray, d: np.ndarray) -> ReferenceRecord | None:
    path = cache_dir() / f"{content_hash(p, d)}.json"
    try:
        record = ReferenceRecord.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or unreadable: recompute
    # Trust nothing on disk we cannot check cheaply.
    if len(record.sequence) != len(p) or total_tardiness(p, d, record.sequence) != record.value:
        return None
    return record


def store_cached(p: np.ndarray, d: np.ndarray, record: ReferenceRecord) -> None:
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{content_hash(p, d)}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(asdict(record)))
    os.replace(tmp, path)


# -- command line -------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    from ortools import __version__ as ortools_version

    return {"python": platform.python_version(), "numpy": np.__version__, "ortools": ortools_version,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpus": os.cpu_count()}


def regenerate(splits: list[str], budget: Budget, path: Path, force: bool, jobs: int = 1) -> None:
    """Compute missing references (all with ``force``), saving after each instance.

    ``jobs`` processes compute in parallel; CP-SAT runs on deterministic time, so
    the values do not depend on how many share the machine.  Computing every
    split drops entries of instances no split has any more.
    """
    records = {} if force else load_shipped(path)
    command = f"python -m evolve.evaluators.smtt.references --split {','.join(splits)} " \
              f"--time-limit {budget.time_limit_s:g} --workers {budget.workers}"
    # The header describes the run that computed entries; a run that only
    # raises bounds keeps it (each entry's source names its own budget).
    meta = {"command": command, "budget": asdict(budget), **_machine()}
    if records:
        previous = json.loads(path.read_text())
        meta = {k: v for k, v in previous.items() if k not in ("format", "references")}
    wanted = {content_hash(g.p, g.d): g for s in splits for g in split_instances(s)}
    if set(splits) == set(SPLIT_IDS):
        stale = [h for h in records if h not in wanted]
        for h in stale:
            del records[h]
        if stale:
            print(f"dropped {len(stale)} entries of instances no split has", flush=True)
            write_shipped(records, meta, path)
    for h, inst in wanted.items():
        if h in records:  # kept; only its name may change and its bound be raised (cheap)
            fresh = replace(refresh_bound(records[h], inst.p, inst.d), name=inst.name)
            if fresh != records[h]:
                records[h] = fresh
                write_shipped(records, meta, path)
    todo = [(h, g) for h, g in wanted.items() if h not in records]
    started = time.monotonic()
    with ProcessPoolExecutor(jobs) as pool:
        if jobs > 1:
            running = {pool.submit(compute_reference, g.name, g.p, g.d, budget): h for h, g in todo}
            results: Iterator[tuple[str, ReferenceRecord]] = (
                (running[f], f.result()) for f in as_completed(running))
        else:  # in this process, one at a time (the pool stays idle)
            results = ((h, compute_reference(g.name, g.p, g.d, budget)) for h, g in todo)
        for k, (h, rec) in enumerate(results, 1):
            records[h] = rec
            meta = {"command": command, "budget": asdict(budget), **_machine()}
            write_shipped(records, meta, path)
            print(f"[{k}/{len(todo)}] {rec.name}: {rec.value} {rec.kind} bound={rec.bound} "
                  f"({rec.source}, {rec.seconds:.1f}s cpu; total {time.monotonic() - started:.0f}s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evolve.evaluators.smtt.references", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--split", help="quick, train, test, a comma list, or all")
    source.add_argument("--instances", type=Path, help="a custom instance JSON file (results are cached)")
    parser.add_argument("--time-limit", type=float, default=Budget.time_limit_s, help="seconds per instance (n > 20)")
    parser.add_argument("--workers", type=int, default=Budget.workers, help="CP-SAT worker threads")
    parser.add_argument("--output", type=Path, default=SHIPPED_PATH, help="shipped references file")
    parser.add_argument("--force", action="store_true", help="recompute entries already present")
    parser.add_argument("--jobs", type=int, default=1, help="instances computed in parallel (processes)")
    args = parser.parse_args(argv)
    budget = Budget(time_limit_s=args.time_limit, workers=args.workers)
    if args.instances is not None:
        from evolve.errors import UserError
        from evolve.evaluators.smtt.verifier import SmttVerifier

        options = {"reference_time_limit_s": args.time_limit, "reference_workers": args.workers}
        try:
            instances = SmttVerifier(SHIPPED_PATH.parents[1], options).load_instances(args.instances)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for inst in instances:
            ref = inst.reference
            print(f"{inst.name}: {ref.value:g} {ref.kind} bound={ref.bound:g} ({ref.source})")
        return 0
    names = list(SPLIT_IDS) if args.split == "all" else args.split.split(",")
    unknown = [s for s in names if s not in SPLIT_IDS]
    if unknown:
        parser.error(f"unknown split {unknown[0]!r} (expected {', '.join(SPLIT_IDS)} or all)")
    regenerate(names, budget, args.output, args.force, max(1, args.jobs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
