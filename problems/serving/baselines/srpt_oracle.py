"""ORACLE reference, not a deployable policy: shortest remaining processing time with the
TRUE output lengths.

Only this exact file receives true lengths (as ``predicted_len``): the verifier recognises
shipped baselines that declare ORACLE = True by their content digest.  It shows how much
a perfect length predictor would be worth.
"""

import numpy as np

ORACLE = True


def priority(predicted_len, generated, **_):
    return np.maximum(predicted_len - generated, 1.0)
