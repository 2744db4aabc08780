"""Gantt charts of validated schedules: machines as rows, jobs as colours (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from evolve.evaluators.jssp.model import shop_from_payload
from evolve.verifier import Instance, InstanceResult

MAX_CHARTS = 4  # one panel per instance; more would be unreadable
LEGEND_MAX_JOBS = 20


def _job_colours(n_jobs: int) -> np.ndarray:
    if n_jobs <= 20:
        return colormaps["tab20"](np.arange(n_jobs) % 20)
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_jobs))


def _title(instance: Instance, result: InstanceResult) -> str:
    scheme = instance.data["scheme"].replace("_", "-")
    text = f"{instance.name} ({instance.data['n_machines']} machines, {len(instance.data['lengths'])} jobs), {scheme} schedule"
    if result.objective is not None:
        text += f": makespan {result.objective:g}"
    if result.reference is not None and result.gap is not None:
        kind = "optimum" if result.reference_kind == "optimal" else f"{result.reference_kind.replace('_', '-')} bound"
        text += f" vs {kind} {result.reference:g} (gap {100 * result.gap:.1f}%)"
    return text


def draw_gantt(instances: list[Instance], results: list[InstanceResult], solutions: list[Any], path: Path) -> None:
    """Write one Gantt panel per instance (the first MAX_CHARTS) to ``path`` (PNG/SVG by suffix)."""
    chosen = [(i, r, s) for i, r, s in zip(instances, results, solutions, strict=False) if r.feasible][:MAX_CHARTS]
    if not chosen:
        raise ValueError("no feasible schedule to draw")
    heights = [max(2.0, 0.32 * int(i.data["n_machines"]) + 1.2) for i, _, _ in chosen]
    fig = Figure(figsize=(13, sum(heights)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(chosen), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (instance, result, solution) in zip(axes, chosen, strict=True):
        _panel(ax, instance, result, solution)
    if len(instances) > len(chosen):
        fig.suptitle(f"first {len(chosen)} of {len(instances)} instances", fontsize=9)
    fig.savefig(path, dpi=110)


def _panel(ax: Any, instance: Instance, result: InstanceResult, solution: dict[str, Any]) -> None:
    shop = shop_from_payload(instance.name, instance.data)
    colours = _job_colours(shop.n_jobs)
    makespan = max((max(row) for row in solution["end"] if row), default=0)
    label_bars = shop.n_jobs <= 30
    for j, (starts, ends) in enumerate(zip(solution["start"], solution["end"], strict=True)):
        for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
            if e <= s:
                continue  # zero-duration operations occupy no machine
            machine = int(shop.machines[j, k])
            ax.barh(machine, e - s, left=s, height=0.8, color=colours[j], edgecolor="black", linewidth=0.3)
            if label_bars and (e - s) > makespan / 60:
                ax.text((s + e) / 2, machine, str(j), ha="center", va="center", fontsize=6)
    ax.set_yticks(range(shop.n_machines))
    ax.set_yticklabels([f"M{m}" for m in range(shop.n_machines)], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, makespan * 1.01 if makespan else 1)
    ax.axvline(makespan, color="black", linewidth=0.8)
    if result.reference is not None:
        ax.axvline(result.reference, color="red", linestyle="--", linewidth=0.8)
    ax.set_xlabel("time (red dashes: reference makespan)", fontsize=8)
    ax.set_title(_title(instance, result), fontsize=9, loc="left")
    if shop.n_jobs <= LEGEND_MAX_JOBS:
        handles = [Patch(color=colours[j], label=f"job {j}") for j in range(shop.n_jobs)]
        ax.legend(handles=handles, fontsize=6, ncols=1 if shop.n_jobs <= max(shop.n_machines, 8) else 2,
                  loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
