"""The report's figures, each returned as a base64 PNG data URI (no network to view).

Scores are "higher is better" everywhere.  Axes are clipped to the useful
range (a few broken programs score -50000 and would flatten everything);
the caption says how many points fall below.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from evolve.config import FeatureSpec  # noqa: E402
from evolve.history import ProgramPoint  # noqa: E402
from evolve.scoring import natural_key  # noqa: E402
from evolve.verifier import Instance, InstanceResult  # noqa: E402

DPI = 110
ISLAND_COLOURS = plt.get_cmap("tab10")


def data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_uri(raw: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def score_limits(scores: Sequence[float], seed: float | None = None) -> tuple[float, float]:
    """y-limits that show the search, not its accidents.

    With the seed's score known, the axis goes down to half the seed-to-best
    distance below the seed (programs much worse than the seed are not what a
    reader looks for); otherwise to the lower quartile minus 3 interquartile ranges.
    """
    values = np.asarray(scores, dtype=float)
    hi = float(values.max())
    if seed is not None and math.isfinite(seed):
        lo = seed - 0.5 * max(hi - seed, 1e-9)
    else:
        q1, q3 = np.percentile(values, [25, 75])
        lo = max(float(values.min()), float(q1 - 3 * (q3 - q1)))
    lo = min(lo, hi)
    pad = 0.06 * (hi - lo) if hi > lo else max(1.0, abs(hi) * 0.05)
    return lo - pad, hi + pad


def _scored(points: list[ProgramPoint]) -> list[ProgramPoint]:
    return [p for p in points if p.score is not None and math.isfinite(p.score)]


def progress_figure(points: list[ProgramPoint], started: float, seed_score: float | None) -> str:
    """Every scored program and the best-so-far, against iteration and wall-clock time."""
    scored = _scored(points)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    lo, hi = score_limits([p.score for p in scored], seed_score)  # type: ignore[misc]
    for ax, key, label in (
        (axes[0], lambda p: p.iteration, "iteration"),
        (axes[1], lambda p: p.created_at - started, "seconds since the start"),
    ):
        ordered = sorted(scored, key=key)
        xs = np.array([key(p) for p in ordered], dtype=float)
        ys = np.array([p.score for p in ordered], dtype=float)
        colours = [ISLAND_COLOURS(p.island % 10) for p in ordered]
        ax.scatter(xs, np.clip(ys, lo, hi), s=9, c=colours, alpha=0.45, linewidths=0, label="programs (colour: island)")
        ax.step(xs, np.maximum.accumulate(ys), where="post", color="black", lw=1.8, label="best so far")
        ax.set_xlabel(label)
        ax.set_ylim(lo, hi)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (higher is better)")
    axes[0].legend(loc="lower right", fontsize=8)
    below = sum(1 for p in scored if p.score < lo)  # type: ignore[operator]
    fig.suptitle("Best score over iterations and over time" + (f" ({below} programs below the axis)" if below else ""))
    return data_uri(fig)


def islands_figure(points: list[ProgramPoint], seed_score: float | None) -> str:
    scored = _scored(points)
    islands = sorted({p.island for p in scored})
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(islands) + 2), 3.6))
    lo, hi = score_limits([p.score for p in scored], seed_score)  # type: ignore[misc]
    data = [[p.score for p in scored if p.island == i] for i in islands]
    ax.boxplot(data, positions=range(len(islands)), showfliers=False, widths=0.5)
    rng = np.random.default_rng(0)
    for k, (island, values) in enumerate(zip(islands, data, strict=True)):
        jitter = rng.uniform(-0.18, 0.18, len(values))
        ax.scatter(k + jitter, np.clip(values, lo, hi), s=10, alpha=0.5, color=ISLAND_COLOURS(island % 10))
    ax.set_xticks(range(len(islands)), [f"island {i}\n{len(v)} programs" for i, v in zip(islands, data, strict=True)])
    ax.set_ylim(lo, hi)
    ax.set_ylabel("score (higher is better)")
    below = sum(1 for p in scored if p.score < lo)  # type: ignore[operator]
    ax.set_title("Score distribution per island" + (f" ({below} below the axis)" if below else ""))
    ax.grid(axis="y", alpha=0.3)
    return data_uri(fig)


def grid_figure(elites: list[tuple[int, str, int, float]], features: list[FeatureSpec], best_id: int | None) -> str | None:
    """Best score per MAP-Elites cell (over islands); a third feature is maximised over."""
    if not elites or not features:
        return None
    rows = features[1] if len(features) > 1 else None
    cols = features[0]
    grid = np.full((rows.bins if rows else 1, cols.bins), np.nan)
    best_cell: tuple[int, int] | None = None
    for _island, cell, program_id, score in elites:
        index = [int(x) for x in cell.split(",")]
        r, c = (index[1] if rows else 0), index[0]
        if np.isnan(grid[r, c]) or score > grid[r, c]:
            grid[r, c] = score
        if program_id == best_id:
            best_cell = (r, c)
    fig, ax = plt.subplots(figsize=(min(12, 1.0 * cols.bins + 3), max(2.2, 0.55 * grid.shape[0] + 1.6)))
    finite = grid[np.isfinite(grid)]
    vmin = float(np.percentile(finite, 10)) if finite.size > 2 else None
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", cmap="viridis", aspect="auto", vmin=vmin)
    for (r, c), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(c, r, f"{value:.3g}", ha="center", va="center", fontsize=7, color="white")
    if best_cell is not None:
        ax.add_patch(plt.Rectangle((best_cell[1] - 0.5, best_cell[0] - 0.5), 1, 1, fill=False, ec="red", lw=2.5))
    ax.set_xticks(range(cols.bins), _bin_labels(cols), rotation=30, fontsize=7)
    ax.set_xlabel(cols.name)
    if rows:
        ax.set_yticks(range(rows.bins), _bin_labels(rows), fontsize=7)
        ax.set_ylabel(rows.name)
    else:
        ax.set_yticks([])
    fig.colorbar(image, ax=ax, label="best score in cell")
    extra = f" (max over {features[2].name})" if len(features) > 2 else ""
    ax.set_title(f"MAP-Elites grid: best score per cell, all islands{extra}; red: the best program")
    return data_uri(fig)


def _bin_labels(spec: FeatureSpec) -> list[str]:
    width = (spec.max - spec.min) / spec.bins
    return [f"{spec.min + k * width:.3g}–{spec.min + (k + 1) * width:.3g}" for k in range(spec.bins)]


def lineage_figure(points: list[ProgramPoint], chain: list[int], seed_score: float | None) -> str:
    """The genealogy of the run (faint) with the best program's line of descent (bold)."""
    scored = {p.id: p for p in _scored(points)}
    lo, hi = score_limits([p.score for p in scored.values()], seed_score)  # type: ignore[misc]
    fig, ax = plt.subplots(figsize=(11, 4))
    for p in scored.values():
        parent = scored.get(p.parent_id) if p.parent_id is not None else None
        if parent is not None:
            ax.plot([parent.iteration, p.iteration], np.clip([parent.score, p.score], lo, hi), color="0.8", lw=0.6, zorder=1)
    ax.scatter([p.iteration for p in scored.values()], np.clip([p.score for p in scored.values()], lo, hi),
               s=8, color="0.6", zorder=2)
    path = [scored[i] for i in chain if i in scored]
    ax.plot([p.iteration for p in path], [p.score for p in path], "-o", color="crimson", lw=2, ms=6, zorder=3)
    for k, p in enumerate(path):
        delta = "" if k == 0 else f" ({p.score - path[k - 1].score:+.3g})"  # type: ignore[operator]
        ax.annotate(f"#{p.id} {p.model or 'seed'}{delta}", (p.iteration, p.score), textcoords="offset points",
                    xytext=(4, 6 if k % 2 else -12), fontsize=7, color="crimson")
    ax.set_ylim(lo, hi)
    ax.set_xlabel("iteration")
    ax.set_ylabel("score (higher is better)")
    below = sum(1 for p in scored.values() if p.score < lo)  # type: ignore[operator]
    ax.set_title("Lineage of the best program (red) within the run's genealogy (grey: parent → child)"
                 + (f"; {below} programs below the axis" if below else ""), fontsize=10)
    ax.grid(alpha=0.3)
    return data_uri(fig)


def instance_scatter(best: list[InstanceResult], other: list[InstanceResult], best_name: str, other_name: str) -> str | None:
    """Per-instance gap of the best against one baseline: below the diagonal, the best wins."""
    theirs = {r.name: r for r in other}
    pairs = [(r, theirs[r.name]) for r in best if r.name in theirs and r.gap is not None and theirs[r.name].gap is not None]
    if not pairs:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 5))
    groups = sorted({r.group for r, _ in pairs}, key=natural_key)
    colours = plt.get_cmap("viridis")
    for k, group in enumerate(groups):
        xs = [100 * o.gap for r, o in pairs if r.group == group]  # type: ignore[operator]
        ys = [100 * r.gap for r, o in pairs if r.group == group]  # type: ignore[operator]
        ax.scatter(xs, ys, s=16, alpha=0.75, color=colours(k / max(1, len(groups) - 1)), label=group or "all")
    top = max(max(100 * o.gap, 100 * r.gap) for r, o in pairs) or 1.0  # type: ignore[operator]
    bottom = min(0.0, min(min(100 * o.gap, 100 * r.gap) for r, o in pairs))  # type: ignore[operator]
    ax.plot([bottom, top], [bottom, top], color="black", lw=1, ls="--")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel(f"{other_name}: gap to reference (%)")
    ax.set_ylabel(f"{best_name}: gap to reference (%)")
    ax.set_title(f"Per instance: below the diagonal, {best_name} is better", fontsize=10)
    ax.legend(fontsize=7, title="group", title_fontsize=7)
    ax.grid(alpha=0.3)
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
