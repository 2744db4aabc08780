"""The zygote's candidate children: the spare forked ahead of its work, the last one's clean-up.

A child locks itself down before it reads its work order, so the next one is
forked ahead of time (the ``spare``) while the controller scores, prompts and
waits for its model; the last one's clean-up also waits until after the reply
(``pending``). Children come from the forker (``forker.py``) once set-up is done,
else from the zygote itself. ``ChildKeeper`` is the zygote's part that does this;
``Zygote`` (``zygote.py``) sets the state it reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
from typing import Any

from evolve.sandbox import cgroups, isolation, oslevel, session_child, syscalls, view
from evolve.sandbox.child import ChildSpec, run_child
from evolve.sandbox.forker import Forker
from evolve.sandbox.frames import TAIL
from evolve.sandbox.supervise import reap, tail
from evolve.sandbox.types import SandboxLimits

BASE_MODE = 0o711  # the private work dirs' parent: candidates may enter it, not list or change it


@dataclasses.dataclass
class Child:
    """A forked, locked-down child; ``sets_version`` says which instance loads it has."""

    pid: int
    sock: socket.socket  # the zygote's end of the child's seqpacket socket
    workdir: str
    out_path: str
    sets_version: int
    out_fd: int  # the zygote's own read-only fd of out_path, for the reply's output tail
    workdir_ino: int = 0  # the work dir the child was forked in (a path can be made to name another)
    reaped: bool = False  # supervise waited for its exit

    def workdir_moved(self) -> bool:
        """Whether ``workdir`` no longer names the dir the child was forked in."""
        try:
            return os.lstat(self.workdir).st_ino != self.workdir_ino
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            os.close(self.out_fd)



class ChildKeeper:
    """Forks, hands out and cleans up after the zygote's children (mixed into ``Zygote``)."""

    # Set by Zygote.__init__ and setup():
    chan: socket.socket
    pid: int
    base: str
    uid: int | None
    limits: SandboxLimits
    sets: dict[int, list[Any]]
    sets_version: int  # bumped by every load: a spare forked before lacks the new set
    solve: Any
    respond: Any
    seccomp: syscalls.Filter | None
    cgroup: cgroups.CandidateCgroup | None
    pid_namespace: bool
    private_dirs: tuple[str, ...]
    renewal: view.Renewal | None  # how each child renews the private writable dirs
    use_forker: bool
    counter: int
    base_ino: int
    spare: Child | None  # forked and locked down, waiting for its work order
    pending: Child | None  # ended, its clean-up not done yet
    forker: Forker | None  # forks the children once set-up is done (forker.py)
    overlap: bool  # a spare is being forked while the last child may still count in the cgroup
    tasks_limit: int  # pids.max as last written (0: not yet)

    def _take_child(self) -> Child:
        """The spare if it is still good (alive, forked after the last instance load), else a fresh fork."""
        spare, self.spare = self.spare, None
        if spare is not None:
            if spare.sets_version == self.sets_version and _alive(spare.pid):
                return spare
            self._discard(spare)
        return self._fork_child()

    def prepare_spare(self) -> None:
        """Finish the last child's clean-up and fork and lock down the next one (idle time).

        With a pid namespace per child, a child whose output was complete is killed and
        the spare forked while its exit (a millisecond of page-table and namespace
        teardown) runs on the other core; it is then reaped and swept, and the spare's
        work dir emptied, before the spare can get any work. Leftovers of the last
        candidate cannot name the spare (another pid namespace), and the IPC namespace,
        if it had to be replaced, is not the spare's: then it is forked again.
        """
        child = self.pending
        if child is not None and not child.reaped and self.pid_namespace:
            oslevel.kill_quietly(child.pid, group=True)
            oslevel.kill_quietly(child.pid)
            self.overlap = True  # its tasks count until they are reaped
            self._limit_tasks()
            self._refresh_spare()
        self.finish_clean_up()
        self.overlap = False
        self._refresh_spare()
        self._limit_tasks()

    def _refresh_spare(self) -> None:
        if self.spare is not None and self.spare.sets_version != self.sets_version:
            self._discard(self.spare)
            self.spare = None
        if self.spare is None:
            try:
                self.spare = self._fork_child()
            except OSError as exc:  # the next run forks for itself and reports what fails
                print(f"zygote: could not fork a spare child: {exc}", file=sys.stderr)

    def _fork_child(self) -> Child:
        """A locked-down child waiting for its work order on a fresh seqpacket socket.

        Nothing here depends on the work (run limits only lower the CPU limit,
        which the child sets after reading its order).

        The forker is made (or made again) first: one forked after this child's socket pair
        and output file were opened would hold them for its lifetime, and a session child's
        death would then not hang up the controller's end (it waited out the session's wall
        clock and called the worker dead; eleventh red team).
        """
        self._current_forker()
        self.counter += 1
        if "/tmp" in self.private_dirs:  # ours, but a candidate of the zygote's uid could change it
            self.base_ino = isolation.keep_dir(self.base, BASE_MODE, self.base_ino)
        workdir = os.path.join(self.base, f"run-{self.counter}")
        out_path = workdir + ".out"
        os.mkdir(workdir, 0o700)
        workdir_ino = os.lstat(workdir).st_ino
        if self.uid is not None:  # the candidate's from the start: here its Python costs no copy-on-write faults
            os.chown(workdir, self.uid, self.uid)
        out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        zsock, csock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = self._spawn(workdir, out_fd, csock.fileno())
        except BaseException:
            zsock.close()
            csock.close()
            os.close(out_fd)
            raise
        csock.close()
        os.close(out_fd)
        with contextlib.suppress(OSError):  # also done by the child; whoever is first wins
            os.setpgid(pid, pid)
        # Opened after the fork, so the child never holds it (it holds only fds 0-3 anyway).
        read_fd = os.open(out_path, os.O_RDONLY | os.O_CLOEXEC)
        return Child(pid, zsock, workdir, out_path, self.sets_version, read_fd, workdir_ino)

    def _spec(self, workdir: str, out_fd: int, channel_fd: int) -> ChildSpec:
        return ChildSpec(
            sets=self.sets, solve=self.solve, respond=self.respond, limits=self.limits,
            workdir=workdir, out_fd=out_fd, channel_fd=channel_fd, zygote_pid=self.pid, uid=self.uid,
            seccomp=self.seccomp, cgroup=self.cgroup, drop_capabilities=self.uid is None and self.pid_namespace,
            renewal=self.renewal,
        )

    def _spawn(self, workdir: str, out_fd: int, channel_fd: int) -> int:
        """The child's pid: forked by the forker (made current by ``_fork_child``, before this
        child's fds were opened: never here, where a new forker would hold them), else by us."""
        forker = self.forker
        if forker is not None:
            try:
                # The next child's work dir, if nothing else is forked before it: the forker
                # sets its environment up after this fork, off the way to the next candidate.
                upcoming = os.path.join(self.base, f"run-{self.counter + 1}")
                return forker.fork(workdir, out_fd, channel_fd, upcoming)
            except OSError as exc:
                print(f"zygote: {exc}; forking for myself", file=sys.stderr)
                self._drop_forker()
        return self._fork_here(self._spec(workdir, out_fd, channel_fd))

    def _current_forker(self) -> Forker | None:
        """The forker if it has the current instance sets (else a new one); None before set-up ends."""
        forker = self.forker
        if forker is not None and forker.sets_version != self.sets_version:
            self._drop_forker()
            forker = None
        if forker is None and self.use_forker:
            try:
                close = [self.chan] + [c.sock for c in (self.spare, self.pending) if c is not None]
                forker = self.forker = Forker.start(self._spec, self.pid_namespace, self.sets_version, close)
            except OSError as exc:
                print(f"zygote: no forker ({exc}); forking for myself", file=sys.stderr)
            self._limit_tasks()  # before its first fork: it joins the cgroup first thing
        return forker

    def _drop_forker(self) -> None:
        forker, self.forker = self.forker, None
        if forker is not None:
            forker.stop(alive=_is_child(forker.pid))
            self._limit_tasks()

    def _limit_tasks(self) -> None:
        """The cgroup's ``pids.max``: ``max_processes`` for the candidate, one more while the
        forker is in the cgroup (it joins it once, so that children are born there), and one
        more while a spare is forked before the last child's tasks are reaped (killed: none
        of them can fork). Lowered again before any work order is read."""
        if self.cgroup is None:
            return
        count = self.limits.max_processes + (self.forker is not None) + (self.forker is not None and self.overlap)
        if count != self.tasks_limit:
            try:
                self.cgroup.limit_tasks(count)
                self.tasks_limit = count
            except OSError as exc:  # not lowered: no spare may get work
                raise OSError(exc.errno, f"could not set the cgroup's task limit to {count}: {exc}") from None

    def _fork_here(self, spec: ChildSpec) -> int:
        sys.stderr.flush()
        exit_ = os._exit
        if self.pid_namespace:  # the child is pid 1 of its own namespace: all it starts dies with it
            isolation.fresh_pid_namespace()
        try:
            pid = oslevel.light_fork()
        except BaseException:
            if self.pid_namespace:
                isolation.restore_pid_namespace()
            raise
        if pid == 0:
            try:
                run_child(spec, session_child.run_session)
            finally:
                exit_(72)
        if self.pid_namespace:
            isolation.restore_pid_namespace()
        return pid


    def _report(self, child: Child) -> dict[str, Any]:
        """What the reply needs from the ended child; the rest of its clean-up comes after."""
        oom_kills = self.cgroup.oom_kills() if self.cgroup is not None else 0
        return {TAIL: tail(child.out_fd), "oom_kills": oom_kills}  # raw bytes: frames.send_reply

    def finish_clean_up(self) -> None:
        """After the reply: kill what the last child left, remove its files, scrub the shared dirs."""
        child, self.pending = self.pending, None
        if child is None:
            return
        if not child.reaped:  # its output was complete: it ends now, after the reply
            reap(child.pid)
        child.close()
        spare, forker = self.spare, self.forker
        keep = {c.pid for c in (spare, forker) if c is not None}
        escaped = isolation.sweep(child.pid, self.uid, keep=keep)
        if forker is not None and not _is_child(forker.pid):  # it died and the sweep reaped it
            forker.stop(alive=False)
            self.forker = None
            self._limit_tasks()
        with contextlib.suppress(OSError):
            os.unlink(child.out_path)
        isolation.remove_tree(child.workdir)
        if spare is not None:
            reaped = not _is_child(spare.pid)  # the sweep reaped it
            # Killed with the slot uid's processes, or its work dir renamed away (with its
            # contents: emptying the path would miss them) by a candidate of the zygote's uid.
            if reaped or (escaped and self.uid is not None) or spare.workdir_moved():
                self._discard(spare, reaped=reaped)  # perhaps still dying: waited for
                self.spare = spare = None
            else:
                isolation.empty_dir(spare.workdir)  # what leftovers may have written there
        if "/tmp" in self.private_dirs:  # the work dirs' parent is ours: only the spare's files stay
            kept = () if spare is None else (spare.workdir, spare.out_path)
            isolation.tidy_base(self.base, {os.path.basename(path) for path in kept})
        if isolation.scrub_shared(self.private_dirs, self.base, self.uid):
            self._drop_forker()  # it and all it forked are in the IPC namespace just replaced
            if spare is not None:
                self._discard(spare)
                self.spare = None
        if self.cgroup is not None:
            self.cgroup.oom_kills()  # OOM kills of its leftovers are not the next candidate's

    def _discard(self, child: Child, reaped: bool = False) -> None:
        """End a spare that never received work (it ran only our code); ``reaped``: it is
        gone already, and its pid may be another process's now."""
        child.close()
        if not reaped:
            oslevel.kill_quietly(child.pid, group=True)
            oslevel.kill_quietly(child.pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
        with contextlib.suppress(OSError):
            os.unlink(child.out_path)
        isolation.remove_tree(child.workdir)


def _alive(pid: int) -> bool:
    """A child of ours that has not exited (False also once it was reaped)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:
        return False


def _is_child(pid: int) -> bool:
    """Still ours to wait for (running or a zombie): not reaped, so its pid is not reused."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True
