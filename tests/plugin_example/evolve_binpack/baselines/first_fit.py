"""First fit: the first open bin with enough room."""

import numpy as np


def pack(items, capacity):
    room: list[float] = []
    assignment = []
    for item in np.asarray(items, dtype=float):
        chosen = next((k for k, r in enumerate(room) if r >= item), None)
        if chosen is None:
            room.append(float(capacity))
            chosen = len(room) - 1
        room[chosen] -= item
        assignment.append(chosen)
    return assignment
