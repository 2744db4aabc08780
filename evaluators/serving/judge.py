"""Trusted verdicts shared by both serving problems: per-instance result and the score.

Objective (documented in ``problem.toml``; higher score is better)::

    score = goodput_pct - starved_pct - latency_weight * e2e_gap_pct

* ``goodput_pct``: mean over instances of the % of requests meeting both the
  TTFT and the TPOT SLO;
* ``starved_pct``: mean over instances of the % of requests that took longer
  end to end than the slowest request under the reference policy (FCFS; round
  robin for the router) on the same trace.  Starving a request to help others
  therefore costs as much as missing its SLO again;
* ``e2e_gap_pct``: mean over instances of (mean E2E / reference mean E2E - 1),
  in %, the figure reported as "gap" (negative = faster than the reference).

Every request must finish: one that never does makes the instance infeasible.
"""

from __future__ import annotations

import math
from statistics import fmean

import numpy as np

from evolve.evaluators.serving.metrics import RequestTable, Slo, summary
from evolve.scoring import gap_metrics
from evolve.verifier import Instance, InstanceResult, Reference, feasible, infeasible


def reference_figures(table: RequestTable, arrival: np.ndarray, output: np.ndarray, slo: Slo,
                      stats: dict[str, float]) -> dict[str, float]:
    figures = summary(table, arrival, output, slo)
    figures.update(stats)
    figures["e2e_max_s"] = float(table.e2e.max())
    return figures


def make_reference(figures: dict[str, float], policy: str) -> Reference:
    return Reference(figures["e2e_mean_s"], "none",
                     f"mean E2E latency of {policy} on the same trace and engine (a baseline, not an optimum)")


def verdict(instance: Instance, table: RequestTable, stats: dict[str, float], slo: Slo,
            oracle: bool) -> InstanceResult:
    data = instance.data
    trace = data["trace"]
    ref = data["reference"]
    figures = summary(table, trace["arrival"], trace["output"], slo)
    figures.update(stats)
    figures["starved_pct"] = 100.0 * float(np.mean(table.e2e > ref["e2e_max_s"] * (1 + 1e-9)))
    figures["ref_goodput_pct"] = ref["goodput_pct"]
    figures["e2e_p99_ratio"] = figures["e2e_p99_s"] / ref["e2e_p99_s"]
    figures["ttft_p99_ratio"] = figures["ttft_p99_s"] / max(ref["ttft_p99_s"], 1e-9)
    figures["oracle"] = 1.0 if oracle else 0.0
    figures.pop("busy_s", None)
    if not all(math.isfinite(v) for v in figures.values()):
        return infeasible(instance, "a latency figure is not finite (a request never finished)")
    return feasible(instance, figures["e2e_mean_s"], "minimize", **figures)


def instance_score(result: InstanceResult, latency_weight: float) -> float:
    """What one instance adds to the score (the score is the mean of these over the instances):
    the paired comparison of two policies judges on it (evolve/compare.py)."""
    return (result.extra["goodput_pct"] - result.extra["starved_pct"]
            - latency_weight * 100.0 * (result.gap or 0.0))


def aggregate(results: list[InstanceResult], latency_weight: float) -> tuple[float | None, dict[str, float]]:
    """(score, metrics) of a fully feasible result set."""
    metrics = gap_metrics(results)
    metrics["instances"] = float(len(results))
    metrics["objective_sum"] = float(sum(r.objective or 0.0 for r in results))
    seconds = [r.seconds for r in results if r.seconds is not None]
    if seconds:
        metrics["ms_per_instance"] = 1000.0 * fmean(seconds)
    for key in sorted({k for r in results for k in r.extra}):
        values = [r.extra[key] for r in results if key in r.extra]
        metrics[key] = max(values) if key in ("oracle", "slowdown_max") else fmean(values)
    gap = metrics.get("gap_mean_pct")
    if gap is None or "goodput_pct" not in metrics:
        return None, metrics
    metrics["e2e_gap_pct"] = gap
    score = metrics["goodput_pct"] - metrics["starved_pct"] - latency_weight * gap
    return score, metrics
