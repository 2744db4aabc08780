"""LPT's balancedness on an instance, for the score's guard against losing to LPT (trusted side).

The moe score subtracts ``lpt_guard`` times the shortfall to LPT summed over deployments
(``scoring.combine``; docs/moe.md, "Score"), so the search cannot buy a gain on the mean with a
loss in one deployment. LPT is computed here with the seed's frame (``screen.place``) and LPT's
three rules, which places exactly as ``problems/moe/baselines/lpt.py`` (tests/test_moe_guard.py),
from each window and judged on the next, as every program is. Only trusted code runs here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evolve.evaluators.moe.configs import EpConfig
from evolve.evaluators.moe.placement import Placement, loads
from evolve.evaluators.moe.screen import place

LPT_RULES: dict[str, tuple[Any, set[str]]] = {
    "replica_priority": (lambda env: env["load"] / env["count"], {"load", "count"}),
    "item_order": (lambda env: env["item_load"], {"item_load"}),
    "gpu_cost": (lambda env: env["gpu_load"], {"gpu_load"}),
}


def lpt_balancedness(config: EpConfig, windows: np.ndarray) -> float:
    """Balancedness of LPT's placements (from window k, judged on k + 1) over a workload."""
    mean_sum = max_sum = 0.0
    for k in range(windows.shape[0] - 1):
        phy2log, log2phy, logcnt = place(LPT_RULES, windows[k], config.replicas, config.gpus, config.groups)
        balance = loads(Placement(phy2log, log2phy, logcnt), config, windows[k + 1])
        mean_sum += balance.mean_sum
        max_sum += balance.max_sum
    return 1.0 if max_sum <= 0 else mean_sum / max_sum
