"""References for MoE workloads: the CP-SAT oracle (small deployments) or the trivial bound.

A placement computed from window k is judged on window k+1, so the best it
could possibly do is what a placement computed *knowing* window k+1 achieves:
the oracle.  For small deployments CP-SAT minimises the max GPU load of every
(window, layer) pair of windows 1..W-1 (``evolve.evaluators.moe.ilp``):

* ``value`` = sum of mean GPU loads / sum of the best max loads found: a
  balancedness some placement achieves on those windows (the oracle's);
* ``bound`` = the same with CP-SAT's proven lower bounds: no placement,
  predictive or not, has higher balancedness;
* kind ``optimal`` when every pair is proven, else ``best_known``.

Large deployments get the trivial bound (kind ``bound``, ``bounds.py``).
The built-in splits ship their CP-SAT references in
problems/moe/data/references.json, produced by
``python -m evolve.evaluators.moe.references --split all``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evolve.evaluators.moe.bounds import BalanceBound, trivial_balance_bound
from evolve.evaluators.moe.configs import EpConfig
from evolve.verifier import Reference

SHIPPED_PATH = Path(__file__).resolve().parents[2] / "problems" / "moe" / "data" / "references.json"
FORMAT = "evolve-moe-references-v1"
ILP_MAX_VARS = 10_000  # z variables per (window, layer) model beyond which CP-SAT is not tried
TRIVIAL_SOURCE = "trivial bound: max(mean GPU load, hottest expert over the free slots)"


def content_hash(config: EpConfig, windows: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([config.experts, config.replicas, config.gpus, list(windows.shape)]).encode())
    digest.update(np.ascontiguousarray(windows, dtype=np.int64).tobytes())
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class ReferenceRecord:
    name: str
    value: float  # oracle balancedness achieved (best found)
    bound: float  # proven upper bound on balancedness
    kind: str  # "optimal" or "best_known"
    proven: int
    pairs: int
    time_limit_s: float
    seconds: float

    def to_reference(self) -> Reference:
        source = (f"cp-sat oracle knowing the next window, {self.proven}/{self.pairs} layer-windows "
                  f"proven ({self.time_limit_s:g}s each)")
        return Reference(self.value, self.kind, source, self.bound)  # type: ignore[arg-type]

    @staticmethod
    def from_json(row: dict[str, Any]) -> ReferenceRecord:
        return ReferenceRecord(**{k: row[k] for k in ReferenceRecord.__dataclass_fields__})


def ilp_tractable(config: EpConfig) -> bool:
    from evolve.evaluators.moe.ilp import model_size

    return model_size(config.experts, config.replicas, config.gpus) <= ILP_MAX_VARS


def trivial_reference(config: EpConfig, windows: np.ndarray) -> Reference:
    bound = trivial_balance_bound(windows, config.gpus, config.replicas)
    return Reference(bound.value, "bound", TRIVIAL_SOURCE, bound.value)


def compute_reference(name: str, config: EpConfig, windows: np.ndarray, time_limit_s: float,
                      workers: int = 1) -> ReferenceRecord:
    """CP-SAT on every (window, layer) of windows 1..W-1."""
    from evolve.evaluators.moe.ilp import min_max_load

    started = time.monotonic()
    mean_sum = best_sum = bound_sum = 0.0
    proven = pairs = 0
    for window in windows[1:]:
        for layer_load in window:
            result = min_max_load(layer_load, config.gpus, config.slots_per_gpu, time_limit_s, workers)
            mean_sum += float(layer_load.sum()) / config.gpus
            best_sum += result.value
            bound_sum += result.bound
            proven += int(result.optimal)
            pairs += 1
    best = BalanceBound.from_bounds(mean_sum, best_sum, proven, pairs).value
    bound = BalanceBound.from_bounds(mean_sum, bound_sum, proven, pairs).value
    kind = "optimal" if proven == pairs else "best_known"
    return ReferenceRecord(name, best, max(bound, best), kind, proven, pairs, time_limit_s,
                           round(time.monotonic() - started, 2))


def load_shipped(path: Path = SHIPPED_PATH) -> dict[str, ReferenceRecord]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"unexpected format {data.get('format')!r}, expected {FORMAT}")
    return {h: ReferenceRecord.from_json(row) for h, row in data["references"].items()}


def write_shipped(records: dict[str, ReferenceRecord], meta: dict[str, Any], path: Path = SHIPPED_PATH) -> None:
    rows = dict(sorted(records.items(), key=lambda kv: kv[1].name))
    text = json.dumps({"format": FORMAT, **meta, "references": {h: asdict(r) for h, r in rows.items()}},
                      indent=1) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _machine() -> dict[str, Any]:
    from ortools import __version__ as ortools_version

    return {"python": platform.python_version(), "numpy": np.__version__, "ortools": ortools_version,
            "machine": platform.machine(), "cpus": os.cpu_count()}


def regenerate(splits: list[str], time_limit_s: float, workers: int, path: Path, force: bool) -> None:
    from evolve.evaluators.moe.generator import split_workloads

    records = {} if force else load_shipped(path)
    meta = {"command": f"python -m evolve.evaluators.moe.references --split {','.join(splits)} "
                       f"--time-limit {time_limit_s:g} --workers {workers}", **_machine()}
    todo = [w for s in splits for w in split_workloads(s) if ilp_tractable(w.config)]
    for k, workload in enumerate(todo, 1):
        key = content_hash(workload.config, workload.windows)
        if key in records:
            continue
        record = compute_reference(workload.name, workload.config, workload.windows, time_limit_s, workers)
        records[key] = record
        write_shipped(records, meta, path)
        print(f"[{k}/{len(todo)}] {workload.name}: oracle {record.value:.5f} bound {record.bound:.5f} "
              f"{record.kind} ({record.proven}/{record.pairs} proven, {record.seconds:.0f}s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evolve.evaluators.moe.references",
                                     description="Compute the CP-SAT oracle references of the built-in splits.")
    parser.add_argument("--split", default="all", help="quick, train, test, a comma list, or all")
    parser.add_argument("--time-limit", type=float, default=5.0, help="seconds per (window, layer)")
    parser.add_argument("--workers", type=int, default=1, help="CP-SAT worker threads")
    parser.add_argument("--output", type=Path, default=SHIPPED_PATH)
    parser.add_argument("--force", action="store_true", help="recompute entries already present")
    args = parser.parse_args(argv)
    names = ["quick", "train", "test"] if args.split == "all" else args.split.split(",")
    regenerate(names, args.time_limit, args.workers, args.output, args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
