"""References for MoE workloads: the CP-SAT oracle (small deployments) or the trivial bound.

A placement computed from window k is judged on window k+1, so the best it
could possibly do is what a placement computed *knowing* window k+1 achieves:
the oracle.  For small deployments CP-SAT minimises the max GPU load of every
(window, layer) pair of windows 1..W-1 (``evolve.evaluators.moe.ilp``):

* ``value`` = sum of mean GPU loads / sum of the best max loads found: a
  balancedness some placement achieves on those windows (the oracle's);
* ``bound`` = the same with CP-SAT's proven lower bounds: no placement,
  predictive or not, has higher balancedness;
* kind ``optimal`` when every pair is proven, else ``best_known``.

Large deployments get the trivial bound (kind ``bound``, ``bounds.py``).
Trusted side only.  The engine's reference store keeps the results
(``evolve.references``): the built-in splits ship their CP-SAT references in
problems/moe/data/references.json, computed by ``evolve references moe``.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np

from evolve.evaluators.moe.bounds import BalanceBound, trivial_balance_bound
from evolve.evaluators.moe.configs import EpConfig
from evolve.references import StoredReference
from evolve.verifier import Reference

ILP_MAX_VARS = 10_000  # z variables per (window, layer) model beyond which CP-SAT is not tried
TRIVIAL_SOURCE = "trivial bound: max(mean GPU load, hottest expert over the free slots)"


def content_hash(config: EpConfig, windows: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([config.experts, config.replicas, config.gpus, list(windows.shape)]).encode())
    digest.update(np.ascontiguousarray(windows, dtype=np.int64).tobytes())
    return digest.hexdigest()[:24]


def ilp_tractable(config: EpConfig) -> bool:
    from evolve.evaluators.moe.ilp import model_size

    return model_size(config.experts, config.replicas, config.gpus) <= ILP_MAX_VARS


def trivial_reference(config: EpConfig, windows: np.ndarray) -> Reference:
    bound = trivial_balance_bound(windows, config.gpus, config.replicas)
    return Reference(bound.value, "bound", TRIVIAL_SOURCE, bound.value)


def compute_reference(name: str, config: EpConfig, windows: np.ndarray, time_limit_s: float,
                      workers: int = 1) -> StoredReference:
    """CP-SAT on every (window, layer) of windows 1..W-1, ``time_limit_s`` seconds each."""
    from evolve.evaluators.moe.ilp import min_max_load

    started = time.monotonic()
    mean_sum = best_sum = bound_sum = 0.0
    proven = pairs = 0
    for window in windows[1:]:
        for layer_load in window:
            result = min_max_load(layer_load, config.gpus, config.slots_per_gpu, time_limit_s, workers)
            mean_sum += float(layer_load.sum()) / config.gpus
            best_sum += result.value
            bound_sum += result.bound
            proven += int(result.optimal)
            pairs += 1
    best = BalanceBound.from_bounds(mean_sum, best_sum, proven, pairs).value
    bound = BalanceBound.from_bounds(mean_sum, bound_sum, proven, pairs).value
    kind = "optimal" if proven == pairs else "best_known"
    source = (f"cp-sat oracle knowing the next window, {proven}/{pairs} layer-windows "
              f"proven ({time_limit_s:g}s each)")
    return StoredReference(name, best, kind, max(bound, best), source, round(time.monotonic() - started, 2),
                           details={"proven": proven, "pairs": pairs, "time_limit_s": time_limit_s})
