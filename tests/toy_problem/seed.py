import numpy as np


# EVOLVE-BLOCK-START
def priority(x):
    """Lower goes first."""
    return x * 1.0
# EVOLVE-BLOCK-END


def order(x):
    return [int(i) for i in np.argsort(priority(np.asarray(x, dtype=float)), kind="stable")]
