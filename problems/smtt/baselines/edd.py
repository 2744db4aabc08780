"""Earliest due date (EDD), as published: jobs in non-decreasing due date.

Jackson (1955); optimal for maximum lateness, a classical (weak) baseline for
total tardiness.  Ties keep the input order (a stable sort of d), the
definition the published SMTT figures use; edd_spt_ties.py breaks them by
processing time instead.
"""

import numpy as np


def schedule(p, d):
    """Return a processing order: a permutation of range(len(p))."""
    return [int(j) for j in np.argsort(np.asarray(d), kind="stable")]
