"""The JSSP verifier: instances with references, sandboxed schedule building, trusted scoring."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from evolve.errors import UserError
from evolve.evaluators.jssp.benchmarks import by_content, test_split_benchmarks
from evolve.evaluators.jssp.builder import build_schedule
from evolve.evaluators.jssp.candidate_side import respond, solve
from evolve.evaluators.jssp.check import check_schedule, schedule_shape
from evolve.evaluators.jssp.drive import drive
from evolve.evaluators.jssp.generator import generated_split
from evolve.evaluators.jssp.instance_file import FileInstance, parse_instance_file
from evolve.evaluators.jssp.model import JobShop, shop_from_payload
from evolve.evaluators.jssp.references import (
    attained_by_schedule,
    compute_reference,
    scaled_time_limit,
)
from evolve.evaluators.secret_seeds import load_secret
from evolve.options import VerifierOptions, read_options
from evolve.references import ReferenceStore, ReferenceTask, StoredReference
from evolve.scoring import aggregate as default_aggregate
from evolve.verifier import Direction, Instance, InstanceResult, Reference, feasible, infeasible

log = logging.getLogger(__name__)

SPLITS = ("quick", "train", "test")
# What a model is told about the schedule builder of its run (prompt_facts).
SCHEME_FACTS = {
    "non_delay": "non-delay: a machine never idles while an operation waits for it, so every "
                 "candidate of a call can start at `now` (earliest_start == now); when operations "
                 "of several machines can start at `now`, the machine offered first is that of the "
                 "lowest job index among them",
    "active": "active (Giffler-Thompson): the machine offered is that of the waiting operation that "
              "would end first (the lowest job index on ties), and the candidates are its operations "
              "that can start before that end; a candidate may start later than `now` (earliest_start > "
              "now); choosing it keeps the machine idle on purpose, which can pay off when that "
              "operation is on the critical path",
}


class JsspOptions(VerifierOptions):
    scheme: Literal["non_delay", "active"] = "non_delay"  # how schedules are built around the rule
    # Budget of CP-SAT references for users' instances without bounds (and the default
    # of `evolve references jssp`): seconds at 600+ operations, a share below.
    reference_time_limit_s: float = Field(10.0, gt=0, lt=1e6)
    reference_workers: int = Field(1, ge=1, le=256)


class JsspVerifier:
    """Job shop, makespan.  A solution is the start and end of every operation.

    The schedule is built by the named scheme around the candidate's priority rule: in the
    sandbox for a provably pure rule (every GP program), here with the rule asked per decision
    for any other program (``drive``); either way it is re-validated from scratch (durations,
    precedence, machine overlap, and membership in the scheme's class of
    schedules) and the makespan is computed from the validated start times.
    """

    direction: Direction = "minimize"

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        self.problem_dir = Path(problem_dir)
        self.options = read_options(JsspOptions, options)
        self.scheme = self.options.scheme
        self.references = ReferenceStore(self.problem_dir, "jssp")
        # aggregate() replaces the engine's, so it must honour objective.score itself.
        from evolve.config import load_problem_spec

        toml = self.problem_dir / "problem.toml"
        self.score_kind = load_problem_spec(toml).objective.score if toml.is_file() else "gap_mean"

    # -- instances (trusted) ---------------------------------------------------------

    def _group(self, label: str) -> str:
        # The scheme is in every group, so in every per-group figure shown.
        return f"{self.scheme}/{label}"

    def _instance(self, shop: JobShop, label: str, reference: Reference) -> Instance:
        return Instance(shop.name, self._group(label), shop.payload(self.scheme), reference)

    def reference_tasks(self, split: str) -> list[ReferenceTask]:
        """The generated splits' instances; the test split's benchmarks have curated bounds."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} for jssp (expected one of {', '.join(SPLITS)})")
        if split == "test":
            return []
        return [ReferenceTask(shop.content_hash(), shop.name, shop) for shop in generated_split(split, self.secret)]

    @cached_property
    def secret(self) -> bytes:
        """The generated splits' seed (read when they are first asked for: the test split and
        users' files need none)."""
        return load_secret(self.problem_dir, "the jssp verifier seeds its generated quick and train instances")

    def compute_reference(self, task: ReferenceTask, time_limit_s: float | None) -> StoredReference:
        """CP-SAT for ``time_limit_s`` seconds at 600+ operations, a share (at least 5 s) below;
        default: option reference_time_limit_s."""
        limit = self.options.reference_time_limit_s if time_limit_s is None else time_limit_s
        shop: JobShop = task.data
        return compute_reference(shop, scaled_time_limit(shop, limit), self.options.reference_workers)

    def instances(self, split: str) -> list[Instance]:
        if split == "test":
            return [self._instance(b.shop, b.group, b.reference()) for b in test_split_benchmarks(self.problem_dir / "data")]
        out = []
        for task in self.reference_tasks(split):
            shop: JobShop = task.data
            record = self.references.shipped_reference(task, split, lambda r: attained_by_schedule(r, shop))  # noqa: B023
            out.append(self._instance(shop, shop.size, record.to_reference()))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        known = by_content(self.problem_dir / "data")
        shipped = self.references.shipped
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
        key = shop.content_hash()
        record = self.references.cached(key, lambda r: attained_by_schedule(r, shop))
        if record is None:
            task = ReferenceTask(key, shop.name, shop)
            log.info("%s: computing a CP-SAT reference for %s (%s, up to %gs)", where, shop.name, shop.size,
                     scaled_time_limit(shop, self.options.reference_time_limit_s))
            record = self.compute_reference(task, None)
            self.references.remember(key, record)
        if item.lower_bound is not None and item.lower_bound > record.value:
            raise UserError(f"{_field(item, 'lower_bound')}: {item.lower_bound} exceeds a schedule of makespan {record.value}")
        return record.to_reference()

    def prompt_facts(self) -> list[str]:
        """What a model must know about this configuration: the schedule builder."""
        return [f"Schedule builder: {SCHEME_FACTS[self.scheme]}. Every split of this run is built "
                "this way: quick, train and the held-out test split."]

    # -- solve (inside the sandbox) ------------------------------------------------------

    solve = staticmethod(solve)  # evaluators/jssp/candidate_side.py: all the worker imports of jssp
    respond = staticmethod(respond)  # one decision of each instance, for drive() below

    @staticmethod
    def drive(instances: list[Instance], session: Any) -> list[tuple[Any, str | None]]:
        """(trusted) Builds every instance here, asking the rule in the session one decision
        at a time, for programs that are not provably a pure rule (``drive.py``)."""
        return drive(instances, session)

    # -- score (trusted) -------------------------------------------------------------------

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        shop = shop_from_payload(instance.name, instance.data)
        reason, checked = check_schedule(shop, solution, instance.data["scheme"])
        if reason is not None or checked is None:
            return infeasible(instance, reason or "invalid schedule")
        extra: dict[str, float] = schedule_shape(shop, checked)
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
