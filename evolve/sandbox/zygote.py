"""The warm worker: imports numpy and the verifier once, then forks one child per candidate.

Started by ``Sandbox`` as ``python -m evolve.sandbox.zygote FD`` with a scrubbed
environment, it speaks ``frames`` on the unix socket FD (a socket, so that it can
hand a session's channel to the controller with SCM_RIGHTS).  It stays single-threaded
(BLAS threads are pinned to 1 by the environment) so that fork is safe.  It is
a child subreaper, so every process a candidate leaves behind ends up as its
child and is killed after the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import json
import math
import os
import pickle
import select
import shutil
import signal
import socket
import sys
import time
from typing import Any

from evolve.sandbox import (  # noqa: F401 (session_child: imported before isolation)
    cgroups,
    channel,
    isolation,
    oslevel,
    session_child,
    syscalls,
    view,
)
from evolve.sandbox.child import ChildSpec, Work, run_child
from evolve.sandbox.frames import WorkerLost, read_frame, recv_request, send_reply
from evolve.sandbox.types import SandboxLimits

# Imported once here, so candidates get them for free (and can use them after
# dropping to a uid that cannot read the Python installation).
PRELOAD = (
    "numpy", "numpy.random", "numpy.linalg", "numpy.fft", "math", "cmath", "random",
    "itertools", "functools", "heapq", "bisect", "collections", "collections.abc", "operator",
    "statistics", "copy", "dataclasses", "typing", "fractions", "decimal", "re", "array",
    "json", "enum", "string", "numbers", "struct", "contextlib", "time", "datetime",
    "traceback", "tempfile", "io", "abc", "warnings", "weakref", "queue", "textwrap",
    "encodings.idna", "glob", "fnmatch", "pathlib", "shutil", "signal", "socket", "pickle",
    "hashlib", "csv",
)
PROBE_SOURCE = "def probe(x):\n    return x\n"
TAIL_BYTES = 2048
MIN_HEADROOM_KB = 64 * 1024  # address space a candidate gets beyond what the zygote maps


def import_for_sandbox(cls: type) -> None:
    """What ``solve``/``respond`` may need beyond the verifier's own module (already
    imported): the record types, and the modules the class lists in ``sandbox_modules``
    (for imports done lazily inside ``solve``).  Nothing else of the verifier's package
    enters the candidate's process: no references, reports or solvers.
    """
    importlib.import_module("evolve.verifier")
    for name in getattr(cls, "sandbox_modules", ()):
        importlib.import_module(name)


class Zygote:
    def __init__(self, chan: socket.socket, init: dict[str, Any]) -> None:
        self.chan = chan
        self.fin = self.fout = chan.fileno()
        self.pid = os.getpid()
        self.entry: str = init["verifier"]
        self.base: str = init["base"]
        self.limits: SandboxLimits = init["limits"]
        self.uid: int | None = init["uid"]
        self.hide_paths: tuple[str, ...] = tuple(init.get("hide_paths") or ())
        self.private_dirs: tuple[str, ...] = ()
        self.sets: dict[int, list[Any]] = {}
        self.counter = 0
        self.solve: Any = None
        self.respond: Any = None
        self.seccomp: bytes | None = None
        self.cgroup: cgroups.CandidateCgroup | None = None
        self.pid_namespace = False
        self.orphaned = False
        self.exit_requested = False
        # Kept open so the dir can be removed even once a private /tmp hides it.
        self.controller_base = self.base
        self.base_parent_fd = os.open(os.path.dirname(self.base), os.O_RDONLY | os.O_DIRECTORY)
        sys.path[:] = init["sys_path"]

    # -- start-up -----------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        report: isolation.Report = {}
        oslevel.prctl(oslevel.PR_SET_CHILD_SUBREAPER, 1)
        # Imports first: after isolation the checkout and site-packages are out of sight.
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        try:
            module_name, _, class_name = self.entry.partition(":")
            cls = getattr(importlib.import_module(module_name), class_name)
            self.solve = cls.solve
            if not callable(self.solve):
                raise TypeError(f"{class_name}.solve is not callable")
            self.respond = getattr(cls, "respond", None)
            if self.respond is not None and not callable(self.respond):
                raise TypeError(f"{class_name}.respond is not callable")
            import_for_sandbox(cls)
        except Exception as exc:
            return {"ok": False, "kind": "verifier", "error": f"{type(exc).__name__}: {exc}"}
        packages = (*view.DEFAULT_PACKAGES, *getattr(cls, "sandbox_packages", ()))
        self.seccomp, note = syscalls.build()
        report["seccomp"] = (self.seccomp is not None, note)
        self.cgroup, note = cgroups.create(self.limits.memory_mb, self.limits.max_processes)
        report["cgroup limits"] = (self.cgroup is not None, note)
        self.private_dirs, problem = isolation.enter_namespaces(
            self.limits.file_size_mb, self.hide_paths, packages, self.base, report)  # once for all
        if self.uid is None:
            # Same uid as the candidates: refuse them ptrace and /proc/<pid>/{mem,fd,environ}.
            # (After the user namespace's id maps: they are written through /proc/self.)
            oslevel.make_non_dumpable()
        if problem:
            return {"ok": False, "kind": "isolation", "error": problem}
        self.pid_namespace = report.get("pid namespace", (False, ""))[0]
        self.pid = os.getpid()  # 1 where the zygote went on in its own pid namespace
        if "/tmp" in self.private_dirs:  # the controller's base dir is now out of sight
            self.base = "/tmp/evolve-runs"
            os.mkdir(self.base, 0o711)
        if self.hide_paths and not self.private_dirs:
            return {"ok": False, "kind": "isolation",
                    "error": "hide_paths needs mount namespaces (root with CAP_SYS_ADMIN, or user namespaces)"}
        vm_kb = _vm_kb("self", "VmSize") or 0
        if self.limits.memory_mb * 1024 < vm_kb + MIN_HEADROOM_KB:
            return {"ok": False, "kind": "config",
                    "error": f"memory_mb={self.limits.memory_mb} is too small: the warm interpreter "
                             f"alone maps {vm_kb // 1024} MiB; use at least "
                             f"{(vm_kb + MIN_HEADROOM_KB) // 1024 + 1}"}
        problem = self._probe_uid(report)
        if problem:
            return {"ok": False, "kind": "isolation", "error": problem}
        if self.uid is not None:
            isolation.kill_uid(self.uid)  # leftovers of a predecessor that died
        gc.collect()
        gc.freeze()  # keeps the collector from touching (and copying) shared pages in children
        order = ("filesystem", "pid namespace", "network", "uid", "seccomp", "cgroup limits")
        facts = {name: report[name] for name in order if name in report}
        return {"ok": True, "pid": self.pid, "uid": self.uid, "facts": facts,
                "isolation": [detail for _, detail in facts.values()],
                "interactive": self.respond is not None}

    def _probe_uid(self, report: isolation.Report) -> str | None:
        """Fork one trivial candidate.  As root, failing to drop privileges is fatal:
        hostile code never runs as root."""
        facts, blob = self.execute(PROBE_SOURCE, "probe", None, self.limits)
        if facts["exit_code"] != 0 or not blob.startswith(b'{"event": "loaded"}'):
            return "cannot start a sandboxed process: " + (_fatal_message(blob) or f"probe failed: {facts}")
        if self.uid is not None:
            report["uid"] = (True, f"uid {self.uid} (unprivileged, no capabilities)")
        else:
            report["uid"] = (False, "same uid as the controller (controller and zygote non-dumpable"
                             + (", capabilities dropped)" if self.pid_namespace else ")"))
        return None

    # -- requests -------------------------------------------------------------

    def serve(self) -> None:
        """Answer requests until told to exit or the controller is gone."""
        while True:
            try:
                frame = read_frame(self.fin)
            except WorkerLost:
                self.orphaned = True
                return
            if os.getpid() != self.pid:  # never in a child, whatever a candidate did
                os._exit(99)
            try:
                req = pickle.loads(frame)  # from the controller: trusted
                del frame
                op = req.get("op")
                if op == "exit":
                    return
                if op == "end":  # a session that already ended by itself: nothing to do
                    continue
                if op == "session":
                    self.session(req)
                    if self.exit_requested:
                        return
                elif op == "drop":
                    self.sets.pop(req["set"], None)
                elif op == "load":
                    self.sets[req["set"]] = req["instances"]
                    del req
                    gc.freeze()
                    send_reply(self.fout, {"ok": True})
                elif op == "run":
                    limits = self.limits
                    if req.get("timeout_s"):
                        limits = dataclasses.replace(limits, timeout_s=float(req["timeout_s"]))
                    facts, blob = self.execute(req["source"], req["function"], req["set"], limits)
                    send_reply(self.fout, {"ok": True, **facts}, blob)
                    if facts["killed"] == "controller":
                        self.orphaned = True
                        return
                else:
                    send_reply(self.fout, {"ok": False, "error": f"unknown op {op!r}"})
            except WorkerLost:
                self.orphaned = True
                return
            except Exception as exc:
                send_reply(self.fout, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def shutdown(self) -> None:
        isolation.sweep(None, self.uid)
        if self.uid is not None and self.solve is not None:
            isolation.kill_uid(self.uid)
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.orphaned:  # the controller died without cleaning up: its temp dir goes too
            with contextlib.suppress(OSError):
                shutil.rmtree(os.path.basename(self.controller_base), dir_fd=self.base_parent_fd)

    # -- one candidate ------------------------------------------------------------

    def execute(
        self, source: str, function: str, set_id: int | None, limits: SandboxLimits
    ) -> tuple[dict[str, Any], bytes]:
        """A batch run: the child's result stream comes back through us."""
        pid, zsock, workdir, out_path = self._fork_child(limits)
        facts: dict[str, Any] = {}
        try:
            self._order(zsock, Work("batch", source, function, limits.timeout_s, set_id))
            facts, blob = self._supervise(pid, zsock.fileno(), limits)
        finally:
            zsock.close()
            facts.update(self._clean_up(pid, workdir, out_path))
        return facts, blob

    def session(self, req: dict[str, Any]) -> None:
        """Fork a child, hand its channel to the controller, supervise it until it ends."""
        limits = dataclasses.replace(self.limits, timeout_s=float(req["timeout_s"]))
        if self.respond is None:
            send_reply(self.fout, {"ok": False, "error": "the verifier defines no respond()"})
            return
        pid, zsock, workdir, out_path = self._fork_child(limits)
        facts: dict[str, Any] = {}
        try:
            self._order(zsock, Work("session", req["source"], req["function"], limits.timeout_s))
            send_reply(self.fout, {"ok": True})
            pidfd = os.pidfd_open(pid)  # the controller learns the child's pid in its own namespace
            try:
                socket.send_fds(self.chan, [b"S"], [zsock.fileno(), pidfd])
            finally:
                os.close(pidfd)
            zsock.close()  # from now on only the controller and the child hold the pair
            facts, _ = self._supervise(pid, None, limits)
        finally:
            zsock.close()
            facts.update(self._clean_up(pid, workdir, out_path))
        if facts["killed"] == "controller":
            raise WorkerLost("controller gone during a session")
        if not self.exit_requested:
            send_reply(self.fout, {"ok": True, **facts})

    def _fork_child(self, limits: SandboxLimits) -> tuple[int, socket.socket, str, str]:
        """A locked-down child waiting for its work order on a fresh seqpacket socket.

        Nothing here depends on the work, so children could be forked ahead of time.
        """
        self.counter += 1
        workdir = os.path.join(self.base, f"run-{self.counter}")
        out_path = workdir + ".out"
        os.mkdir(workdir, 0o700)
        out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        zsock, csock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spec = ChildSpec(
            sets=self.sets, solve=self.solve, respond=self.respond, limits=limits,
            workdir=workdir, out_fd=out_fd, channel_fd=csock.fileno(), zygote_pid=self.pid, uid=self.uid,
            seccomp=self.seccomp, cgroup=self.cgroup, drop_capabilities=self.uid is None and self.pid_namespace,
        )
        sys.stderr.flush()
        exit_ = os._exit
        if self.pid_namespace:  # the child is pid 1 of its own namespace: all it starts dies with it
            isolation.fresh_pid_namespace()
        try:
            pid = os.fork()
        except BaseException:
            if self.pid_namespace:
                isolation.restore_pid_namespace()
            raise
        if pid == 0:
            try:
                run_child(spec)
            finally:
                exit_(72)
        if self.pid_namespace:
            isolation.restore_pid_namespace()
        csock.close()
        os.close(out_fd)
        with contextlib.suppress(OSError):  # also done by the child; whoever is first wins
            os.setpgid(pid, pid)
        return pid, zsock, workdir, out_path

    @staticmethod
    def _order(zsock: socket.socket, work: Work) -> None:
        with contextlib.suppress(OSError):  # a child that died at once: supervision tells
            channel.send(zsock.fileno(), channel.PAYLOAD, 0, blob=pickle.dumps(work))

    def _clean_up(self, pid: int, workdir: str, out_path: str) -> dict[str, Any]:
        escaped = isolation.sweep(pid, self.uid)
        oom_kills = self.cgroup.oom_kills() if self.cgroup is not None else 0
        tail = _tail(out_path)
        with contextlib.suppress(OSError):
            os.unlink(out_path)
        isolation.remove_tree(workdir)
        isolation.scrub_shared(self.private_dirs, self.base, self.uid)
        return {"escaped": escaped, "stderr_tail": tail, "oom_kills": oom_kills}

    def _supervise(self, pid: int, rfd: int | None, limits: SandboxLimits) -> tuple[dict[str, Any], bytes]:
        """Until the child exits, the deadline passes or output overflows, collect its
        batch output (``rfd``); in a session (no ``rfd``) also until the controller ends it."""
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
        poller.register(self.fin, select.POLLIN if rfd is None else 0)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        exited = False
        try:
            while not exited and killed is None:
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
                    elif fd == self.fin:
                        killed = self._controller_says(ev, rfd is None)
                    else:
                        exited = True
                if pidfd is None and not exited:
                    exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            if killed is None and rfd is not None:  # exited: take what it wrote; descendants may hold the socket
                os.set_blocking(rfd, False)
                with contextlib.suppress(BlockingIOError, ConnectionResetError):
                    while total <= max_bytes and (data := os.read(rfd, channel.READ_SIZE)):
                        total += len(data)
                        chunks.append(data)
                if total > max_bytes:
                    killed = "output"
            elif killed is not None:
                vm_peak = _vm_kb(pid, "VmPeak")
        finally:
            oslevel.kill_quietly(pid, group=True)
            oslevel.kill_quietly(pid)
            _, status, usage = os.wait4(pid, 0)
            if killed == "ended" and not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
                killed = None  # it was already exiting by itself: its own status says how
            if pidfd is not None:
                os.close(pidfd)
        facts: dict[str, Any] = {
            "killed": killed,
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "maxrss_kb": usage.ru_maxrss,
            "cpu": usage.ru_utime + usage.ru_stime,
            "vm_peak_kb": vm_peak,
            "wall": time.monotonic() - start,
        }
        return facts, b"".join(chunks)[: max_bytes + 1]

    def _controller_says(self, events: int, in_session: bool) -> str | None:
        """Why to stop, given activity on the controller's channel during a run."""
        if not in_session or not events & select.POLLIN:
            return "controller"  # hung up
        try:
            req = pickle.loads(read_frame(self.fin))
        except WorkerLost:
            return "controller"
        if req.get("op") == "exit":  # Sandbox.close() with the session still open
            self.exit_requested = True
        return "ended" if req.get("op") in ("end", "exit") else None

def _fatal_message(blob: bytes) -> str | None:
    for line in blob.splitlines():
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict) and "fatal" in obj:
                return str(obj.get("message"))
    return None


def _vm_kb(pid: int | str, field: str) -> int | None:
    try:
        for line in oslevel.read_proc(f"{pid}/status").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def main() -> None:
    # The channel is the socket fd in argv; stray prints go to the log, never into a frame.
    chan = socket.socket(fileno=int(sys.argv[1]))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    zygote = Zygote(chan, recv_request(chan.fileno()))
    try:
        try:
            reply = zygote.setup()
        except Exception as exc:  # reported as one line rather than a dead channel
            reply = {"ok": False, "kind": "internal", "error": f"{type(exc).__name__}: {exc}"}
        send_reply(zygote.fout, reply)
        if reply["ok"]:
            zygote.serve()
    finally:
        zygote.shutdown()


if __name__ == "__main__":
    main()
