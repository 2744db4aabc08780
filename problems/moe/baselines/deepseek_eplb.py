"""DeepSeek's expert-parallelism load balancer (EPLB), ported to numpy.

Written from the published description of deepseek-ai/EPLB:

* hierarchical policy when the expert groups divide evenly into nodes:
  1. pack whole expert groups onto nodes (balanced packing of group loads);
  2. within each node, greedily add redundant replicas, each time to the
     expert with the highest load per replica;
  3. pack each node's replicas onto its GPUs (balanced packing);
* otherwise the global policy: the same with one group and one node.

Balanced packing sorts items by decreasing weight and puts each into the
lightest pack that still has room, so every pack gets the same item count.
Like the original, the packing loops over layers and items in Python.
"""

import numpy as np


def balanced_packing(weight, num_packs):
    """pack index and rank in pack of each item; every row packs separately."""
    rows, items = weight.shape
    per_pack = items // num_packs
    pack_index = np.empty((rows, items), dtype=np.int64)
    rank_in_pack = np.empty((rows, items), dtype=np.int64)
    if per_pack == 1:
        pack_index[:] = np.arange(items)
        rank_in_pack[:] = 0
        return pack_index, rank_in_pack
    order = np.argsort(-weight, axis=1, kind="stable")
    for r in range(rows):
        pack_weight = [0.0] * num_packs
        pack_items = [0] * num_packs
        row = weight[r]
        for item in order[r].tolist():
            pack = min((p for p in range(num_packs) if pack_items[p] < per_pack),
                       key=pack_weight.__getitem__)
            pack_index[r, item] = pack
            rank_in_pack[r, item] = pack_items[pack]
            pack_weight[pack] += row[item]
            pack_items[pack] += 1
    return pack_index, rank_in_pack


def replicate(weight, num_physical):
    """Greedy replication: each redundant slot goes to the max load-per-replica expert."""
    rows, num_logical = weight.shape
    phy2log = np.tile(np.arange(num_physical, dtype=np.int64), (rows, 1))
    rank = np.zeros((rows, num_physical), dtype=np.int64)
    count = np.ones((rows, num_logical), dtype=np.int64)
    index = np.arange(rows)
    for slot in range(num_logical, num_physical):
        best = np.argmax(weight / count, axis=1)
        phy2log[:, slot] = best
        rank[:, slot] = count[index, best]
        count[index, best] += 1
    return phy2log, rank, count


def inverse(perm):
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.broadcast_to(np.arange(perm.shape[1]), perm.shape), axis=1)
    return inv


def hierarchical(weight, num_physical, num_groups, num_nodes, num_gpus):
    layers, num_logical = weight.shape
    group_size = num_logical // num_groups
    groups_per_node = num_groups // num_nodes
    per_gpu = num_physical // num_gpus
    per_node_logical = num_logical // num_nodes

    # 1. groups onto nodes; "mlog" numbers experts node by node.
    group_load = weight.reshape(layers, num_groups, group_size).sum(axis=2)
    group_pack, group_rank = balanced_packing(group_load, num_nodes)
    first = (group_pack * groups_per_node + group_rank) * group_size
    log2mlog = (first[:, :, None] + np.arange(group_size)).reshape(layers, num_logical)
    mlog2log = inverse(log2mlog)

    # 2. replicas within each node.
    mlog_load = np.take_along_axis(weight, mlog2log, axis=1).reshape(-1, per_node_logical)
    phy2mlog, phy_rank, mlog_count = replicate(mlog_load, num_physical // num_nodes)

    # 3. a node's replicas onto its GPUs.
    phy_load = np.take_along_axis(mlog_load / mlog_count, phy2mlog, axis=1)
    pack, rank = balanced_packing(phy_load, num_gpus // num_nodes)
    pphy2phy = inverse(pack * per_gpu + rank)
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=1)
    offsets = (np.arange(num_nodes) * per_node_logical)[None, :, None]
    pphy2mlog = (pphy2mlog.reshape(layers, num_nodes, -1) + offsets).reshape(layers, -1)
    phy2log = np.take_along_axis(mlog2log, pphy2mlog, axis=1)
    phy_rank = np.take_along_axis(phy_rank, pphy2phy, axis=1).reshape(layers, -1)
    logcnt = np.take_along_axis(mlog_count.reshape(layers, -1), log2mlog, axis=1)
    return phy2log, phy_rank, logcnt


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    weight = np.asarray(weight, dtype=np.float64)
    layers, num_logical = weight.shape
    if num_groups % num_nodes == 0:
        phy2log, rank, logcnt = hierarchical(weight, num_replicas, num_groups, num_nodes, num_gpus)
    else:
        phy2log, rank, logcnt = hierarchical(weight, num_replicas, 1, 1, num_gpus)
    width = int(logcnt.max())
    log2phy = np.full((layers, num_logical * width), -1, dtype=np.int64)
    np.put_along_axis(log2phy, phy2log * width + rank,
                      np.broadcast_to(np.arange(num_replicas), phy2log.shape), axis=1)
    return phy2log, log2phy.reshape(layers, num_logical, width), logcnt
