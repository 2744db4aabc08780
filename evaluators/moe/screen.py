"""Screening the GP's three rule trees in-process: the seed's frame on the trusted side.

Only for trees the engine built itself (``evolve/gp/screen.py``), never candidate
code.  ``place`` is the frame of ``problems/moe/seed.py`` (greedy replication by
``replica_priority``, packing in ``item_order``, each replica on the GPU of least
``gpu_cost`` with a free slot) with the rules passed in; a test checks that a
screen gives the balancedness the sandboxed seed gets.  The placements are scored
by the verifier's own ``score``; nothing is timed, so the screen's figure is the
balancedness part of the score, with the guard against LPT when ``lpt_guard`` is on (runtime
counts only in the real evaluation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from evolve.evaluators.moe.candidate_side import pack
from evolve.evaluators.moe.harness import unpack
from evolve.verifier import Instance, InstanceResult

Rules = Mapping[str, tuple[Callable[[Mapping[str, Any]], Any], set[str]]]


def _call(rules: Rules, name: str, shape: tuple[int, int], **env: Any) -> np.ndarray:
    value = np.asarray(rules[name][0](env), dtype=np.float64)
    return np.broadcast_to(value, shape)


def place(rules: Rules, weight: np.ndarray, num_replicas: int, num_gpus: int,
          num_groups: int = 1) -> tuple[np.ndarray, ...]:
    """(phy2log, log2phy, logcnt) as the seed's frame builds them with these rules."""
    load = np.asarray(weight, dtype=np.float64)
    layers, experts = load.shape
    per_gpu = num_replicas // num_gpus
    rows = np.arange(layers)
    mean_load = load.mean(axis=1, keepdims=True)
    max_load = load.max(axis=1, keepdims=True)
    group_of = np.arange(experts) // max(experts // max(int(num_groups), 1), 1)
    count = np.ones((layers, experts), dtype=np.int64)
    for given in range(num_replicas - experts):
        score = _call(rules, "replica_priority", (layers, experts), load=load, count=count, mean_load=mean_load,
                      max_load=max_load, slots_left=float(num_replicas - experts - given))
        count[rows, np.argmax(score, axis=1)] += 1
    items = np.stack([np.repeat(np.arange(experts), count[layer]) for layer in range(layers)])
    item_load = np.take_along_axis(load / count, items, axis=1)
    item_count = np.take_along_axis(count, items, axis=1).astype(np.float64)
    item_expert_load = np.take_along_axis(load, items, axis=1)
    key = _call(rules, "item_order", (layers, num_replicas), item_load=item_load, expert=items.astype(np.float64),
                mean_load=mean_load, count=item_count, expert_load=item_expert_load)
    order = np.argsort(-key, axis=1, kind="stable")
    gpu_load = np.zeros((layers, num_gpus))
    gpu_group_load = np.zeros((layers, num_gpus, int(group_of[-1]) + 1))
    gpu_expert_load = np.zeros((layers, num_gpus, experts))
    gpu_free = np.full((layers, num_gpus), per_gpu)
    mean_gpu_load = load.sum(axis=1, keepdims=True) / num_gpus
    phy2log = np.empty((layers, num_replicas), dtype=np.int64)
    max_gpu_load = np.zeros((layers, 1))
    big = np.finfo(np.float64).max
    for j in range(num_replicas):
        item = order[:, j]
        size = item_load[rows, item][:, None]
        expert = items[rows, item]
        group = group_of[expert]
        cost = _call(rules, "gpu_cost", gpu_load.shape, gpu_load=gpu_load, gpu_free=gpu_free, item_load=size,
                     mean_gpu_load=mean_gpu_load, max_gpu_load=max_gpu_load, items_left=float(num_replicas - j - 1),
                     group_load=gpu_group_load[rows, :, group], own_load=gpu_expert_load[rows, :, expert],
                     num_groups=float(num_groups))
        cost = np.nan_to_num(cost, nan=big, posinf=big, neginf=-big)
        cost = np.where(gpu_free > 0, cost, np.inf)
        gpu = np.argmin(cost, axis=1)
        slot = gpu * per_gpu + per_gpu - gpu_free[rows, gpu]
        phy2log[rows, slot] = expert
        gpu_load[rows, gpu] += size[:, 0]
        gpu_group_load[rows, gpu, group] += size[:, 0]
        gpu_expert_load[rows, gpu, expert] += size[:, 0]
        gpu_free[rows, gpu] -= 1
        max_gpu_load = np.maximum(max_gpu_load, gpu_load[rows, gpu][:, None])
    width = int(count.max())
    by_expert = np.argsort(phy2log, axis=1, kind="stable")
    starts = np.cumsum(count, axis=1) - count
    rank = np.arange(num_replicas)[None, :] - np.take_along_axis(
        starts, np.take_along_axis(phy2log, by_expert, axis=1), axis=1)
    log2phy = np.full((layers, experts * width), -1, dtype=np.int64)
    np.put_along_axis(log2phy, np.take_along_axis(phy2log, by_expert, axis=1) * width + rank, by_expert, axis=1)
    return phy2log, log2phy.reshape(layers, experts, width), count


class MoeScreen:
    """Balancedness of three rule trees on fixed instances, scored by the verifier."""

    pre = None

    def __init__(self, instances: list[Instance], score: Callable[[Instance, Any], InstanceResult]) -> None:
        self.instances = instances
        self.score = score

    def results(self, rules: Rules) -> list[InstanceResult] | None:
        out = []
        with np.errstate(all="ignore"):
            for inst in self.instances:
                d = inst.data
                windows = d["windows"]
                placements = [unpack(pack(place(rules, windows[k], d["replicas"], d["gpus"], d["groups"])))
                              for k in range(windows.shape[0] - 1)]
                zeros = [0.0] * len(placements)
                out.append(self.score(inst, {"placements": placements, "cpu_s": zeros, "wall_s": zeros}))
        return out
