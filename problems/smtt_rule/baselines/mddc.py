"""MDDC, the LLM-discovered dispatching rule, as a priority.

From "Discovering Heuristics with Large Language Models (LLMs) for
Mixed-Integer Programs: Single-Machine Scheduling" (2025).  With current time
t and the unscheduled jobs' largest and mean processing time:

    u = max(1.1 p_j + t, d_j)
    r = min(p_j / (t + p_max), 1)
    u = u * (1 + r^2 / (1 + r^2)) + p_j / (t + p_mean)

smallest u next; ties by due date, then processing time (the published code
keeps the unscheduled jobs in that order): the same sequence as
problems/smtt/baselines/mddc.py.
"""

import numpy as np


def priority(t, p, d, p_max, p_mean):
    """Lowest first: MDDC's u."""
    u = np.maximum(1.1 * p + t, d)
    r = np.minimum(p / (t + p_max), 1.0)
    u = u * (1.0 + r**2 / (1.0 + r**2))
    return u + p / (t + p_mean), d, p
