"""Per-GPU load heatmaps (layers x GPUs) of placements, drawn with matplotlib (Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evolve.evaluators.moe.configs import EpConfig
from evolve.evaluators.moe.placement import check_placement, loads, parse_placement
from evolve.verifier import Instance, InstanceResult

MAX_PANELS = 4


def relative_gpu_load(instance: Instance, solution: Any, config: EpConfig) -> tuple[np.ndarray, float] | None:
    """GPU load / layer mean of the first placement on the window it serves, and its balancedness."""
    windows = instance.data["windows"]
    placements = solution.get("placements") if isinstance(solution, dict) else None
    if not isinstance(placements, list) or not placements:
        return None
    placement, why = parse_placement(placements[0], config, windows.shape[1])
    if placement is None or why is not None or check_placement(placement, config, windows[1]) is not None:
        return None
    balance = loads(placement, config, windows[1])
    mean = balance.gpu_load.mean(axis=1, keepdims=True)
    relative = np.divide(balance.gpu_load, mean, out=np.ones_like(balance.gpu_load), where=mean > 0)
    return relative, balance.balancedness


def draw(instances: list[Instance], results: list[InstanceResult], solutions: list[Any], path: Path,
         config_of: Any) -> None:
    """One heatmap per instance (up to MAX_PANELS): 1.0 is a GPU at its layer's mean load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.ticker import MaxNLocator

    panels = []
    for instance, solution in zip(instances, solutions, strict=False):
        drawn = relative_gpu_load(instance, solution, config_of(instance))
        if drawn is not None:
            panels.append((instance, *drawn))
        if len(panels) == MAX_PANELS:
            break
    if not panels:
        raise ValueError("no valid placement to draw")
    peak = max(float(rel.max()) for _, rel, _ in panels)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=max(peak, 1.01))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.2, 4.8), squeeze=False)
    image = None
    for ax, (instance, rel, balancedness) in zip(axes[0], panels, strict=True):
        image = ax.imshow(rel, aspect="auto", cmap="RdBu_r", norm=norm, interpolation="nearest")
        ax.set_title(f"{instance.name}\nbalancedness {balancedness:.3f} (window 0 -> 1)", fontsize=9)
        ax.set_xlabel("GPU")
        ax.set_ylabel("MoE layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        worst = np.unravel_index(np.argmax(rel), rel.shape)
        ax.plot(worst[1], worst[0], marker="o", markersize=5, markerfacecolor="none", markeredgecolor="k")
    fig.colorbar(image, ax=axes[0].tolist(), label="GPU load / layer mean")
    fig.suptitle("per-GPU load of the placement on the next window (circle: hottest GPU)", fontsize=10, y=1.04)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
