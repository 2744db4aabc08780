"""The verifier contract: the only place where problem semantics live.

A verifier has three parts so that only one of them ever touches untrusted code:

* ``instances(split)`` (and optionally ``load_instances(path)``) run in the
  trusted process and return reproducible instances with their reference values;
* ``solve(heuristic, instance)`` (or, for an interactive verifier, ``respond``)
  runs *inside the sandbox*: it calls the candidate's function and returns a
  JSON-serialisable solution; it lives in its own module, the sandbox side;
* ``score(instance, solution)`` runs in the trusted process: it validates
  feasibility and computes objective and gap itself.  Nothing the candidate
  prints or returns is ever taken as its score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

ReferenceKind = Literal["optimal", "best_known", "bound", "none"]
Direction = Literal["minimize", "maximize"]
# What any session reply may hold besides its answer (framing, a short note): a verifier's
# ``session.call(payload, reply_limit=...)`` bound is this plus what its answer can hold.
REPLY_NOTE_BYTES = 65536


@dataclass(frozen=True)
class Reference:
    """What an instance's objective is compared against, and how good that is.

    ``kind`` says what ``value`` is: a proven ``optimal`` value, a ``best_known``
    feasible value (an upper bound when minimising), only a ``bound``, or
    ``none``.  ``bound`` keeps a proven bound next to a best-known value.
    """

    value: float | None
    kind: ReferenceKind
    source: str = ""
    bound: float | None = None

    @staticmethod
    def missing() -> Reference:
        return Reference(value=None, kind="none", source="")


@dataclass(frozen=True)
class Instance:
    """One problem instance.  ``data`` is the picklable payload ``solve`` gets."""

    name: str
    group: str
    data: dict[str, Any]
    reference: Reference = field(default_factory=Reference.missing)


@dataclass
class InstanceResult:
    """The trusted verdict on one instance."""

    name: str
    group: str
    feasible: bool
    objective: float | None
    reference: float | None
    reference_kind: ReferenceKind
    gap: float | None
    error: str | None = None
    seconds: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "objective": self.objective,
            "reference": self.reference,
            "reference_kind": self.reference_kind,
            "gap": self.gap,
            "feasible": self.feasible,
            "error": self.error,
            "seconds": self.seconds,
            "extra": dict(self.extra),
        }

    @staticmethod
    def from_json(row: dict[str, Any]) -> InstanceResult:
        return InstanceResult(
            name=row["name"],
            group=row.get("group", ""),
            feasible=bool(row["feasible"]),
            objective=row.get("objective"),
            reference=row.get("reference"),
            reference_kind=row.get("reference_kind", "none"),
            gap=row.get("gap"),
            error=row.get("error"),
            seconds=row.get("seconds"),
            extra=dict(row.get("extra") or {}),
        )


class CandidateError(Exception):
    """Raised by a verifier's ``interact`` when the candidate's call failed or broke a limit
    the verifier enforces (e.g. a CPU budget per instance).

    The instance fails with ``str(err)`` as its reason, exactly as when the candidate
    raises in a batch run: pass on ``reply.error`` ("Type: message (line N)") unchanged.
    """


def relative_gap(objective: float, reference: Reference, direction: Direction) -> float | None:
    """Gap of ``objective`` to ``reference`` as a fraction (0.05 = 5 % worse).

    None when there is no reference or it is zero (a relative gap is undefined).
    """
    if reference.value is None or reference.value == 0:
        return None
    ref = float(reference.value)
    diff = objective - ref if direction == "minimize" else ref - objective
    return diff / abs(ref)


def infeasible(instance: Instance, reason: str) -> InstanceResult:
    """The result for a solution that violates the problem's constraints."""
    ref = instance.reference
    return InstanceResult(
        name=instance.name,
        group=instance.group,
        feasible=False,
        objective=None,
        reference=ref.value,
        reference_kind=ref.kind,
        gap=None,
        error=reason,
    )


def feasible(
    instance: Instance, objective: float, direction: Direction, **extra: float
) -> InstanceResult:
    """The result for a validated solution with the objective trusted code computed."""
    if not math.isfinite(objective):
        return infeasible(instance, f"objective is not finite ({objective})")
    ref = instance.reference
    return InstanceResult(
        name=instance.name,
        group=instance.group,
        feasible=True,
        objective=float(objective),
        reference=ref.value,
        reference_kind=ref.kind,
        gap=relative_gap(objective, ref, direction),
        extra={k: float(v) for k, v in extra.items()},
    )


@runtime_checkable
class Verifier(Protocol):
    """What every verifier defines.  Constructed as ``cls(problem_dir, options)``.

    ``problem_dir`` is the problem's folder (``problem.toml``, ``data/``,
    ``baselines/``): a verifier finds its files there, never from its own
    file's path.  ``options`` is the ``[verifier.options]`` table of
    ``problem.toml``; the verifier validates it and raises ``UserError``
    naming a bad key.

    ``direction`` comes from ``problem.toml`` (``objective.direction``): a
    class that does not declare it gets it from there when the engine builds
    it; a class that declares it (because its gaps only make sense one way)
    is checked against it at load, and a mismatch is an error naming both.

    Besides these, a verifier is either *batch* (``BatchVerifier``: ``solve``)
    or *interactive* (``InteractiveVerifier``: ``respond`` and ``interact``),
    and may add any of the optional parts below (``LoadsInstances``,
    ``Aggregates``, ``Pictures``, ``HeadlineMetrics``, ``TimeWeighted``,
    ``PromptFacts``, ``TimeBudget``);
    the engine checks for each and works without it (docs/add-a-problem.md
    says what each adds).

    **Sandbox side and trusted side, by file.**  ``solve``/``respond`` run in
    the candidate's process; everything else runs in the trusted one.  The
    sandbox side is *the module that defines* ``solve``/``respond`` (by
    convention ``candidate_side.py``; the class takes them as
    ``solve = staticmethod(candidate_side.solve)``): the sandbox's warm worker
    imports that module with what it imports, plus any modules named in a
    tuple attribute ``sandbox_modules`` (imports done lazily), and nothing
    else of the verifier's package before it isolates itself.  What it did not
    import does not exist for a candidate, so keep references, reports,
    pictures and solvers out of that module's imports.  ``sandbox_packages``
    names installed packages besides numpy that candidates may import.
    Everything ``solve`` needs (options such as a construction scheme) must
    be in ``instance.data``: ``solve`` runs without the verifier object.
    """

    direction: Direction

    def instances(self, split: str) -> list[Instance]: ...

    def score(self, instance: Instance, solution: Any) -> InstanceResult: ...


@runtime_checkable
class BatchVerifier(Verifier, Protocol):
    """Runs the candidate on whole instances: ``solve`` runs *inside the sandbox*, calls the
    candidate and returns a JSON-serialisable solution that ``score`` then judges."""

    @staticmethod
    def solve(heuristic: Callable[..., Any], instance: Instance) -> Any: ...


@runtime_checkable
class InteractiveVerifier(Verifier, Protocol):
    """Keeps the truth on the trusted side and asks the candidate one question at a time.

    ``respond(heuristic, payload) -> reply`` runs *inside the sandbox* (it calls the
    candidate on one payload; the reply must be JSON-serialisable or a numpy array).
    ``interact(instance, session) -> solution`` runs in the trusted process: it calls
    ``session.call(payload)`` as often as it likes (each ``Reply`` has ``value``,
    ``error``, and ``cpu_seconds`` measured from outside the candidate) and returns
    the solution that ``score`` then judges (``session.call(payload, reply_limit=n)``:
    a reply over n bytes ends the session unread, for answers known to be small).  The
    engine opens one session per split (per instance where ``SharesSessions`` says so) and lets
    ``SessionEnded`` propagate; see docs/sandbox.md.  ``session.source`` is
    the program's text as the trusted side holds it.
    """

    @staticmethod
    def respond(heuristic: Callable[..., Any], payload: Any) -> Any: ...

    def interact(self, instance: Instance, session: Any) -> Any: ...


# -- optional parts: the engine checks for each (isinstance) and works without it ------


@runtime_checkable
class LoadsInstances(Protocol):
    """Reads user instance files: ``evolve eval/baselines --instances FILE``."""

    def load_instances(self, path: Path) -> list[Instance]: ...


@runtime_checkable
class Aggregates(Protocol):
    """Its own (score, metrics) from per-instance results, instead of the engine's gap
    aggregation (``evolve.scoring``)."""

    def aggregate(self, results: list[InstanceResult]) -> tuple[float, dict[str, float]]: ...


@runtime_checkable
class Pictures(Protocol):
    """Draws the problem's own picture of solutions (a Gantt chart, a load heatmap, latency
    CDFs) into ``path`` (PNG or SVG by suffix): ``evolve eval --plot FILE`` and the report."""

    def picture(self, instances: list[Instance], results: list[InstanceResult],
                solutions: list[Any], path: Path) -> None: ...


@runtime_checkable
class HeadlineMetrics(Protocol):
    """Metrics that tables and prompts show next to the score (e.g. balancedness, runtime)."""

    headline_metrics: tuple[str, ...]


@runtime_checkable
class TimeWeighted(Protocol):
    """How many instance time limits an instance gets (>= 1; e.g. a long trace)."""

    def time_weight(self, instance: Instance) -> float: ...


@runtime_checkable
class PromptFacts(Protocol):
    """What a model must know about this configuration (a schedule builder, a fleet, SLOs):
    one sentence each, stated in the run's system prompt."""

    def prompt_facts(self) -> list[str]: ...


@runtime_checkable
class TrainFacts(Protocol):
    """Figures about the train split a model may read, worked out after the fact (serving: the
    reference policy's slowest request per trace, the spread of prompt and output lengths per
    group): stated in the run's system prompt, one sentence each. Only aggregates a program
    is never given while it decides; never the test split's (it is not passed)."""

    def train_facts(self, instances: list[Instance]) -> list[str]: ...


@runtime_checkable
class FeedbackLines(Protocol):
    """Lines added to a program's feedback (what its prompt shows of its results), from its
    trusted per-instance results (serving: how often KV memory bound, per group). Shown with
    the current program; an inspiration's summary leaves them out, as its worst instances."""

    def feedback_lines(self, results: list[InstanceResult]) -> list[str]: ...


@runtime_checkable
class Drives(Protocol):
    """Builds a split's solutions on the trusted side, asking the candidate one question at a
    time, for programs that are neither the problem's baselines nor provably one pure
    expression (``pure_rule.py``); those still run ``solve`` in the sandbox.  The engine opens
    one session (the verifier needs ``respond``) and calls ``drive`` once with every instance:
    one ``(solution, None)`` or ``(None, why it failed)`` per instance; ``SessionEnded``
    propagates.  jssp: the builder asks the rule per decision, so the rule never holds an
    instance to plan on (``evaluators/jssp/drive.py``)."""

    def drive(self, instances: list[Instance], session: Any) -> list[tuple[Any, str | None]]: ...


@runtime_checkable
class Audits(Protocol):
    """Re-checks how a split's solutions came about, in a *fresh* session.

    The candidate's process built them and may have kept state or replaced the sandbox
    side's code; after a split that ended ``ok`` the engine opens a new session (a new
    process; the verifier needs ``respond``) and calls ``audit`` once with every instance and
    its solution (None where the run failed): one verdict per instance, None or the reason it
    fails (``smtt_rule``: the rule, asked again at a few decisions, must make the same
    choices).  The problem's own baselines are not audited.  ``SessionEnded`` fails
    them all.

    Optional: ``reaudits`` (an int) more fresh sessions, each given to ``reaudit`` (same
    signature) with the solutions that still stand, None for the others: for checks whose
    every question must reach a process that has seen nothing else of the instance
    (``smtt_rule``'s subset check, one decision per instance and process).  ``index_rules``
    True: the audit checks that a job's priority is a function of its own inputs and the
    scalars, so a pure expression that reduces an array is audited too (``pure_rule.py``)."""

    def audit(self, instances: list[Instance], solutions: list[Any], session: Any) -> list[str | None]: ...


@runtime_checkable
class SharesSessions(Protocol):
    """Whether one session may serve all of a split's instances (``interact`` verifiers).

    Where ``shares_session(instances)`` says no, each instance gets a fresh session of its
    own, within the split's wall clock: for instances a program may know before it is asked
    (public sets), where in one session a cheap instance's CPU could work for the costly
    ones to come (smtt: yes only for its secret-seeded splits).  Without it: one session."""

    def shares_session(self, instances: list[Instance]) -> bool: ...


# Which clock a budgeted search should stop on. In the sandbox time.process_time() advances in steps
# of a scheduler tick (RLIMIT_CPU makes the kernel keep a process-wide CPU timer, read at its last
# update), so a search that stops on it runs up to a tick past its mark; thread_time() is the one
# thread's own clock, exact, and a program may start no thread (bench/smtt_call_overhead.py).
CLOCK_ADVICE = ("time.thread_time() (the program's only thread, so the same count, exact to the microsecond; "
                "time.process_time() advances here in steps of up to 4 ms, a scheduler tick, so a search "
                "that stops on it runs up to 4 ms past its mark)")


@runtime_checkable
class TimeBudget(Protocol):
    """A CPU-time budget per instance that ``interact`` enforces (``CandidateError``); prompts
    show each program's time against it.  ``time_budget_text`` states its rule in words."""

    time_budget_text: str

    def time_budget_s(self, instance: Instance) -> float: ...


# How far over its budget an instance's charged CPU may go before the instance fails: the
# allowance for a busy machine. The kernel's count of a process's CPU also holds work that is
# not the candidate's (interrupts served while it runs: this kernel has no IRQ time accounting;
# cache and TLB refills after other processes ran), and a clean-room agent's search, timed to
# stop at 95 % of the budget less 12 ms, was charged 126.8 ms of a 140 ms budget quiet and 145 ms
# beside other work (docs/smtt.md, "A fair verdict under load"). It is the same for every
# program and stated in the prompt, so it is no lever: it moves the line, which a program is
# told to stay well inside of (the budget is what to aim at).
BUDGET_ALLOWANCE = 0.10


def over_budget(used_s: float, budget_s: float) -> bool:
    """Whether ``used_s`` of charged CPU fails an instance whose budget is ``budget_s``."""
    return used_s > budget_limit(budget_s)


def budget_limit(budget_s: float) -> float:
    """The charge past which an instance with budget ``budget_s`` fails (the allowance added)."""
    return budget_s * (1.0 + BUDGET_ALLOWANCE)


def allowance_text(budget_s: float) -> str:
    """``its 10 % allowance for a busy machine: 0.154 s`` (what a failure names)."""
    return f"its {BUDGET_ALLOWANCE * 100:g} % allowance for a busy machine: {budget_limit(budget_s):.3f} s"


@runtime_checkable
class ChargesCpu(Protocol):
    """A verifier whose score or feasibility counts the candidate's CPU time (a session call's
    ``cpu_seconds``: moe's runtime term) sets ``charges_cpu = True``; a ``TimeBudget`` counts it
    too.  Such a problem runs with ``max_processes = 1``, which the ``Evaluator`` holds it to:
    the clock is the candidate's process's, and a helper it forked works off that clock (twelfth
    red team: smtt with ``max_processes = 4`` charged 2.6 ms for 0.5 s of a helper's CPU)."""

    charges_cpu: bool


def charges_cpu(verifier: Any) -> bool:
    """Whether ``verifier`` counts the candidate's CPU time (``ChargesCpu``, ``TimeBudget``)."""
    return bool(getattr(verifier, "charges_cpu", False)) or callable(getattr(verifier, "time_budget_s", None))


@runtime_checkable
class ScoreEras(Protocol):
    """Which score made an archived evaluation: ``stale_scores(metrics)`` says why metrics an
    archive kept were scored by an older score than this verifier computes now (a term added
    since), or None.  ``review`` and ``report`` show it, and ``review --repeats`` leaves such an
    archived score out of the spread, since re-evaluations use the current score."""

    def stale_scores(self, metrics: Mapping[str, float]) -> str | None: ...
