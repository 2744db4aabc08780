"""Zero the instance sets a child will not use, before it lets them go.

The zygote keeps the instance sets of its batch runs (``load``), and every child is a fork of it.
A child keeps its own set and drops the others, but dropping only frees: the arrays' bytes stay
in the heap, where a program that reads its own memory (``ctypes`` is in the stdlib) finds them.
A session child has no set of its own, and what it must not know can be there: jssp asks a
model's rule one decision at a time (the trusted builder, ``evaluators/jssp/drive.py``), but its
GP programs and the pure seed run as a batch in the same worker, and a rule scanning its heap
found whole instances of the split it was being driven on (eighth red team,
``tests/test_sandbox_wipe.py``).  So a session child zeroes every array of every set first.
Only sessions: a batch child runs its own set, whole, by design.  Read-only arrays too (a plug-in
that marks its arrays read-only gets read-only views of pickled bytes in the zygote: 404 of 10,000
values found before), unless they are not contiguous.  Only numpy arrays: Python
numbers and strings cannot be written in place, so a plug-in whose instance data hold what a
session must not see in lists of numbers keeps them in freed memory (every shipped problem's
are arrays; ``bench/list_remnants.py``: 732 of 10,000 floats found as lists, 0 as an array).
The zygote's own copies (the frames it read the sets from, the batch replies it relayed) it
zeroes itself (``oslevel.scrub``).
"""

from __future__ import annotations

import ctypes
from typing import Any

MAX_DEPTH = 6  # instance data is a dict of arrays and scalars; lists of them at most


def wipe_arrays(value: Any, depth: int = 0) -> None:
    """Zero, in place, every writable numpy array reachable from ``value`` through
    ``Instance.data``, dicts, lists and tuples (this process's copy: the zygote's stays)."""
    import numpy as np

    if depth > MAX_DEPTH:
        return
    if isinstance(value, np.ndarray):
        if not value.size:
            return
        if value.flags.writeable:
            value[...] = 0
        elif value.flags.c_contiguous or value.flags.f_contiguous:
            # Read-only: an array the plug-in made read-only is pickled as bytes and comes back
            # as a view of them, which numpy will not write.  Its bytes are this set's own copy
            # (unpickled in the zygote), and this process is about to drop them.
            ctypes.memset(value.ctypes.data, 0, value.nbytes)
        return
    data = getattr(value, "data", None) if depth == 0 else None
    if data is not None:
        wipe_arrays(data, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            wipe_arrays(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            wipe_arrays(item, depth + 1)


def wipe_sets(sets: dict[int, list[Any]]) -> None:
    for instances in sets.values():
        for instance in instances:
            wipe_arrays(instance)
