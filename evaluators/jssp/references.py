"""References for generated and user instances: CP-SAT, shipped or cached.

The ``quick`` and ``train`` splits ship their references in
problems/jssp/data/references.json, computed once by::

    taskset -c 0 python -m evolve.evaluators.jssp.references --time-limit 45 --workers 8

(under 15 minutes on one core: the limit scales with the instance size, 45 s
at 600 operations; CP-SAT starts from the best of a few dispatching-rule
schedules, and its 8 workers share the one core).  Each record keeps the schedule that attains
its value, re-checked whenever it is loaded, so no value is trusted on faith.
``kind`` is "optimal" when CP-SAT proved it, else "best_known" with CP-SAT's
lower bound.  Instances of a user's file without stated bounds are solved the
same way and cached per content hash under $XDG_CACHE_HOME/evolve/jssp/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evolve.evaluators.jssp.check import check_schedule
from evolve.evaluators.jssp.generator import generated_split
from evolve.evaluators.jssp.model import JobShop
from evolve.verifier import Reference

SHIPPED_PATH = Path(__file__).resolve().parents[2] / "problems" / "jssp" / "data" / "references.json"
FORMAT = "evolve-jssp-references-v1"
COMMAND = "taskset -c 0 python -m evolve.evaluators.jssp.references --time-limit 45 --workers 8"
FULL_BUDGET_OPS = 600  # instances this large get the whole --time-limit; smaller ones a share


@dataclass(frozen=True)
class ReferenceRecord:
    name: str
    size: str
    value: int
    kind: str  # "optimal" or "best_known"
    bound: int
    source: str
    seconds: float
    start: list[list[int]]  # a schedule attaining value

    def to_reference(self) -> Reference:
        return Reference(float(self.value), self.kind, self.source, float(self.bound))  # type: ignore[arg-type]

    @staticmethod
    def from_json(row: dict[str, Any]) -> ReferenceRecord:
        return ReferenceRecord(**{k: row[k] for k in ReferenceRecord.__dataclass_fields__})

    def attained_by_schedule(self, shop: JobShop) -> bool:
        """The stored schedule is feasible and has exactly this makespan."""
        ends = [[s + int(shop.durations[j, k]) for k, s in enumerate(row)] for j, row in enumerate(self.start)]
        reason, checked = check_schedule(shop, {"start": self.start, "end": ends}, None)
        return reason is None and checked is not None and checked.makespan == self.value


def rule_schedule_hint(shop: JobShop) -> np.ndarray:
    """The best of MWKR and MWKR/p, non-delay and active: a warm start for CP-SAT."""
    from evolve.evaluators.jssp.builder import build_schedule

    rules = (lambda job_work_left, **_: job_work_left,
             lambda job_work_left, proc_time, **_: job_work_left / np.maximum(proc_time, 1))
    best: tuple[float, np.ndarray] | None = None
    for scheme in ("non_delay", "active"):
        for rule in rules:
            start = build_schedule(rule, shop.machines, shop.durations, shop.lengths, shop.n_machines, scheme)
            makespan = float(np.where(start >= 0, start + shop.durations, 0).max())
            if best is None or makespan < best[0]:
                best = (makespan, start.astype(np.int64))
    assert best is not None
    return best[1]


def compute_reference(shop: JobShop, time_limit_s: float, workers: int = 1) -> ReferenceRecord:
    from ortools import __version__ as ortools_version

    from evolve.evaluators.jssp.cpsat import solve_cpsat

    result = solve_cpsat(shop, time_limit_s=time_limit_s, workers=workers, hint=rule_schedule_hint(shop))
    if result.makespan is None or result.start is None:
        raise RuntimeError(f"{shop.name}: CP-SAT found no schedule in {time_limit_s:g}s; raise the time limit")
    proved = result.status == "optimal" or result.bound >= result.makespan
    how = "proved optimal" if proved else f"best found, lower bound {result.bound}"
    source = f"CP-SAT (ortools {ortools_version}, {time_limit_s:g}s, {workers} worker(s)): {how}"
    start = [result.start[j, : int(shop.lengths[j])].tolist() for j in range(shop.n_jobs)]
    record = ReferenceRecord(
        name=shop.name, size=shop.size, value=result.makespan,
        kind="optimal" if proved else "best_known",
        bound=result.makespan if proved else result.bound,
        source=source, seconds=round(result.seconds, 2), start=start,
    )
    if not record.attained_by_schedule(shop):  # never ship a value we cannot attain
        raise RuntimeError(f"{shop.name}: the CP-SAT schedule does not check out")
    return record


def load_shipped(path: Path = SHIPPED_PATH) -> dict[str, ReferenceRecord]:
    """Shipped records by content hash (empty if the file is absent)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"expected format {FORMAT!r}, got {data.get('format')!r}")
    return {key: ReferenceRecord.from_json(row) for key, row in data["instances"].items()}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evolve" / "jssp"


def cached_reference(shop: JobShop) -> ReferenceRecord | None:
    path = cache_dir() / f"{shop.content_hash()}.json"
    try:
        record = ReferenceRecord.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or unreadable: recompute
    return record if record.attained_by_schedule(shop) else None


def store_cached(shop: JobShop, record: ReferenceRecord) -> None:
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{shop.content_hash()}.json"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs a recomputation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evolve.evaluators.jssp.references", description=__doc__.split("\n")[0])
    parser.add_argument("--time-limit", type=float, default=45.0,
                        help=f"CP-SAT seconds for an instance of {FULL_BUDGET_OPS}+ operations (smaller: a share, at least 5)")
    parser.add_argument("--workers", type=int, default=8, help="CP-SAT workers (threads)")
    parser.add_argument("--out", type=Path, default=SHIPPED_PATH)
    args = parser.parse_args(argv)
    from ortools import __version__ as ortools_version

    shops = generated_split("quick") + generated_split("train")
    records: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    for shop in shops:
        limit = max(5.0, min(args.time_limit, args.time_limit * shop.n_operations / FULL_BUDGET_OPS))
        record = compute_reference(shop, limit, args.workers)
        records[shop.content_hash()] = asdict(record)
        print(f"{shop.name:18s} {record.kind:10s} {record.value:6d} (bound {record.bound}) "
              f"{record.seconds:6.1f}s", flush=True)
    document = {
        "format": FORMAT,
        "generated_by": {
            "command": COMMAND, "time_limit_s": args.time_limit, "full_budget_ops": FULL_BUDGET_OPS,
            "workers": args.workers,
            "ortools": ortools_version, "numpy": np.__version__, "python": sys.version.split()[0],
            "machine": platform.platform(), "cpus": os.cpu_count(),
            "total_seconds": round(time.monotonic() - started, 1),
        },
        "instances": records,
    }
    args.out.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    print(f"wrote {len(records)} references to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
