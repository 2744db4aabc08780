import numpy as np


# EVOLVE-BLOCK-START
def pick(remaining):
    """The smallest first (the worst order)."""
    return int(np.argmin(remaining))
# EVOLVE-BLOCK-END
