"""Least KV load: the replica with the smallest share of its KV cache in use."""

import numpy as np


def route(free_blocks, total_blocks, **_):
    return 1.0 - np.asarray(free_blocks, dtype=float) / total_blocks
