"""Seed heuristic for single-machine total tardiness: earliest due date (EDD).

Written as a dispatcher so that evolution can make the priority depend on the
state (EDD is static; MDD-like rules are not): whenever the machine becomes
free, ``priority`` ranks the unscheduled jobs and the lowest runs next.
``improve`` is a hook for a local-improvement pass over the finished sequence.
"""

import inspect

import numpy as np


# EVOLVE-BLOCK-START
def priority(t, p, d, remaining_work, jobs_left, n, p_max, p_mean, p_min, d_min, d_mean, d_max):
    """Priority of every unscheduled job when the machine becomes free at time t.

    Arrays, one entry per unscheduled job (input order): p (processing time),
    d (due date, may be negative).  Floats: t, remaining_work (sum of p),
    jobs_left (len(p)), n (jobs in the instance), p_max / p_mean / p_min and
    d_min / d_mean / d_max over the unscheduled jobs.  Lowest value goes next.
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
    n = len(p)
    # priority() gets, by keyword, the state it names (all of it with **kwargs).
    params = inspect.signature(priority).parameters.values()
    everything = any(v.kind is v.VAR_KEYWORD for v in params)
    names = {v.name for v in params}
    unscheduled = np.arange(n)
    t, total = 0.0, float(p.sum())
    sequence = []
    while unscheduled.size:
        pu, du = p[unscheduled], d[unscheduled]
        state = {"t": t, "p": pu, "d": du, "remaining_work": total - t, "jobs_left": float(pu.size),
                 "n": float(n), "p_max": float(pu.max()), "p_mean": float(pu.mean()),
                 "p_min": float(pu.min()), "d_min": float(du.min()), "d_mean": float(du.mean()),
                 "d_max": float(du.max())}
        ranks = priority(**{k: v for k, v in state.items() if everything or k in names})
        k = int(np.argmin(ranks))
        job = int(unscheduled[k])
        sequence.append(job)
        t += p[job]
        unscheduled = np.delete(unscheduled, k)
    return improve(sequence, p, d)
