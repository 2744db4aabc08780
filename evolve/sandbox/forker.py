"""The forker: a fork-only copy of the zygote that forks the candidate children for it.

Every page the zygote writes while a child shares it is copied first (a copy-on-write
fault): the zygote runs Python for every candidate (the work order, supervision, the
reply, the clean-up), about 370 faults per candidate while the running child and the
spare shared its pages. The forker is a copy of the zygote, made once (and again after
an instance load or a new IPC namespace), that does nothing but fork: the zygote's pages
are then shared with the forker alone (each copied once), and the forker's short loop
touches few pages.

It forks with clone(CLONE_PARENT), so every child is the zygote's own child, exactly as
if the zygote had forked it: the zygote waits for it, reaps it (exit status, rusage),
sweeps what it leaves, and the child's PDEATHSIG and parent check name the zygote. Its
``oom_score_adj`` of 1000 (candidates die first if the machine runs out of memory) is
set once in the forker, whose children inherit it; a forker the OOM killer picks is
replaced like any dead one. The
forker's socket reaches a child as an fd above 3, which the child closes with all the
others (``child._wire_fds``) before it reads its work order: no candidate code can
ever talk to the forker.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable
from typing import NoReturn

from evolve.sandbox import isolation, oslevel, session_child
from evolve.sandbox.child import (
    OOM_SCORE_ADJ,
    ChildSpec,
    run_child,
    set_workdir_env,
    shared_lock_down,
)

SpecMaker = Callable[[str, int, int], ChildSpec]  # (work dir, output fd, channel fd) -> spec
_PID = struct.Struct("i")
_FDS = struct.Struct("ii")  # the child's output file and socket
_FDS_SPACE = socket.CMSG_SPACE(_FDS.size)
_RIGHTS = (socket.SOL_SOCKET, socket.SCM_RIGHTS)


class Forker:
    """The zygote's handle on its forker process."""

    def __init__(self, pid: int, sock: socket.socket, sets_version: int) -> None:
        self.pid, self.sock, self.sets_version = pid, sock, sets_version

    @classmethod
    def start(cls, make_spec: SpecMaker, pid_namespace: bool, sets_version: int,
              close: list[socket.socket]) -> Forker:
        """Fork the forker from the zygote; ``close``: sockets of the zygote it must not hold."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        sys.stderr.flush()
        exit_ = os._exit
        try:
            pid = oslevel.light_fork()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            try:
                ours.close()
                for sock in close:
                    sock.close()
                _serve(theirs, make_spec, pid_namespace, parent)
            finally:
                exit_(0)
        theirs.close()
        return cls(pid, ours, sets_version)

    def fork(self, workdir: str, out_fd: int, channel_fd: int, upcoming: str = "") -> int:
        """A new child (the zygote's) locked down for ``workdir``; OSError if there is none.
        ``upcoming``: the work dir the next request will most likely name."""
        try:
            socket.send_fds(self.sock, [workdir.encode() + b"\0" + upcoming.encode()], [out_fd, channel_fd])
            reply = self.sock.recv(_PID.size)
        except OSError as exc:
            raise OSError(errno.EPIPE, f"the forker is gone ({exc})") from None
        if len(reply) != _PID.size:
            raise OSError(errno.EPIPE, "the forker is gone")
        (pid,) = _PID.unpack(reply)
        if pid <= 0:
            raise OSError(-pid, f"the forker could not fork: {os.strerror(-pid)}")
        return pid

    def stop(self, alive: bool) -> None:
        """Close its socket (it exits); ``alive``: still our child (not reaped), so kill and reap it."""
        self.sock.close()
        if alive:
            oslevel.kill_quietly(self.pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)


def _serve(sock: socket.socket, make_spec: SpecMaker, pid_namespace: bool, zygote: int) -> None:
    """The forker's whole life: one child per request, until the zygote closes the socket."""
    oslevel.prctl(oslevel.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote:  # the zygote died before the line above
        return
    # One spec, its three per-child fields set for each request (the child gets a copy):
    # a fresh one per child would write more of the pages the last child still shares.
    spec = make_spec("", -1, -1)
    joined = spec.cgroup is not None
    if joined:
        # Once for all: every child is born in the cgroup. A child that moved there itself
        # took the kernel's cgroup lock for writing, which waits for an RCU grace period
        # whenever no move came within the last one (10 % of children over 1 ms, up to
        # 67 ms, at load 9). Without it the zygote forks for itself (its children move).
        try:
            spec.cgroup.join()
        except OSError:
            return
        spec.cgroup = None
    spec.set_oom_score = not _own_oom_score(joined)
    spec.env_done = True  # set_workdir_env for spec.workdir, before each clone
    try:  # inherited too (child.shared_lock_down); if it fails, each child does it itself
        shared_lock_down(spec)
        spec.shared_done = True
    except OSError:
        spec.shared_done = False
    # Bound once: every page the loop writes after a clone is a copy-on-write fault (the new
    # child shares it), so it makes as few objects and runs as little Python as it can.
    recvmsg, send, close, unpack, pack = sock.recvmsg, sock.send, os.close, _FDS.unpack, _PID.pack
    try:
        clone, reseed = _cloner(pid_namespace), oslevel.reseeder()
    except OSError:
        return  # the zygote forks for itself once we are gone
    while True:
        try:  # recvmsg, not socket.recv_fds: fewer objects, fewer pages written per child
            msg, ancillary, _, _ = recvmsg(4096, _FDS_SPACE)
        except OSError:
            return
        if not msg or len(ancillary) != 1 or ancillary[0][:2] != _RIGHTS or len(ancillary[0][2]) != _FDS.size:
            return
        out_fd, channel_fd = unpack(ancillary[0][2])
        workdir, _, upcoming = msg.decode().partition("\0")
        if workdir != spec.workdir:  # not the one foreseen: set it up now
            set_workdir_env(workdir)
        spec.workdir, spec.out_fd, spec.channel_fd = workdir, out_fd, channel_fd
        try:
            pid = clone()
        except OSError as exc:
            pid = -(exc.errno or errno.EAGAIN)
        if pid == 0:
            _be_the_child(spec)
        close(out_fd)
        close(channel_fd)
        try:
            send(pack(pid))
        except OSError:
            return
        # Set up here for the next child, after the reply: off its way to its candidate.
        reseed()  # its fresh seed
        if upcoming:
            set_workdir_env(upcoming)  # HOME, TMPDIR, tempfile's dir (copy-on-write faults: ours)
            spec.workdir = upcoming


def _own_oom_score(joined: bool) -> bool:
    """Set the forker's ``oom_score_adj``; True if its children inherit the candidates' 1000.

    In the candidates' cgroup (``joined``) it asks never to be the OOM killer's choice
    (-1000, as root): a candidate's excess must end the candidate, and a forker killed in
    its place would free a task of ``pids.max``. Its children then write their own 1000.
    """
    if joined:
        with contextlib.suppress(OSError):
            oslevel.write_proc("self/oom_score_adj", "-1000")
            return False
    try:  # inherited by every child, which then need not write it (~60 us each)
        oslevel.write_proc("self/oom_score_adj", OOM_SCORE_ADJ)
    except OSError:
        return False
    return True


def _cloner(pid_namespace: bool) -> Callable[[], int]:
    """The forker's clone: the child is the zygote's, and with ``pid_namespace`` pid 1 of a
    namespace of its own (all it starts dies with it). Its seed was drawn after the last clone."""
    clone = oslevel.clone_parent_call()
    if not pid_namespace:
        return clone
    enter, leave = isolation.pid_namespace_calls()

    def clone_alone() -> int:
        enter()
        pid = -1
        try:
            pid = clone()
        finally:
            if pid != 0:  # the child stays in its new namespace
                leave()
        return pid

    return clone_alone


def _be_the_child(spec: ChildSpec) -> NoReturn:
    exit_ = os._exit
    try:
        run_child(spec, session_child.run_session)
    finally:
        exit_(72)
