"""The verifier contract: the only place where problem semantics live.

A verifier has three parts so that only one of them ever touches untrusted code:

* ``instances(split)`` / ``load_instances(path)`` run in the trusted process and
  return reproducible instances with their reference values;
* ``solve(heuristic, instance)`` runs *inside the sandbox*: it calls the
  candidate's function and returns a JSON-serialisable solution;
* ``score(instance, solution)`` runs in the trusted process: it validates
  feasibility and computes objective and gap itself.  Nothing the candidate
  prints or returns is ever taken as its score.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

ReferenceKind = Literal["optimal", "best_known", "bound", "none"]
Direction = Literal["minimize", "maximize"]


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
    """A problem's verifier.  Constructed as ``cls(problem_dir, options)``.

    ``options`` is the ``[verifier.options]`` table of ``problem.toml``; the
    verifier validates it and raises ``UserError`` naming a bad key.
    Optionally a verifier defines ``aggregate(results) -> (score, metrics)``;
    otherwise the engine aggregates gaps (``evolve.scoring``).  It may also define
    ``picture(instances, results, solutions, path)`` to draw the problem's own
    picture of solutions (a Gantt chart, a load heatmap, latency CDFs) into
    ``path`` (PNG or SVG by suffix): ``evolve eval --plot FILE`` calls it.
    A tuple attribute ``headline_metrics`` names metrics that tables show next to
    the score (e.g. balancedness and runtime).
    Everything ``solve`` needs (options such as a construction scheme) must be
    in ``instance.data``: ``solve`` runs in the sandbox without the verifier.
    The sandbox's worker imports the verifier's module (and what it imports)
    before it isolates itself; a tuple attribute ``sandbox_modules`` names
    further modules ``solve``/``respond`` or the instance data need (imports
    done lazily), and ``sandbox_packages`` names installed packages besides
    numpy that candidates may import (their files are put in the view).

    Interactive verifiers keep the truth on the trusted side and ask the
    candidate one question at a time.  They define both
    ``@staticmethod respond(heuristic, payload) -> reply``, which runs *inside
    the sandbox* (it calls the candidate on one payload; the reply must be
    JSON-serialisable or a numpy array), and ``interact(instance, session) ->
    solution``, which runs in the trusted process: it calls
    ``session.call(payload)`` as often as it likes (each ``Reply`` has
    ``value``, ``error``, and ``cpu_seconds`` measured from outside the
    candidate) and returns the solution that ``score`` then judges.  The engine
    opens one session per split and lets ``SessionEnded`` propagate; see
    docs/sandbox.md.  ``session.source`` is the program's text as the trusted
    side holds it.  An optional ``time_weight(instance) -> float`` (>= 1) says
    how many instance time limits an instance gets (e.g. a long trace).
    """

    direction: Direction

    def instances(self, split: str) -> list[Instance]: ...

    def load_instances(self, path: Path) -> list[Instance]: ...

    @staticmethod
    def solve(heuristic: Callable[..., Any], instance: Instance) -> Any: ...

    def score(self, instance: Instance, solution: Any) -> InstanceResult: ...
