"""What a model's prompt learns about the train workloads and a moe program's run, after the fact.

``train_facts``: how much the drift between windows costs (LPT judged on the window it was
computed from against the next one) and how far load shares move from window to window (a
clean-room agent had to guess the drift's size from outcomes). Aggregates of the train split
for the system prompt, never given to a program.

The references (a bound on v3 and qwen, a clairvoyant CP-SAT placement on small64 and tiny16)
say little about what to change; the score's bar is LPT. A clean-room agent playing the model
had to work out by subtraction which deployment the guard charged and whether runtime cost
anything, so these lines give, per deployment, the program against LPT with what the guard
took, and the judged calls' CPU against the budget.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from statistics import fmean

import numpy as np

from evolve.evaluators.moe.configs import EpConfig
from evolve.evaluators.moe.guard import LPT_RULES
from evolve.evaluators.moe.options import MoeOptions
from evolve.evaluators.moe.placement import Placement, loads
from evolve.evaluators.moe.screen import place
from evolve.scoring import natural_key
from evolve.verifier import Instance, InstanceResult


def _by_group(results: list[InstanceResult]) -> dict[str, list[InstanceResult]]:
    out: dict[str, list[InstanceResult]] = defaultdict(list)
    for r in results:
        out[r.group].append(r)
    return dict(sorted(out.items(), key=lambda kv: natural_key(kv[0])))


def _drift(config: EpConfig, windows: np.ndarray) -> tuple[float, float, float, float]:
    """LPT's balancedness on its own window and on the next; the mean total-variation distance of a
    layer's load shares between consecutive windows; the share of the top tenth of experts that stay
    in the top tenth."""
    sums = np.zeros(4)
    for k in range(windows.shape[0] - 1):
        placement = Placement(*place(LPT_RULES, windows[k], config.replicas, config.gpus, config.groups))
        seen, judged = loads(placement, config, windows[k]), loads(placement, config, windows[k + 1])
        sums += (seen.mean_sum, seen.max_sum, judged.mean_sum, judged.max_sum)
    w = windows.astype(np.float64)
    shares = w / np.maximum(w.sum(axis=2, keepdims=True), 1.0)
    tv = float(0.5 * np.abs(shares[1:] - shares[:-1]).sum(axis=2).mean())
    top = max(1, w.shape[2] // 10)
    ranked = np.argsort(-w, axis=2, kind="stable")[:, :, :top]
    stay = float(np.mean([np.isin(ranked[k + 1, layer], ranked[k, layer]).mean()
                          for k in range(w.shape[0] - 1) for layer in range(w.shape[1])]))
    return sums[0] / max(sums[1], 1e-12), sums[2] / max(sums[3], 1e-12), tv, stay


def train_facts(instances: list[Instance], config_of: Callable[[Instance], EpConfig]) -> list[str]:
    groups: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    for instance in instances:
        groups[instance.group].append(_drift(config_of(instance), np.asarray(instance.data["windows"])))
    if not groups:
        return []
    rows = sorted(groups.items(), key=lambda kv: natural_key(kv[0]))
    mean = {g: np.mean(v, axis=0) for g, v in rows}
    lpt = "; ".join(f"{g} {m[0]:.3f} / {m[1]:.3f}" for g, m in mean.items())
    moves = "; ".join(f"{g} {m[2]:.3f}, {100 * m[3]:.0f}%" for g, m in mean.items())
    return [f"Train workloads after the fact (given to no program): LPT's placement reaches, on the window it is "
            f"computed from / on the next window, the one it is judged on: {lpt}. What is left to gain is the "
            f"drift, not the packing. From one window to the next, per deployment, the mean total-variation distance "
            f"between a layer's load shares, and how many of the top tenth of experts stay in the top tenth: {moves}."]


def feedback_lines(results: list[InstanceResult], options: MoeOptions) -> list[str]:
    scored = [r for r in results if r.feasible and r.objective is not None]
    if not scored or len(scored) != len(results):
        return []  # a failed program's feedback is its failure
    groups = _by_group(scored)
    lines = []
    if all("lpt_balancedness" in r.extra for r in scored):
        points = options.balance_weight * options.lpt_guard
        cells = []
        for group, members in groups.items():
            own = fmean(float(r.objective or 0.0) for r in members)
            lpt = fmean(float(r.extra["lpt_balancedness"]) for r in members)
            diff = own - lpt
            cost = f", costs {points * -diff:.2f} points" if diff < 0 and points > 0 else ""
            cells.append(f"{group} {own:.4f} vs {lpt:.4f} ({diff:+.4f}{cost})")
        lines.append("against LPT per deployment (mean balancedness, the guard's bar): " + "; ".join(cells))
        below = sorted((r for r in scored if float(r.objective or 0.0) < float(r.extra["lpt_balancedness"])),
                       key=lambda r: float(r.objective or 0.0) - float(r.extra["lpt_balancedness"]))[:3]
        lines.append("furthest below LPT: " + ("; ".join(
            f"{r.name} {float(r.objective or 0.0):.4f} vs {float(r.extra['lpt_balancedness']):.4f}" for r in below)
            if below else "none (every instance at or above LPT's balancedness)"))
    if all("runtime_budget_ms" in r.extra and "runtime_call_max_ms" in r.extra for r in scored):
        cells = [f"{group} {fmean(float(r.extra['runtime_ms']) for r in members):.1f}/"
                 f"{max(float(r.extra['runtime_call_max_ms']) for r in members):.1f} of "
                 f"{float(members[0].extra['runtime_budget_ms']):.1f} ms" for group, members in groups.items()]
        lines.append("judged calls' CPU per deployment (runtime_ms / costliest call, of the budget): "
                     + "; ".join(cells))
    return lines
