"""EDD with ties by processing time (a variant, not the published rule), as a priority.

The same sequence as problems/smtt/baselines/edd_spt_ties.py.
"""


def priority(p, d):
    """Lowest first: due date, then processing time, then input order."""
    return d, p
