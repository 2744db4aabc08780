import numpy as np


# EVOLVE-BLOCK-START
def order(x):
    """The largest first (optimal)."""
    return [int(k) for k in np.argsort(-x, kind="stable")]
# EVOLVE-BLOCK-END
