"""The moe score: balancedness against the balancer's own runtime.

    score = balance_weight * (B - lpt_guard * S) - runtime_weight * P
    B = mean over instances of balancedness (0..1)
    S = sum over deployments of max(0, LPT's mean balancedness there - the program's)
    P = mean over instances of max(P(runtime_ms), mean over judged calls c of P(c's ms))
    P(ms) = max(0, log2(ms / budget_ms))
    budget_ms = max(runtime_budget_ms, runtime_budget_us_per_slot * layers * num_replicas / 1000)

runtime_ms is one call's CPU time as the harness charges it (``harness.charged_s``); each judged
call (one whose placement is scored) is also charged its own CPU time against the budget
(``call_penalty``), so a budget unused in some calls cannot pay for another's.  With the
problem's defaults (100, 1, budget max(10 ms, 5 us per layer and slot)) a point of score is one
percentage point of balancedness, a balancer within its per-call budget pays nothing for its
runtime, and each doubling over the budget costs one point.  Within the budget the score does
not depend on how busy the machine is: CPU time per call moves by 1.5-2x with the load (caches,
the other hyperthread), which under the budget-free form below moved the score by more than the
balancedness gains the search ranks by (docs/moe.md, "Score").

Without a budget (both budget options 0, the options' own default) P is the mean of
log2(1 + runtime_ms / runtime_scale_ms), the score before 2026-12-07: every millisecond counts,
and so does the machine's load.  The guard S (off with lpt_guard = 0; the problem's default is 2)
makes a loss to LPT in one deployment cost more than the same gain on the mean brings, so the
search does not trade one deployment for another; a program at or above LPT in every deployment
scores as without it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import fmean

from evolve.evaluators.moe.options import MoeOptions
from evolve.scoring import aggregate as gap_aggregate
from evolve.verifier import InstanceResult


def runtime_budget_ms(layers: int, replicas: int, options: MoeOptions) -> float | None:
    """The CPU budget of one call on a deployment of ``layers`` x ``replicas`` slots, in ms;
    None without a budget (both budget options 0)."""
    if options.runtime_budget_ms <= 0 and options.runtime_budget_us_per_slot <= 0:
        return None
    return max(options.runtime_budget_ms, options.runtime_budget_us_per_slot * layers * replicas / 1e3)


def runtime_penalty(runtime_ms: float, options: MoeOptions, budget_ms: float | None = None) -> float:
    """One instance's runtime term: doublings over ``budget_ms``, or without a budget
    log2(1 + runtime_ms / runtime_scale_ms)."""
    runtime_ms = max(runtime_ms, 0.0)
    if budget_ms is None:
        return math.log2(1.0 + runtime_ms / options.runtime_scale_ms)
    return math.log2(max(runtime_ms, budget_ms) / budget_ms)


def call_penalty(calls_ms: list[float], budget_ms: float) -> float:
    """The mean over an instance's judged calls of each call's own doublings over the budget.

    The budget is per call.  Held against the judged calls' mean CPU time alone, a balancer
    could spend the budgets of all W judged calls in one of them and next to nothing in the
    others (a costly placement once, then a cache or cheap adjustments) and pay nothing; now that
    call pays its own doublings, divided by W as every call's (docs/sandbox.md, twelfth red
    team).  ``combine`` charges an instance the larger of this and its runtime_ms's doublings.
    Without a budget there is no such term: the mean of the calls' log2(1 + ms / scale) is never
    above that of their mean (the logarithm is concave), which the charged runtime already is.
    """
    return fmean(math.log2(max(ms, budget_ms) / budget_ms) for ms in calls_ms) if calls_ms else 0.0


def instance_penalty(result: InstanceResult, options: MoeOptions) -> float:
    """One instance's runtime term: ``runtime_penalty`` of its charged runtime_ms, with a budget
    never below its judged calls' ``call_penalty``."""
    budget = result.extra.get("runtime_budget_ms")
    own = runtime_penalty(result.extra["runtime_ms"], options, budget)
    return max(own, result.extra.get("runtime_call_penalty", 0.0)) if budget is not None else own


def combine(results: list[InstanceResult], options: MoeOptions) -> tuple[float | None, dict[str, float]]:
    """(score, metrics) for fully feasible results."""
    _, metrics = gap_aggregate(results, "maximize", "gap_mean")
    _ratio_gaps(results, metrics)
    scored = [r for r in results if r.objective is not None and "runtime_ms" in r.extra]
    if not scored or len(scored) != len(results):
        return None, metrics
    groups: dict[str, list[InstanceResult]] = defaultdict(list)
    for r in scored:
        groups[r.group].append(r)
    balance = fmean(r.objective or 0.0 for r in scored)
    penalty = fmean(instance_penalty(r, options) for r in scored)
    metrics["balancedness"] = balance
    metrics["runtime_penalty"] = penalty
    budgets = [r.extra["runtime_ms"] / r.extra["runtime_budget_ms"] for r in scored if "runtime_budget_ms" in r.extra]
    if budgets:  # how close the slowest instance came to its budget (above 1 costs)
        metrics["runtime_budget_use_max"] = max(budgets)
    metrics["runtime_ms_max"] = max(r.extra["runtime_ms"] for r in scored)
    if len(groups) > 1:
        for group, members in sorted(groups.items()):
            metrics[f"balancedness[{group}]"] = fmean(r.objective or 0.0 for r in members)
            metrics[f"runtime_ms[{group}]"] = fmean(r.extra["runtime_ms"] for r in members)
    if options.lpt_guard > 0 and all("lpt_balancedness" in r.extra for r in scored):
        shortfall = sum(max(0.0, fmean(r.extra["lpt_balancedness"] - (r.objective or 0.0) for r in members))
                        for members in groups.values())
        metrics["lpt_shortfall"] = shortfall
        balance -= options.lpt_guard * shortfall
    score = options.balance_weight * balance - options.runtime_weight * penalty
    return score, metrics


def _ratio_gaps(results: list[InstanceResult], metrics: dict[str, float]) -> None:
    """gap_ratio_pct for a maximised objective: (sum reference - sum objective) / sum reference.

    (The engine's default formula is the minimising one, objective minus reference.)
    """
    groups: dict[str, list[InstanceResult]] = defaultdict(list)
    for r in results:
        groups[r.group].append(r)
    parts = [("", results)] + ([(f"[{g}]", m) for g, m in sorted(groups.items())] if len(groups) > 1 else [])
    for suffix, members in parts:
        with_ref = [r for r in members if r.reference is not None and r.objective is not None]
        total = sum(abs(r.reference or 0.0) for r in with_ref)
        if with_ref and total > 0:
            diff = sum((r.reference or 0.0) - (r.objective or 0.0) for r in with_ref)
            metrics[f"gap_ratio_pct{suffix}"] = 100.0 * diff / total
