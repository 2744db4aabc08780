"""Per-instance figures of the report: gaps against every baseline, the problem's own picture.

Each returns a base64 PNG data URI (``report_plots.data_uri``) or None when there is
nothing to draw.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evolve.report_plots import data_uri, plt
from evolve.scoring import natural_key
from evolve.verifier import Instance, InstanceResult


def instance_scatters(
    best: list[InstanceResult], others: dict[str, list[InstanceResult]], best_name: str, columns: int = 3,
) -> str | None:
    """One panel per opponent (the seed and every baseline): the per-instance gap of the
    best against the opponent's; below the diagonal the best is better."""
    panels = []
    for name, results in others.items():
        theirs = {r.name: r for r in results}
        pairs = [(r, theirs[r.name]) for r in best
                 if r.name in theirs and r.gap is not None and theirs[r.name].gap is not None]
        if pairs:
            panels.append((name, pairs))
    if not panels:
        return None
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.7 * columns, 3.5 * rows), squeeze=False)
    groups = sorted({r.group for _, pairs in panels for r, _ in pairs}, key=natural_key)
    colours = plt.get_cmap("viridis")
    for ax, (name, pairs) in zip(axes.flat, panels, strict=False):
        for k, group in enumerate(groups):
            xs = [100 * o.gap for r, o in pairs if r.group == group]  # type: ignore[operator]
            ys = [100 * r.gap for r, o in pairs if r.group == group]  # type: ignore[operator]
            if xs:
                ax.scatter(xs, ys, s=12, alpha=0.75, color=colours(k / max(1, len(groups) - 1)), label=group or "all")
        values = [100 * g for r, o in pairs for g in (r.gap, o.gap)]  # type: ignore[operator]
        top, bottom = max(values) or 1.0, min(0.0, min(values))
        ax.plot([bottom, top], [bottom, top], color="black", lw=1, ls="--")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_yscale("symlog", linthresh=1.0)
        wins = sum(1 for r, o in pairs if r.gap < o.gap - 1e-12)  # type: ignore[operator]
        losses = sum(1 for r, o in pairs if r.gap > o.gap + 1e-12)  # type: ignore[operator]
        ax.set_title(f"vs {name}: {wins} better, {losses} worse", fontsize=9)
        ax.set_xlabel(f"{name}: gap (%)", fontsize=8)
        ax.set_ylabel(f"{best_name}: gap (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(groups) > 1:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(groups), 8), fontsize=7, title="instance group",
                   title_fontsize=7, bbox_to_anchor=(0.5, -0.02 - 0.02 * math.ceil(len(groups) / 8)))
    fig.subplots_adjust(hspace=0.5, wspace=0.35)  # fixed spacing: tight_layout costs seconds per report
    return data_uri(fig)


def instance_gap_bars(best: list[InstanceResult], other: list[InstanceResult], best_name: str, other_name: str) -> str | None:
    """The generic picture: the gap of every instance, best against one baseline."""
    theirs = {r.name: r for r in other}
    rows = [r for r in best if r.feasible]
    if not rows:
        return None
    # Without references there is no gap: compare the objectives themselves.
    with_gap = any(r.gap is not None for r in rows)

    def value(r: InstanceResult | None) -> float:
        if r is None or not r.feasible:
            return np.nan
        return 100 * (r.gap or 0.0) if with_gap else float(r.objective or 0.0)

    fig, ax = plt.subplots(figsize=(11, 3.4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [value(r) for r in rows], 0.4, label=best_name, color="crimson")
    ax.bar(x + 0.2, [value(theirs.get(r.name)) for r in rows], 0.4, label=other_name, color="0.55")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xticks(x, [r.name for r in rows], rotation=90, fontsize=6 if len(rows) > 30 else 8)
    ax.set_ylabel("gap to reference (%)" if with_gap else "objective")
    ax.set_title("Gap per instance" if with_gap else "Objective per instance")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return data_uri(fig)


def smtt_tardiness(instances: list[Instance], solutions: list[Any], others: list[Any], best_name: str, other_name: str) -> str | None:
    """SMTT: the machine's timeline of the best sequence coloured by each job's tardiness,
    and tardiness per position against a baseline's sequence."""
    if not instances:
        return None
    fig, axes = plt.subplots(2 * len(instances), 1, figsize=(11, 3.3 * len(instances)),
                             gridspec_kw={"height_ratios": [1, 1.4] * len(instances)})
    for k, (instance, sequence, other) in enumerate(zip(instances, solutions, others, strict=True)):
        p, d = np.asarray(instance.data["p"], float), np.asarray(instance.data["d"], float)
        timeline, bars = axes[2 * k], axes[2 * k + 1]
        order = np.asarray(sequence, dtype=int)
        end = np.cumsum(p[order])
        start, late = end - p[order], np.maximum(end - d[order], 0)
        shade = plt.get_cmap("Reds")(0.25 + 0.75 * late / late.max()) if late.max() > 0 else None
        colours = [(0.3, 0.65, 0.35, 1.0) if t == 0 else shade[i] for i, t in enumerate(late)]  # type: ignore[index]
        timeline.barh(0, p[order], left=start, color=colours, edgecolor="white", lw=0.3, height=0.8)
        timeline.scatter(d[order], np.full(len(order), 0.55), marker="|", color="black", s=40, lw=0.8,
                         label="due dates")
        timeline.set_yticks([])
        timeline.set_xlim(0, end[-1] if len(end) else 1)
        timeline.set_title(f"{instance.name}: {best_name}'s sequence on the machine "
                           f"(green: on time, red: tardy; total tardiness {late.sum():.0f})", fontsize=9)
        timeline.legend(loc="upper left", fontsize=7)
        positions = np.arange(1, len(order) + 1)
        bars.bar(positions, late, color="crimson", alpha=0.8, label=f"{best_name} ({late.sum():.0f})")
        if other is not None:
            o = np.asarray(other, dtype=int)
            o_late = np.maximum(np.cumsum(p[o]) - d[o], 0)
            bars.step(positions, o_late, where="mid", color="black", lw=1, label=f"{other_name} ({o_late.sum():.0f})")
        bars.set_xlabel("position in the sequence")
        bars.set_ylabel("job tardiness")
        bars.legend(fontsize=7)
        bars.grid(alpha=0.3)
    fig.tight_layout()
    return data_uri(fig)
