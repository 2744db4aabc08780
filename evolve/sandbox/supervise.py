"""Watching one candidate child until it is done: its output, deadline, exit, and the controller.

Runs in the zygote.  ``supervise`` polls the child's socket (batch output), a
pidfd of the child and the controller's channel, kills the child's process
group at the end and reaps it; what it returns is plain data for the reply.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

from evolve.sandbox import channel, oslevel
from evolve.sandbox.types import SandboxLimits

TAIL_BYTES = 2048
_CPUCLOCK_SCHED = 2  # the kernel's process-wide CPU clock of another process (clock_getcpuclockid)


def cpu_ns(pid: int) -> int | None:
    """The process ``pid``'s CPU time (all its threads) as the kernel counts it, in ns; None
    once it has exited. Read from outside: nothing the candidate does in its process changes it."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | _CPUCLOCK_SCHED)
    except OSError:
        return None


def supervise(
    pid: int, rfd: int | None, fin: int, limits: SandboxLimits,
    controller_says: Callable[[int, bool], str | None], lines: int | None = None,
    cpu_from: int | None = None,
) -> tuple[dict[str, Any], bytes]:
    """Until the child exits, the deadline passes or output overflows, collect its
    batch output (``rfd``); in a session (no ``rfd``) also until the controller ends it.

    ``controller_says(events, in_session)`` tells why to stop on activity of the
    controller's channel ``fin`` (None: go on).  With ``lines``, the batch is
    complete once that many lines have arrived (the load report and one per
    instance, after which our child code only exits): the child is then left
    running, ``facts["reaped"]`` is False, and the caller must ``reap`` it, so
    that its exit (a millisecond of page-table and namespace teardown) follows
    the reply instead of preceding it.  Extra lines a candidate forges only
    complete its own batch early, with what it wrote.

    In a batch, ``facts["line_cpu_ns"]`` is the child's CPU time (``cpu_ns``) read as each line's
    newline arrived, after ``cpu_from`` (its CPU time when the work order went out): the
    trusted clock of the batch (``outcome.trusted_seconds``). None where it had exited.
    """
    start = time.monotonic()
    deadline = start + limits.timeout_s
    max_bytes = limits.max_output_mb << 20
    chunks: list[bytes] = []
    total = 0
    killed: str | None = None
    vm_peak = None
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None  # old kernel: poll waitid every few ms instead
    poller = select.poll()
    if rfd is not None:
        poller.register(rfd, select.POLLIN)
    # In a batch run only POLLHUP (the controller is gone); in a session also "end".
    poller.register(fin, select.POLLIN if rfd is None else 0)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    exited = complete = False
    newlines = 0
    marks: list[int | None] = [cpu_from]
    try:
        while not exited and not complete and killed is None:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = "timeout"
                break
            wait_ms = math.ceil(left * 1000) if pidfd is not None else min(5, math.ceil(left * 1000))
            for fd, ev in poller.poll(wait_ms):
                if fd == rfd:
                    try:
                        data = os.read(rfd, channel.READ_SIZE)
                    except ConnectionResetError:  # it died with our work order unread
                        data, ev = b"", select.POLLHUP
                    if not data and ev & (select.POLLHUP | select.POLLERR):
                        poller.unregister(rfd)
                    total += len(data)
                    chunks.append(data)
                    if total > max_bytes:
                        killed = "output"
                    elif lines is not None:
                        newlines += data.count(b"\n")
                        complete = newlines >= lines
                        _mark(marks, pid, min(newlines, lines) + 1)
                elif fd == fin:
                    killed = controller_says(ev, rfd is None)
                else:
                    exited = True
            if pidfd is None and not exited:
                exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        if complete and killed is None:
            return {**_complete(start), "line_cpu_ns": marks}, _joined(chunks)
        if killed is None and rfd is not None:  # exited: take what it wrote; descendants may hold the socket
            os.set_blocking(rfd, False)
            with contextlib.suppress(BlockingIOError, ConnectionResetError):
                while total <= max_bytes and (data := os.read(rfd, channel.READ_SIZE)):
                    total += len(data)
                    chunks.append(data)
                    if lines is not None:
                        newlines += data.count(b"\n")
                        _mark(marks, pid, min(newlines, lines) + 1)
            if total > max_bytes:
                killed = "output"
        elif killed is not None:
            vm_peak = vm_kb(pid, "VmPeak")
    finally:
        if pidfd is not None:
            os.close(pidfd)
        if not (complete and killed is None):
            status, usage = reap(pid)
    if killed == "ended" and not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
        killed = None  # it was already exiting by itself: its own status says how
    facts: dict[str, Any] = {
        "killed": killed,
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "maxrss_kb": usage.ru_maxrss,
        "cpu": usage.ru_utime + usage.ru_stime,
        "vm_peak_kb": vm_peak,
        "wall": time.monotonic() - start,
        "reaped": True,
    }
    if rfd is not None:
        facts["line_cpu_ns"] = marks
    return facts, _joined(chunks, max_bytes + 1)


def _mark(marks: list[int | None], pid: int, upto: int) -> None:
    """One CPU reading of the child for every newline that arrived since the last read
    (``marks[0]`` is the work order's): lines that arrive together share it."""
    if len(marks) < upto:
        now = cpu_ns(pid)
        marks.extend([now] * (upto - len(marks)))


def _joined(chunks: list[bytes], limit: int | None = None) -> bytes:
    """The chunks as one, each chunk zeroed once copied (``oslevel.scrub``: they held the batch's
    results, and the zygote's freed memory is in every child forked later)."""
    out = b"".join(chunks)
    if limit is not None and len(out) > limit:
        whole, out = out, out[:limit]
        oslevel.scrub(whole)
    if len(chunks) > 1 or (chunks and chunks[0] is not out):
        for chunk in chunks:
            oslevel.scrub(chunk)
    return out


def _complete(start: float) -> dict[str, Any]:
    """Facts of a batch whose every line arrived: exit status and usage are not known yet."""
    return {"killed": None, "exit_code": None, "signal": None, "maxrss_kb": None, "cpu": None,
            "vm_peak_kb": None, "wall": time.monotonic() - start, "reaped": False}


def reap(pid: int) -> tuple[int, Any]:
    """Kill the child's process group and the child; wait for it: (status, rusage)."""
    oslevel.kill_quietly(pid, group=True)
    oslevel.kill_quietly(pid)
    _, status, usage = os.wait4(pid, 0)
    return status, usage


def vm_kb(pid: int | str, field: str) -> int | None:
    try:
        for line in oslevel.read_proc(f"{pid}/status").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def tail(fd: int) -> bytes:
    """The last ``TAIL_BYTES`` of the candidate's stdout+stderr file, read through the zygote's
    own fd of it (opened while the child was a spare: no open on the way to the reply).  Raw:
    the controller decodes it (``frames.send_reply`` sends it after the blob and zeroes it)."""
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, TAIL_BYTES, max(0, size - TAIL_BYTES))
    except OSError:
        return b""
