"""How much room is there above LPT in each deployment? Bounds and clairvoyant placements.

    python bench/moe_headroom.py

For the train split (secret-seeded, what the search sees) and the validation sets of
``bench/moe_validation.py`` (fresh public-seeded workloads at the train drift and at a faster
drift; never the test split), per deployment, mean over workloads of:

* ``LPT``: LPT placed from window k, judged on k + 1 (the baseline the target names);
* ``trivial bound``: the verifier's upper bound on balancedness, max GPU load >= max(mean GPU
  load, hottest expert / (free slots + 1)) on the judged window (``bounds.py``); no placement,
  predictive or not, balances better;
* ``hindsight``: LPT placed from the judged window itself (what a balancer that saw the future
  would get; the optimum of the judged window lies between it and the trivial bound);
* ``forecast`` (validation sets only): LPT placed from the generator's expected next window
  given its hidden state (``generate(expected=...)``: base popularity, hot set, AR(1)
  deviations), a clairvoyant forecast no balancer has. What it gains over LPT is what
  forecasting the drift can be worth to an LPT packing; the rest of the distance to the
  hindsight figure is the drift's innovation, which no placement made before the window can
  follow.

Nothing is timed; every placement is scored as the verifier scores it (``placement.loads``).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from moe_validation import FAST_DRIFT, workloads  # noqa: E402

from evolve.evaluators.moe.bounds import trivial_balance_bound  # noqa: E402
from evolve.evaluators.moe.configs import EpConfig  # noqa: E402
from evolve.evaluators.moe.generator import TRAIN_DRIFT, Drift  # noqa: E402
from evolve.evaluators.moe.guard import LPT_RULES  # noqa: E402
from evolve.evaluators.moe.placement import Placement, loads  # noqa: E402
from evolve.evaluators.moe.screen import place  # noqa: E402
from evolve.evaluators.moe.verifier import config_of  # noqa: E402
from evolve.problem import load_problem  # noqa: E402


def lpt_from(config: EpConfig, sources: np.ndarray, windows: np.ndarray) -> float:
    """Balancedness of LPT placed from ``sources[k]`` and judged on ``windows[k + 1]``."""
    mean_sum = max_sum = 0.0
    for k in range(windows.shape[0] - 1):
        placement = Placement(*place(LPT_RULES, sources[k], config.replicas, config.gpus, config.groups))
        balance = loads(placement, config, windows[k + 1])
        mean_sum += balance.mean_sum
        max_sum += balance.max_sum
    return mean_sum / max_sum


def row(config: EpConfig, windows: np.ndarray, forecast: np.ndarray | None) -> dict[str, float]:
    out = {"LPT": lpt_from(config, windows, windows),
           "trivial bound": trivial_balance_bound(windows, config.gpus, config.replicas).value,
           "hindsight": lpt_from(config, windows[1:], windows)}
    if forecast is not None:
        out["forecast"] = lpt_from(config, forecast, windows)
    return out


def validation(drift: Drift, offset: int) -> list[tuple[EpConfig, dict[str, float]]]:
    forecasts: list[np.ndarray] = []
    sets = workloads(drift, offset, forecasts)
    return [(w.config, row(w.config, w.windows, f)) for w, f in zip(sets, forecasts, strict=True)]


def show(label: str, rows: list[tuple[EpConfig, dict[str, float]]]) -> None:
    by: dict[str, list[dict[str, float]]] = defaultdict(list)
    for config, figures in rows:
        by[config.name].append(figures)
    columns = list(rows[0][1])
    print(f"\n{label}\n| deployment | workloads | " + " | ".join(columns) + " |")
    print("|---" * (2 + len(columns)) + "|")
    for name, members in sorted(by.items()):
        cells = [f"{np.mean([m[c] for m in members]):.4f}" for c in columns]
        if "forecast" in columns:
            cells[-1] += f" ({np.mean([m['forecast'] - m['LPT'] for m in members]):+.4f})"
        print(f"| {name} | {len(members)} | " + " | ".join(cells) + " |")


def main() -> None:
    print(f"load {os.getloadavg()[0]:.1f}")
    problem = load_problem("moe")
    train = [(config_of(i), row(config_of(i), i.data["windows"], None)) for i in problem.instances("train")]
    show("train split (LPT | trivial bound | hindsight)", train)
    show("validation, train drift", validation(TRAIN_DRIFT, 0))
    show("validation, faster drift", validation(FAST_DRIFT, 10))


if __name__ == "__main__":
    main()
