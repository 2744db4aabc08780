"""Shortest processing time (SPT), as a priority: Smith (1956).

Ties by due date, then input order: the same sequence as problems/smtt/baselines/spt.py.
"""


def priority(p, d):
    """Lowest first: processing time, then due date."""
    return p, d
