import numpy as np


def order(x):
    """Optimal: largest first."""
    return [int(i) for i in np.argsort(-np.asarray(x, dtype=float), kind="stable")]
