"""Seed expert-parallel load balancer: greedy replication, then greedy list packing.

Replication gives each redundant slot to the expert with the highest load per
replica (as DeepSeek's EPLB does); packing puts replicas one by one onto the
least-loaded GPU with a free slot, in the order ``item_order`` gives (the seed:
expert order, i.e. Graham's list scheduling; sorting by load would be LPT).
Both steps run for all layers at once (numpy over the layer axis).  The
evolvable part is three small scoring functions; the frame below them builds
a valid placement whatever they return (any broadcastable numbers).
"""

import numpy as np


# EVOLVE-BLOCK-START
def replica_priority(load, count, mean_load, max_load, slots_left):
    """Score of giving each expert one more replica; per layer the highest score wins.

    load: [layers, experts] tokens routed to each expert in the last window;
    count: [layers, experts] replicas so far (>= 1); mean_load, max_load: [layers, 1]
    the mean and largest expert load; slots_left: redundant slots still to give (number).
    """
    return load / count


def item_order(item_load, expert, mean_load, count, expert_load):
    """Replicas are packed in decreasing order of this score.

    item_load: [layers, replicas] load of each replica (its expert's load / count);
    expert: [layers, replicas] its expert's index; count, expert_load: [layers, replicas]
    its expert's replica count and whole load; mean_load: [layers, 1].  The seed packs in
    expert order.
    """
    return -expert


def gpu_cost(gpu_load, gpu_free, item_load, mean_gpu_load, max_gpu_load, items_left, group_load, own_load,
             num_groups):
    """Cost of putting the next replica on each GPU; the cheapest GPU with a free slot wins.

    gpu_load, gpu_free: [layers, gpus] load so far and free slots;
    item_load: [layers, 1] the replica's load; mean_gpu_load: [layers, 1] the final mean
    GPU load; max_gpu_load: [layers, 1] the most loaded GPU so far; items_left: replicas
    still to pack after this one (number); group_load: [layers, gpus] the part of gpu_load
    that experts of the replica's expert group put there (the group's experts drift together;
    with one group it is gpu_load); own_load: [layers, gpus] the part that the replica's own
    expert (its replicas placed so far) put there; num_groups: the model's expert groups
    (number; 1: group_load is gpu_load).
    """
    return gpu_load
# EVOLVE-BLOCK-END


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    """Return (phy2log, log2phy, logcnt) for weight [layers, experts] (token counts)."""
    load = np.asarray(weight, dtype=np.float64)
    layers, experts = load.shape
    per_gpu = num_replicas // num_gpus
    rows = np.arange(layers)
    mean_load = load.mean(axis=1, keepdims=True)
    max_load = load.max(axis=1, keepdims=True)
    group_of = np.arange(experts) // max(experts // max(int(num_groups), 1), 1)

    # 1. replication: every expert starts with one replica.
    count = np.ones((layers, experts), dtype=np.int64)
    for given in range(num_replicas - experts):
        score = replica_priority(load, count, mean_load, max_load, float(num_replicas - experts - given))
        score = np.broadcast_to(np.asarray(score, dtype=np.float64), (layers, experts))
        count[rows, np.argmax(score, axis=1)] += 1

    # 2. packing: replicas one by one onto GPUs with a free slot.
    items = np.stack([np.repeat(np.arange(experts), count[layer]) for layer in range(layers)])
    item_load = np.take_along_axis(load / count, items, axis=1)
    item_count = np.take_along_axis(count, items, axis=1).astype(np.float64)
    item_expert_load = np.take_along_axis(load, items, axis=1)
    key = item_order(item_load, items.astype(np.float64), mean_load, item_count, item_expert_load)
    key = np.broadcast_to(np.asarray(key, dtype=np.float64), (layers, num_replicas))
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
        cost = gpu_cost(gpu_load, gpu_free, size, mean_gpu_load, max_gpu_load, float(num_replicas - j - 1),
                        gpu_group_load[rows, :, group], gpu_expert_load[rows, :, expert], float(num_groups))
        cost = np.asarray(cost, dtype=np.float64)
        cost = np.nan_to_num(np.broadcast_to(cost, gpu_load.shape), nan=big, posinf=big, neginf=-big)
        cost = np.where(gpu_free > 0, cost, np.inf)  # full GPUs are never chosen
        gpu = np.argmin(cost, axis=1)
        slot = gpu * per_gpu + per_gpu - gpu_free[rows, gpu]
        phy2log[rows, slot] = expert
        gpu_load[rows, gpu] += size[:, 0]
        gpu_group_load[rows, gpu, group] += size[:, 0]
        gpu_expert_load[rows, gpu, expert] += size[:, 0]
        gpu_free[rows, gpu] -= 1
        max_gpu_load = np.maximum(max_gpu_load, gpu_load[rows, gpu][:, None])

    # 3. the inverse map: each expert's slots in slot order, padded with -1.
    width = int(count.max())
    by_expert = np.argsort(phy2log, axis=1, kind="stable")
    starts = np.cumsum(count, axis=1) - count
    rank = np.arange(num_replicas)[None, :] - np.take_along_axis(
        starts, np.take_along_axis(phy2log, by_expert, axis=1), axis=1)
    log2phy = np.full((layers, experts * width), -1, dtype=np.int64)
    np.put_along_axis(log2phy, np.take_along_axis(phy2log, by_expert, axis=1) * width + rank,
                      by_expert, axis=1)
    return phy2log, log2phy.reshape(layers, experts, width), count
