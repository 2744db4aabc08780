"""Shortest prompt first: rank waiting requests by the prefill work they still need.

A request's time to first token is mostly its own prefill plus the prefills admitted before
it, so serving short prompts first minimises mean TTFT (SJF on the known part of the job).
Running requests are preempted longest-prompt first.
"""

import numpy as np


def priority(prompt_len, generated, computed, **_):
    return np.asarray(prompt_len + generated - computed, dtype=float)
