"""The moe score: balancedness against the balancer's own runtime.

    score = balance_weight * (B - lpt_guard * S) - runtime_weight * P
    B = mean over instances of balancedness (0..1)
    S = sum over deployments of max(0, LPT's mean balancedness there - the program's)
    P = mean over instances of log2(1 + runtime_ms / runtime_scale_ms)

With the defaults (100, 1, 10 ms) a point of score is one percentage point of
balancedness, and above ~10 ms every halving of the runtime is worth about one
point; below the scale runtime hardly counts, so timing noise on a fast
balancer cannot outweigh a real change in balance. The guard S (off with
lpt_guard = 0; the problem's default is 2) makes a loss to LPT in one
deployment cost more than the same gain on the mean brings, so the search does
not trade one deployment for another; a program at or above LPT in every
deployment scores as without it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from statistics import fmean

from evolve.evaluators.moe.options import MoeOptions
from evolve.scoring import aggregate as gap_aggregate
from evolve.verifier import InstanceResult


def runtime_penalty(runtime_ms: float, options: MoeOptions) -> float:
    return math.log2(1.0 + max(runtime_ms, 0.0) / options.runtime_scale_ms)


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
    penalty = fmean(runtime_penalty(r.extra["runtime_ms"], options) for r in scored)
    metrics["balancedness"] = balance
    metrics["runtime_penalty"] = penalty
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
