"""Random priorities: a floor any learned rule must clear.

Seeded from the decision itself (time, candidates, progress), so an instance gets the
same schedule whichever split or order it is evaluated in.
"""

import numpy as np


def priority(proc_time, op_index, now, **features):
    seed = [int(now), int(op_index.sum()), len(proc_time), int(proc_time.sum())]
    return np.random.default_rng(seed).random(len(proc_time))
