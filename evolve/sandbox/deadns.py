"""A dead candidate's mount namespace, emptied by the zygote and let go by the forker.

Each child renews its writable dirs in a mount namespace of its own (``view.renew``). When
the last process in it exits, the kernel tears that namespace down and the exiting task
sleeps in ``synchronize_rcu_expedited`` (its tmpfs mounts go), median 0.77 ms here, on
the way to the next candidate: the zygote reaps the child before the next order.

So the zygote holds a reference to the child's namespace (``PIDFD_GET_MNT_NAMESPACE``,
Linux >= 6.11) before it kills it: the child's exit then tears nothing down. Once the
child is reaped, and with it every process of its pid namespace (none is left that could
write there), the zygote enters the dead namespace, removes every file and dir of the
renewed dirs, and comes back: the candidate's tmpfs pages and inodes are uncharged from
the candidates' cgroup before the next order, as they were at its exit, and what stays
(three empty tmpfs and their mounts) is the same for every candidate. The reference
goes to the forker after the next fork's reply (``Forker.drop``), which closes it before
its next request: the grace period is then the idle forker's, and no child ever holds a copy. Any step that fails closes the reference in
the zygote at once (today's cost, on the chain). The next candidate never sees any of
it: it is in a fresh namespace of its own, and the dead one is reachable only through
the zygote's and the forker's fds, which no child keeps (``child._wire_fds``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat

from evolve.sandbox import oslevel

PIDFD_GET_MNT_NAMESPACE = 0xFF03  # _IO(PIDFS_IOCTL_MAGIC 0xFF, 3)
_RETRIES = 16  # names tried when hoisting an entry to the top (a candidate may have taken some)


def mount_namespace(pid: int) -> int:
    """A reference (fd) to ``pid``'s mount namespace, or -1 where the kernel has none to give."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return -1
    try:
        return fcntl.ioctl(pidfd, PIDFD_GET_MNT_NAMESPACE)
    except OSError:
        return -1
    finally:
        os.close(pidfd)


class Holder:
    """The zygote's part: its own namespace, the dirs each child renews, the reference held."""

    def __init__(self, own: int, dirs: tuple[str, ...], skeleton: tuple[int, ...] | None) -> None:
        self.own = own  # the zygote's own mount namespace (fd), to come back to
        self.own_ino = os.fstat(own).st_ino
        self.dirs = dirs
        self.skeleton = skeleton  # inodes each dir holds as renew made it; None: always walk
        self.held = -1  # the running child's namespace, taken before it is killed
        self.emptied = -1  # the last dead child's, emptied: for the forker's next request

    @classmethod
    def start(cls, dirs: tuple[str, ...], skeleton: tuple[int, ...] | None) -> Holder | None:
        """None where the kernel gives no namespace through a pidfd. ``skeleton``: the inodes
        (the root included) that each of ``dirs`` holds as ``view.renew`` left it, where no
        candidate can remove or replace any of them (they are not its uid's), else None."""
        own = mount_namespace(os.getpid())
        return None if own < 0 else cls(own, dirs, skeleton)

    def take(self, pid: int) -> None:
        """Hold ``pid``'s namespace (a live child, not reaped): its exit tears nothing down."""
        self.release(self.held)
        fd = mount_namespace(pid)
        if fd >= 0 and os.fstat(fd).st_ino == self.own_ino:  # not renewed: the zygote's own
            os.close(fd)
            fd = -1
        self.held = fd

    def dead(self) -> None:
        """After the reap: empty the held namespace's dirs, keep it for the forker.
        If that fails, close it here (the kernel frees what is left now)."""
        fd, self.held = self.held, -1
        if fd < 0:
            return
        emptied = False
        try:
            oslevel.setns(fd, oslevel.CLONE_NEWNS)
        except OSError:
            os.close(fd)
            return
        try:
            emptied = self._empty()
        finally:
            back_home(self.own)
        if not emptied:
            os.close(fd)
            return
        self.release(self.emptied)
        self.emptied = fd

    def _empty(self) -> bool:
        """In the dead namespace: True once it holds nothing a candidate made. The tmpfs counts
        every inode, hard link and extended attribute as used inodes, and every data page as a
        used block: a dir as renew left it (the usual case) needs no walk."""
        if self.skeleton is not None and all(
                used(d) == (n, 0) for d, n in zip(self.dirs, self.skeleton, strict=True)):
            return True
        return all(empty_tmpfs(d) and used(d) == (1, 0) for d in self.dirs)

    def hand_over(self) -> int:
        """The emptied namespace, for the caller to send and close (-1: none)."""
        fd, self.emptied = self.emptied, -1
        return fd

    def fds(self) -> tuple[int, ...]:
        """The dead children's namespaces held now (a process forked from the zygote closes them)."""
        return tuple(fd for fd in (self.held, self.emptied) if fd >= 0)

    def close(self) -> None:
        self.release(self.held)
        self.release(self.emptied)
        self.held = self.emptied = -1

    @staticmethod
    def release(fd: int) -> None:
        if fd >= 0:
            os.close(fd)


def used(path: str) -> tuple[int, int]:
    """The inodes (xattrs and hard links count) and data blocks in use on the tmpfs at ``path``."""
    st = os.statvfs(path)
    return st.f_files - st.f_ffree, st.f_blocks - st.f_bfree


def back_home(own: int) -> None:
    """Back in the zygote's own namespace; if even that fails, the zygote must not go on
    (it would fork the next child from a dead candidate's view)."""
    try:
        oslevel.setns(own, oslevel.CLONE_NEWNS)
    except OSError:
        os._exit(98)
    os.chdir("/")


def empty_tmpfs(path: str) -> bool:
    """Remove everything in the tmpfs at ``path``, without following links or leaving it;
    True if nothing but mount points of other file systems is left.

    With two fds whatever the depth: a dir that is not empty has its entries renamed up
    into ``path`` (one level each time round), so a 4,096-deep chain costs no recursion and
    no fd per level.
    """
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        dev = os.fstat(top).st_dev
        stuck: set[str] = set()
        hoisted = 0
        while True:
            names = [name for name in os.listdir(top) if name not in stuck]
            if not names:
                return all(_other_mount(top, name, dev) for name in stuck)
            for name in names:
                try:
                    st = os.stat(name, dir_fd=top, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError:
                    stuck.add(name)
                    continue
                if st.st_dev != dev:
                    stuck.add(name)  # a mount point of the view's (a runtime under /tmp)
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    try:
                        os.unlink(name, dir_fd=top)
                    except FileNotFoundError:
                        pass
                    except OSError:
                        stuck.add(name)
                    continue
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=top)
                    continue
                hoisted = _hoist(top, name, hoisted, stuck)
    except OSError:
        return False
    finally:
        os.close(top)


def _hoist(top: int, name: str, hoisted: int, stuck: set[str]) -> int:
    """Rename the entries of dir ``name`` up into ``top``; a dir that cannot be entered or
    emptied so is stuck."""
    try:
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
    except OSError:
        stuck.add(name)
        return hoisted
    try:
        os.fchmod(sub, 0o700)  # a candidate of the zygote's own uid may have taken our access
        for child in os.listdir(sub):
            for _ in range(_RETRIES):
                hoisted += 1
                try:
                    os.rename(child, f".dead-{hoisted}", src_dir_fd=sub, dst_dir_fd=top)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                        raise
            else:
                raise OSError(errno.EEXIST, "no free name")
    except OSError:
        stuck.add(name)
    finally:
        os.close(sub)
    return hoisted


def _other_mount(top: int, name: str, dev: int) -> bool:
    try:
        return os.stat(name, dir_fd=top, follow_symlinks=False).st_dev != dev
    except OSError:
        return False
