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
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from evolve.config import FeatureSpec  # noqa: E402
from evolve.history import ProgramPoint  # noqa: E402

if TYPE_CHECKING:
    from evolve.problem import Problem

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


def gap_limits(gaps: Sequence[float], seed: float | None = None) -> tuple[float, float]:
    """y-limits for gaps (lower is better): from the best down to zero, up to half the
    seed-to-best distance above the seed; without a seed, the upper quartile + 3 IQR."""
    values = np.asarray(gaps, dtype=float)
    lo = float(values.min())
    if seed is not None and math.isfinite(seed):
        hi = seed + 0.5 * max(seed - lo, 1e-9)
    else:
        q1, q3 = np.percentile(values, [25, 75])
        hi = min(float(values.max()), float(q3 + 3 * (q3 - q1)))
    hi = max(hi, lo)
    pad = 0.06 * (hi - lo) if hi > lo else max(1.0, abs(hi) * 0.05)
    return max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad


def best_so_far(ordered: Sequence[ProgramPoint], use_gap: bool) -> np.ndarray:
    """After each program (in the order given), the best program so far as the archive ranks them,
    by score; drawn as its gap when the plot shows gaps. The lowest gap so far is not it where the
    score is more than the gap (serving: goodput; smtt_rule: a floored fitness)."""
    out, best = [], None
    for p in ordered:
        if best is None or p.score > best.score:  # type: ignore[operator]
            best = p
        out.append(best.gap if use_gap else best.score)
    return np.array(out, dtype=float)


def plots_by_score(problem: Problem) -> bool:
    """Whether the progress plot's y axis is the score: a verifier whose score is not minus a gap
    (serving: goodput - starved - 0.2 x the latency gap) declares ``instance_score``, and its
    gap metric (the latency gap) is not what the search ranks by."""
    from evolve.compare import instance_score_of

    return instance_score_of(problem) is not None


def axis_is_gap(points: list[ProgramPoint], by_score: bool = False) -> bool:
    """The progress plot draws the gap when every scored program has one and the score is a gap."""
    scored = _scored(points)
    return not by_score and bool(scored) and all(p.gap is not None and math.isfinite(p.gap) for p in scored)


def progress_figure(
    points: list[ProgramPoint], started: float, seed_score: float | None,
    references: dict[str, float] | None = None, seed_gap: float | None = None, by_score: bool = False,
) -> str:
    """Every evaluated program and the best so far, against iteration and wall-clock time.

    When the problem's score is a gap, the y axis is that gap (lower is better) and
    ``references`` (name -> train gap of each baseline) are horizontal lines, with the
    seed's; otherwise (or with ``by_score``: a score that is not minus a gap, see
    ``plots_by_score``) the score (higher is better) with the baselines' scores.
    """
    use_gap = axis_is_gap(points, by_score)
    with_gap = [p for p in _scored(points) if p.gap is not None and math.isfinite(p.gap)]
    scored = with_gap if use_gap else _scored(points)
    value = (lambda p: p.gap) if use_gap else (lambda p: p.score)
    seed_line = seed_gap if use_gap else seed_score
    lo, hi = gap_limits([value(p) for p in scored], seed_line) if use_gap else score_limits(
        [value(p) for p in scored], seed_line)
    lines = {"seed": seed_line, **(references or {})} if seed_line is not None else dict(references or {})
    margin = 0.03 * (hi - lo)
    levels = [v for v in lines.values() if v is not None and math.isfinite(v)]
    if use_gap:  # stretch toward the better side only: a hopeless baseline must not flatten the plot
        lo = min([lo, *[v - margin for v in levels]])
    else:
        hi = max([hi, *[v + margin for v in levels]])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))]
    for ax, key, label in (
        (axes[0], lambda p: p.iteration, "iteration"),
        (axes[1], lambda p: p.created_at - started, "seconds since the start"),
    ):
        ordered = sorted(scored, key=key)
        xs = np.array([key(p) for p in ordered], dtype=float)
        ys = np.array([value(p) for p in ordered], dtype=float)
        colours = [ISLAND_COLOURS(p.island % 10) for p in ordered]
        ax.scatter(xs, np.clip(ys, lo, hi), s=9, c=colours, alpha=0.45, linewidths=0, label="programs (colour: island)")
        ax.step(xs, best_so_far(ordered, use_gap), where="post", color="black", lw=1.8, label="best so far")
        for k, (name, level) in enumerate(lines.items()):
            if level is not None and lo <= level <= hi:
                ax.axhline(level, color="0.35" if name == "seed" else plt.get_cmap("tab20b")(k % 20),
                           ls=styles[k % len(styles)], lw=1.1, label=f"{name} ({level:.3g}{'%' if use_gap else ''})")
        ax.set_xlabel(label)
        ax.set_ylim(lo, hi)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("gap to the references, % (lower is better)" if use_gap else "score (higher is better)")
    axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    outside = sum(1 for p in scored if (value(p) > hi if use_gap else value(p) < lo))
    what = "Train gap" if use_gap else "Best score"
    fig.suptitle(f"{what} over iterations and over time" + (f" ({outside} programs off the axis)" if outside else ""))
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


def grid_figure(points: list[ProgramPoint], features: list[FeatureSpec], best_id: int | None) -> tuple[str | None, str]:
    """Best score per cell of the feature space, binned over the range of values the run
    reached (the search's own grid uses the fixed bins of problem.toml, which programs
    may fill only a corner of); a third feature is maximised over.  Returns the figure
    and a caption saying the ranges."""
    located = [p for p in _scored(points) if p.features and len(p.features) >= min(2, len(features))]
    if not located or not features:
        return None, ""
    cols, rows = features[0], (features[1] if len(features) > 1 else None)
    x = np.array([p.features[0] for p in located], dtype=float)  # type: ignore[index]
    y = np.array([p.features[1] for p in located], dtype=float) if rows else np.zeros(len(located))  # type: ignore[index]
    x_edges, y_edges = _edges(x, cols.bins), _edges(y, rows.bins) if rows else np.array([-0.5, 0.5])
    grid = np.full((len(y_edges) - 1, len(x_edges) - 1), np.nan)
    best_cell: tuple[int, int] | None = None
    for p, xv, yv in zip(located, x, y, strict=True):
        c = int(np.clip(np.searchsorted(x_edges, xv, side="right") - 1, 0, grid.shape[1] - 1))
        r = int(np.clip(np.searchsorted(y_edges, yv, side="right") - 1, 0, grid.shape[0] - 1))
        if np.isnan(grid[r, c]) or p.score > grid[r, c]:  # type: ignore[operator]
            grid[r, c] = p.score
        if p.id == best_id:
            best_cell = (r, c)
    fig, ax = plt.subplots(figsize=(min(12, 1.0 * grid.shape[1] + 3), max(2.2, 0.55 * grid.shape[0] + 1.6)))
    finite = grid[np.isfinite(grid)]
    vmin = float(np.percentile(finite, 10)) if finite.size > 2 else None
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", cmap="viridis", aspect="auto", vmin=vmin)
    for (r, c), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(c, r, f"{value:.3g}", ha="center", va="center", fontsize=7, color="white")
    if best_cell is not None:
        ax.add_patch(plt.Rectangle((best_cell[1] - 0.5, best_cell[0] - 0.5), 1, 1, fill=False, ec="red", lw=2.5))
    ax.set_xticks(range(grid.shape[1]), _edge_labels(x_edges), rotation=30, fontsize=7)
    ax.set_xlabel(cols.name)
    if rows:
        ax.set_yticks(range(grid.shape[0]), _edge_labels(y_edges), fontsize=7)
        ax.set_ylabel(rows.name)
    else:
        ax.set_yticks([])
    fig.colorbar(image, ax=ax, label="best score in cell")
    extra = f" (max over {features[2].name})" if len(features) > 2 else ""
    ax.set_title(f"Feature space: best score per cell, all programs{extra}; red: the best program")
    ranges = "; ".join(f"{f.name} {lo:.4g}-{hi:.4g} (problem.toml bins: {f.min:g}-{f.max:g})" for f, (lo, hi) in
                       zip(features[:2], [(x.min(), x.max()), (y.min(), y.max())][: len(features[:2])], strict=True))
    return data_uri(fig), f"Binned over the values the run reached: {ranges}. Empty cells were never reached."


def _edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin edges over the data seen: at most ``bins`` bins, fewer for few distinct values."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.array([lo - 0.5, lo + 0.5])
    return np.linspace(lo, hi, min(bins, len(np.unique(values))) + 1)


def _edge_labels(edges: np.ndarray) -> list[str]:
    return [f"{a:.3g}–{b:.3g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]


def lineage_figure(points: list[ProgramPoint], chain: list[int], seed_score: float | None) -> str:
    """The genealogy of the run (faint) with the best program's line of descent (bold).
    Each step is labelled with its generation number (the lineage table below has the
    edit); labels are placed where they do not overlap each other."""
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
    ax.set_ylim(lo, hi)
    _place_labels(fig, ax, [(p.iteration, p.score, f"{k}: #{p.id}") for k, p in enumerate(path)])
    ax.set_xlabel("iteration")
    ax.set_ylabel("score (higher is better)")
    below = sum(1 for p in scored.values() if p.score < lo)  # type: ignore[operator]
    ax.set_title("Lineage of the best program (red; label = generation: id) within the run's genealogy"
                 + (f"; {below} programs below the axis" if below else ""), fontsize=10)
    ax.grid(alpha=0.3)
    return data_uri(fig)


LABEL_OFFSETS = ((5, 6), (5, -13), (-8, 12), (-8, -19), (8, 18), (8, -25), (-14, 26), (-14, -32))


def _place_labels(fig: Figure, ax: Any, labels: list[tuple[float, float | None, str]]) -> None:
    """Annotate points, trying offsets until a label overlaps no label placed before it
    (a label that fits nowhere is dropped: the table lists every step)."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    placed: list[Any] = []
    for x, y, text in labels:
        for dx, dy in LABEL_OFFSETS:
            note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                               color="crimson", annotation_clip=True)
            box = note.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            note.remove()
