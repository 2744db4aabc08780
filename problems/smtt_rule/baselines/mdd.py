"""Modified due date (MDD), as a priority: Baker & Bertrand (1982).

When the machine is free at t, the next job has the smallest max(d_j, t + p_j);
ties by due date, then processing time, then input order: the same sequence
as problems/smtt/baselines/mdd.py.
"""

import numpy as np


def priority(t, p, d):
    """Lowest first: the modified due date."""
    return np.maximum(d, t + p), d, p
