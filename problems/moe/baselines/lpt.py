"""Sorted greedy (LPT) packer over all GPUs, with greedy replication.

Replication as in DeepSeek's EPLB (each redundant slot to the expert with the
highest load per replica), then longest-processing-time packing: replicas in
decreasing order of load, each onto the least-loaded GPU that still has a
free slot (a heap per layer).  No node or group structure.
"""

import heapq

import numpy as np


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    load = np.asarray(weight, dtype=np.float64)
    layers, experts = load.shape
    per_gpu = num_replicas // num_gpus
    rows = np.arange(layers)
    count = np.ones((layers, experts), dtype=np.int64)
    for _ in range(num_replicas - experts):
        best = np.argmax(load / count, axis=1)
        count[rows, best] += 1
    phy2log = np.empty((layers, num_replicas), dtype=np.int64)
    width = int(count.max())
    log2phy = np.full((layers, experts, width), -1, dtype=np.int64)
    for layer in range(layers):
        items = np.repeat(np.arange(experts), count[layer])
        sizes = load[layer, items] / count[layer, items]
        heap = [(0.0, gpu) for gpu in range(num_gpus)]
        used = [0] * num_gpus
        filled = [0] * experts
        for item in np.argsort(-sizes, kind="stable").tolist():
            gpu_load, gpu = heapq.heappop(heap)
            expert = int(items[item])
            slot = gpu * per_gpu + used[gpu]
            phy2log[layer, slot] = expert
            log2phy[layer, expert, filled[expert]] = slot
            filled[expert] += 1
            used[gpu] += 1
            if used[gpu] < per_gpu:
                heapq.heappush(heap, (gpu_load + sizes[item], gpu))
    return phy2log, log2phy, count
