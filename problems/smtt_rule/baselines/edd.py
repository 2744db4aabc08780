"""Earliest due date (EDD), as published, as a priority: the due date itself.

Jackson (1955).  Ties go to the job first in input order, so the sequence is
a stable sort of d: the same as problems/smtt/baselines/edd.py.
"""


def priority(d):
    """Lowest first: the earliest due date."""
    return d
