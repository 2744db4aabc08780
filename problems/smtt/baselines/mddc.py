"""MDDC: the LLM-discovered dispatching rule for single-machine total tardiness.

From "Discovering Heuristics with Large Language Models (LLMs) for
Mixed-Integer Programs: Single-Machine Scheduling" (2025), as described in
the paper and its published code.  Forward dispatch; with current time t and
unscheduled set U (kept in due date, then processing time order, which breaks
ties), every j in U gets

    u = max(1.1 p_j + t, d_j)
    r = min(p_j / (t + max_U p), 1)
    u = u * (1 + r^2 / (1 + r^2))
    u = u + p_j / (t + mean_U p)

and the job with the smallest u goes next.  The first term is a modified due
date with a 10 % processing-time surcharge; the other two push long jobs back.
"""

import numpy as np


def schedule(p, d):
    """Return a processing order: a permutation of range(len(p))."""
    p = np.asarray(p, dtype=float)
    d = np.asarray(d, dtype=float)
    unscheduled = np.lexsort((p, d))
    t = 0.0
    sequence = []
    while unscheduled.size:
        pu = p[unscheduled]
        u = np.maximum(1.1 * pu + t, d[unscheduled])
        r = np.minimum(pu / (t + pu.max()), 1.0)
        u = u * (1.0 + r**2 / (1.0 + r**2))
        u = u + pu / (t + pu.mean())
        k = int(np.argmin(u))
        job = int(unscheduled[k])
        sequence.append(job)
        t += p[job]
        unscheduled = np.delete(unscheduled, k)
    return sequence
