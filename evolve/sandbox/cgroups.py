"""Memory and process limits for a candidate as a whole: one cgroup per sandbox.

The forker (forker.py) joins its sandbox's cgroup once, so that every child is
born in it and every process and thread a candidate starts is counted together:
``memory_mb`` for all of them (swap included), ``max_processes`` tasks in all
(``pids.max`` counts the forker too, so the zygote sets it to ``max_processes``
+ 1 while the forker is in; ``ChildKeeper._limit_tasks``). A child the zygote
forks itself joins the cgroup before it drops privileges.  The cgroup outlives the
candidates (one at a time per sandbox) and is removed with the zygote.  Names
carry the zygote's pid and a random part, so concurrent sandboxes (other
workers, other runs, other users' test runs) never share one.

cgroup v2 is used where the memory and pids controllers are enabled for our
cgroup's children (a delegated subtree); otherwise the v1 ``memory`` and
``pids`` hierarchies where they are mounted and writable; otherwise none (the
caller then keeps per-process limits and no forking by default).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field

from evolve.sandbox import oslevel

ROOT = "/sys/fs/cgroup"
PREFIX = "evolve-sandbox-"


@dataclass
class CandidateCgroup:
    version: int
    dirs: list[str]  # one per hierarchy (v1: memory, pids; v2: one)
    fds: list[int] = field(default_factory=list)  # kept open: usable after the view hides /sys
    _kills: int = 0
    _events: int = -1  # the OOM count's file, kept open and read again from its start
    _pids_max: int = -1  # pids.max, kept open: the zygote writes it twice per candidate

    def join(self) -> None:
        """Called by the forker once, or by a child the zygote forks itself (still privileged):
        itself and all it starts are counted here."""
        for fd in self.fds:
            _write_at(fd, "cgroup.procs", "0")

    def limit_tasks(self, count: int) -> None:
        """``pids.max``: tasks in the cgroup at once (forks beyond it fail with EAGAIN)."""
        if self._pids_max < 0:  # v1: [memory, pids]; v2: the one dir
            self._pids_max = os.open("pids.max", os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.fds[-1])
        os.write(self._pids_max, str(count).encode())  # each write is read whole, at any offset

    def oom_kills(self) -> int:
        """OOM kills inside this cgroup since the last call."""
        try:
            if self._events < 0:
                name = "memory.events" if self.version == 2 else "memory.oom_control"
                self._events = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fds[0])
            text = os.pread(self._events, 1 << 16, 0).decode()  # a cgroup file is made afresh at offset 0
            total = next((int(line.split()[1]) for line in text.splitlines()
                          if line.startswith("oom_kill ")), 0)
        except (OSError, ValueError, IndexError, StopIteration):
            return 0
        new, self._kills = total - self._kills, total
        return new

    def remove(self) -> None:
        for fd in [*self.fds, self._events, self._pids_max]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds, self._events, self._pids_max = [], -1, -1
        for d in self.dirs:
            with contextlib.suppress(OSError):
                os.rmdir(d)


def create(memory_mb: int, max_processes: int) -> tuple[CandidateCgroup | None, str]:
    """(cgroup, how it limits) or (None, why there is none)."""
    problems = []
    for make in (_v2, _v1):
        try:
            group = make(memory_mb, max_processes)
        except OSError as exc:
            problems.append(f"{make.__name__[1:]}: {exc.strerror or exc}")
            continue
        if group is not None:
            group.fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) for d in group.dirs]
            group.oom_kills()  # the baseline
            kind = "v2" if group.version == 2 else "v1 memory+pids"
            return group, (f"cgroup {kind}: {memory_mb} MiB and {max_processes} tasks for all of "
                           "a candidate's processes together")
    why = "; ".join(problems) or "no writable cgroup memory and pids controllers"
    return None, f"no cgroup limits ({why}): memory is limited per process and forking is " \
                 "refused unless max_processes is raised"


def _own_path(controller: str) -> str | None:
    """Our cgroup's path in a hierarchy ('' = v2)."""
    for line in oslevel.read_proc("self/cgroup").splitlines():
        _, names, path = line.split(":", 2)
        if (controller == "" and names == "") or controller in names.split(","):
            return path
    return None


def _v2(memory_mb: int, max_processes: int) -> CandidateCgroup | None:
    path = _own_path("")
    for mount in (ROOT, f"{ROOT}/unified"):
        if path is None or not os.path.exists(f"{mount}/cgroup.controllers"):
            continue
        parent = mount + path.rstrip("/")
        enabled = _read(f"{parent}/cgroup.subtree_control").split()
        if not {"memory", "pids"} <= set(enabled):
            continue
        d = _make(parent)
        try:
            _write(f"{d}/memory.max", str(memory_mb << 20))
            with contextlib.suppress(OSError):
                _write(f"{d}/memory.swap.max", "0")
            _write(f"{d}/memory.oom.group", "1")
            _write(f"{d}/pids.max", str(max_processes))
        except OSError:
            os.rmdir(d)
            raise
        return CandidateCgroup(2, [d])
    return None


def _v1(memory_mb: int, max_processes: int) -> CandidateCgroup | None:
    made: list[str] = []
    try:
        for controller in ("memory", "pids"):
            path = _own_path(controller)
            mount = f"{ROOT}/{controller}"
            if path is None or not os.path.exists(f"{mount}/cgroup.procs"):
                return None
            made.append(_make(mount + path.rstrip("/")))
        memory, pids = made
        _write(f"{memory}/memory.limit_in_bytes", str(memory_mb << 20))
        with contextlib.suppress(OSError):  # only with swap accounting
            _write(f"{memory}/memory.memsw.limit_in_bytes", str(memory_mb << 20))
        _write(f"{pids}/pids.max", str(max_processes))
    except OSError:
        for d in made:
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise
    return CandidateCgroup(1, made)


def _make(parent: str) -> str:
    """A fresh cgroup under ``parent``; empty leftovers of dead zygotes are removed first."""
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            if entry.name.startswith(PREFIX) and entry.is_dir() and not _alive(entry.name):
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)  # fails while processes are left: then it stays
    d = f"{parent}/{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    os.mkdir(d)
    return d


def _alive(name: str) -> bool:
    try:
        os.kill(int(name[len(PREFIX):].split("-")[0]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _read_at(dir_fd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        return os.read(fd, 1 << 16).decode()
    finally:
        os.close(fd)


def _write_at(dir_fd: int, name: str, text: str) -> None:
    fd = os.open(name, os.O_WRONLY, dir_fd=dir_fd)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
