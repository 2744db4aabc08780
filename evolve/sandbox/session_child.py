"""The child's side of a session: load the candidate once, then answer one call per message.

The peer is the controller itself (the zygote handed it the other end of fd 3).
Each call is a pickled payload from the trusted side; each reply is JSON text, or
a float64/int64/bool array as raw bytes with a small JSON meta, or an error
line.  Nothing the child sends is ever unpickled by the controller.
"""

from __future__ import annotations

import json
import mmap
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from evolve.sandbox import channel
from evolve.sandbox.child import (
    RESERVE_BYTES,
    RESULT_FD,
    describe,
    encode_json,
    release,
    show_traceback,
)

if TYPE_CHECKING:
    from evolve.sandbox.child import ChildSpec, Work

try:
    import numpy as np
except ImportError:  # numpy is a dependency, but the sandbox does not need it
    np = None

_ARRAY_KINDS = {"b": "bool", "i": "int64", "u": "int64", "f": "float64"}


def run_session(
    spec: ChildSpec,
    work: Work,
    load: Callable[[str, str], tuple[Callable[..., Any] | None, dict[str, str] | None]],
) -> None:
    reserve = [mmap.mmap(-1, RESERVE_BYTES)]
    fd = RESULT_FD
    respond = spec.respond
    fn, fatal = load(work.source, work.function)
    if fatal is not None or respond is None:
        release(reserve)
        fatal = fatal or {"fatal": "sandbox", "message": "the verifier defines no respond()"}
        channel.send(fd, channel.FATAL, 0, json.dumps(fatal).encode())
        return
    channel.send(fd, channel.LOADED, 0)
    shown = False
    while True:
        got = channel.recv_trusted(fd)
        if got is None:  # the controller closed its end: the session is over
            return
        _, seq, _, blob = got
        try:
            payload = pickle.loads(blob)  # from the controller: trusted
            del blob
            value = respond(fn, payload)
            kind, meta, data = encode(value)
        except MemoryError:
            release(reserve)
            channel.send(fd, channel.FATAL, seq, b'{"fatal": "memory", "message": "MemoryError"}')
            return
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the session goes on
            kind, meta, data = channel.ERROR, json.dumps({"error": describe(exc)}).encode(), b""
            if not shown:
                shown = show_traceback(exc)
        channel.send(fd, kind, seq, meta, data)


def encode(value: Any) -> tuple[int, bytes, bytes]:
    """(kind, meta, blob) for one reply.  Raises on values that are not JSON or a plain array."""
    if np is not None and isinstance(value, np.ndarray) and value.dtype.kind in _ARRAY_KINDS:
        dtype = _ARRAY_KINDS[value.dtype.kind]
        array = np.ascontiguousarray(value, dtype=dtype)
        meta = json.dumps({"dtype": dtype, "shape": list(array.shape)}).encode()
        return channel.ARRAY, meta, array.tobytes()
    try:
        text = encode_json(value)
    except (TypeError, ValueError) as exc:
        why = "it contains NaN or infinity" if "Out of range float" in str(exc) else describe(exc)
        return channel.ERROR, json.dumps({"error": f"reply is not JSON-serialisable: {why}"}).encode(), b""
    return channel.JSON, b"", text.encode()
