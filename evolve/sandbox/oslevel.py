"""Linux calls the standard library does not expose (prctl, unshare, mount), and uid slots.

Everything here is best effort at the call site: callers decide whether a
failure weakens isolation (and report it) or must fail closed.
"""

from __future__ import annotations

import _random
import contextlib
import ctypes
import errno
import fcntl
import os
import platform
import pwd
import signal
import stat
import sys
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MNT_DETACH = 2

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

SYS_CLOSE_RANGE = 436  # same number on x86_64 and aarch64 (Linux >= 5.9)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())

# Candidate uids: 61000+slot first.  Stay below systemd's DynamicUser range (61184-65519).
UID_BASE = 61000
UID_COUNT = 184
UID_LOCK_DIR = "/run/evolve-sandbox"

_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def scrub(data: bytes | bytearray) -> None:
    """Zero ``data``'s bytes in place, just before its last reference is dropped: freed memory
    keeps its bytes, and every child forked later has a copy of them (``Zygote._answer``).
    Only for objects this process made and holds alone: a ``bytes`` is immutable to everyone
    else.  Objects of 0 or 1 bytes are CPython's shared singletons and are left alone."""
    if len(data) < 2:
        return
    if isinstance(data, bytearray):
        ctypes.memset((ctypes.c_char * len(data)).from_buffer(data), 0, len(data))
    else:
        ctypes.memset(ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value, 0, len(data))


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg: int = 0) -> None:
    c_ul = ctypes.c_ulong
    _check(_c().prctl(ctypes.c_int(option), c_ul(arg), c_ul(0), c_ul(0), c_ul(0)), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_c().unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | bytes, target: str | bytes, fstype: str | bytes | None, flags: int,
          data: str | bytes | None) -> None:
    enc = os.fsencode
    rc = _c().mount(
        enc(source),
        enc(target),
        enc(fstype) if fstype else None,
        ctypes.c_ulong(flags),
        enc(data) if data else None,
    )
    _check(rc, f"mount {os.fsdecode(target)}")


def setns(fd: int, nstype: int) -> None:
    _check(_c().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def umount_detach(target: str) -> None:
    _check(_c().umount2(os.fsencode(target), ctypes.c_int(MNT_DETACH)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    if SYS_PIVOT_ROOT is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown syscall number on {platform.machine()}")
    enc = os.fsencode
    _check(_c().syscall(ctypes.c_long(SYS_PIVOT_ROOT), enc(new_root), enc(put_old)), "pivot_root")


SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(platform.machine())


def drop_capabilities() -> None:
    """Empty effective, permitted and inheritable sets (e.g. in our own user namespace)."""
    if SYS_CAPSET is None:
        raise OSError(errno.ENOSYS, f"capset: unknown syscall number on {platform.machine()}")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # two {effective, permitted, inheritable}, all zero
    _check(_c().syscall(ctypes.c_long(SYS_CAPSET), header, data), "capset")


_proc_fd = -1  # the host's /proc, kept open by the zygote: its view has no /proc


def keep_proc(path: str = "/proc") -> None:
    global _proc_fd
    if _proc_fd >= 0:
        os.close(_proc_fd)
    _proc_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def read_proc(relative: str) -> str:
    """``/proc/<relative>`` through the kept fd (or the path, before keep_proc)."""
    if _proc_fd < 0:
        with open(f"/proc/{relative}") as f:
            return f.read()
    fd = os.open(relative, os.O_RDONLY, dir_fd=_proc_fd)
    try:
        return os.read(fd, 1 << 20).decode()
    finally:
        os.close(fd)


# A first read of a kept /proc file this size, then the whole of it only if it may not have fitted:
# a buffer over malloc's mmap threshold (128 KiB) is an mmap, a page fault, an mremap and a
# munmap for each read (12 us against 0.5 us for a /proc/sysvipc file on this VM, 4 per candidate).
SMALL_READ = 1 << 14
_SLACK = 64  # seq_file returns whole records: a record longer than this could have been left out


def pread_whole(fd: int) -> bytes:
    """The whole content of a /proc file kept open (``open_proc``), read from offset 0 (each read
    makes it afresh); in one read if it fits in ``SMALL_READ`` bytes, else in one of 1 MiB."""
    data = os.pread(fd, SMALL_READ, 0)
    if len(data) > SMALL_READ - _SLACK:
        data = os.pread(fd, 1 << 20, 0)
    return data


def open_proc(relative: str) -> int:
    """A read-only fd of ``/proc/<relative>`` (through the kept fd, or the path before keep_proc)."""
    if _proc_fd < 0:
        return os.open(f"/proc/{relative}", os.O_RDONLY | os.O_CLOEXEC)
    return os.open(relative, os.O_RDONLY | os.O_CLOEXEC, dir_fd=_proc_fd)


def write_proc(relative: str, text: str) -> None:
    if _proc_fd < 0:
        with open(f"/proc/{relative}", "w") as f:
            f.write(text)
        return
    fd = os.open(relative, os.O_WRONLY, dir_fd=_proc_fd)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)



_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def rmtree(path: str, dir_fd: int | None = None) -> None:
    """``shutil.rmtree(path, ignore_errors=True)`` without recursion.

    CPython 3.11's rmtree recurses a frame per level of dirs: a candidate's chain of 3,000 dirs
    in its work dir (where there is no mount namespace: root without CAP_SYS_ADMIN, as in Docker)
    raised RecursionError out of the zygote's clean-up, which died (the next candidate's run came
    back a crash, "sandbox worker failed"), and out of ``Sandbox.close`` in the controller
    (sixteenth red team). Here one dir fd is open at a time, opened by name from the one above
    (never through a symlink) and left through '..', which must be the very dir it came from
    (device and inode): where something moved the tree meanwhile, the removal stops there, so it
    never acts in a dir it did not open on the way down. What cannot be removed stays, as with
    ``ignore_errors``.
    """
    try:
        fd = os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path, dir_fd=dir_fd)  # not a dir (or gone)
        return
    # (name in the dir above, dirs left to remove inside, (st_dev, st_ino) of this dir)
    below = [("", _clear(fd), _identity(fd))]
    try:
        while True:
            name, todo, _ = below[-1]
            if todo:
                sub = todo.pop()
                try:
                    inner = os.open(sub, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # gone, or not ours to open: it stays
                os.close(fd)
                fd = inner
                below.append((sub, _clear(fd), _identity(fd)))
                continue
            below.pop()
            if not below:
                break
            up = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = up
            if _identity(fd) != below[-1][2]:
                return  # moved meanwhile: not the dir we came down from
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=fd)
    except OSError:
        return  # as ignore_errors: what is left stays
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(path, dir_fd=dir_fd)


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _clear(fd: int) -> list[str]:
    """Unlink every entry of the dir ``fd`` that is not a dir; the names of those that are."""
    dirs = []
    with contextlib.suppress(OSError), os.scandir(fd) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(entry.name)
                else:
                    os.unlink(entry.name, dir_fd=fd)
    return dirs

def close_fds_from(low: int) -> None:
    """Close every fd >= low: one close_range(2) call instead of a loop over RLIMIT_NOFILE."""
    fd_closer(low)()


def fd_closer(low: int) -> Callable[[], None]:
    """``close_fds_from(low)`` with its ctypes arguments made once (``prepared``)."""
    close_range = prepared("syscall", ctypes.c_long(SYS_CLOSE_RANGE), ctypes.c_uint(low),
                           ctypes.c_uint(0xFFFFFFFF), ctypes.c_uint(0), what="close_range")

    def close() -> None:
        try:
            close_range()
        except OSError:
            os.closerange(low, max(os.sysconf("SC_OPEN_MAX"), 4096))

    return close


def prepared(name: str, *args: Any, what: str = "") -> Callable[[], None]:
    """``libc.<name>(*args)`` as a call that raises OSError if it returns non-zero; ``args`` are
    ctypes values (or bytes) made once, here.

    For a candidate child's lock-down, whose calls the zygote prepares before it forks: every
    object the child makes writes pages it shares with the forker (copy-on-write faults). Made in
    the child, a ``prctl`` built five ctypes objects and its error text each time: its first in
    a fresh child cost ~65 faults and ~0.2 ms of CPU, a prepared one ~20 and ~0.05 ms.
    """
    fn, get_errno, strerror, label = getattr(_c(), name), ctypes.get_errno, os.strerror, what or name

    def call() -> None:
        if fn(*args) != 0:
            err = get_errno()
            raise OSError(err, f"{label}: {strerror(err)}")

    return call


def prctl_call(option: int, arg: int = 0) -> Callable[[], None]:
    """``prctl(option, arg)``, prepared (``prepared``)."""
    c_ul = ctypes.c_ulong
    return prepared("prctl", ctypes.c_int(option), c_ul(arg), c_ul(0), c_ul(0), c_ul(0), what=f"prctl({option})")


def unshare_call(flags: int) -> Callable[[], None]:
    """``unshare(flags)``, prepared (``prepared``)."""
    return prepared("unshare", ctypes.c_int(flags))


def mount_call(source: str | bytes, target: str | bytes, fstype: str | bytes | None, flags: int,
               data: str | bytes | None) -> Callable[[], None]:
    """``mount(...)``, prepared (``prepared``); its error names the target, as ``mount`` does."""
    enc = os.fsencode
    return prepared("mount", enc(source), enc(target), enc(fstype) if fstype else None, ctypes.c_ulong(flags),
                    enc(data) if data else None, what=f"mount {os.fsdecode(target)}")


_libc_py: Any = None  # libc through ctypes.PyDLL: the GIL stays held across fork, as in os.fork

CLONE_PARENT = 0x00008000
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine())


def _py_libc() -> Any:
    global _libc_py
    if _libc_py is None:
        _libc_py = ctypes.PyDLL(None, use_errno=True)
        _libc_py.fork.restype, _libc_py.fork.argtypes = ctypes.c_int, ()
        _libc_py.syscall.restype = ctypes.c_long
    return _libc_py


def light_fork() -> int:
    """fork(2) as ``os.fork`` does it, but without CPython's after-fork hooks in the child.

    Those hooks (``threading``'s re-initialisation above all) run Python code that
    writes to a few hundred pages shared with the parent, each one a copy-on-write
    fault: about 190 faults, a third of a millisecond, per candidate child. They exist
    to repair a multi-threaded parent's locks and thread list; the zygote has one
    thread and calls this outside any import or lock, so the child's copy of that
    state is already right. The one hook whose effect a candidate could notice,
    ``random``'s fresh seed, is redone here (in C: ~17 faults).
    """
    return _forked(_py_libc().fork(), "fork")


def clone_parent(reseed: bool = True) -> int:
    """``light_fork``, but the child is our parent's child (clone with CLONE_PARENT).

    For the forker (``forker.py``): the candidate child it makes is the zygote's own.
    Raw clone skips glibc's fork bookkeeping too; in a single-threaded process all
    of it is already right except the thread id glibc caches, which glibc >= 2.34
    no longer uses to signal the calling thread (raise and abort ask the kernel).
    ``reseed=False``: the child keeps the caller's ``random`` state, which the caller
    reseeds itself (``reseed_random``) before it clones again.
    """
    if SYS_CLONE is None:
        raise OSError(errno.ENOSYS, f"clone: unknown syscall number on {platform.machine()}")
    flags = CLONE_PARENT | signal.SIGCHLD
    zero = ctypes.c_long(0)
    return _forked(_py_libc().syscall(ctypes.c_long(SYS_CLONE), ctypes.c_long(flags), zero, zero, zero, zero),
                   "clone", reseed)


def clone_parent_call() -> Callable[[], int]:
    """``clone_parent(reseed=False)`` with its arguments made once, for the forker's loop.

    Every page the forker writes after a clone is a copy-on-write fault (the new child shares
    it), and each call of ``clone_parent`` made four ctypes objects (pages of their pools
    written) and ran more of our Python."""
    if SYS_CLONE is None:
        raise OSError(errno.ENOSYS, f"clone: unknown syscall number on {platform.machine()}")
    syscall, get_errno = _py_libc().syscall, ctypes.get_errno
    zero = ctypes.c_long(0)
    args = (ctypes.c_long(SYS_CLONE), ctypes.c_long(CLONE_PARENT | signal.SIGCHLD), zero, zero, zero, zero)

    def clone() -> int:
        pid: int = syscall(*args)
        if pid < 0:
            err = get_errno()
            raise OSError(err, f"clone: {os.strerror(err)}")
        return pid

    return clone


def namespace_calls(flags: int, back_fd: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """``unshare(flags)`` and ``setns(back_fd, flags)`` with their arguments made once (the
    forker's pair around each clone, as ``clone_parent_call``)."""
    libc, get_errno = _c(), ctypes.get_errno
    c_unshare, c_setns = libc.unshare, libc.setns
    kind, back = ctypes.c_int(flags), ctypes.c_int(back_fd)

    def enter() -> None:
        if c_unshare(kind) != 0:
            err = get_errno()
            raise OSError(err, f"unshare: {os.strerror(err)}")

    def leave() -> None:
        if c_setns(back, kind) != 0:
            err = get_errno()
            raise OSError(err, f"setns: {os.strerror(err)}")

    return enter, leave


def clone_parent_is_safe(libc: tuple[str, str] | None = None) -> bool:
    """Whether ``clone_parent`` may be used here: a known syscall number, and glibc >= 2.34
    (older glibc signals the calling thread by the tid it cached at fork, which raw clone
    leaves stale). Elsewhere (musl, older glibc) the zygote forks its children itself."""
    name, version = libc if libc is not None else platform.libc_ver()
    if SYS_CLONE is None or name != "glibc":
        return False
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (2, 34)


def _forked(pid: int, what: str, reseed: bool = True) -> int:
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    if pid == 0 and reseed:
        reseed_random()
    return pid


def reseed_random() -> None:
    """What ``random``'s own after-fork hook does: ``Random.seed(None)`` on the shared instance."""
    module = sys.modules.get("random")
    if module is not None:
        _random.Random.seed(module._inst, None)  # the C seed from os.urandom, as Random.seed(None)
        module._inst.gauss_next = None


def reseeder() -> Callable[[], None]:
    """``reseed_random`` with the instance and its method bound once (for the forker's loop)."""
    module = sys.modules.get("random")
    if module is None:
        return lambda: None
    seed, instance = _random.Random.seed, module._inst

    def reseed() -> None:
        seed(instance, None)
        instance.gauss_next = None

    return reseed


def make_non_dumpable() -> bool:
    """Make this process's /proc/<pid>/{environ,mem,fd} unreadable to same-uid processes.

    It also refuses ptrace from them (and core dumps).  False if prctl failed.
    """
    try:
        prctl(PR_SET_DUMPABLE, 0)
    except OSError:
        return False
    return True


# This process's /proc/thread-self/children, kept open (the zygote reads it after every
# candidate); keyed by pid and /proc fd, so a fork or a new /proc opens it afresh.
_children_file: tuple[int, int, int] | None = None  # (pid, _proc_fd, fd)


def children_of_self() -> list[int]:
    """Pids of this (single-threaded) process's live children."""
    global _children_file
    me = os.getpid()
    try:
        if _children_file is None or _children_file[:2] != (me, _proc_fd):
            if _children_file is not None and _children_file[0] == me:
                with contextlib.suppress(OSError):
                    os.close(_children_file[2])
            _children_file = (me, _proc_fd, open_proc("thread-self/children"))
        return [int(p) for p in pread_whole(_children_file[2]).split()]
    except OSError:
        pass
    kids = []  # kernel without CONFIG_PROC_CHILDREN: scan /proc
    for name in os.listdir("/proc" if _proc_fd < 0 else _proc_fd):
        if name.isdigit():
            try:
                ppid = int(read_proc(f"{name}/stat").rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == me:
                kids.append(int(name))
    return kids


def kill_quietly(pid: int, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)


def claim_uid(slot: int) -> tuple[int, int | None]:
    """Pick an unprivileged uid for a root sandbox and hold a lock on it.

    The zygote kills *every* process of that uid, so two sandboxes (in this or
    another evolve run on the machine) must never share one.  Returns the uid
    and the lock's fd (None when the lock directory is unusable: then the uid
    is just UID_BASE+slot).
    """
    preferred = UID_BASE + (slot % UID_COUNT)
    try:
        os.makedirs(UID_LOCK_DIR, mode=0o700, exist_ok=True)
        st = os.lstat(UID_LOCK_DIR)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            return preferred, None
    except OSError:
        return preferred, None
    for uid in [preferred, *range(UID_BASE, UID_BASE + UID_COUNT)]:
        try:
            pwd.getpwuid(uid)
            continue  # a real account: never ours to kill
        except KeyError:
            pass
        fd = os.open(f"{UID_LOCK_DIR}/uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return uid, fd
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
    raise OSError(errno.EBUSY, f"all {UID_COUNT} sandbox uids from {UID_BASE} are in use")
