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
(a small int, a constant) is left alone.  Strings and numpy's number scalars (``np.float64``,
``np.int64``, ...) the same way (eleventh red team: a session child found 4,193 of 10,000 such
strings, 8,874 of 10,000 ``np.float64`` values): a string's characters and its cached hash, a
scalar's value; an interned string or a str subclass is left alone.  numpy pickles a scalar as
its bytes, which the unpickler keeps until the whole set is loaded and then frees: ``loads``
zeroes them once the scalar is made (the zygote reads every request with it).  The zygote
zeroes a set it drops the same way (tenth red team), and its own copies of the frames it read
the sets from and of the batch replies it relayed with ``oslevel.scrub``.  Not covered: a
string's cached UTF-8 copy (made only when C code asked for one) and the hashes a dict keeps
of its keys.
"""

from __future__ import annotations

import ctypes
import pickle
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


_HEAD = object.__basicsize__  # a numpy number scalar's value follows its refcount and type
_STR_HASH = _HEAD + 8  # a str's cached hash, after its length
_STR_STATE = _HEAD + 16  # its state bits: interned (2), kind (3), compact (1), ascii (1)


def _zero_number(value: Any) -> bool | None:
    """Zero a float, int, bytes, str or numpy number scalar held only by the container being
    walked (its caller's loop): True if zeroed, False if it is one of those but shared, None for
    any other type."""
    kind = type(value)
    if kind is bytearray:
        value[:] = bytes(len(value))
        return True
    plain = kind is float or kind is int or kind is bytes or kind is str
    if not plain and (kind.__module__ != "numpy" or not _is_number_scalar(value)):
        return None
    if sys.getrefcount(value) > _EXCLUSIVE:  # a small int, an interned or shared object: not ours
        return False
    if kind is float:
        ctypes.memset(id(value) + _FLOAT_VALUE, 0, 8)
    elif kind is int:
        ctypes.memset(id(value) + _INT_DIGITS, 0, value.__sizeof__() - _INT_DIGITS)
    elif kind is bytes:
        ctypes.memset(id(value) + _BYTES_DATA, 0, len(value))
    elif kind is str:
        return _zero_str(value)
    else:
        ctypes.memset(id(value) + _HEAD, 0, value.itemsize)
    return True


def _is_number_scalar(value: Any) -> bool:
    """A numpy number scalar whose value sits right after its head (numpy's ``{PyObject_HEAD;
    obval}``; ``np.bool_`` is two shared objects and is left alone)."""
    import numpy as np

    return isinstance(value, np.number) and type(value).__basicsize__ >= _HEAD + value.itemsize


def _str_layout() -> tuple[int, int] | None:
    """Where a compact str's characters begin, ASCII and not; None where the state bits do not
    read as expected on fresh strings of each kind (then no string is zeroed)."""
    ascii_, latin, wide, widest = ("".join(["a", c, c]) for c in ("b", chr(233), chr(0x100), chr(0x10000)))
    wanted = ((ascii_, 1, 1), (latin, 1, 0), (wide, 2, 0), (widest, 4, 0))
    if any(_state(s) & 0x7F != (kind << 2) | (1 << 5) | (flag << 6) for s, kind, flag in wanted):
        return None
    return ascii_.__sizeof__() - 4, latin.__sizeof__() - 4


def _state(value: str) -> int:
    return ctypes.c_uint32.from_address(id(value) + _STR_STATE).value


def zero_text(value: str) -> None:
    """Zero a str this process made and alone holds (a compact one: ``json.dumps``'s result):
    nothing but the caller's name for it (and this call) refers to it, else it is left alone."""
    if sys.getrefcount(value) <= 3:  # the caller's name, the parameter, getrefcount's argument
        _zero_str(value)


def _zero_str(value: str) -> bool:
    state = _state(value)
    if _STR_DATA is None or state & 3 or not state & (1 << 5):  # interned, or not compact
        return False
    start = _STR_DATA[0] if state & (1 << 6) else _STR_DATA[1]
    ctypes.memset(id(value) + start, 0, len(value) * ((state >> 2) & 7))
    ctypes.c_ssize_t.from_address(id(value) + _STR_HASH).value = -1  # not computed
    return True


_STR_DATA = _str_layout()


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


def loads(frame: bytes) -> Any:
    """``pickle.loads``, zeroing the bytes numpy reads each scalar from once the scalar is made:
    the unpickler keeps them (memoised) until the whole frame is read, then frees them.  numpy's
    ``scalar`` is swapped for the call (the zygote is one thread): an ``Unpickler`` subclass
    with its own ``find_class`` reads from a file, and the C unpickler copies each 64 KiB frame
    of a file into a bytes object it frees unzeroed."""
    np = sys.modules.get("numpy")  # the zygote preloads it where it is installed
    if np is None:
        return pickle.loads(frame)
    made = np.float64(0.0).__reduce__()[0]
    module = sys.modules[made.__module__]
    module.scalar = _zeroing(made)
    try:
        return pickle.loads(frame)
    finally:
        module.scalar = made


def _zeroing(made: Any) -> Any:
    def scalar(dtype: Any, *args: Any) -> Any:
        value = made(dtype, *args)
        raw = args[0] if args else None
        if type(raw) is bytes and len(raw) > 1:  # shorter ones are the interpreter's shared objects
            ctypes.memset(id(raw) + _BYTES_DATA, 0, len(raw))
        return value

    return scalar
