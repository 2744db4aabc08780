"""Seed heuristic for single-machine total tardiness: earliest due date (EDD).

Written as a dispatcher so that evolution can make the priority depend on the
current time t (EDD is static; MDD-like rules are not).  ``improve`` is a hook
for a local-improvement pass over the finished sequence.
"""

import numpy as np


# EVOLVE-BLOCK-START
def priority(t, p, d):
    """Priority of every unscheduled job when the machine becomes free at time t.

    t: current time (float); p, d: processing times and due dates of the
    unscheduled jobs (float arrays, same order).  Lowest value goes next.
    """
    return d


def improve(sequence, p, d):
    """Optionally improve the finished sequence (a list of job indices)."""
    return sequence
# EVOLVE-BLOCK-END


def schedule(p, d):
    """Return a processing order: a permutation of range(len(p))."""
    p = np.asarray(p, dtype=float)
    d = np.asarray(d, dtype=float)
    unscheduled = np.arange(len(p))
    t = 0.0
    sequence = []
    while unscheduled.size:
        k = int(np.argmin(priority(t, p[unscheduled], d[unscheduled])))
        job = int(unscheduled[k])
        sequence.append(job)
        t += p[job]
        unscheduled = np.delete(unscheduled, k)
    return improve(sequence, p, d)
