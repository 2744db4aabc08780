"""The mount-namespace dropper: a helper that closes a dead child's mount namespace off the chain.

A child's exit waits in the kernel (``synchronize_rcu_expedited``) while its own mount
namespace (fresh tmpfs per child, ``view.renew``) is torn down.  The zygote takes a
reference to that namespace before the child gets its work order
(``PIDFD_GET_MNT_NAMESPACE``, Linux >= 6.11), so that the child's exit is quick; after the
reap it hands the reference to this helper (``SCM_RIGHTS``), which closes it and answers
with the child's token once the teardown is done.  The dead candidate's tmpfs stays charged
to the cgroup it ran in until then: the zygote gives its children two cgroups in turn and
waits for that answer before the next child of the same cgroup gets its order.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import struct
import sys

from evolve.sandbox import oslevel

NOTE = ("; children take turns in two such cgroups, and a dead candidate's tmpfs goes off the way "
        "to the next one, which never shares a cgroup with it")
PIDFD_GET_MNT_NAMESPACE = 0xFF03  # _IO(PIDFS_IOCTL_MAGIC 0xFF, 3)
_TOKEN = struct.Struct("q")


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


class Dropper:
    """The zygote's handle on the helper; references are numbered (tokens) as they are sent."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid, self.sock = pid, sock
        self.sent = 0
        self.done = 0  # answers come in order

    @classmethod
    def start(cls, close: list[socket.socket]) -> Dropper:
        """Fork the helper from the zygote; ``close``: sockets of the zygote it must not hold."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        sys.stderr.flush()
        exit_ = os._exit
        pid = oslevel.light_fork()
        if pid == 0:
            try:
                ours.close()
                for sock in close:
                    sock.close()
                _serve(theirs, parent)
            finally:
                exit_(0)
        theirs.close()
        return cls(pid, ours)

    def drop(self, fd: int) -> int:
        """Hand ``fd`` over (it is closed here); the token to wait for."""
        self.sent += 1
        try:
            socket.send_fds(self.sock, [_TOKEN.pack(self.sent)], [fd])
        finally:
            os.close(fd)
        return self.sent

    def wait(self, token: int) -> None:
        """Until the helper has closed the reference ``token`` (raises OSError if it is gone)."""
        while self.done < token:
            reply = self.sock.recv(_TOKEN.size)
            if len(reply) != _TOKEN.size:
                raise OSError("the namespace dropper is gone")
            (self.done,) = _TOKEN.unpack(reply)

    def stop(self, kill: bool = False) -> None:
        """Close its socket (it exits); wait until it is gone, and every reference with it."""
        self.sock.close()
        if kill:
            oslevel.kill_quietly(self.pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def release(fd: int) -> None:
    """Close the last reference: the kernel tears the namespace down (its tmpfs goes) here."""
    os.close(fd)


def _serve(sock: socket.socket, zygote: int) -> None:
    oslevel.prctl(oslevel.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote:  # the zygote died before the line above
        return
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, _TOKEN.size, 1)
        except OSError:
            return
        if not msg:
            return
        for fd in fds:
            release(fd)  # looked up each time: a test's verifier module may slow it down
        try:
            sock.send(msg)
        except OSError:
            return
