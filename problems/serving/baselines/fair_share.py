"""Fair share: per-client virtual token counters (VTC, Sheng et al., "Fairness in Serving
Large Language Models", OSDI 2024).

The engine counts, per client, the prefill tokens plus twice the decode tokens it has served;
requests of the least-served client go first (ties: earlier arrival), and the most-served
client's requests are preempted first.
"""

import numpy as np


def priority(client_tokens, **_):
    return np.asarray(client_tokens, dtype=float)
