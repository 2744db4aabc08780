"""Earliest deadline first on the TTFT deadline (arrival + TTFT SLO).

Requests whose deadline has already passed cannot meet it any more: they go after every
request that still can (in deadline order among themselves), so one late request does not
make the ones behind it late too.  Running requests keep their deadline order for preemption.
"""

import numpy as np


def priority(now, arrival, running, ttft_slo, **_):
    deadline = np.asarray(arrival, dtype=float) + ttft_slo
    missed = (deadline < now) & (running == 0)
    return deadline + np.where(missed, 1e6, 0.0)
