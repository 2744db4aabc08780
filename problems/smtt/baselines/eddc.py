"""EDDC: the LLM-discovered constructive rule (SPT order repaired towards EDD).

From "Discovering Heuristics with Large Language Models (LLMs) for
Mixed-Integer Programs: Single-Machine Scheduling" (2025); this is the version
of the published code that reproduces the paper's figures.  Start from SPT
order (ties by due date); then an insertion pass: for each position in turn,
walk its job backwards while its due date is smaller than its predecessor's,
swapping the two only when the predecessor's due date exceeds the total
processing time of the jobs before the walking job (i.e. the predecessor
would still be on time where it ends now); otherwise the walk stops.
"""

import numpy as np


def schedule(p, d):
    """Return a processing order: a permutation of range(len(p))."""
    p = np.asarray(p, dtype=float)
    d = np.asarray(d, dtype=float)
    seq = [int(j) for j in np.lexsort((d, p))]
    prefix = 0.0  # total processing time of positions 0..i-1
    for i in range(len(seq)):
        k, walker = i, seq[i]
        before = prefix  # of the jobs before the walking job
        while k > 0 and d[seq[k]] < d[seq[k - 1]]:
            if d[seq[k - 1]] <= before:
                break
            before -= p[seq[k - 1]]
            seq[k - 1], seq[k] = seq[k], seq[k - 1]
            k -= 1
        prefix += p[walker]
    return seq
