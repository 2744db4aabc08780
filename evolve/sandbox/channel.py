"""Messages on the ``SOCK_SEQPACKET`` socket that links a candidate child to its peer.

Every child gets one end of a fresh socketpair as fd 3.  Its peer is the
zygote (work orders, batch results) or, during a session, the controller
itself (the zygote hands its end over with SCM_RIGHTS), so a call costs one
message each way and no relay.  A seqpacket socket keeps message boundaries:
bytes a candidate forges into the socket become messages of their own, which
the reader skips, instead of shifting everything after them.

A message is ``<kind u8, seq u64, meta length u32, blob length u64>``, the
meta bytes (small JSON, never pickle from the child's side) and the start of
the blob; a blob longer than ``CHUNK`` continues in ``MORE`` messages with the
same head fields, so a reader that meets anything else mid-way drops the
broken message and starts over.  Batch results are a plain byte stream
written in chunks.
"""

from __future__ import annotations

import os
import struct

CHUNK = 1 << 16  # blob bytes per message: far below the default socket buffer (208 KiB)
MAX_META = 1 << 14
READ_SIZE = CHUNK + MAX_META + 64  # large enough for any message our own code sends

HEAD = struct.Struct("<BQIQ")

# kinds
PAYLOAD = 1  # peer -> child: a work order (marshal) or a call (pickle); trusted side to sandbox only
LOADED = 2  # child: the program compiled and defines the function
JSON = 3  # child: the reply is JSON text
ARRAY = 4  # child: the reply is raw array bytes; meta {"dtype", "shape"}
ERROR = 5  # child: the call raised; meta {"error"}
FATAL = 6  # child: the session is over; meta {"fatal", "message"}
MORE = 7  # the continuation of a blob
REPLIES = (JSON, ARRAY, ERROR)


def send(fd: int, kind: int, seq: int, meta: bytes = b"", blob: bytes | memoryview = b"") -> None:
    """One logical message (blocking).  ``meta`` must stay under ``MAX_META``."""
    view = memoryview(blob)
    os.write(fd, HEAD.pack(kind, seq, len(meta), len(view)) + meta + view[:CHUNK])
    if len(view) > CHUNK:
        more = HEAD.pack(MORE, seq, 0, len(view))
        for start in range(CHUNK, len(view), CHUNK):
            os.write(fd, more + view[start : start + CHUNK])


def write_stream(fd: int, data: bytes) -> None:
    """A piece of the batch result stream, in messages the reader can take whole."""
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        os.write(fd, view[start : start + CHUNK])


def recv_trusted(fd: int) -> tuple[int, int, bytes, bytes] | None:
    """Blocking read of one logical message from the trusted side; None at EOF.

    Only for the child, which trusts its peer: no limits, no validation.
    """
    first = os.read(fd, READ_SIZE)
    if len(first) < HEAD.size:
        return None
    kind, seq, meta_len, blob_len = HEAD.unpack_from(first)
    meta = first[HEAD.size : HEAD.size + meta_len]
    blob = bytearray(first[HEAD.size + meta_len :])
    while len(blob) < blob_len:
        more = os.read(fd, READ_SIZE)
        if not more:
            return None
        blob += memoryview(more)[HEAD.size :]
    return kind, seq, meta, bytes(blob)
