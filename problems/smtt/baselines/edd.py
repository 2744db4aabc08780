"""Earliest due date (EDD): jobs in non-decreasing due date.

Jackson (1955); optimal for maximum lateness, a classical (weak) baseline for
total tardiness.  Ties: shorter processing time first, then job index.
"""

import numpy as np


def schedule(p, d):
    """Return a processing order: a permutation of range(len(p))."""
    p = np.asarray(p)
    d = np.asarray(d)
    # lexsort sorts by the last key first, and is stable (index breaks ties).
    return [int(j) for j in np.lexsort((p, d))]
