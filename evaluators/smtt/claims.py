"""References stated in instance files: what a public set claims, checked before it is used.

Trusted side only.  A stated value is a total tardiness some sequence is said
to attain (``optimum``, ``best_known`` or ``upper_bound``), optionally with a
proven ``lower_bound``.  Two checks, both cheap:

* a value below a proven lower bound (the SPT/EDD matching bound) cannot be
  the total tardiness of this instance: the file is wrong, a ``UserError``;
* a claimed optimum that a simple rule beats is not optimal, but it is still
  a value somebody reached: it is used as a best-known value (gaps may be
  negative), and the file gets one warning for all such instances, never a
  refusal (published optima from time-limited solvers are often beaten).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evolve.errors import UserError
from evolve.evaluators.smtt.exact import matching_lower_bound
from evolve.evaluators.smtt.instance_file import InstanceSpec
from evolve.evaluators.smtt.local_search import load_baseline
from evolve.evaluators.smtt.objective import total_tardiness
from evolve.references import StoredReference
from evolve.verifier import Reference

# Rules a claimed optimum is checked against: O(n log n) to O(n^2), milliseconds at n = 500.
CHECK_RULES = ("edd", "spt", "mdd")


@dataclass(frozen=True)
class Refuted:
    """A claimed optimum and the sequence value that beats it."""

    where: str
    name: str
    claimed: int
    by: str
    value: int


def best_rule(p: np.ndarray, d: np.ndarray) -> tuple[int, str]:
    """The lowest total tardiness of the check rules, and which rule reached it."""
    values = [(total_tardiness(p, d, load_baseline(rule)(p.copy(), d.copy())), rule) for rule in CHECK_RULES]
    return min(values)


def stated_reference(spec: InstanceSpec, known: StoredReference | None) -> tuple[Reference, Refuted | None]:
    """The reference a file states for ``spec`` (which must state one), after the checks.

    ``known`` is our own reference for the same content, if we have one: its
    sequence attains its value, so it can refute a claimed optimum too.
    """
    assert spec.claim is not None and spec.value is not None
    p, d, value, field = spec.p, spec.d, spec.value, f"{spec.where}.{spec.claim}"
    floor = matching_lower_bound(p, d)
    if value < floor:
        raise UserError(f"{field}: {value} is below {floor}, a proven lower bound of this instance "
                        "(shortest-first completion times matched to sorted due dates)")
    if known is not None and known.bound is not None and value < known.bound:
        raise UserError(f"{field}: {value} is below {known.bound}, a proven lower bound of this instance "
                        f"({known.kind} reference, {known.source})")
    if known is not None and known.bound is not None:
        floor = max(floor, known.bound)
    bound = max(floor, spec.lower_bound or 0)
    source = f"file ({spec.claim})"
    if spec.claim != "optimum":
        return Reference(float(value), "optimal" if bound >= value else "best_known", source, float(bound)), None
    rule_value, rule = best_rule(p, d)
    beaten = (rule_value, rule.upper())
    if known is not None and known.value < beaten[0]:
        beaten = (known.value, f"our reference ({known.source})")
    if beaten[0] >= value:
        return Reference(float(value), "optimal", source, float(value)), None
    refuted = Refuted(spec.where, spec.name, value, beaten[1], beaten[0])
    note = f"file (claimed optimum; {beaten[1]} reaches {beaten[0]})"
    return Reference(float(value), "best_known", note, float(bound)), refuted


def refuted_summary(label: str, refuted: list[Refuted], claimed: int) -> str:
    """The one warning a file gets for all its refuted optima."""
    first = refuted[0]
    return (f"{label}: {len(refuted)} of {claimed} claimed optima are beaten by a simple rule and are used "
            f"as best-known values (gaps below 0 are possible); e.g. {first.where} ({first.name!r}): "
            f"optimum {first.claimed}, {first.by} reaches {first.value}")


def with_file_bound(reference: Reference, spec: InstanceSpec) -> Reference:
    """A computed reference, its bound raised by the file's ``lower_bound`` (checked)."""
    lower = spec.lower_bound
    if lower is None:
        return reference
    value = reference.value or 0.0
    if lower > value:
        raise UserError(f"{spec.where}.lower_bound: {lower} exceeds {value:g}, the total tardiness of a "
                        f"sequence we found ({reference.source})")
    bound = max(lower, reference.bound or 0.0)
    kind = "optimal" if bound >= value else reference.kind
    return Reference(reference.value, kind, reference.source, float(bound))
