"""Namespaces and clean-up for the zygote: what keeps candidates apart from the host and
from each other.  Root only, except the process sweep and directory removal.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable

from evolve.sandbox import oslevel

# World-writable places a candidate could use to leave state for later candidates.
SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")
SWEEP_LIMIT_S = 5.0
IPC_RMID = 0


def enter_namespaces(file_size_mb: int, hide_paths: tuple[str, ...],
                     isolation: list[str]) -> tuple[tuple[str, ...], str | None]:
    """No network; own /proc, SysV IPC and a fresh tmpfs on every world-writable dir;
    ``hide_paths`` covered.  Called once by the zygote, so children pay nothing.

    Returns (private dirs, why a requested path could not be hidden).
    """
    try:
        oslevel.unshare(oslevel.CLONE_NEWNET)
        isolation.append("no network (empty network namespace)")
    except OSError as exc:
        isolation.append(f"network NOT isolated ({exc.strerror})")
    try:
        oslevel.unshare(oslevel.CLONE_NEWNS | oslevel.CLONE_NEWIPC)
        # Without this, the mounts below would propagate back into the host's namespace.
        oslevel.mount("none", "/", None, oslevel.MS_REC | oslevel.MS_PRIVATE, None)
    except OSError as exc:
        isolation.append(f"shared /tmp, /dev/shm and SysV IPC ({exc.strerror}); what the "
                         "candidate uid leaves there is deleted after each run")
        return (), None
    flags = oslevel.MS_NOSUID | oslevel.MS_NODEV
    try:
        oslevel.mount("proc", "/proc", "proc", flags | oslevel.MS_NOEXEC, "hidepid=2")
        isolation.append("/proc shows candidates only their own processes")
    except OSError as exc:
        isolation.append(f"/proc lists all processes ({exc.strerror})")
    for p in hide_paths:  # before the tmpfs mounts, which may cover some of them
        try:
            if os.path.isdir(p):
                ro = flags | oslevel.MS_RDONLY | oslevel.MS_NOEXEC
                oslevel.mount("tmpfs", p, "tmpfs", ro, "size=4k,nr_inodes=2,mode=555")
            else:
                oslevel.mount("/dev/null", p, None, oslevel.MS_BIND, None)
        except OSError as exc:
            return (), f"cannot hide {p}: {exc.strerror}"
    size = max(64, 4 * file_size_mb)
    private = []
    for d in shared_dirs():
        with contextlib.suppress(OSError):
            oslevel.mount("tmpfs", d, "tmpfs", flags, f"size={size}m,nr_inodes=4096,mode=1777")
            private.append(d)
    isolation.append("private " + ", ".join(private) + " and SysV IPC")
    isolation.extend(f"hidden {p}" for p in hide_paths)
    return tuple(private), None


def scrub_shared(private_dirs: tuple[str, ...], keep: str, uid: int | None) -> None:
    """Nothing a candidate leaves in shared places may reach the next candidate."""
    if private_dirs:  # our own tmpfs mounts: everything in them but ``keep`` goes
        for d in private_dirs:
            with os.scandir(d) as entries:
                for entry in entries:
                    if entry.path != keep:
                        _remove_entry(entry)
        if any(_ipc_in_use(kind) for kind in ("shm", "sem", "msg")):
            oslevel.unshare(oslevel.CLONE_NEWIPC)  # the old namespace dies with its objects
    elif uid is not None:  # the host's dirs and IPC: only what the candidate uid owns
        for d in shared_dirs():
            with contextlib.suppress(OSError), os.scandir(d) as entries:
                for entry in entries:  # top level only
                    with contextlib.suppress(OSError):
                        if entry.stat(follow_symlinks=False).st_uid == uid:
                            _remove_entry(entry)
        _remove_ipc_of(uid)


def sweep(pgid: int | None, uid: int | None) -> int:
    """Kill and reap every child left (the caller is a subreaper, so that is every
    descendant); returns how many had left the candidate's process group."""
    if pgid is not None:
        oslevel.kill_quietly(pgid, group=True)
    escaped: set[int] = set()
    uid_killed = False
    end = time.monotonic() + SWEEP_LIMIT_S
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0]:
                continue
        except ChildProcessError:
            return len(escaped)  # no children at all: nothing survived
        kids = oslevel.children_of_self()
        for kid in kids:
            with contextlib.suppress(OSError):
                if os.getpgid(kid) != pgid:
                    escaped.add(kid)
            oslevel.kill_quietly(kid, group=True)
            oslevel.kill_quietly(kid)
        if escaped and not uid_killed and uid is not None:
            uid_killed = True
            kill_uid(uid)  # escapees may have spawned more, anywhere
        if time.monotonic() > end:
            print(f"zygote: processes {kids} survived SIGKILL", file=sys.stderr)
            return len(escaped)
        time.sleep(0.0005)


def kill_uid(uid: int) -> None:
    """kill(-1) as ``uid``: every process of that uid dies, wherever it hides."""

    def kill_all() -> None:
        for _ in range(3):
            with contextlib.suppress(OSError):
                os.kill(-1, signal.SIGKILL)

    as_uid(uid, kill_all)


def as_uid(uid: int, action: Callable[[], None]) -> None:
    """Run ``action`` in a forked process that has become ``uid``; wait for it."""
    exit_ = os._exit
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            action()
        finally:
            exit_(0)
    os.waitpid(pid, 0)


def shared_dirs() -> list[str]:
    dirs: list[str] = []
    for d in SHARED_DIRS:
        with contextlib.suppress(OSError):
            real = os.path.realpath(d)
            if os.path.isdir(real) and os.stat(real).st_mode & 0o002 and real not in dirs:
                dirs.append(real)
    return dirs


def _ipc_in_use(kind: str) -> bool:
    try:
        with open(f"/proc/sysvipc/{kind}") as f:
            return len(f.readlines()) > 1  # a header line, then one line per object
    except OSError:
        return False


def _remove_ipc_of(uid: int) -> None:
    """IPC_RMID every SysV segment, semaphore set and queue the uid created or owns.

    Done as that uid: root without CAP_SYS_ADMIN may not remove other users' objects.
    """
    found = []
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                header, *rows = [line.split() for line in f]
        except (OSError, ValueError):
            continue
        col = {name: k for k, name in enumerate(header)}
        for row in rows:
            with contextlib.suppress(ValueError, IndexError, KeyError):
                if uid in (int(row[col["uid"]]), int(row[col["cuid"]])):
                    found.append((kind, int(row[1])))  # column 2 is the id
    if found:
        as_uid(uid, lambda: _ipc_rmid(found))


def _ipc_rmid(found: list[tuple[str, int]]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for kind, ident in found:
        if kind == "shm":
            libc.shmctl(ident, IPC_RMID, None)
        elif kind == "sem":
            libc.semctl(ident, 0, IPC_RMID)
        else:
            libc.msgctl(ident, IPC_RMID, None)


def _remove_entry(entry: os.DirEntry[str]) -> None:
    if entry.is_dir(follow_symlinks=False):
        remove_tree(entry.path)
    else:
        with contextlib.suppress(OSError):
            os.unlink(entry.path)


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path) and os.geteuid() != 0:
        # Same-uid candidates can chmod their dirs to 000; give ourselves access
        # back (they are dead, so nothing can swap a dir for a symlink meanwhile).
        stack = [path]
        while stack:
            d = stack.pop()
            with contextlib.suppress(OSError):
                os.chmod(d, 0o700)
                stack.extend(e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False))
        shutil.rmtree(path, ignore_errors=True)
