"""EDDC, the LLM-discovered constructive order, run through the dispatcher.

EDDC is not a dispatching rule: it orders all jobs at once (SPT order, then
an insertion pass towards EDD; see problems/smtt/baselines/eddc.py).  So that
its gap is measured by the same dispatcher and verifier as the rules, this
priority computes the EDDC order at the first decision and then returns each
unscheduled job's position in it (state kept between calls).  Its time per
instance is EDDC's plus the dispatcher's.  The same sequence as the smtt
track's eddc.py.
"""

import numpy as np

_rank = None  # EDDC position of each unscheduled job, in input order


def _eddc(p, d):
    seq = [int(j) for j in np.lexsort((d, p))]
    prefix = 0.0
    for i in range(len(seq)):
        k, walker, before = i, seq[i], prefix
        while k > 0 and d[seq[k]] < d[seq[k - 1]] and d[seq[k - 1]] > before:
            before -= p[seq[k - 1]]
            seq[k - 1], seq[k] = seq[k], seq[k - 1]
            k -= 1
        prefix += p[walker]
    return seq


def priority(p, d, jobs_left, n):
    """Lowest first: the job's position in the EDDC order."""
    global _rank
    if jobs_left == n:
        _rank = np.empty(len(p))
        _rank[_eddc(p, d)] = np.arange(len(p))
    else:  # the dispatcher took the lowest rank last time
        _rank = np.delete(_rank, int(np.argmin(_rank)))
    return _rank.copy()
