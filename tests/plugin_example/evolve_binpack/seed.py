"""Seed: worst fit (the item goes into the emptiest bin that can take it)."""

import numpy as np


# EVOLVE-BLOCK-START
def priority(item, room):
    """Score of every bin that fits the item (room: space left, float array); highest wins."""
    return room - item
# EVOLVE-BLOCK-END


def pack(items, capacity):
    """Place items online; returns the bin index of every item."""
    room = np.zeros(0)
    assignment = []
    for item in np.asarray(items, dtype=float):
        fits = np.flatnonzero(room >= item)
        if fits.size:
            scores = np.asarray(priority(item, room[fits]), dtype=float)
            if scores.shape != fits.shape:
                raise ValueError(f"priority() returned shape {scores.shape}, expected {fits.shape}")
            chosen = int(fits[int(np.argmax(scores))])
        else:
            room = np.append(room, float(capacity))
            chosen = room.size - 1
        room[chosen] -= item
        assignment.append(chosen)
    return assignment
