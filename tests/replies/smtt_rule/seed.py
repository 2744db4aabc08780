"""Seed priority rule for single-machine total tardiness: earliest due date (EDD).

The verifier dispatches: whenever the machine becomes free it calls
``priority`` with the jobs not yet scheduled and runs the one with the lowest
value next (ties: input order).  EDD ignores the state; MDD-like rules
(``np.maximum(d, t + p)``) use it.
"""

import numpy as np  # noqa: F401  (rules use np.maximum, np.minimum, ...)


# EVOLVE-BLOCK-START
def priority(t, p, d, remaining_work, jobs_left, n, p_max, p_mean, p_min, d_min, d_mean, d_max):
    """Priority of every unscheduled job at time t; the lowest is dispatched.

    Arrays, one entry per unscheduled job (input order): p (processing time),
    d (due date, may be negative).  Floats: t (the machine is free from t),
    remaining_work (sum of p), jobs_left (len(p)), n (jobs in the instance),
    p_max / p_mean / p_min and d_min / d_mean / d_max over the unscheduled
    jobs.  Return an array (or a tuple of arrays, compared lexicographically).
    """
    return d
# EVOLVE-BLOCK-END
