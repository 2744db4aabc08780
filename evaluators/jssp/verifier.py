"""The JSSP verifier: instances with references, sandboxed schedule building, trusted scoring."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.evaluators.jssp.benchmarks import by_content, test_split_benchmarks
from evolve.evaluators.jssp.builder import build_schedule
from evolve.evaluators.jssp.candidate_side import solve
from evolve.evaluators.jssp.check import check_schedule
from evolve.evaluators.jssp.generator import generated_split
from evolve.evaluators.jssp.instance_file import FileInstance, parse_instance_file
from evolve.evaluators.jssp.model import SCHEMES, JobShop, shop_from_payload
from evolve.evaluators.jssp.references import (
    COMMAND,
    SHIPPED_PATH,
    ReferenceRecord,
    cached_reference,
    compute_reference,
    load_shipped,
    store_cached,
)
from evolve.scoring import aggregate as default_aggregate
from evolve.verifier import Direction, Instance, InstanceResult, Reference, feasible, infeasible

log = logging.getLogger(__name__)

SPLITS = ("quick", "train", "test")
WHERE = "problem.toml: verifier.options"


@dataclass(frozen=True)
class Options:
    scheme: str = "non_delay"
    reference_time_limit_s: float = 10.0
    reference_workers: int = 1


def parse_options(options: Mapping[str, Any] | None) -> Options:
    given = dict(options or {})
    keys = tuple(Options.__dataclass_fields__)
    for key in given:
        if key not in keys:
            raise UserError(f"{WHERE}: unknown key {key!r} (expected one of {', '.join(keys)})")
    scheme = given.get("scheme", Options.scheme)
    if scheme not in SCHEMES:
        raise UserError(f"{WHERE}.scheme: expected one of {', '.join(map(repr, SCHEMES))}, got {scheme!r}")
    limit = given.get("reference_time_limit_s", Options.reference_time_limit_s)
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 < limit < 1e6:
        raise UserError(f"{WHERE}.reference_time_limit_s: expected a positive number of seconds, got {limit!r}")
    workers = given.get("reference_workers", Options.reference_workers)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
        raise UserError(f"{WHERE}.reference_workers: expected an integer from 1 to 256, got {workers!r}")
    return Options(scheme=scheme, reference_time_limit_s=float(limit), reference_workers=workers)


class JsspVerifier:
    """Job shop, makespan.  A solution is the start and end of every operation.

    The schedule is built in the sandbox by the named scheme around the
    candidate's priority rule; here it is re-validated from scratch (durations,
    precedence, machine overlap, and membership in the scheme's class of
    schedules) and the makespan is computed from the validated start times.
    """

    direction: Direction = "minimize"

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        self.problem_dir = Path(problem_dir)
        self.options = parse_options(options)
        self.scheme = self.options.scheme
        self.shipped_path = self.problem_dir / "data" / SHIPPED_PATH.name
        self._shipped: dict[str, ReferenceRecord] | None = None
        # aggregate() replaces the engine's, so it must honour objective.score itself.
        # (Imported here: the sandbox's warm worker imports this module and needs no pydantic.)
        from evolve.config import load_problem_spec

        toml = self.problem_dir / "problem.toml"
        self.score_kind = load_problem_spec(toml).objective.score if toml.is_file() else "gap_mean"

    # -- instances (trusted) ---------------------------------------------------------

    def _group(self, label: str) -> str:
        # The scheme is in every group, so in every per-group figure shown.
        return f"{self.scheme}/{label}"

    def _instance(self, shop: JobShop, label: str, reference: Reference) -> Instance:
        return Instance(shop.name, self._group(label), shop.payload(self.scheme), reference)

    def _shipped_references(self) -> dict[str, ReferenceRecord]:
        if self._shipped is None:
            try:
                self._shipped = load_shipped(self.shipped_path)
            except (ValueError, KeyError, TypeError) as exc:
                raise UserError(f"{self.shipped_path}: unreadable references file ({exc})") from None
        return self._shipped

    def instances(self, split: str) -> list[Instance]:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} for jssp (expected one of {', '.join(SPLITS)})")
        if split == "test":
            return [self._instance(b.shop, b.group, b.reference()) for b in test_split_benchmarks(self.problem_dir / "data")]
        shipped = self._shipped_references()
        out = []
        for shop in generated_split(split):
            record = shipped.get(shop.content_hash())
            if record is None or not record.attained_by_schedule(shop):
                problem = "no reference" if record is None else "a reference its schedule does not attain"
                raise UserError(f"{self.shipped_path}: {problem} for instance {shop.name}; regenerate with `{COMMAND}`")
            out.append(self._instance(shop, shop.size, record.to_reference()))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        known = by_content(self.problem_dir / "data")
        shipped = self._shipped_references()
        out = []
        for item in parse_instance_file(Path(path)):
            shop, key = item.shop, item.shop.content_hash()
            if key in known:
                bench = known[key]
                if item.optimum is not None and bench.optimum is not None and item.optimum != bench.optimum:
                    raise UserError(f"{_field(item, 'optimum')}: {item.optimum} contradicts {bench.shop.name}'s proven optimum {bench.optimum}")
                reference = bench.reference()  # curated bounds beat a file's (often older) ones
            elif key in shipped and item.optimum is None and item.upper_bound is None:
                reference = shipped[key].to_reference()
            else:
                reference = self._file_reference(item, path)
            out.append(self._instance(shop, shop.size, reference))
        return out

    def _file_reference(self, item: FileInstance, path: Path) -> Reference:
        shop, where = item.shop, item.where
        _check_claims(item, trusted_makespan(shop))
        source = f"stated in {Path(path).name}"
        if item.optimum is not None:
            return Reference(float(item.optimum), "optimal", source, float(item.optimum))
        if item.upper_bound is not None:
            lower = item.lower_bound
            kind = "optimal" if lower is not None and lower >= item.upper_bound else "best_known"
            return Reference(float(item.upper_bound), kind, source, None if lower is None else float(lower))
        record = cached_reference(shop)
        if record is None:
            log.info("%s: computing a CP-SAT reference for %s (%s, up to %gs)", where, shop.name, shop.size,
                     self.options.reference_time_limit_s)
            record = compute_reference(shop, self.options.reference_time_limit_s, self.options.reference_workers)
            store_cached(shop, record)
        if item.lower_bound is not None and item.lower_bound > record.value:
            raise UserError(f"{_field(item, 'lower_bound')}: {item.lower_bound} exceeds a schedule of makespan {record.value}")
        return record.to_reference()

    # -- solve (inside the sandbox) ------------------------------------------------------

    solve = staticmethod(solve)  # evaluators/jssp/candidate_side.py: all the worker imports of jssp

    # -- score (trusted) -------------------------------------------------------------------

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        shop = shop_from_payload(instance.name, instance.data)
        reason, checked = check_schedule(shop, solution, instance.data["scheme"])
        if reason is not None or checked is None:
            return infeasible(instance, reason or "invalid schedule")
        extra: dict[str, float] = {}
        bound = instance.reference.bound
        if bound:  # makespan vs a proven lower bound: the most the true gap can be
            extra["gap_to_bound_pct"] = 100.0 * (checked.makespan - bound) / bound
        return feasible(instance, float(checked.makespan), self.direction, **extra)

    def aggregate(self, results: list[InstanceResult]) -> tuple[float | None, dict[str, float]]:
        """The engine's gap figures, per group even when there is one group (it names the
        scheme), and how many references per group are proven optimal."""
        score, metrics = default_aggregate(results, self.direction, self.score_kind)
        groups: dict[str, list[InstanceResult]] = {}
        for r in results:
            groups.setdefault(r.group, []).append(r)
        for group, members in groups.items():
            gaps = [r.gap for r in members if r.gap is not None]
            if gaps:
                metrics.setdefault(f"gap_mean_pct[{group}]", 100.0 * float(np.mean(gaps)))
            kinds = Counter(r.reference_kind for r in members)
            metrics[f"refs_optimal[{group}]"] = float(kinds["optimal"])
            metrics[f"refs_best_known[{group}]"] = float(kinds["best_known"])
        return score, metrics

    def picture(self, instances: list[Instance], results: list[InstanceResult],
                solutions: list[Any], path: Path) -> None:
        from evolve.evaluators.jssp.gantt import draw_gantt  # matplotlib only when asked

        draw_gantt(instances, results, solutions, Path(path))


def trusted_makespan(shop: JobShop) -> int:
    """Makespan of a plain MWKR non-delay schedule, built here: a claimed optimum above it is wrong."""
    start = build_schedule(lambda job_work_left, **_: job_work_left, shop.machines, shop.durations,
                           shop.lengths, shop.n_machines, "non_delay")
    ends = np.where(start >= 0, start + shop.durations, 0)
    return int(ends.max()) if ends.size else 0


def _field(item: FileInstance, key: str) -> str:
    return f"{item.where}.{key}" if item.where.endswith("]") else f"{item.where} ({key})"


def _check_claims(item: FileInstance, heuristic: int) -> None:
    """Reject stated bounds that cannot be true."""
    floor = item.shop.trivial_lower_bound()
    opt, upper, lower = item.optimum, item.upper_bound, item.lower_bound
    for key, value in (("optimum", opt), ("upper_bound", upper)):
        if value is not None and value < floor:
            raise UserError(f"{_field(item, key)}: {value} is below {floor}, the work of the busiest machine or longest job")
    if opt is not None and opt > heuristic:
        raise UserError(f"{_field(item, 'optimum')}: {opt} cannot be optimal, an MWKR schedule has makespan {heuristic}")
    if lower is not None and lower > heuristic:
        raise UserError(f"{_field(item, 'lower_bound')}: {lower} exceeds an MWKR schedule's makespan {heuristic}")
    if lower is not None and upper is not None and lower > upper:
        raise UserError(f"{_field(item, 'lower_bound')}: {lower} exceeds upper_bound {upper}")
    if opt is not None and ((upper is not None and upper != opt) or (lower is not None and lower != opt)):
        raise UserError(f"{_field(item, 'optimum')}: {opt} must equal upper_bound and lower_bound where they are given")
