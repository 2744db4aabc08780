"""No load-aware replication: slot s holds expert s mod E (load-oblivious).

The replicas - experts extra slots repeat the first experts, because every slot
must hold some expert; which ones get them ignores the load.
"""

import numpy as np


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    layers, experts = np.shape(weight)
    phy2log = np.tile(np.arange(num_replicas, dtype=np.int64) % experts, (layers, 1))
    logcnt = np.tile(np.bincount(phy2log[0], minlength=experts), (layers, 1))
    width = int(logcnt.max())
    log2phy = np.full((layers, experts, width), -1, dtype=np.int64)
    for slot in range(num_replicas):
        log2phy[:, slot % experts, slot // experts] = slot
    return phy2log, log2phy, logcnt
