"""Length-prefixed frames between the controller and its zygote (a unix stream socket).

Requests (controller -> zygote) are pickles: the zygote trusts its controller.
Replies (zygote -> controller) are JSON headers plus raw byte blobs, so the
controller, which holds API keys, never unpickles anything produced on the
sandbox side, even if a zygote were subverted.
"""

from __future__ import annotations

import json
import os
import pickle
import select
import struct
import time
from typing import Any

_LEN = struct.Struct(">Q")
ONE_WRITE = 65536  # frames (or a reply's two) smaller than this go in one write


class WorkerLost(Exception):
    """The other end closed the channel, sent garbage, or did not answer in time."""


def write_frame(fd: int, payload: bytes) -> None:
    header = _LEN.pack(len(payload))
    if len(payload) < ONE_WRITE:
        _write_all(fd, memoryview(header + payload))
    else:  # no extra copy of large ones
        _write_all(fd, memoryview(header))
        _write_all(fd, memoryview(payload))


def _write_all(fd: int, view: memoryview) -> None:
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:  # BrokenPipeError: Python ignores SIGPIPE
        raise WorkerLost(f"write failed: {exc}") from None


def read_frame(fd: int, deadline: float | None = None, max_bytes: int = 1 << 40) -> bytes:
    """One frame's payload; ``deadline`` is a ``time.monotonic()`` value."""
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
    if size > max_bytes:
        raise WorkerLost(f"frame of {size} bytes exceeds {max_bytes}")
    return _read_exact(fd, size, deadline)


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerLost("no reply in time")
        try:
            chunk = os.read(fd, min(size - len(buf), 1 << 20))
        except OSError as exc:  # ECONNRESET from a socket whose other end died
            raise WorkerLost(f"read failed: {exc}") from None
        if not chunk:
            raise WorkerLost("channel closed")
        buf += chunk
    return bytes(buf)


def send_request(fd: int, obj: Any) -> None:
    write_frame(fd, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def recv_request(fd: int) -> Any:
    return pickle.loads(read_frame(fd))


def send_reply(fd: int, header: dict[str, Any], blob: bytes = b"") -> None:
    """The header's frame and the blob's; in one write when they are small together (one
    wake-up of the reader instead of two)."""
    head = json.dumps(header).encode()
    if len(head) + len(blob) < ONE_WRITE:
        _write_all(fd, memoryview(_LEN.pack(len(head)) + head + _LEN.pack(len(blob)) + blob))
        return
    write_frame(fd, head)
    write_frame(fd, blob)


def recv_reply(fd: int, deadline: float | None, max_blob: int) -> tuple[dict[str, Any], bytes]:
    try:
        header = json.loads(read_frame(fd, deadline, max_bytes=1 << 24))
    except ValueError as exc:
        raise WorkerLost(f"malformed reply: {exc}") from None
    if not isinstance(header, dict):
        raise WorkerLost("malformed reply")
    return header, read_frame(fd, deadline, max_bytes=max_blob)
