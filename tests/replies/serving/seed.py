"""Seed scheduling policy for the serving problem: first come, first served (vLLM's default).

The engine calls ``priority`` at every step that has a choice to make.  Waiting requests are
admitted in ascending priority; when KV memory runs out, running requests are preempted in
descending priority.  With ``arrival`` as the priority this is FCFS admission, and the latest
arrival is preempted first.
"""

import numpy as np


# EVOLVE-BLOCK-START
def rule(now, arrival, waited, prompt_len, computed, generated, predicted_len, blocks_held,
         blocks_needed, running, preemptions, client_tokens, free_blocks, total_blocks,
         queue_len, num_running, ttft_slo, tpot_slo):
    """One priority per waiting/running request; lower is served first.

    Arrays (one entry per request): arrival and waited (s), prompt_len, computed (tokens whose
    KV is cached), generated (output tokens so far), predicted_len (predicted output tokens,
    noisy), blocks_held, blocks_needed (KV blocks), running (1.0 if running), preemptions,
    client_tokens (service its client received so far).  Scalars: now (s), free_blocks,
    total_blocks, queue_len, num_running, ttft_slo and tpot_slo (s).
    """
    return arrival
# EVOLVE-BLOCK-END


def priority(**features):
    """Fixed frame: one float priority per waiting/running request."""
    values = np.asarray(rule(**features), dtype=float)
    return np.broadcast_to(values, features["arrival"].shape)
