"""What a model's prompt may know about the train traces and a program's runs beyond the score.

Both are after-the-fact figures of the trusted side, never given to a program while it
decides (problems/serving/context.md says so):

* ``train_facts``: per train trace, the reference policy's slowest request end to end (FCFS for
  one engine, round robin for the router; past it a request counts as starved); per group,
  the spread of prompt lengths and of the true output lengths (a program sees only each
  request's noisy ``predicted_len``; the spread over a whole split is workload knowledge, not a
  request's future);
* ``feedback_lines``: the program's own goodput and starved shares per trace, by group (the
  score folds them into one number), and per group how often KV memory bound in its runs.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from evolve.scoring import natural_key
from evolve.verifier import Instance, InstanceResult


def _spread(values: np.ndarray) -> str:
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return f"{p10:,.0f}/{p50:,.0f}/{p90:,.0f}"


def _groups(items: list, group: str = "group") -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for item in items:
        out[getattr(item, group)].append(item)
    return dict(sorted(out.items(), key=lambda kv: natural_key(kv[0])))


def _labels(names: list[str]) -> dict[str, str]:
    """A trace by the last part of its name (s203) where that tells the traces apart: room is short."""
    short = [name.rsplit("-", 1)[-1] for name in names]
    return dict(zip(names, short if len(set(short)) == len(short) else names, strict=True))


def train_facts(instances: list[Instance], reference: str = "FCFS") -> list[str]:
    """(The reference's KV-bound steps and preemptions are the seed's results: the seed is it.)"""
    if not instances:
        return []
    groups = _groups(instances)
    label = _labels([i.name for i in instances])
    slowest = "; ".join(f"{g} " + ", ".join(f"{label[i.name]} {i.data['reference']['e2e_max_s']:.1f} s"
                                            for i in rows) for g, rows in groups.items())
    prompts = ", ".join(f"{g} {_spread(np.concatenate([i.data['trace']['prompt'] for i in rows]))}"
                        for g, rows in groups.items())
    outputs = ", ".join(f"{g} {_spread(np.concatenate([i.data['trace']['output'] for i in rows]))}"
                        for g, rows in groups.items())
    return [f"Train traces after the fact (given to no program): {reference}'s slowest request end to end (slower "
            f"is starved): {slowest}. Prompt tokens p10/median/p90: {prompts}; true output tokens (programs see "
            f"predicted_len): {outputs}."]


def feedback_lines(results: list[InstanceResult]) -> list[str]:
    lines = []
    shares = [r for r in results if r.feasible and "goodput_pct" in r.extra and "starved_pct" in r.extra]
    if shares:
        label = _labels([r.name for r in shares])

        parts = [f"{g} " + ", ".join(f"{label[r.name]} {r.extra['goodput_pct']:.1f}/{r.extra['starved_pct']:.1f}"
                                     for r in rs) for g, rs in _groups(shares).items()]
        lines.append("Goodput % / starved % per trace: " + "; ".join(parts))
    rows = [r for r in results if r.feasible and "kv_bound_pct" in r.extra]
    if rows:
        parts = [f"{g} {np.mean([r.extra['kv_bound_pct'] for r in rs]):.1f}%, "
                 f"{np.mean([r.extra.get('preemptions', 0.0) for r in rs]):.0f}"
                 for g, rs in _groups(rows).items()]
        lines.append("KV-bound steps and preemptions per trace, mean per group: " + "; ".join(parts))
    return lines
