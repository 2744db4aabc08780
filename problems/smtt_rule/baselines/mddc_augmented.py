"""Augmented MDDC (MDDC + a move-to-end repair after every append), run through the dispatcher.

Not a dispatching rule: the repair moves jobs already sequenced (see
problems/smtt/baselines/mddc_augmented.py).  So that its gap is measured by
the same dispatcher and verifier as the rules, this priority builds the whole
augmented-MDDC sequence at the first decision and then returns each
unscheduled job's position in it (state kept between calls).  Its time per
instance is the algorithm's plus the dispatcher's.  The same sequence as the
smtt track's mddc_augmented.py.
"""

import numpy as np

_rank = None  # position of each unscheduled job in the sequence, in input order


def _pick(t, pu, du):
    u = np.maximum(1.1 * pu + t, du)
    r = np.minimum(pu / (t + pu.max()), 1.0)
    u = u * (1.0 + r**2 / (1.0 + r**2)) + pu / (t + pu.mean())
    return int(np.argmin(u))


def _move_to_end(seq, p, d):
    """Apply the best improving move of an earlier job to the end, if any."""
    ps, ds = p[seq], d[seq]
    c = np.cumsum(ps)
    tard = np.maximum(c - ds, 0.0)
    # Job i to the end: each later job k finishes p_i earlier, min(tard_k, p_i) less
    # tardy; only late jobs gain (problems/smtt/baselines/mddc_augmented.py).
    late = np.flatnonzero(tard)
    after = late[None, :] > np.arange(len(seq))[:, None]
    saved = (np.minimum(tard[late][None, :], ps[:, None]) * after).sum(axis=1)
    delta = np.maximum(c[-1] - ds, 0.0) - tard - saved
    delta[-1] = 0.0
    i = int(np.argmin(delta))
    if delta[i] < -1e-9:
        seq.append(seq.pop(i))


def _augmented_mddc(p, d):
    unscheduled, t, seq = np.lexsort((p, d)), 0.0, []
    while unscheduled.size:
        k = _pick(t, p[unscheduled], d[unscheduled])
        seq.append(int(unscheduled[k]))
        t += p[seq[-1]]
        unscheduled = np.delete(unscheduled, k)
        if len(seq) > 1:
            _move_to_end(seq, p, d)
    return seq


def priority(p, d, jobs_left, n):
    """Lowest first: the job's position in the augmented-MDDC sequence."""
    global _rank
    if jobs_left == n:
        _rank = np.empty(len(p))
        _rank[_augmented_mddc(p, d)] = np.arange(len(p))
    else:  # the dispatcher took the lowest rank last time
        _rank = np.delete(_rank, int(np.argmin(_rank)))
    return _rank.copy()
