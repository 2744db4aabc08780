"""Shortest predicted job first: rank by predicted remaining output tokens.

The learned-ranking scheduler of Fu et al., "Efficient LLM Scheduling by Learning to Rank"
(NeurIPS 2024), without its starvation guard: requests with the fewest predicted remaining
output tokens are admitted first, and the longest are preempted first.
"""

import numpy as np


def priority(predicted_len, generated, **_):
    return np.maximum(predicted_len - generated, 1.0)
