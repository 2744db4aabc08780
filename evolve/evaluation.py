"""Judging a program: sandbox (untrusted) -> verifier.score (trusted) -> aggregate.

Evolved programs, the seed and the baselines all go through ``Evaluator``, so
their numbers are comparable.  A cascade runs the small ``quick`` split first;
only children that pass it reach the full ``train`` split.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evolve.config import SandboxSettings
from evolve.errors import UserError
from evolve.formats import pct
from evolve.instance_facets import facet_lines
from evolve.problem import Problem, builtin_dir
from evolve.pure_rule import is_pure_rule
from evolve.sandbox import InstanceRun, Sandbox, SandboxLimits, SandboxOutcome, SessionEnded
from evolve.sandbox.outcome import printable
from evolve.sandbox.side import whole_module_warning
from evolve.scoring import aggregate, headline_gap, natural_key
from evolve.user_code import where_raised
from evolve.verifier import (
    CandidateError,
    Instance,
    InstanceResult,
    allowance_text,
    charges_cpu,
    infeasible,
    over_budget,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

Status = Literal["ok", "infeasible", "error", "timeout", "memory", "crash", "rejected"]
FAILURE_KINDS: tuple[str, ...] = ("infeasible", "error", "timeout", "memory", "crash")


@dataclass
class Evaluation:
    status: Status
    score: float | None
    metrics: dict[str, float]
    instances: list[InstanceResult]
    feedback: str
    stage: str
    seconds: float
    solutions: list[object] = field(default_factory=list, repr=False)
    # ``results_json(instances)``, made where the instances were scored when that is a worker
    # process (evolve/workers.py): the controller then commits it as it came, off its own CPU.
    instances_json: str | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.score is not None

    def to_json(self, problem: str, split: str) -> dict[str, Any]:
        """The stable ``evolve eval --json`` document."""
        return {
            "problem": problem, "split": split, "status": self.status, "score": self.score,
            "metrics": self.metrics, "feedback": self.feedback,
            "instances": [{k: v for k, v in r.to_json().items() if k != "extra"} for r in self.instances],
        }

    def frame(self) -> pd.DataFrame:
        """Per-instance results as a pandas DataFrame: name, group, objective, reference,
        reference_kind, gap, feasible, error, seconds, and the verifier's extra metrics."""
        import pandas as pd

        return pd.DataFrame([{**{k: v for k, v in r.to_json().items() if k != "extra"}, **r.extra}
                             for r in self.instances])


def results_json(results: list[InstanceResult]) -> str:
    """Per-instance results as the archive keeps them (``programs.instances``)."""
    return json.dumps([r.to_json() for r in results])


def limits_from(settings: SandboxSettings) -> SandboxLimits:
    return SandboxLimits(
        timeout_s=run_timeout(settings.instance_timeout_s, 1),
        memory_mb=settings.memory_mb,
        max_processes=settings.max_processes,
        file_size_mb=settings.file_size_mb,
    )


class Evaluator:
    """Thread-safe: each call borrows one of ``slots`` sandboxes (warm workers).

    Sandboxes start on first use, or all at once with ``start()``; their slot
    numbers (which pick the candidate uid) begin at ``first_slot``.
    """

    def __init__(
        self, problem: Problem, settings: SandboxSettings, slots: int = 1, hide: list[Path] | None = None,
        first_slot: int = 0,
    ) -> None:
        self.problem = problem
        if settings.max_processes > 1 and charges_cpu(problem.verifier):
            raise UserError(
                f"{problem.name} counts a program's CPU time, and a process it forks works off that clock: "
                f"run it with [run.sandbox] max_processes = 1 (it is {settings.max_processes})")
        # Candidates must not read the problem's data (references, certificates)
        # or the run's archive: hidden where the sandbox can (root + mount ns).
        self._hide = hidden_paths([problem.dir, *(hide or [])])
        self._limits = limits_from(settings)
        self._instance_timeout_s = settings.instance_timeout_s
        self._free: queue.Queue[int] = queue.Queue()
        self._sandboxes: dict[int, Sandbox] = {}
        self._slots = range(first_slot, first_slot + slots)
        for slot in self._slots:
            self._free.put(slot)

    def start(self) -> dict[str, tuple[bool, str]]:
        """Start every slot's sandbox now (not at its first candidate); the isolation facts."""
        return {name: fact for slot in self._slots for name, fact in self._sandbox(slot).facts.items()}

    def _sandbox(self, slot: int) -> Sandbox:
        if slot not in self._sandboxes:
            entry, path = self.problem.verifier_entry, self.problem.sys_path
            try:
                sandbox = Sandbox(entry, self._limits, slot=slot, extra_sys_path=path, hide_paths=self._hide)
            except UserError as err:
                if not self._hide or "hide" not in str(err):
                    raise
                log.info("sandbox cannot hide %s here (%s)", self._hide, err)  # the one-line warning below says more
                self._hide = []
                sandbox = Sandbox(entry, self._limits, slot=slot, extra_sys_path=path)
            self._sandboxes[slot] = sandbox
            warn_once(sandbox.facts, whole_module_warning(self.problem.spec.verifier.entry, sandbox.side))
        return self._sandboxes[slot]

    def close(self) -> None:
        for sandbox in self._sandboxes.values():
            sandbox.close()
        self._sandboxes.clear()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_split(self, code: str, instances: list[Instance], stage: str) -> Evaluation:
        started = time.perf_counter()
        slot = self._free.get()
        try:
            timeout = run_timeout(self._instance_timeout_s, self._time_units(instances))
            function = self.problem.spec.function.name
            interact = getattr(self.problem.verifier, "interact", None)
            sandbox = self._sandbox(slot)
            if callable(interact):
                outcome = self._interact(sandbox, code, function, instances, timeout)
            elif self._driven(code, function):
                outcome = self._drive(sandbox, code, function, instances, timeout)
            else:
                outcome = sandbox.run(code, function, instances, timeout)
            if outcome.status == "ok" and self._audited(code, function):
                outcome.runs = self._audit(sandbox, code, function, instances, outcome.runs, timeout)
        finally:
            self._free.put(slot)
        evaluation = self._judge(outcome, instances, stage)
        evaluation.seconds = time.perf_counter() - started
        return evaluation

    def _time_units(self, instances: list[Instance]) -> float:
        """Instance time limits the split gets: one each, or what the verifier's
        optional ``time_weight(instance)`` says (e.g. scaled to a trace's size)."""
        weigh = getattr(self.problem.verifier, "time_weight", None)
        if not callable(weigh):
            return float(len(instances))
        return sum(max(1.0, float(weigh(instance))) for instance in instances)

    def _interact(
        self, sandbox: Sandbox, code: str, function: str, instances: list[Instance], timeout: float
    ) -> SandboxOutcome:
        """One session for the split, or one per instance where the verifier's optional
        ``shares_session(instances)`` says no: instances a program may know before it is asked
        (public sets), where in one session a cheap instance's CPU could work for the costly
        ones to come (docs/smtt.md, "Seeds").  The split's wall limit holds either way."""
        shares = getattr(self.problem.verifier, "shares_session", None)
        if not callable(shares) or shares(instances):
            return self._session(sandbox, code, function, instances, timeout)
        deadline = time.monotonic() + timeout
        runs: list[InstanceRun] = []
        wall, tail = 0.0, ""
        for instance in instances:
            own = run_timeout(self._instance_timeout_s, self._time_units([instance]))
            left = max(0.001, min(own, deadline - time.monotonic()))
            one = self._session(sandbox, code, function, [instance], left)
            runs += one.runs
            wall, tail = wall + one.wall_seconds, one.stderr_tail or tail
            if one.status != "ok":
                return SandboxOutcome(one.status, runs, one.error, tail, wall)
        return SandboxOutcome("ok", runs, None, tail, wall)

    def _session(
        self, sandbox: Sandbox, code: str, function: str, instances: list[Instance], timeout: float
    ) -> SandboxOutcome:
        """One session for ``instances``; the trusted ``interact`` drives each instance."""
        interact = self.problem.verifier.interact
        runs: list[InstanceRun] = []
        last: tuple[Instance, Any, str | None, float] | None = None  # waiting for its settled CPU
        with sandbox.session(code, function, timeout_s=timeout) as session:
            try:
                for instance in instances:
                    if last is not None:
                        runs.append(self._settled(session, *last))
                        last = None
                    cpu = session.cpu_seconds
                    try:
                        solution, error = interact(instance, session), None
                    except SessionEnded:
                        raise
                    except CandidateError as err:  # reported as the candidate's own error
                        solution, error = None, str(err)
                    except Exception as err:  # the verifier's own verdict on a bad reply, or a bug
                        solution, error = None, f"solution could not be obtained: {type(err).__name__}: {err}"
                    last = (instance, solution, error, cpu)
                if last is not None:
                    runs.append(self._settled(session, *last))
            except SessionEnded:
                pass  # the outcome says why; the instances finished before keep their results
        end = session.close()
        return SandboxOutcome(end.status, runs, end.error, end.stderr_tail, end.wall_seconds)

    def _settled(self, session: Any, instance: Instance, solution: Any, error: str | None,
                 cpu: float) -> InstanceRun:
        """An instance's run with its CPU counted until the next instance is sent (or the split
        ends): ``settle`` charges back what the reading at its answer missed, and where the
        verifier has a CPU budget, an instance the settled figure puts over it fails, as one
        that ``interact`` caught at its answer does."""
        session.settle()
        used = session.cpu_seconds - cpu
        budget = getattr(self.problem.verifier, "time_budget_s", None)
        if error is None and callable(budget) and over_budget(used, allowed := float(budget(instance))):
            rule = getattr(self.problem.verifier, "time_budget_text", "")
            return InstanceRun(None, f"CPU budget exceeded: {used:.3f} s of CPU, {allowed:.3f} s allowed"
                                     + (f" ({rule}; {allowance_text(allowed)})" if rule
                                        else f" ({allowance_text(allowed)})")
                                     + ", counted until the next instance was sent", used)
        return InstanceRun(solution, error, used)

    def _drive(
        self, sandbox: Sandbox, code: str, function: str, instances: list[Instance], timeout: float
    ) -> SandboxOutcome:
        """One session for the split; the trusted ``drive`` builds every instance, asking the
        candidate one decision at a time (``Drives``).  The session's CPU is shared out evenly:
        the instances are built in lockstep."""
        runs: list[InstanceRun] = []
        with sandbox.session(code, function, timeout_s=timeout) as session:
            try:
                built = list(self.problem.verifier.drive(instances, session))
                if len(built) != len(instances):
                    raise ValueError(f"drive() gave {len(built)} results for {len(instances)} instances")
                session.settle()  # the last call's CPU that its reading missed
                share = session.cpu_seconds / max(1, len(instances))
                # A reason may quote the rule's own words (its exception, sent as a value, not as
                # the call's error): written out like every candidate text that reaches a terminal.
                runs = [InstanceRun(solution, None if error is None else printable(str(error)), share)
                        for solution, error in built]
            except SessionEnded:
                pass  # the outcome says why
        end = session.close()
        return SandboxOutcome(end.status, runs, end.error, end.stderr_tail, end.wall_seconds)

    @cached_property
    def _baseline_texts(self) -> frozenset[str]:
        return frozenset(code for _, code in self.problem.baseline_programs())

    def _exempt(self, code: str, function: str) -> bool:
        """Programs run as a batch in the sandbox with no re-check (``audit``) and no trusted
        builder (``drive``): the problem's own baselines (trusted files, some knowingly outside
        the contract, such as smtt_rule's EDDC that plans at its first call, run only to be
        compared with; a candidate that copies one byte for byte is that baseline), and a
        program that is provably one pure expression (``pure_rule.py``: every GP program; where
        the verifier's audit checks for index rules, ``index_rules``, one that reduces no array)."""
        reductions = not getattr(self.problem.verifier, "index_rules", False)
        return code in self._baseline_texts or is_pure_rule(code, function, reductions)

    def _audited(self, code: str, function: str) -> bool:
        """Whether the verifier's ``audit`` re-checks this program (not an exempt one)."""
        return callable(getattr(self.problem.verifier, "audit", None)) and not self._exempt(code, function)

    def _driven(self, code: str, function: str) -> bool:
        """Whether the verifier's ``drive`` builds this program's solutions (not an exempt one)."""
        return callable(getattr(self.problem.verifier, "drive", None)) and not self._exempt(code, function)

    def _audit(self, sandbox: Sandbox, code: str, function: str, instances: list[Instance],
               runs: list[InstanceRun], timeout: float) -> list[InstanceRun]:
        """The verifier's ``audit`` of the split's solutions, in a fresh session: a process that
        kept nothing of the run; then its ``reaudit`` in each of ``reaudits`` more fresh sessions,
        with the solutions that still stand (``Audits``).  A failed audit, or a session that
        ends, fails the instance."""
        verifier = self.problem.verifier
        solutions = [run.solution if run.error is None else None for run in runs]
        reasons = self._audit_session(sandbox, code, function, verifier.audit, instances[:len(runs)], solutions,
                                      timeout)
        for _ in range(int(getattr(verifier, "reaudits", 0))):
            standing = [s if r is None else None for s, r in zip(solutions, reasons, strict=True)]
            if all(s is None for s in standing):
                break
            again = self._audit_session(sandbox, code, function, verifier.reaudit, instances[:len(runs)], standing,
                                        timeout)
            reasons = [r if r is not None or s is None else a
                       for r, s, a in zip(reasons, standing, again, strict=True)]
        return [run if reason is None or solution is None
                else InstanceRun(None, f"solution rejected on re-check: {reason}", run.seconds)
                for run, solution, reason in zip(runs, solutions, reasons, strict=True)]

    @staticmethod
    def _audit_session(sandbox: Sandbox, code: str, function: str, check: Callable[..., Any],
                       instances: list[Instance], solutions: list[Any], timeout: float) -> list[str | None]:
        """One verdict per instance from ``check`` (the verifier's audit or reaudit) in a new session."""
        with sandbox.session(code, function, timeout_s=timeout) as session:
            try:
                reasons = list(check(instances, solutions, session))
                if len(reasons) != len(solutions):
                    raise ValueError(f"the audit gave {len(reasons)} verdicts for {len(solutions)} instances")
            except SessionEnded as err:
                why = f"the re-check session ended: {err.outcome.error or err.outcome.status}"
                reasons = [why] * len(solutions)
            except CandidateError as err:
                reasons = [str(err)] * len(solutions)
            except Exception as err:  # a hostile reply the audit did not foresee, or a bug: fail closed
                reasons = [f"could not be re-checked: {type(err).__name__}: {err}"] * len(solutions)
        return reasons

    def evaluate(
        self,
        code: str,
        quick: list[Instance],
        train: list[Instance],
        parent_quick_score: float | None,
        tolerance: float,
        cascade: bool = True,
    ) -> Evaluation:
        """Cascade: quick split first, then train if the child is promising."""
        started = time.perf_counter()
        quick_score: float | None = None
        if cascade and quick:
            first = self.run_split(code, quick, "quick")
            if not first.ok:
                return first
            quick_score = first.score
            floor = cascade_floor(parent_quick_score, tolerance)
            if floor is not None and quick_score is not None and quick_score < floor:
                first.status = "rejected"
                first.feedback = (
                    f"stopped after the quick split: score {quick_score:.4g} is below the "
                    f"cascade threshold {floor:.4g} (parent {parent_quick_score:.4g}).\n" + first.feedback
                )
                return first
        full = self.run_split(code, train, "train")
        if quick_score is not None:
            full.metrics["quick_score"] = quick_score
        full.seconds = time.perf_counter() - started
        return full

    def _judge(self, outcome: SandboxOutcome, instances: list[Instance], stage: str) -> Evaluation:
        spec = self.problem.spec
        if outcome.status != "ok":
            feedback = outcome.error or outcome.status
            if outcome.stderr_tail.strip():
                feedback += "\nstderr (tail):\n" + outcome.stderr_tail.strip()[-1500:]
            # runs is partial here: the instances that finished before the failure.
            partial = [self._score_one(i, r) for i, r in zip(instances, outcome.runs, strict=False)]
            return Evaluation(outcome.status, None, {}, partial, feedback, stage, 0.0)
        if len(outcome.runs) != len(instances):
            reason = f"the program returned {len(outcome.runs)} results for {len(instances)} instances"
            return Evaluation("crash", None, {}, [], reason, stage, 0.0)
        results = [self._score_one(i, r) for i, r in zip(instances, outcome.runs, strict=True)]
        solutions = [run.solution for run in outcome.runs]
        failed = [r for r in results if not r.feasible]
        if failed:
            raised = any(r.error and r.error.startswith("raised ") for r in failed)
            lines = [f"{len(failed)} of {len(results)} instances failed:"]
            lines += [f"- {r.name}: {r.error}" for r in failed[:5]]
            return Evaluation(
                "error" if raised else "infeasible", None, {}, results, "\n".join(lines), stage, 0.0, solutions
            )
        verifier = self.problem.verifier
        custom = getattr(verifier, "aggregate", None)
        if callable(custom):
            score, metrics = custom(results)
        else:
            score, metrics = aggregate(results, spec.objective.direction, spec.objective.score,
                                       spec.objective.median_weight, spec.objective.reference_floor)
        status: Status = "ok" if score is not None else "infeasible"
        instance_score = getattr(verifier, "instance_score", None)
        feedback = describe(results, metrics, spec.objective.score,
                            instance_score if callable(instance_score) else None)
        more = getattr(verifier, "feedback_lines", None)
        if callable(more):
            feedback = "\n".join([feedback, *more(results)])
        return Evaluation(status, score, metrics, results, feedback, stage, 0.0, solutions)

    def _score_one(self, instance: Instance, run: object) -> InstanceResult:
        error = getattr(run, "error", None)
        if error and error.startswith("solution "):
            result = infeasible(instance, f"invalid solution: {error}")
        elif error:
            result = infeasible(instance, f"raised {error}")
        else:
            try:
                result = self.problem.verifier.score(instance, getattr(run, "solution", None))
            except Exception as err:  # hostile output must not break the trusted side
                # where in the verifier: a plug-in's own bug reads as one, not as the program's fault
                result = infeasible(instance, f"solution could not be scored: the verifier's score() raised "
                                              f"{where_raised(err)}")
        if result.error:
            # A verdict may quote the candidate's own values (moe's "returned a ..." is the reply's
            # string): written out like every candidate text that reaches a terminal or a page; a
            # forged moe reply's escape sequences reached `evolve eval`'s terminal raw (fourteenth
            # red team).
            result.error = printable(result.error)
        result.seconds = getattr(run, "seconds", None)
        return result


def without_measurable_gap(evaluation: Evaluation) -> Evaluation:
    """``evolve eval``'s reading of an evaluation whose every instance was solved feasibly but
    whose every reference is 0, so that no gap (and no gap score) exists: status ``ok`` with
    score ``None`` (the objectives stand; ``ok`` stays False, as there is no score to rank by),
    rather than ``infeasible``. The search keeps ``infeasible``: it ranks by the score."""
    results = evaluation.instances
    if (evaluation.status == "infeasible" and evaluation.score is None and results
            and all(r.feasible and r.objective is not None and r.reference == 0 for r in results)):
        return replace(evaluation, status="ok")
    return evaluation


def hidden_paths(paths: list[Path]) -> list[str]:
    """What candidates must not see: ``paths`` and every built-in problem's folder.

    Built-in problems can share instances (``smtt`` and ``smtt_rule`` share
    their references file), so a candidate of one must not read another's data.
    A path inside another one is dropped: hiding the outer one covers it.
    """
    found = [p.resolve() for p in [*paths, builtin_dir()] if p.exists()]
    outer = [p for p in found if not any(q != p and p.is_relative_to(q) for q in found)]
    return [str(p) for p in dict.fromkeys(outer)]


_warned: set[str] = set()


def warn_once(facts: dict[str, tuple[bool, str]], *more: str | None) -> None:
    """Say once per process, before the first candidate runs, what the sandbox cannot hide here
    (and ``more`` such lines, e.g. a verifier without a sandbox side of its own)."""
    from evolve.sandbox.doctor import weaknesses

    for line in (weaknesses(facts), *more):
        if line and line not in _warned:
            _warned.add(line)
            log.warning(line)


SPLIT_GRACE_S = 2.0  # wall time a split gets beyond its instances' (start-up, loading the program)


def run_timeout(instance_timeout_s: float, instances: float) -> float:
    return SPLIT_GRACE_S + instance_timeout_s * instances


def cascade_floor(parent_quick_score: float | None, tolerance: float) -> float | None:
    if parent_quick_score is None:
        return None
    return parent_quick_score - tolerance * max(1.0, abs(parent_quick_score))


_REFERENCE_WORDS = {"best_known": "best known", "bound": "bound", "none": "reference"}


def describe(results: list[InstanceResult], metrics: dict[str, float], score_kind: str,
             instance_score: Callable[[InstanceResult], float] | None = None) -> str:
    """Verifier feedback for the next prompt: headline, per group, per name facet, worst instances.

    Where the score is a mean of what each instance adds to it (``instance_score``, e.g. serving's
    goodput - starved - 0.2 x latency gap), the groups' scores come first and the worst instances
    are those that add the least: ranked by their gap alone, the "worst" were the ones with the
    worst tie-breaker (an agent playing the model read them so)."""
    lines = []
    gap = headline_gap(metrics, score_kind)
    if gap is not None:
        lines.append(f"gap to reference: {gap:.3f}% over {len(results)} instances")
    elif score_kind.startswith("gap") and results and all(r.reference == 0 for r in results):
        # feasible, but no score: said, rather than an "infeasible" status with no reason
        lines.append(f"no gap: the reference of every instance is 0, and a gap relative to 0 is undefined "
                     f"(objective sum {metrics.get('objective_sum', 0.0):g}); score it on instances with a non-zero "
                     "reference")
    groups = sorted((k[13:-1] for k in metrics if k.startswith("gap_mean_pct[")), key=natural_key)
    scored = {id(r): instance_score(r) for r in results if r.feasible} if instance_score is not None else {}
    if scored:
        by_group: dict[str, list[float]] = {}
        for r in results:
            if id(r) in scored:
                by_group.setdefault(r.group, []).append(scored[id(r)])
        lines.append("score per group: " + ", ".join(
            f"{g} {sum(v) / len(v):.2f}" for g, v in sorted(by_group.items(), key=lambda kv: natural_key(kv[0]))))
    if groups:
        lines.append(("gap per group: " if scored else "per group: ")
                     + ", ".join(f"{g} {pct(metrics[f'gap_mean_pct[{g}]'])}" for g in groups))
    lines.extend(facet_lines(results))
    if scored:
        lowest = sorted((r for r in results if id(r) in scored), key=lambda r: scored[id(r)])[:3]
        lines.append("worst instances (the lowest scores): " + "; ".join(
            f"{r.name} score {scored[id(r)]:.2f}" + (f", gap {pct(100 * r.gap)}" if r.gap is not None else "")
            for r in lowest))
        return "\n".join(lines)
    worst = sorted((r for r in results if r.gap is not None), key=lambda r: r.gap or 0.0, reverse=True)[:3]
    if worst:
        lines.append(
            "worst instances: "
            + "; ".join(
                f"{r.name} gap {pct(100 * (r.gap or 0))} ({r.objective:g} vs "
                f"{_REFERENCE_WORDS.get(r.reference_kind, r.reference_kind)} {r.reference:g})"
                for r in worst
            )
        )
    return "\n".join(lines)
