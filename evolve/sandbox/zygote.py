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
import pkgutil
import select
import shutil
import signal
import socket
import sys
import time
from typing import Any

from evolve.sandbox import channel, isolation, oslevel, session_child  # noqa: F401 (imported before isolation)
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


def import_siblings(module_name: str) -> None:
    """Import the record types and every module of the verifier's package now.

    After isolation a private /tmp (and hide_paths) may cover the checkout, e.g.
    a clone under /tmp: anything imported later, such as a class needed to
    unpickle instance data, would no longer be found.
    """
    importlib.import_module("evolve.verifier")
    package_name = module_name.rpartition(".")[0]
    if not package_name:
        return
    package = importlib.import_module(package_name)
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=package_name + "."):
        if not info.name.endswith("__main__"):
            with contextlib.suppress(Exception):  # an optional module may need extras
                importlib.import_module(info.name)


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
        self.orphaned = False
        # Kept open so the dir can be removed even once a private /tmp hides it.
        self.controller_base = self.base
        self.base_parent_fd = os.open(os.path.dirname(self.base), os.O_RDONLY | os.O_DIRECTORY)
        sys.path[:] = init["sys_path"]

    # -- start-up -----------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        notes: list[str] = []
        oslevel.prctl(oslevel.PR_SET_CHILD_SUBREAPER, 1)
        # Imports first: hide_paths may cover the verifier's own directory.
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
            import_siblings(module_name)
        except Exception as exc:
            return {"ok": False, "kind": "verifier", "error": f"{type(exc).__name__}: {exc}"}
        if self.uid is None:
            # Same uid as the candidates: refuse them ptrace and /proc/<pid>/{mem,fd,environ}.
            oslevel.make_non_dumpable()
        else:
            self.private_dirs, problem = isolation.enter_namespaces(
                self.limits.file_size_mb, self.hide_paths, notes)  # once: children pay nothing
            if problem:
                return {"ok": False, "kind": "isolation", "error": problem}
            if "/tmp" in self.private_dirs:  # the controller's base dir is now out of sight
                self.base = "/tmp/evolve-runs"
                os.mkdir(self.base, 0o711)
        if self.hide_paths and not self.private_dirs:
            return {"ok": False, "kind": "isolation",
                    "error": "hide_paths needs root with mount namespaces (CAP_SYS_ADMIN)"}
        vm_kb = _vm_kb(self.pid, "VmSize") or 0
        if self.limits.memory_mb * 1024 < vm_kb + MIN_HEADROOM_KB:
            return {"ok": False, "kind": "config",
                    "error": f"memory_mb={self.limits.memory_mb} is too small: the warm interpreter "
                             f"alone maps {vm_kb // 1024} MiB; use at least "
                             f"{(vm_kb + MIN_HEADROOM_KB) // 1024 + 1}"}
        problem = self._probe_uid(notes)
        if problem:
            return {"ok": False, "kind": "isolation", "error": problem}
        if self.uid is not None:
            isolation.kill_uid(self.uid)  # leftovers of a predecessor that died
        gc.collect()
        gc.freeze()  # keeps the collector from touching (and copying) shared pages in children
        return {"ok": True, "pid": self.pid, "uid": self.uid, "isolation": notes,
                "interactive": self.respond is not None}

    def _probe_uid(self, notes: list[str]) -> str | None:
        """Fork one trivial candidate.  As root, failing to drop privileges is fatal:
        hostile code never runs as root."""
        facts, blob = self.execute(PROBE_SOURCE, "probe", None, self.limits)
        if facts["exit_code"] != 0 or not blob.startswith(b'{"event": "loaded"}'):
            return "cannot start a sandboxed process: " + (_fatal_message(blob) or f"probe failed: {facts}")
        if self.uid is not None:
            notes.append(f"uid {self.uid}")
        else:
            notes.append("same uid as the controller (controller and zygote non-dumpable)")
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
            send_reply(self.fout, {"ok": True, "pid": pid})
            socket.send_fds(self.chan, [b"S"], [zsock.fileno()])
            zsock.close()  # from now on only the controller and the child hold the pair
            facts, _ = self._supervise(pid, None, limits)
        finally:
            zsock.close()
            facts.update(self._clean_up(pid, workdir, out_path))
        send_reply(self.fout, {"ok": True, **facts})
        if facts["killed"] == "controller":
            raise WorkerLost("controller gone during a session")

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
        )
        sys.stderr.flush()
        exit_ = os._exit
        pid = os.fork()
        if pid == 0:
            try:
                run_child(spec)
            finally:
                exit_(72)
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
        tail = _tail(out_path)
        with contextlib.suppress(OSError):
            os.unlink(out_path)
        isolation.remove_tree(workdir)
        isolation.scrub_shared(self.private_dirs, self.base, self.uid)
        return {"escaped": escaped, "stderr_tail": tail}

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
                        data = os.read(rfd, channel.READ_SIZE)
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
                with contextlib.suppress(BlockingIOError):
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
        return "ended" if req.get("op") == "end" else None

def _fatal_message(blob: bytes) -> str | None:
    for line in blob.splitlines():
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict) and "fatal" in obj:
                return str(obj.get("message"))
    return None


def _vm_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
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
