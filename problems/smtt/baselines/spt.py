"""Shortest processing time (SPT): jobs in non-decreasing processing time.

Smith (1956); optimal for total completion time, and for total tardiness when
every job is tardy in every sequence.  Ties: earlier due date first, then index.
"""

import numpy as np


def schedule(p, d):
    """Return a processing order: a permutation of range(len(p))."""
    p = np.asarray(p)
    d = np.asarray(d)
    return [int(j) for j in np.lexsort((d, p))]
