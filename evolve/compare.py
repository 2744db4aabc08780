"""Paired, per-instance comparison of two programs on the same instances.

A difference of mean gaps hides how often, and how reliably, one rule beats
another.  Every instance is a pair here: wins / ties / losses, each side's mean
gap per instance group, and a two-sided Wilcoxon signed-rank test of the
per-instance differences, so that a user sees whether an improvement is noise.

The per-instance difference is relative, so that large and small instances
weigh alike:  d = s * (objective_B - objective_A) / scale, with s = +1 when
minimising (-1 when maximising) and scale = |reference| when the instance has
a non-zero reference (then d = gap_B - gap_A), else max(|A|, |B|).  d > 0 means
A is better.  An instance one side fails and the other solves is the largest
possible difference against the failing side; both failing is a tie.

A verifier whose score is not minus a gap (serving: goodput - starved - 0.2 x the latency gap)
says what an instance adds to its score, ``instance_score(result)`` (higher is better); then
d = (score_A - score_B) / 100, so that the mean difference reads in score points, and the
verdict is on what the search ranks by, not on the per-instance objective alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from evolve.config import SandboxSettings
from evolve.evalcache import EvalCache
from evolve.evaluation import Evaluation, Evaluator
from evolve.problem import Problem
from evolve.scoring import natural_key
from evolve.verifier import Direction, Instance, InstanceResult

ALPHA = 0.05  # two-sided significance level of every verdict
EXACT_MAX_N = 50  # exact null distribution up to this many non-tied pairs (as scipy's "auto")
TIE_RTOL = 1e-9  # objectives this close (relatively) are a tie
MIN_SIGNIFICANT_N = 6  # below this, even n wins out of n give p > 0.05 (2 / 2**5 = 0.0625)

Verdict = Literal["better", "worse", "not significant", "identical", "nothing to compare"]
InstanceScore = Callable[[InstanceResult], float]  # what an instance adds to the score, higher better


def instance_score_of(problem: Problem) -> InstanceScore | None:
    """The verifier's ``instance_score`` where it declares one (its score is not minus a gap)."""
    found = getattr(problem.verifier, "instance_score", None)
    return found if callable(found) else None


# --- the Wilcoxon signed-rank test -------------------------------------------


@dataclass(frozen=True)
class SignedRank:
    """Two-sided Wilcoxon signed-rank test; zero differences are dropped (Wilcoxon's method)."""

    n: int  # pairs that differ
    w_plus: float  # sum of the ranks of positive differences (A better)
    w_minus: float
    p_value: float
    method: Literal["exact", "normal", "none"]


def wilcoxon(differences: Sequence[float]) -> SignedRank:
    """Exact null distribution for n <= 50 without tied |d|; otherwise the normal
    approximation with the tie correction of the variance (no continuity correction).
    ±inf stands for "one side failed": it outranks every finite difference."""
    d = np.asarray([x for x in differences if x != 0 and not math.isnan(x)], dtype=float)
    n = int(d.size)
    if n == 0:
        return SignedRank(0, 0.0, 0.0, 1.0, "none")
    finite = d[np.isfinite(d)]
    big = (float(np.max(np.abs(finite))) if finite.size else 0.0) * 2 + 1
    magnitude = np.where(np.isfinite(d), np.abs(d), big)
    # Round away float noise so that equal relative differences tie exactly.
    magnitude = np.array([float(f"{m:.12g}") for m in magnitude])
    values, inverse, counts = np.unique(magnitude, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]
    w_plus = float(ranks[d > 0].sum())
    w_minus = float(ranks[d < 0].sum())
    ties = bool(np.any(counts > 1))
    if n <= EXACT_MAX_N and not ties:
        return SignedRank(n, w_plus, w_minus, _exact_p(n, min(w_plus, w_minus)), "exact")
    mean = n * (n + 1) / 4.0
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - float(np.sum(counts**3 - counts)) / 48.0
    if variance <= 0:
        return SignedRank(n, w_plus, w_minus, 1.0, "normal")
    z = (w_plus - mean) / math.sqrt(variance)
    return SignedRank(n, w_plus, w_minus, min(1.0, math.erfc(abs(z) / math.sqrt(2))), "normal")


def _exact_p(n: int, w: float) -> float:
    """2 * P(W <= w) under the null, W the sum of a random subset of ranks 1..n."""
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1, dtype=float)
    counts[0] = 1.0
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    cdf = counts[: int(math.floor(w)) + 1].sum() / 2.0**n
    return min(1.0, 2.0 * float(cdf))


# --- paired comparison ---------------------------------------------------------


@dataclass(frozen=True)
class GroupComparison:
    group: str  # an instance group, or "all"
    instances: int
    wins: int  # instances where A is better
    ties: int
    losses: int
    gap_a_pct: float | None  # mean gap of A over the group's instances with a gap
    gap_b_pct: float | None
    mean_diff_pct: float | None  # mean of d in percent (gap_B - gap_A with references; score points)
    failed_a: int
    failed_b: int
    test: SignedRank

    @property
    def verdict(self) -> Verdict:
        if self.instances and self.failed_a == self.failed_b == self.instances:
            return "nothing to compare"  # every tie a double failure: not "identical"
        if self.test.n == 0:
            return "identical"
        if self.test.p_value < ALPHA:
            return "better" if self.test.w_plus > self.test.w_minus else "worse"
        return "not significant"

    @property
    def verdict_text(self) -> str:
        if self.verdict == "not significant" and self.test.n < MIN_SIGNIFICANT_N:
            return f"not significant (only {self.test.n} differ)"
        against = self.mean_diff_pct is not None and self.mean_diff_pct != 0 and (
            (self.mean_diff_pct < 0) == (self.verdict == "better")) and self.verdict in ("better", "worse")
        if against:  # the test ranks the differences: many small wins can outweigh a few large losses
            assert self.mean_diff_pct is not None
            side = "worse" if self.mean_diff_pct < 0 else "better"
            return f"{self.verdict} by rank, though {abs(self.mean_diff_pct):.2f} pp {side} on the mean"
        return self.verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group, "instances": self.instances, "wins": self.wins, "ties": self.ties,
            "losses": self.losses, "gap_a_pct": self.gap_a_pct, "gap_b_pct": self.gap_b_pct,
            "mean_diff_pct": self.mean_diff_pct, "failed_a": self.failed_a, "failed_b": self.failed_b,
            "p_value": self.test.p_value, "test": self.test.method, "differing": self.test.n,
            "w_plus": self.test.w_plus, "w_minus": self.test.w_minus, "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    overall: GroupComparison
    groups: list[GroupComparison] = field(default_factory=list)
    basis: str = "gap"  # what d and mean_diff_pct are of: "gap" (in pp) or "score" (in points)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "basis": self.basis, "overall": self.overall.to_json(),
                "groups": [g.to_json() for g in self.groups]}


def difference(a: InstanceResult | None, b: InstanceResult | None, direction: Direction,
               instance_score: InstanceScore | None = None) -> float:
    """The relative per-instance difference d (> 0: A better); see the module doc."""
    a_ok = a is not None and a.feasible and a.objective is not None
    b_ok = b is not None and b.feasible and b.objective is not None
    if not a_ok or not b_ok:
        return 0.0 if a_ok == b_ok else (math.inf if a_ok else -math.inf)
    assert a is not None and b is not None and a.objective is not None and b.objective is not None
    if instance_score is not None:
        sa, sb = instance_score(a), instance_score(b)
        return 0.0 if abs(sa - sb) <= TIE_RTOL * max(1.0, abs(sa), abs(sb)) else (sa - sb) / 100.0
    va, vb = a.objective, b.objective
    if abs(va - vb) <= TIE_RTOL * max(1.0, abs(va), abs(vb)):
        return 0.0
    reference = a.reference if a.reference not in (None, 0) else b.reference
    scale = abs(reference) if reference not in (None, 0) else max(abs(va), abs(vb))
    sign = 1.0 if direction == "minimize" else -1.0
    return sign * (vb - va) / scale  # type: ignore[operator]


def compare(
    a_name: str,
    a: Evaluation,
    b_name: str,
    b: Evaluation,
    instances: list[Instance],
    direction: Direction,
    instance_score: InstanceScore | None = None,
) -> Comparison:
    """Compare two evaluations of the same instances, overall and per group (on the verifier's
    ``instance_score`` where it has one: ``instance_score_of(problem)``)."""
    a_by = {r.name: r for r in a.instances}
    b_by = {r.name: r for r in b.instances}
    groups: dict[str, list[Instance]] = {}
    for instance in instances:
        groups.setdefault(instance.group, []).append(instance)
    overall = _group("all", instances, a_by, b_by, direction, instance_score)
    per_group = (
        [_group(g, groups[g], a_by, b_by, direction, instance_score) for g in sorted(groups, key=natural_key)]
        if len(groups) > 1 else []
    )
    return Comparison(a_name, b_name, overall, per_group, "score" if instance_score is not None else "gap")


def _group(
    name: str,
    members: list[Instance],
    a_by: dict[str, InstanceResult],
    b_by: dict[str, InstanceResult],
    direction: Direction,
    instance_score: InstanceScore | None = None,
) -> GroupComparison:
    diffs = [difference(a_by.get(i.name), b_by.get(i.name), direction, instance_score) for i in members]
    finite = [x for x in diffs if math.isfinite(x)]
    return GroupComparison(
        group=name,
        instances=len(members),
        wins=sum(1 for x in diffs if x > 0),
        ties=sum(1 for x in diffs if x == 0),
        losses=sum(1 for x in diffs if x < 0),
        gap_a_pct=_mean_gap(a_by, members),
        gap_b_pct=_mean_gap(b_by, members),
        mean_diff_pct=100.0 * float(np.mean(finite)) if finite else None,
        failed_a=sum(1 for i in members if not _solved(a_by.get(i.name))),
        failed_b=sum(1 for i in members if not _solved(b_by.get(i.name))),
        test=wilcoxon(diffs),
    )


def _solved(result: InstanceResult | None) -> bool:
    return result is not None and result.feasible


def _mean_gap(by_name: dict[str, InstanceResult], members: list[Instance]) -> float | None:
    """The mean per-instance gap in %, as ``gap_mean_pct`` (instances with a gap only)."""
    gaps = [r.gap for i in members if (r := by_name.get(i.name)) is not None and r.feasible and r.gap is not None]
    return 100.0 * float(np.mean(gaps)) if gaps else None


# --- evaluating several programs on one split ----------------------------------------


StepProgress = Callable[[int, int, str], None]  # (done, total, what just finished)


def evaluate_programs(
    problem: Problem,
    sandbox: SandboxSettings,
    programs: list[tuple[str, str]],
    instances: list[Instance],
    split: str,
    workers: int = 1,
    cache: EvalCache | None = None,
    progress: StepProgress | None = None,
) -> dict[str, Evaluation]:
    """Evaluate (name, code) pairs through ``Evaluator.run_split``, the one path
    the seed, the baselines and evolved programs all take; results found in
    ``cache`` are reused and new ones stored there."""
    results: dict[str, Evaluation] = {}
    todo = []
    for name, code in programs:
        cached = cache.get(code) if cache is not None else None
        if cached is not None:
            results[name] = cached
        else:
            todo.append((name, code))
    total = len(programs)
    if progress:
        progress(len(results), total, "cached" if results else "")
    if todo:
        with Evaluator(problem, sandbox, slots=workers) as evaluator, ThreadPoolExecutor(workers) as pool:
            futures = {pool.submit(evaluator.run_split, code, instances, split): (name, code) for name, code in todo}
            for future in as_completed(futures):
                name, code = futures[future]
                results[name] = future.result()
                if cache is not None:
                    cache.put(name, code, results[name])
                if progress:
                    progress(len(results), total, name)
    return {name: results[name] for name, _ in programs}
