"""Aggregate trusted per-instance results into a score and metrics.

The score is always "higher is better" so the archive can rank any problem the
same way; which aggregate it is comes from ``problem.toml`` (objective.score).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from statistics import fmean, median

from evolve.verifier import Direction, InstanceResult


def natural_key(text: str) -> list[object]:
    """'n=20' before 'n=100': numbers inside names compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def gap_metrics(results: list[InstanceResult], direction: Direction = "minimize") -> dict[str, float]:
    """Gap figures the two published ways, overall and per instance group.

    * ``gap_mean_pct``: mean of per-instance gaps over instances with a
      non-zero reference (the convention of published tables);
    * ``gap_median_pct``: their median;
    * ``gap_ratio_pct``: (sum objective - sum reference) / sum reference,
      robust when references are tiny or zero;
    * ``gap_group_mean_pct`` (with several groups): the mean of the groups'
      ``gap_mean_pct``, every group weighing the same however many instances
      it has (the figure a table with one column per group averages).
    """
    metrics: dict[str, float] = {}
    groups: dict[str, list[InstanceResult]] = defaultdict(list)
    for r in results:
        groups[r.group].append(r)
    metrics.update(_gaps(results, "", direction))
    if len(groups) > 1:
        for group, members in sorted(groups.items()):
            metrics.update(_gaps(members, f"[{group}]", direction))
        means = [metrics[f"gap_mean_pct[{g}]"] for g in sorted(groups) if f"gap_mean_pct[{g}]" in metrics]
        if means:
            metrics["gap_group_mean_pct"] = fmean(means)
    return metrics


def _gaps(results: list[InstanceResult], suffix: str, direction: Direction) -> dict[str, float]:
    out: dict[str, float] = {}
    gaps = [r.gap for r in results if r.gap is not None]
    if gaps:
        out[f"gap_mean_pct{suffix}"] = 100.0 * fmean(gaps)
        # The median is not carried by a few instances with tiny references, as the mean is.
        out[f"gap_median_pct{suffix}"] = 100.0 * median(gaps)
    with_ref = [r for r in results if r.reference is not None and r.objective is not None]
    ref_sum = sum(abs(r.reference or 0.0) for r in with_ref)
    if with_ref and ref_sum > 0:
        diff = sum((r.objective or 0.0) - (r.reference or 0.0) for r in with_ref)
        if direction == "maximize":  # worse = below the reference
            diff = -diff
        out[f"gap_ratio_pct{suffix}"] = 100.0 * diff / ref_sum
    return out


def time_metrics(results: list[InstanceResult]) -> dict[str, float]:
    """Mean time per instance in ms, overall and per group (shown next to the gaps).

    ``seconds`` is always the kernel's count of the candidate process's CPU time, read from
    outside it: per call in a session, shared evenly over the split in a driven one, and in a
    batch run read by the zygote as each result line arrives (``sandbox.outcome.trusted_seconds``).
    Nothing the candidate writes about its time is read, and waiting (load, sleep) is not
    counted, so a feature dimension on these figures does not move with the machine's load.
    """
    out: dict[str, float] = {}
    groups: dict[str, list[float]] = defaultdict(list)
    for r in results:
        if r.seconds is not None:
            groups[r.group].append(r.seconds)
    every = [s for values in groups.values() for s in values]
    if every:
        out["ms_per_instance"] = 1000.0 * fmean(every)
    if len(groups) > 1:
        for group, values in sorted(groups.items()):
            out[f"ms_per_instance[{group}]"] = 1000.0 * fmean(values)
    return out


def aggregate(
    results: list[InstanceResult], direction: Direction, score_kind: str, median_weight: float = 0.0,
    reference_floor: Mapping[str, float] | None = None,
) -> tuple[float | None, dict[str, float]]:
    """(score, metrics) for a fully feasible result set; score None if undefined.

    ``median_weight`` (objective.median_weight) changes only the score of ``gap_mean`` and
    ``gap_group_mean``: each group's mean gap is blended with its median gap; the metrics
    (every reported gap) stay the published means. ``reference_floor`` (objective.reference_floor)
    likewise changes only those scores: an instance of a group it names has its gap measured
    against max(|reference|, the group's floor) instead of the reference.
    """
    metrics = gap_metrics(results, direction)
    fitness = metrics
    if reference_floor and score_kind in ("gap_mean", "gap_group_mean"):
        fitness = gap_metrics(floored(results, reference_floor), direction)
    objectives = [r.objective for r in results if r.objective is not None]
    metrics["objective_sum"] = float(sum(objectives))
    metrics["instances"] = float(len(results))
    metrics["optimal_hits"] = float(
        sum(
            1
            for r in results
            if r.reference_kind == "optimal"
            and r.objective is not None
            and r.reference is not None
            and math.isclose(r.objective, r.reference, rel_tol=1e-9, abs_tol=1e-9)
        )
    )
    metrics.update(time_metrics(results))
    for key in sorted({k for r in results for k in r.extra}):
        values = [r.extra[key] for r in results if key in r.extra]
        metrics[key] = fmean(values)

    sign = -1.0 if direction == "minimize" else 1.0
    if score_kind == "gap_mean":
        score = -_blend(fitness, "", median_weight) if "gap_mean_pct" in fitness else None
    elif score_kind == "gap_group_mean":  # one group: its mean gap
        groups = [k[len("gap_mean_pct"):] for k in fitness if k.startswith("gap_mean_pct[")]
        if "gap_group_mean_pct" in fitness and not median_weight:
            score = -fitness["gap_group_mean_pct"]
        elif "gap_group_mean_pct" in fitness:
            score = -fmean(_blend(fitness, g, median_weight) for g in groups)
        else:
            score = -_blend(fitness, "", median_weight) if "gap_mean_pct" in fitness else None
    elif score_kind == "gap_ratio":
        score = -metrics["gap_ratio_pct"] if "gap_ratio_pct" in metrics else None
    else:
        score = sign * metrics["objective_sum"]
    return score, metrics


def floored(results: list[InstanceResult], reference_floor: Mapping[str, float]) -> list[InstanceResult]:
    """The results with each gap of a group in ``reference_floor`` measured against
    max(|reference|, floor): the same difference to the reference, over a denominator that is
    never below the floor, so an instance with a tiny reference cannot carry its group's mean."""
    out = []
    for r in results:
        floor = reference_floor.get(r.group)
        if floor is not None and r.gap is not None and r.reference is not None:
            r = replace(r, gap=r.gap * abs(r.reference) / max(abs(r.reference), floor))
        out.append(r)
    return out


def _blend(metrics: dict[str, float], suffix: str, median_weight: float) -> float:
    """A group's figure for the score: its mean gap, blended with its median by ``median_weight``."""
    mean = metrics[f"gap_mean_pct{suffix}"]
    if not median_weight:
        return mean
    return (1.0 - median_weight) * mean + median_weight * metrics[f"gap_median_pct{suffix}"]


def headline_gap_keys(score_kind: str) -> tuple[str, ...]:
    """The metrics that hold the headline gap, the first present wins (a single group has no
    ``gap_group_mean_pct``: its mean is the group mean)."""
    if score_kind == "gap_group_mean":
        return ("gap_group_mean_pct", "gap_mean_pct")
    return ("gap_ratio_pct",) if score_kind == "gap_ratio" else ("gap_mean_pct",)


def headline_gap(metrics: dict[str, float], score_kind: str) -> float | None:
    """The gap (in %) a user reads next to the score."""
    return next((metrics[k] for k in headline_gap_keys(score_kind) if k in metrics), None)
