"""Seed router for the serving_router problem: round robin.

The cluster calls ``route`` for every arriving request; the request goes to the replica with
the lowest score.  Round robin ignores the replicas' state.
"""

import numpy as np


# EVOLVE-BLOCK-START
def rule(now, prompt_len, predicted_len, arrival_index, outstanding, waiting, running,
         free_blocks, total_blocks, queued_tokens, predicted_work, step_time, prefill_time,
         decode_time):
    """One score per replica; the request goes to the lowest.

    Scalars describe the request: now (s), prompt_len, predicted_len (noisy predicted output
    tokens), arrival_index.  Arrays have one entry per replica: outstanding = waiting + running
    requests, free_blocks and total_blocks (KV cache), queued_tokens (prefill tokens still to
    compute), predicted_work (predicted output tokens still to generate), and the replica's
    cost model: step_time (s per step), prefill_time and decode_time (s per token).
    """
    turn = (np.arange(outstanding.size) - arrival_index) % outstanding.size
    return turn
# EVOLVE-BLOCK-END


def route(**features):
    """Fixed frame: one float score per replica."""
    values = np.asarray(rule(**features), dtype=float)
    return np.broadcast_to(values, features["outstanding"].shape)
