"""Namespaces and clean-up for the zygote: what keeps candidates apart from the host and
from each other.  Root only, except the process sweep and directory removal.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Collection
from stat import S_IMODE, S_ISDIR

from evolve.sandbox import oslevel, view

# World-writable places a candidate could use to leave state for later candidates.
SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")
SWEEP_LIMIT_S = 5.0
IPC_RMID = 0


Report = dict[str, tuple[bool, str]]  # what is in force: name -> (yes/no, how or why not)


def enter_namespaces(file_size_mb: int, hide_paths: tuple[str, ...], packages: tuple[str, ...],
                     roots: list[str], scratch: str, report: Report) -> tuple[tuple[str, ...], str | None]:
    """Own network, IPC and mount namespaces (as root, or in a fresh user namespace),
    then the allow-list filesystem view.  Called once by the zygote, so children pay
    nothing.  ``packages``: the names of those a candidate may import, ``roots`` their files
    (``view.package_roots``).  Returns (private writable dirs, why a requested path could not
    be hidden).
    """
    flags = oslevel.CLONE_NEWNS | oslevel.CLONE_NEWIPC
    own_proc = False
    if os.geteuid() != 0:
        uid, gid = os.getuid(), os.getgid()
        try:
            oslevel.unshare(oslevel.CLONE_NEWUSER | oslevel.CLONE_NEWNET | oslevel.CLONE_NEWPID | flags)
            oslevel.write_proc("self/setgroups", "deny")
            oslevel.write_proc("self/uid_map", f"{uid} {uid} 1")
            oslevel.write_proc("self/gid_map", f"{gid} {gid} 1")
            _become_pid_one()
            own_proc = True
        except OSError as exc:
            why = f"no user namespace here ({exc.strerror})"
            report["filesystem"] = (False, f"NOT isolated: {why}; candidates can read what you can")
            report["network"] = (False, f"NOT isolated: {why}")
            report["pid namespace"] = (False, f"NOT isolated: {why}")
            return (), None
        report["network"] = (True, "empty network namespace (no network, not even loopback)")
    else:
        try:
            oslevel.unshare(oslevel.CLONE_NEWNET)
            report["network"] = (True, "empty network namespace (no network, not even loopback)")
        except OSError as exc:
            report["network"] = (False, f"NOT isolated ({exc.strerror})")
        try:
            oslevel.unshare(flags)
        except OSError as exc:
            report["filesystem"] = (False, f"NOT isolated: no mount namespace ({exc.strerror}); "
                                           "candidates can read every world-readable file")
            report["pid namespace"] = (False, f"NOT isolated ({exc.strerror})")
            return (), None
    # Without this, the mounts below would propagate back into the host's namespace.
    oslevel.mount("none", "/", None, oslevel.MS_REC | oslevel.MS_PRIVATE, None)
    if own_proc:  # our pids are those of our own pid namespace: a /proc of it, outside the view
        proc = os.path.join(scratch, "proc")
        os.mkdir(proc, 0o700)
        oslevel.mount("proc", proc, "proc", oslevel.MS_NOSUID | oslevel.MS_NODEV | oslevel.MS_NOEXEC, None)
        oslevel.keep_proc(proc)
    else:
        oslevel.keep_proc()
    report["pid namespace"] = _probe_pid_namespace()
    try:
        private = view.enter_view(scratch, file_size_mb, roots, hide_paths)
    except OSError as exc:
        report["filesystem"] = (False, f"NOT isolated: the view could not be built ({exc.strerror}); "
                                       "candidates can read every world-readable file")
        return _fallback_mounts(file_size_mb, hide_paths, report)
    report["filesystem"] = (True, "allow-list view, private copies in memory: the Python runtime, "
                                  + ", ".join(packages) + ", the system libraries they need; "
                                  "private /tmp, /var/tmp, /dev/shm; no /proc")
    return private, None


def _become_pid_one() -> None:
    """After unshare(CLONE_NEWPID) in a user namespace: go on as pid 1 of the new pid
    namespace (whose owner may create the per-candidate ones).  The original process
    only waits and passes the exit status on; killing it kills us (PDEATHSIG)."""
    exit_ = os._exit
    pid = os.fork()
    if pid:
        code = 1
        try:
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF
        finally:
            exit_(code)
    oslevel.prctl(oslevel.PR_SET_PDEATHSIG, signal.SIGKILL)


def _probe_pid_namespace() -> tuple[bool, str]:
    try:
        fresh_pid_namespace()
        restore_pid_namespace()
    except OSError as exc:
        return False, f"NOT isolated ({exc.strerror})"
    return True, "own pid namespace per candidate (it sees and signals only its own processes)"


_own_pid_ns = -1


def fresh_pid_namespace() -> None:
    """The next fork starts a new pid namespace (its pid 1).  Undo with restore_pid_namespace."""
    global _own_pid_ns
    if _own_pid_ns < 0:
        _own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    oslevel.unshare(oslevel.CLONE_NEWPID)


def restore_pid_namespace() -> None:
    """Later forks (helpers) are in our own pid namespace again."""
    oslevel.setns(_own_pid_ns, oslevel.CLONE_NEWPID)


def pid_namespace_calls() -> tuple[Callable[[], None], Callable[[], None]]:
    """``fresh_pid_namespace`` and ``restore_pid_namespace`` with their arguments made once."""
    global _own_pid_ns
    if _own_pid_ns < 0:
        _own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    return oslevel.namespace_calls(oslevel.CLONE_NEWPID, _own_pid_ns)


def _fallback_mounts(file_size_mb: int, hide_paths: tuple[str, ...],
                     report: Report) -> tuple[tuple[str, ...], str | None]:
    """No view: at least a private /tmp and friends, and empty mounts over ``hide_paths``."""
    flags = oslevel.MS_NOSUID | oslevel.MS_NODEV
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
    return tuple(private), None


def scrub_shared(private_dirs: tuple[str, ...], keep: str, uid: int | None) -> bool:
    """Nothing a candidate leaves in shared places may reach the next candidate.

    True if the IPC namespace was replaced: a child forked before is still in the old one.
    """
    if private_dirs:  # our own tmpfs mounts: everything in them but ``keep`` goes
        for d in private_dirs:
            with os.scandir(d) as entries:
                for entry in entries:
                    if entry.path != keep:
                        _remove_entry(entry)
        if any(_ipc_in_use(kind) for kind in ("shm", "sem", "msg")):
            oslevel.unshare(oslevel.CLONE_NEWIPC)  # the old namespace dies with its objects
            _forget_ipc_files()  # they show the namespace they were opened in
            return True
    elif uid is not None:  # the host's dirs and IPC: only what the candidate uid owns
        for d in shared_dirs():
            with contextlib.suppress(OSError), os.scandir(d) as entries:
                for entry in entries:  # top level only
                    with contextlib.suppress(OSError):
                        if entry.stat(follow_symlinks=False).st_uid == uid:
                            _remove_entry(entry)
        _remove_ipc_of(uid)
    return False


def keep_dir(path: str, mode: int, ino: int) -> int:
    """``path`` as the dir of inode ``ino`` with ``mode``, else a fresh one; its inode.

    For the work dirs' parent: a candidate of the zygote's own uid (user namespaces) could
    chmod it to 000 (later candidates' HOME unreachable) or put a symlink in its place (later
    work dirs made elsewhere and scrubbed away: the sandbox refused every later run).
    """
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and st.st_ino == ino and S_ISDIR(st.st_mode):
        if S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
        return ino
    if st is not None and S_ISDIR(st.st_mode):
        remove_tree(path)
    elif st is not None:
        os.unlink(path)
    os.mkdir(path, mode)
    return os.lstat(path).st_ino


def tidy_base(base: str, keep: Collection[str]) -> None:
    """Remove every entry of the work dirs' parent but the names in ``keep``.

    The shared-dir scrub keeps that dir whole.  A candidate of the zygote's own uid (user
    namespaces) may write into it, and a file it left there reached every later candidate.
    """
    with contextlib.suppress(OSError), os.scandir(base) as entries:
        for entry in entries:
            if entry.name not in keep:
                _remove_entry(entry)


def empty_dir(path: str) -> None:
    """Remove everything inside ``path`` (a spare's work dir, once the last candidate is dead)."""
    with contextlib.suppress(OSError), os.scandir(path) as entries:
        for entry in entries:
            _remove_entry(entry)


def sweep(pgid: int | None, uid: int | None, keep: Collection[int] = ()) -> int:
    """Kill and reap every child left but those in ``keep`` (the caller is a subreaper, so
    that is every descendant); returns how many had left the candidate's process group."""
    if pgid is not None:
        oslevel.kill_quietly(pgid, group=True)
    escaped: set[int] = set()
    uid_killed = False
    end = time.monotonic() + SWEEP_LIMIT_S
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0]:  # a dead one of ``keep`` is reaped too: its owner sees it gone
                continue
        except ChildProcessError:
            return len(escaped)  # no children at all: nothing survived
        kids = [kid for kid in oslevel.children_of_self() if kid not in keep]
        if not kids:
            return len(escaped)
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


# /proc/sysvipc/{shm,sem,msg} of our IPC namespace, kept open: read again from offset 0 after
# every candidate, each is made afresh (three opens fewer per candidate).
_ipc_files: dict[str, int] = {}


def _ipc_in_use(kind: str) -> bool:
    try:
        fd = _ipc_files.get(kind)
        if fd is None:
            fd = _ipc_files[kind] = oslevel.open_proc(f"sysvipc/{kind}")
        # A header, then one line per object: any object shows in the first SMALL_READ bytes.
        return len(os.pread(fd, oslevel.SMALL_READ, 0).splitlines()) > 1
    except OSError:
        return False


def _forget_ipc_files() -> None:
    for fd in _ipc_files.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _ipc_files.clear()


def _remove_ipc_of(uid: int) -> None:
    """IPC_RMID every SysV segment, semaphore set and queue the uid created or owns.

    Done as that uid: root without CAP_SYS_ADMIN may not remove other users' objects.
    """
    found = []
    for kind in ("shm", "sem", "msg"):
        try:
            header, *rows = [line.split() for line in oslevel.read_proc(f"sysvipc/{kind}").splitlines()]
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
    with contextlib.suppress(OSError):
        os.rmdir(path)  # most work dirs are empty: no tree walk
        return
    oslevel.rmtree(path)  # no recursion: a candidate's tree may be thousands of dirs deep
    if os.path.lexists(path) and os.geteuid() != 0:
        # Same-uid candidates can chmod their dirs to 000; give ourselves access
        # back (they are dead, so nothing can swap a dir for a symlink meanwhile).
        stack = [path]
        while stack:
            d = stack.pop()
            with contextlib.suppress(OSError):
                os.chmod(d, 0o700)
                stack.extend(e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False))
        oslevel.rmtree(path)
