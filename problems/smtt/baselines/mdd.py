"""Modified due date (MDD) dispatching rule.

Baker & Bertrand (1982), "A dynamic priority rule for scheduling against
due-dates", J. Operations Management 3(1).  Build the sequence forward; when
the machine is free at time t, the next job is the unscheduled j with the
smallest modified due date max(d_j, t + p_j).  Ties: earlier due date, then
shorter processing time, then job index.
"""

import numpy as np


def schedule(p, d):
    """Return a processing order: a permutation of range(len(p))."""
    p = np.asarray(p, dtype=float)
    d = np.asarray(d, dtype=float)
    # Keep the unscheduled jobs in (d, p, index) order so argmin's first
    # minimum is the documented tie-break.
    unscheduled = np.lexsort((p, d))
    t = 0.0
    sequence = []
    while unscheduled.size:
        k = int(np.argmin(np.maximum(d[unscheduled], t + p[unscheduled])))
        job = int(unscheduled[k])
        sequence.append(job)
        t += p[job]
        unscheduled = np.delete(unscheduled, k)
    return sequence
