"""Sessions: a candidate loaded once in a sandboxed child, answering calls one at a time.

The controller talks to the child directly over a seqpacket socket that the
zygote hands over with SCM_RIGHTS; the zygote only supervises (deadline,
limits, clean-up) and reports how the child ended.  Payloads go out as pickles
(trusted -> sandbox); replies come back as JSON text or raw array bytes with a
small JSON meta, and are validated here: nothing from the child is unpickled.
The CPU time of a call is read from the kernel's per-process CPU clock of the
child, outside the candidate's reach.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import select
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evolve.sandbox import channel
from evolve.sandbox.frames import WorkerLost
from evolve.sandbox.outcome import (
    MAX_ERROR_CHARS,
    MAX_NESTING,
    MAX_VALUES,
    classify,
    encodable,
    malformed_facts,
    one_line,
    strict_json,
    too_deep,
    too_many_values,
)
from evolve.sandbox.types import SandboxError, SandboxLimits, SandboxOutcome

if TYPE_CHECKING:
    from evolve.sandbox.controller import Sandbox

OPEN_TIMEOUT_S = 30.0  # the zygote forks at once; this only bounds a broken worker
GRACE_S = 15.0  # beyond the session's deadline before the zygote itself counts as hung
MAX_DIMS = 32
_DTYPES = {"float64": "<f8", "int64": "<i8", "bool": "|b1"}
HEAD_SIZE = channel.HEAD.size
_CPUCLOCK_SCHED = 2  # the kernel's process-wide CPU clock of another process


class SessionEnded(Exception):
    """The child can no longer answer; ``outcome`` says why (status, error, stderr tail)."""

    def __init__(self, outcome: SandboxOutcome) -> None:
        super().__init__(outcome.error or outcome.status)
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Reply:
    value: Any  # JSON value or numpy array (float64/int64/bool); None when error is set
    error: str | None  # "Type: message (line N)" if respond() raised in this call
    cpu_seconds: float  # the child's CPU time for this call, as the kernel counts it
    wall_seconds: float


class _Ended(Exception):
    """Internal: the channel says the session is over (``why`` for the outcome)."""

    def __init__(self, why: str | None, fatal: dict[str, Any] | None = None) -> None:
        super().__init__(why)
        self.why, self.fatal = why, fatal


MESSAGES_TO_SPARE = 16  # per call, beyond what its reply needs (``messages_allowed``)


class SandboxSession:
    """Created by ``Sandbox.session``; a context manager.  One thread at a time."""

    def __init__(self, sandbox: Sandbox, source: str, function: str, limits: SandboxLimits) -> None:
        self._sandbox, self._source, self._function, self.limits = sandbox, source, function, limits
        self.outcome: SandboxOutcome | None = None  # set once the session is over
        self.calls = 0
        self.cpu_seconds = 0.0  # sum over calls
        self._sock: socket.socket | None = None
        self._poll = select.poll()
        self._buf = bytearray(channel.READ_SIZE)
        self._loaded = False
        self._in_call = False
        self._clock = 0
        self._reply_end_ns: int | None = None  # the child's CPU clock when the last reply was in
        self._deadline = 0.0
        self._started = False
        self._budget = 0
        self._messages = 0  # messages this call may still read (``messages_allowed``)
        self._reply_limit: int | None = None  # the current call's own bound, if below max_output_mb

    @property
    def source(self) -> str:
        """The program text this session runs, as the trusted side sent it (verifiers may
        recognise shipped programs by it; the candidate cannot change it)."""
        return self._source

    @property
    def closed(self) -> bool:
        return self.outcome is not None

    def __enter__(self) -> SandboxSession:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> SandboxOutcome:
        """End the session (the child is killed) and return its outcome.  Idempotent."""
        if self.outcome is None:
            if not self._started:
                self._open()
            if self.outcome is None:
                self._finish(None)
        assert self.outcome is not None
        return self.outcome

    # -- calls --------------------------------------------------------------------

    def call(self, payload: Any, reply_limit: int | None = None) -> Reply:
        """Send ``payload`` to ``respond(heuristic, payload)`` in the child; its reply.

        ``reply_limit``: the bytes this reply may hold, when the verifier knows its answer is
        small (default and ceiling: ``max_output_mb``).  A reply over it ends the session before
        more of it is read: every byte read costs this process (a 60 MiB reply padded with
        spaces costs ~0.24 s of the controller's CPU and GIL to count and parse).

        Raises ``SessionEnded`` once the child cannot answer, never anything else
        for what the candidate does.
        """
        if not self._started:
            self._open()
        if self.outcome is not None:
            raise SessionEnded(self.outcome)
        assert self._sock is not None
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        self.calls += 1
        seq = self.calls
        self._in_call = True
        try:
            # From the end of the last reply, or from ``settle``'s later reading: a child is idle
            # between calls, but a timer's signal handler runs while it waits, and its work must
            # count somewhere.
            cpu0 = self._cpu_ns() if self._reply_end_ns is None else self._reply_end_ns
            start = time.perf_counter()
            try:
                channel.send(self._sock.fileno(), channel.PAYLOAD, seq, b"", data)
            except OSError:
                raise _Ended(None) from None
            reply = self._read_reply(seq, reply_limit)
            wall = time.perf_counter() - start
            self._reply_end_ns = self._cpu_ns()
            cpu = max(0, self._reply_end_ns - cpu0) / 1e9
        except _Ended as end:
            self._finish(end.why, end.fatal)
            assert self.outcome is not None
            raise SessionEnded(self.outcome) from None
        self._in_call = False
        self.cpu_seconds += cpu
        value, error = reply
        return Reply(value, error, cpu, wall)

    def settle(self) -> float:
        """Re-read the child's CPU clock between calls and charge what the last call's reading
        missed to that call (``cpu_seconds``); the seconds added, 0.0 before the first call and
        once the session is over.

        The kernel's clock of another process is current only to its last scheduler tick (or
        context switch) while that process runs, so the reading taken as a reply comes in can lag
        by up to a tick (~4 ms here) while the child finishes sending it. Read again before the
        next call is sent, when the child is idle waiting for it, the clock holds that lag; the
        next call counts from there (``call`` starts from this reading), so each call is charged
        its own CPU, from when it was sent until the next one is (bench/smtt_call_overhead.py).
        The candidate learns nothing from it, and cannot move CPU from one call to another:
        whatever its process does between two calls is the earlier call's."""
        if self._reply_end_ns is None or self.outcome is not None or self._in_call:
            return 0.0
        now = self._cpu_ns()
        if now <= self._reply_end_ns:  # nothing missed, or the child is gone (0)
            return 0.0
        lag = (now - self._reply_end_ns) / 1e9
        self._reply_end_ns = now
        self.cpu_seconds += lag
        return lag

    def _cpu_ns(self) -> int:
        try:
            return time.clock_gettime_ns(self._clock)
        except OSError:  # the child is gone: the next read says so
            return 0

    def _read_reply(self, seq: int, limit: int | None) -> tuple[Any, str | None]:
        ceiling = self.limits.max_output_mb << 20
        self._reply_limit = limit if limit is not None and 0 <= limit < ceiling else None
        self._budget = ceiling if self._reply_limit is None else self._reply_limit  # bytes this call may read
        self._messages = messages_allowed(self._budget)
        while True:
            kind, got_seq, meta, blob = self._next_message()
            if self._take(kind, got_seq, meta) and got_seq == seq and kind in channel.REPLIES:
                return _decode(kind, meta, blob) if self._loaded else (None, "reply before the load report")
            # anything else is stale or forged: skipped

    def _take(self, kind: int, seq: int, meta: bytes) -> bool:
        """Handle the load report and fatal messages; True for anything else."""
        if kind == channel.LOADED and seq == 0:
            self._loaded = True
            return False
        if kind == channel.FATAL:
            raise _Ended(None, _fatal(meta))
        return True

    def _next_message(self, wait: bool = True) -> tuple[int, int, bytes, bytearray]:
        """One logical message from the child, whole; malformed pieces are skipped."""
        msg = self._recv(wait)
        while True:
            if len(msg) < HEAD_SIZE:
                msg = self._recv(wait)
                continue
            kind, seq, meta_len, blob_len = channel.HEAD.unpack_from(msg)
            end_meta = HEAD_SIZE + meta_len
            if kind == channel.MORE or meta_len > channel.MAX_META or end_meta > len(msg):
                msg = self._recv(wait)
                continue
            if blob_len - (len(msg) - end_meta) > self._budget:  # what is still to come, before reading it
                raise _Ended(self._over())
            meta, blob = msg[HEAD_SIZE:end_meta], bytearray(msg[end_meta:])
            while len(blob) < blob_len:
                msg = self._recv(wait)
                if len(msg) < HEAD_SIZE or channel.HEAD.unpack_from(msg) != (channel.MORE, seq, 0, blob_len):
                    break  # not the continuation: start over with this message
                blob += memoryview(msg)[HEAD_SIZE:]
            else:
                if len(blob) == blob_len:
                    return kind, seq, meta, blob
                msg = self._recv(wait)

    def _recv(self, wait: bool = True) -> bytes:
        assert self._sock is not None
        while True:
            left = self._deadline - time.monotonic() if wait else 0.0
            if wait and left <= 0:
                raise _Ended("hung")
            events = self._poll.poll(math.ceil(left * 1000))
            if not events:
                if not wait:
                    raise _Ended("drained")
                continue
            try:
                n = self._sock.recv_into(self._buf)
            except OSError:  # ECONNRESET: the child died with our payload unread
                raise _Ended(None) from None
            self._budget -= n
            self._messages -= 1
            if self._budget < 0:
                raise _Ended(self._over())
            if self._messages < 0:  # empty or tiny forged messages cost this process, not the budget
                raise _Ended("messages")
            if n:
                return self._buf[:n]  # type: ignore[return-value]
            if events[0][1] & (select.POLLHUP | select.POLLERR):
                raise _Ended(None)  # the child and all its processes are gone
            # a zero-length message: forged, nothing to read

    def _over(self) -> str:
        """Why a call that read past its budget ends the session."""
        return "output" if self._reply_limit is None or not self._in_call else "reply"

    def _drain(self) -> dict[str, Any] | None:
        """At a close between calls: what the child had said (load failure) without waiting."""
        self._budget = self.limits.max_output_mb << 20
        self._messages = messages_allowed(self._budget)
        self._reply_limit = None
        try:
            while True:
                kind, seq, meta, _ = self._next_message(wait=False)
                self._take(kind, seq, meta)
        except _Ended as end:
            return end.fatal

    # -- opening and ending -----------------------------------------------------------

    def _open(self) -> None:
        self._started = True
        sb = self._sandbox
        start = time.monotonic()
        try:
            self._connect(start)
        except WorkerLost as exc:
            sb._restart_worker()
            self.outcome = SandboxOutcome("crash", [], f"sandbox worker failed ({exc}); it was restarted",
                                          "", time.monotonic() - start)
        except BaseException:
            self.outcome = SandboxOutcome("crash", [], "the session could not be opened")
            raise

    def _connect(self, start: float) -> None:
        sb = self._sandbox
        sb._check_usable(opening=self)
        sb._session = self
        if sb._res.proc is None:
            sb._start()
        sb._send({"op": "session", "source": self._source, "function": self._function,
                  "timeout_s": self.limits.timeout_s})
        header, _ = sb._recv(start + OPEN_TIMEOUT_S, 0)
        if not header.get("ok"):
            raise SandboxError(f"sandbox worker refused the session: {header.get('error')}")
        self._sock, pid = _receive_socket(sb._channel(), start + OPEN_TIMEOUT_S)
        self._clock = ((~pid) << 3) | _CPUCLOCK_SCHED
        self._deadline = start + self.limits.timeout_s + GRACE_S
        self._poll.register(self._sock.fileno(), select.POLLIN)

    def _finish(self, why: str | None, fatal: dict[str, Any] | None = None) -> None:
        """Close our end, have the zygote end the child, and classify how it ended."""
        sb = self._sandbox
        if self._sock is not None and fatal is None and why is None:
            fatal = self._drain()
        try:
            if why == "hung":
                raise WorkerLost(f"no reply within {self.limits.timeout_s + GRACE_S:.0f} s")
            # Our end stays open until the zygote has killed the child, so that a
            # child idle between calls cannot mistake the close for a normal end.
            sb._send({"op": "end"})  # ignored if the child already ended
            facts, _ = sb._recv(time.monotonic() + GRACE_S + 5.0, 0)
            if (malformed := malformed_facts(facts)) is not None:
                raise WorkerLost(f"malformed reply: {malformed}")
        except WorkerLost as exc:
            if sb._closed:  # Sandbox.close() ended the session with the worker
                self.outcome = SandboxOutcome("crash", [], "the sandbox was closed during the session")
                return
            sb._restart_worker()
            self.outcome = SandboxOutcome("crash", [], f"sandbox worker failed ({exc}); it was restarted")
            return
        finally:
            if self._sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._poll.unregister(self._sock.fileno())
                self._sock.close()
                self._sock = None
        if why == "output":
            facts["killed"] = "output"
        elif why == "reply":
            facts["killed"], facts["reply_limit"] = "reply", self._reply_limit
        elif why == "messages":
            facts["killed"] = "messages"
        elif why is None and fatal is None and self._in_call and facts.get("killed") == "ended":
            facts["killed"] = "hangup"  # alive, but it closed its channel in the middle of a call
        where = self._where()
        self.outcome = classify(facts, fatal, where, False, self.limits)

    def _where(self) -> str:
        if not self._loaded:
            return "while loading the program"
        if self._in_call:
            return f"on call {self.calls}"
        return f"after call {self.calls}" if self.calls else "before the first call"


def _receive_socket(chan: socket.socket, deadline: float) -> tuple[socket.socket, int]:
    """The child's channel and a pidfd of the child, passed by the zygote as one byte
    with SCM_RIGHTS; returns the channel and the child's pid as we see it."""
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([chan], [], [], left)[0]:
        raise WorkerLost("no session channel in time")
    msg, fds, _, _ = socket.recv_fds(chan, 1, 2)
    try:
        if msg != b"S" or len(fds) != 2:
            raise WorkerLost("malformed session hand-over")
        with open(f"/proc/self/fdinfo/{fds[1]}") as f:  # a pidfd's "Pid:" is in our namespace
            pid = next(int(line.split()[1]) for line in f if line.startswith("Pid:"))
    except BaseException:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    os.close(fds[1])
    return socket.socket(fileno=fds[0]), pid


def _fatal(meta: bytes) -> dict[str, Any]:
    try:
        obj = strict_json(meta)
    except (ValueError, RecursionError):
        obj = None
    if not isinstance(obj, dict):
        return {"fatal": "sandbox", "message": "malformed message from the sandbox"}
    # Only the two strings are made encodable: the meta can be the candidate's own forged frame,
    # nested as deep as the parser allows, and walking all of it overflowed the stack here.
    fatal, message = str(obj.get("fatal")), str(obj.get("message"))[:MAX_ERROR_CHARS]
    return {"fatal": encodable(fatal, meta), "message": encodable(message, meta)}


def _decode(kind: int, meta: bytes, blob: bytearray) -> tuple[Any, str | None]:
    """(value, error) from one reply; whatever does not validate is that reply's error."""
    try:
        if kind == channel.JSON:
            if too_many_values(blob):
                return None, f"reply holds more than {MAX_VALUES:,} JSON values (items, lists and objects)"
            value = strict_json(blob)
            if too_deep(value):
                return None, f"reply is nested more than {MAX_NESTING} levels deep (lists in lists)"
            return encodable(value, blob), None
        if kind == channel.ERROR:
            error = strict_json(meta)["error"]
            return None, one_line(error) or "error"
        if kind == channel.ARRAY:
            return _array(strict_json(meta), blob), None
    except (ValueError, TypeError, KeyError, RecursionError, UnicodeDecodeError):
        pass
    return None, "malformed reply from the sandbox"


def _array(meta: Any, blob: bytearray) -> Any:
    import numpy as np

    dtype = np.dtype(_DTYPES[meta["dtype"]])
    shape = meta["shape"]
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise ValueError("bad shape")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ValueError("bad shape")
    if math.prod(shape) * dtype.itemsize != len(blob):
        raise ValueError("size does not match the shape")
    array = np.frombuffer(blob, dtype=dtype).reshape(shape)
    if dtype.kind == "b" and array.size and array.view(np.uint8).max() > 1:
        raise ValueError("bool array with values other than 0 and 1")
    return array


def messages_allowed(budget: int) -> int:
    """Messages one call may read: a reply of ``budget`` bytes is its head and a ``MORE`` per
    ``channel.CHUNK`` after the first; one more for the load report, and a few to spare.

    Forged messages are skipped, but each costs this process a poll and a read, and an empty
    one costs no byte of the budget: a candidate writing empty messages onto fd 3 kept the
    controller's thread busy (and the GIL) for as long as the session's wall clock allowed,
    ~1.6 us of its CPU per message (eighth red team; ``tests/test_sandbox_session.py``).
    """
    return 2 + -(-budget // channel.CHUNK) + MESSAGES_TO_SPARE
