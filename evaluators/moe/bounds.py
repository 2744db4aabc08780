"""Lower bounds on the max GPU load of one layer and window, and the balancedness bound they give.

For a window's load ``l`` [experts] on G GPUs of S slots (R = G * S slots),
every placement has max GPU load >= max(sum(l) / G, max_e l_e / (R - n + 1)),
n the number of experts with load: the mean, and the hottest expert split
over every slot the other loaded experts leave free.  This *trivial* bound is
cheap, so it is used for large deployments; ``evolve.evaluators.moe.ilp`` proves the
exact minimum for small ones.  A feasible greedy placement (LPT) gives the
upper bound that seeds CP-SAT.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


def trivial_lower_bound(load: np.ndarray, gpus: int, replicas: int) -> float:
    """max(mean GPU load, hottest expert over its most replicas) for one layer."""
    load = np.asarray(load, dtype=np.float64)
    loaded = int(np.count_nonzero(load > 0))
    if loaded == 0:
        return 0.0
    return max(float(load.sum()) / gpus, float(load.max()) / (replicas - loaded + 1))


@dataclass(frozen=True)
class GreedyPlacement:
    """Replica counts and a packing: ``gpu_of[e]`` lists the GPUs of expert e's replicas."""

    counts: list[int]
    gpu_of: list[list[int]]
    max_load: float


def greedy_placement(load: np.ndarray, gpus: int, slots_per_gpu: int) -> GreedyPlacement:
    """Greedy replication (max load per replica) of loaded experts, then LPT packing.

    Unloaded experts get no replica here: in a bound, free slots can hold any
    unloaded expert at no cost.  If every expert is loaded, all slots are used.
    """
    load = np.asarray(load, dtype=np.float64)
    replicas = gpus * slots_per_gpu
    loaded = [e for e in range(len(load)) if load[e] > 0]
    counts = [0] * len(load)
    for e in loaded:
        counts[e] = 1
    heap = [(-load[e], e) for e in loaded]
    heapq.heapify(heap)
    for _ in range(replicas - len(loaded)):
        if not heap:
            break
        _, e = heapq.heappop(heap)
        counts[e] += 1
        heapq.heappush(heap, (-load[e] / counts[e], e))
    items = sorted(((load[e] / counts[e], e) for e in loaded for _ in range(counts[e])), reverse=True)
    gpu_heap = [(0.0, g) for g in range(gpus)]
    used = [0] * gpus
    gpu_of: list[list[int]] = [[] for _ in range(len(load))]
    for size, e in items:
        total, g = heapq.heappop(gpu_heap)
        gpu_of[e].append(g)
        used[g] += 1
        if used[g] < slots_per_gpu:
            heapq.heappush(gpu_heap, (total + size, g))
    gpu_load = np.zeros(gpus)
    for e in loaded:
        for g in gpu_of[e]:
            gpu_load[g] += load[e] / counts[e]
    return GreedyPlacement(counts, gpu_of, float(gpu_load.max()) if gpus else 0.0)


@dataclass(frozen=True)
class BalanceBound:
    """An upper bound on balancedness from per-(window, layer) lower bounds on the max load."""

    value: float  # sum of mean GPU loads / sum of max-load lower bounds
    proven: int  # (window, layer) pairs whose lower bound is the proven minimum
    pairs: int

    @staticmethod
    def from_bounds(mean_sum: float, bound_sum: float, proven: int, pairs: int) -> BalanceBound:
        value = 1.0 if bound_sum <= 0 else min(1.0, mean_sum / bound_sum)
        return BalanceBound(value, proven, pairs)


def trivial_balance_bound(windows: np.ndarray, gpus: int, replicas: int) -> BalanceBound:
    """The trivial bound over windows 1..W-1 (each placement is judged on the next window)."""
    mean_sum = bound_sum = 0.0
    pairs = 0
    for window in windows[1:]:
        for layer_load in window:
            mean_sum += float(layer_load.sum()) / gpus
            bound_sum += trivial_lower_bound(layer_load, gpus, replicas)
            pairs += 1
    return BalanceBound.from_bounds(mean_sum, bound_sum, 0, pairs)
