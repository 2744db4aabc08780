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
import socket
import struct
import time
from typing import Any

from evolve.sandbox.oslevel import scrub
from evolve.sandbox.wipe import zero_text

_LEN = struct.Struct(">Q")
ONE_WRITE = 65536  # frames (or a reply's two) smaller than this go in one write
MAX_HEADER = 1 << 24  # a reply's JSON header
MAX_TAIL = 1 << 16  # a reply's output tail (the zygote reads 2 KiB)
TAIL = "stderr_tail"  # the header key the tail's text is under once received


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


def read_frame(fd: int, deadline: float | None = None, max_bytes: int = 1 << 40, *, wipe: bool = False) -> bytes:
    """One frame's payload; ``deadline`` is a ``time.monotonic()`` value.  With ``wipe`` the
    copies made on the way are zeroed (``oslevel.scrub``: the zygote's requests carry instance
    sets, and its children are forked with its freed memory); the caller scrubs the payload."""
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
    if size > max_bytes:
        raise WorkerLost(f"frame of {size} bytes exceeds {max_bytes}")
    return _read_exact(fd, size, deadline, wipe=wipe)


def _read_exact(fd: int, size: int, deadline: float | None, sock: socket.socket | None = None,
                wipe: bool = False) -> bytes:
    """``size`` bytes, never more (a session's channel follows its reply on the same socket).
    With ``sock`` (the fd's socket), bytes already there are taken without a ``select``."""
    buf = bytearray()
    while len(buf) < size:
        want = min(size - len(buf), 1 << 20)
        chunk = _waiting(sock, want) if sock is not None else None
        if chunk is None:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise WorkerLost("no reply in time")
            try:
                chunk = os.read(fd, want)
            except OSError as exc:  # ECONNRESET from a socket whose other end died
                raise WorkerLost(f"read failed: {exc}") from None
        if not chunk:
            raise WorkerLost("channel closed")
        buf += chunk
        if wipe:
            scrub(chunk)
    if not wipe:
        return bytes(buf)
    out = bytes(buf)
    scrub(buf)
    return out


def _waiting(sock: socket.socket, size: int) -> bytes | None:
    """Up to ``size`` bytes already in the socket; None if there are none yet."""
    try:
        return sock.recv(size, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise WorkerLost(f"read failed: {exc}") from None


def send_request(fd: int, obj: Any) -> None:
    write_frame(fd, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def recv_request(fd: int) -> Any:
    return pickle.loads(read_frame(fd))


def send_reply(fd: int, header: dict[str, Any], blob: bytes = b"", tail: bytes = b"") -> None:
    """The header's frame and the blob's, then the candidate's output ``tail`` as raw bytes (its
    length in the header), zeroed once sent; in one write when they are small together (one
    wake-up of the reader instead of two).

    The tail is the candidate's own text: as a string in the header (decoded, JSON-encoded, its
    frame) the zygote held 4-5 copies of it after its clean-up, and every child forked later had
    them (tenth red team, ``tests/test_sandbox_scrub.py``).  The header's text is zeroed once sent too."""
    if tail:
        header = {**header, "tail_bytes": len(tail)}
    text = json.dumps(header)
    head = text.encode()
    if len(head) + len(blob) + len(tail) < ONE_WRITE:
        message = b"".join((_LEN.pack(len(head)), head, _LEN.pack(len(blob)), blob, tail))  # no partial sums
        _write_all(fd, memoryview(message))
        scrub(message)  # a copy of the header, of the blob (the caller scrubs it: ``Zygote._answer``), of the tail
    else:
        write_frame(fd, head)
        write_frame(fd, blob)
        if tail:
            _write_all(fd, memoryview(tail))
    scrub(tail)
    # The header's numbers are the candidate's choice (its exit status, peak memory, CPU and wall
    # time: a few bits to every child forked from this memory later; eleventh red team).
    scrub(head)
    zero_text(text)


def recv_reply(
    fd: int, deadline: float | None, max_blob: int, sock: socket.socket | None = None
) -> tuple[dict[str, Any], bytes]:
    """A reply: its header frame, then its blob frame (``send_reply``). Once the header's size is
    in, the header and the blob's size are read together; with ``sock`` (the fd's socket) what
    has come already is taken without a ``select`` (a small reply comes in one write): two reads
    and one ``select`` where there were four of each."""
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
    if size > MAX_HEADER:
        raise WorkerLost(f"frame of {size} bytes exceeds {MAX_HEADER}")
    rest = _read_exact(fd, size + _LEN.size, deadline, sock)
    try:
        header = json.loads(rest[:size])
    except ValueError as exc:
        raise WorkerLost(f"malformed reply: {exc}") from None
    if not isinstance(header, dict):
        raise WorkerLost("malformed reply")
    (blob_size,) = _LEN.unpack(rest[size:])
    if blob_size > max_blob:
        raise WorkerLost(f"frame of {blob_size} bytes exceeds {max_blob}")
    blob = _read_exact(fd, blob_size, deadline, sock) if blob_size else b""
    tail_size = header.pop("tail_bytes", 0)
    if type(tail_size) is not int or not 0 <= tail_size <= MAX_TAIL:
        raise WorkerLost(f"malformed reply: tail of {tail_size!r} bytes")
    if tail_size:
        header[TAIL] = _read_exact(fd, tail_size, deadline, sock).decode("utf-8", "replace")
    return header, blob
