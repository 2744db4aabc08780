"""Least pending prefill time: the replica that would start this request's first token soonest.

Pending prefill tokens (plus this prompt) times the replica's seconds per prefill token: a
heterogeneity-aware join-the-shortest-queue on the work that decides time to first token.
"""

import numpy as np


def route(queued_tokens, prefill_time, prompt_len, **_):
    return (np.asarray(queued_tokens, dtype=float) + prompt_len) * prefill_time
