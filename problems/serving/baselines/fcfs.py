"""First come, first served: vLLM's default order (admit by arrival; preempt the latest arrival)."""

import numpy as np


def priority(arrival, **_):
    return np.asarray(arrival, dtype=float)
