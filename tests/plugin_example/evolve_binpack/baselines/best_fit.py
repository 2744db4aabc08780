"""Best fit: the open bin with the least room left that still takes the item."""

import numpy as np


def pack(items, capacity):
    room = np.zeros(0)
    assignment = []
    for item in np.asarray(items, dtype=float):
        fits = np.flatnonzero(room >= item)
        if fits.size:
            chosen = int(fits[int(np.argmin(room[fits]))])
        else:
            room = np.append(room, float(capacity))
            chosen = room.size - 1
        room[chosen] -= item
        assignment.append(chosen)
    return assignment
