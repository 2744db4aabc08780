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
values found before), unless they are not contiguous.  Python floats, ints and bytes in lists, tuples and dicts too
(``bench/list_remnants.py``: 732 of 10,000 floats of a plug-in's lists were found before):
they are immutable to Python, but an object that nothing else refers to (its reference count
says so) is this set's own, about to be freed, and is zeroed through ``ctypes``; a shared one
(a small int, a constant) is left alone.  Strings are not zeroed: keep what a session must not
see out of them.  The zygote zeroes a set it drops the same way (tenth red team), and its own
copies of the frames it read the sets from and of the batch replies it relayed with
``oslevel.scrub``.
"""

from __future__ import annotations

import ctypes
import sys
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
            if _zero_number(item) is None:
                wipe_arrays(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            if _zero_number(item) is None:
                wipe_arrays(item, depth + 1)


_FLOAT_VALUE = float.__basicsize__ - 8  # where a float's double is (after its refcount and type)
_INT_DIGITS = (1).__sizeof__() - sys.int_info.sizeof_digit  # where an int's digits begin
_BYTES_DATA = bytes.__basicsize__ - 1  # where a bytes object's bytes begin


def _zero_number(value: Any) -> bool | None:
    """Zero a float, int or bytes object held only by the container being walked (its caller's
    loop): True if zeroed, False if it is one of those but shared, None for any other type."""
    kind = type(value)
    if kind is not float and kind is not int and kind is not bytes and kind is not bytearray:
        return None
    if kind is bytearray:
        value[:] = bytes(len(value))
        return True
    if sys.getrefcount(value) > _EXCLUSIVE:  # a small int, an interned or shared object: not ours
        return False
    if kind is float:
        ctypes.memset(id(value) + _FLOAT_VALUE, 0, 8)
    elif kind is int:
        ctypes.memset(id(value) + _INT_DIGITS, 0, value.__sizeof__() - _INT_DIGITS)
    else:
        ctypes.memset(id(value) + _BYTES_DATA, 0, len(value))
    return True


def _exclusive_count() -> int:
    """The reference count ``_zero_number`` sees for an object only a list holds: the list,
    the loop's variable, the parameter and ``getrefcount``'s argument, counted on a fresh float
    through the same path (the count depends on the interpreter's calling convention)."""
    seen = []
    for item in [float.fromhex("0x1.5p-3") * 3]:
        seen.append(_count(item))
    return seen[0]


def _count(value: Any) -> int:
    return sys.getrefcount(value)


_EXCLUSIVE = _exclusive_count()


def wipe_sets(sets: dict[int, list[Any]]) -> None:
    for instances in sets.values():
        for instance in instances:
            wipe_arrays(instance)
