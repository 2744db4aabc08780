"""Latency CDFs of a policy against the reference policy, one panel per instance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from evolve.evaluators.serving.metrics import RequestTable, Slo

MAX_PANELS = 8
Panel = tuple[str, RequestTable, RequestTable, float, float]  # name, mine, reference, goodputs


def _cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = np.sort(np.maximum(values, 1e-4))
    return xs, np.arange(1, xs.size + 1) / xs.size


def draw_cdfs(path: Path, panels: list[Panel], mine: str, reference: str, slo: Slo) -> None:
    """E2E (solid) and TTFT (dashed) CDFs on a log time axis; the TTFT SLO as a vertical line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = panels[:MAX_PANELS]
    if not panels:
        raise ValueError("no feasible instance to draw")
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, table, ref, goodput, ref_goodput) in zip(axes.flat, panels, strict=False):
        for values, label, color, style in (
            (table.e2e, f"{mine} E2E", "tab:blue", "-"), (ref.e2e, f"{reference} E2E", "tab:orange", "-"),
            (table.ttft, f"{mine} TTFT", "tab:blue", "--"), (ref.ttft, f"{reference} TTFT", "tab:orange", "--"),
        ):
            ax.plot(*_cdf(values), style, color=color, label=label, linewidth=1.4)
        ax.axvline(slo.ttft_s, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.0)
        ax.grid(True, which="both", alpha=0.25)
        ax.set_title(f"{name}\ngoodput {goodput:.1f}% vs {ref_goodput:.1f}%  "
                     f"mean E2E {table.e2e.mean():.2f}s vs {ref.e2e.mean():.2f}s", fontsize=8)
        ax.set_xlabel("latency (s)")
        ax.set_ylabel("fraction of requests")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"latency CDFs: {mine} vs {reference} (dotted: TTFT SLO {slo.ttft_s:g}s)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
