"""The processes below a process, by (pid, start time) so that a reused pid is not mistaken
for one of them; and the check that they are all gone (tests of what a study leaves behind)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def uid_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def descendants(root: int) -> dict[tuple[int, str], str]:
    """Every process below ``root`` now: its command line by (pid, start time), so that a
    reused pid is not mistaken for it."""
    children: dict[int, list[tuple[int, str]]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append((int(name), fields[19]))
    found: dict[tuple[int, str], str] = {}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            with contextlib.suppress(OSError):
                found[child] = Path(f"/proc/{child[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            stack.append(child[0])
    return found


def assert_all_gone(processes: dict[tuple[int, str], str], within_s: float = 15.0) -> None:
    """None of ``processes`` is alive or a zombie (a zombie keeps its /proc entry); those that
    are get SIGKILL before the assertion fails, so that a failed test leaves nothing running."""
    deadline = time.monotonic() + within_s
    left = set(processes)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {(pid, start) for pid, start in left if start_time(pid) == start}
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"left behind: {[processes[p] for p in left]}"
