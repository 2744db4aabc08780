"""The SMTT verifier: instances with references, sandboxed solve, trusted scoring."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.evaluators.smtt.candidate_side import (
    respond_rule,
    respond_schedule,
    solve_rule,
    solve_schedule,
)
from evolve.evaluators.smtt.claims import refuted_summary, stated_reference, with_file_bound
from evolve.evaluators.smtt.generator import SPLIT_IDS, split_instances
from evolve.evaluators.smtt.instance_file import parse_instance_file
from evolve.evaluators.smtt.objective import content_hash, sequence_violation
from evolve.evaluators.smtt.references import (
    Budget,
    ReferenceRecord,
    cached_reference,
    compute_reference,
    load_shipped,
    store_cached,
)
from evolve.verifier import (
    CandidateError,
    Direction,
    Instance,
    InstanceResult,
    feasible,
    infeasible,
)

log = logging.getLogger(__name__)

OPTION_KEYS = ("reference_time_limit_s", "reference_workers")
REGENERATE = "python -m evolve.evaluators.smtt.references --split {split}"
# The candidate's CPU budget per instance (both tracks), stated in problem.toml's contract.
CPU_BUDGET_BASE_S = 0.1
CPU_BUDGET_PER_JOB_S = 0.002
BUDGET_TEXT = "0.1 s + 2 ms per job"


def cpu_budget_s(n: int) -> float:
    """CPU seconds a candidate may spend on an instance of n jobs (n = 500: 1.1 s)."""
    return CPU_BUDGET_BASE_S + CPU_BUDGET_PER_JOB_S * n


def _parse_options(options: Mapping[str, Any] | None) -> Budget:
    options = dict(options or {})
    where = "problem.toml: verifier.options"
    for key in options:
        if key not in OPTION_KEYS:
            raise UserError(f"{where}: unknown key {key!r} (expected one of {', '.join(OPTION_KEYS)})")
    limit = options.get("reference_time_limit_s", Budget.time_limit_s)
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 < limit < 1e6:
        raise UserError(f"{where}.reference_time_limit_s: expected a positive number of seconds, got {limit!r}")
    workers = options.get("reference_workers", Budget.workers)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
        raise UserError(f"{where}.reference_workers: expected an integer from 1 to 256, got {workers!r}")
    return Budget(time_limit_s=float(limit), workers=workers)


class SmttVerifier:
    """Single-machine total tardiness (1||sum T_j): minimise total tardiness.

    A solution is a processing order, a list with every job index 0..n-1
    exactly once; jobs run back to back from time 0.
    """

    direction: Direction = "minimize"

    def __init__(self, problem_dir: Path, options: Mapping[str, Any] | None = None) -> None:
        self.problem_dir = Path(problem_dir)
        self.budget = _parse_options(options)
        self.shipped_path = self.problem_dir / "data" / "references.json"
        self._shipped: dict[str, ReferenceRecord] | None = None

    # -- instances (trusted) ---------------------------------------------------------

    def _shipped_references(self) -> dict[str, ReferenceRecord]:
        if self._shipped is None:
            try:
                self._shipped = load_shipped(self.shipped_path)
            except (ValueError, KeyError, TypeError) as exc:
                raise UserError(f"{self.shipped_path}: unreadable references file ({exc})") from None
        return self._shipped

    def instances(self, split: str) -> list[Instance]:
        if split not in SPLIT_IDS:
            raise UserError(f"unknown split {split!r} for smtt (expected one of {', '.join(SPLIT_IDS)})")
        shipped = self._shipped_references()
        out = []
        for gen in split_instances(split):
            record = shipped.get(content_hash(gen.p, gen.d))
            if record is None:
                # Never computed silently: a fresh clone must not spend minutes here.
                raise UserError(
                    f"{self.shipped_path}: no reference for instance {gen.name}; "
                    f"regenerate with `{REGENERATE.format(split=split)}`"
                )
            out.append(Instance(gen.name, gen.group, {"p": gen.p, "d": gen.d}, record.to_reference()))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        """Instances of a user file; a stated reference is checked, else ours is used or computed."""
        path = Path(path)
        specs = parse_instance_file(path)
        shipped = self._shipped_references()
        out, refuted = [], []
        for spec in specs:
            p, d = spec.p, spec.d
            known = shipped.get(content_hash(p, d)) or cached_reference(p, d)
            if spec.claim is not None:
                reference, beaten = stated_reference(spec, known)
                refuted += [beaten] if beaten else []
            else:
                if known is None:
                    log.info("computing the reference of %s (n=%d, up to %gs)", spec.name, len(p),
                             self.budget.time_limit_s)
                    known = compute_reference(spec.name, p, d, self.budget)
                    store_cached(p, d, known)
                reference = with_file_bound(known.to_reference(), spec)
            out.append(Instance(spec.name, f"n={len(p)}", {"p": p, "d": d}, reference))
        if refuted:
            claimed = sum(1 for s in specs if s.claim == "optimum")
            log.warning(refuted_summary(str(path), refuted, claimed))
        return out

    # -- solve (inside the sandbox): evaluators/smtt/candidate_side.py --------------------------

    solve = staticmethod(solve_schedule)
    respond = staticmethod(respond_schedule)

    # -- interact (trusted): one session call per instance, timed by the kernel ----------

    @staticmethod
    def interact(instance: Instance, session: Any) -> Any:
        """The candidate's answer for one instance, within its CPU budget.

        The payload is the instance's p and d only (never its reference); the
        reply's CPU time is the kernel's count for the candidate's process.
        """
        p, d = instance.data["p"], instance.data["d"]
        reply = session.call({"p": p, "d": d})
        if reply.error is not None:  # the candidate raised, or answered with something unsendable
            raise CandidateError(reply.error.replace("reply is not", "solution is not", 1))
        allowed = cpu_budget_s(len(p))
        if reply.cpu_seconds > allowed:
            raise CandidateError(f"CPU budget exceeded: {reply.cpu_seconds:.3f} s of CPU for n = {len(p)}, "
                                 f"{allowed:.3f} s allowed ({BUDGET_TEXT})")
        # A solution is plain data (JSON for --solutions-out, lists for pictures).
        return reply.value.tolist() if isinstance(reply.value, np.ndarray) else reply.value

    @staticmethod
    def time_weight(instance: Instance) -> float:
        """Instance time limits (wall) an instance gets: its CPU budget, in units of n = 500's.

        The shipped sizes get one each; a 2,000-job instance of a user file gets
        four, so its 4.1 s of budget is not cut short by the wall clock.
        """
        return max(1.0, cpu_budget_s(len(instance.data["p"])) / cpu_budget_s(500))

    # -- score (trusted) ---------------------------------------------------------------

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        p = instance.data["p"]
        d = instance.data["d"]
        reason, seq = sequence_violation(solution, len(p))
        if reason is not None or seq is None:
            return infeasible(instance, reason or "invalid sequence")
        completion = np.cumsum(p[seq])
        tardiness = np.maximum(completion - d[seq], 0)
        return feasible(instance, float(tardiness.sum()), self.direction,
                        tardy_jobs=float(np.count_nonzero(tardiness)))


class SmttRuleVerifier(SmttVerifier):
    """``smtt_rule``: the candidate writes only the priority; the verifier dispatches.

    Same instances, references and trusted score as ``smtt``; in the sandbox
    the forward dispatcher (``dispatch.py``) asks the candidate's ``priority``
    for every decision, so its gaps compare with EDD, MDD and MDDC.
    """

    solve = staticmethod(solve_rule)
    respond = staticmethod(respond_rule)
