"""The warm worker: imports numpy and the verifier once, then forks one child per candidate.

Started by ``Sandbox`` as ``python -m evolve.sandbox.zygote FD`` with a scrubbed
environment, it speaks ``frames`` on the unix socket FD (a socket, so that it can
hand a session's channel to the controller with SCM_RIGHTS).  It stays single-threaded
(BLAS threads are pinned to 1 by the environment) so that fork is safe.  It is
a child subreaper, so every process a candidate leaves behind ends up as its
child and is killed after the run.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import importlib
import json
import os
import pickle
import select
import socket
import sys
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
from evolve.sandbox.child import Work, lock_down_calls
from evolve.sandbox.children import BASE_MODE, Child, ChildKeeper
from evolve.sandbox.forker import Forker
from evolve.sandbox.frames import TAIL, WorkerLost, read_frame, recv_request, send_reply
from evolve.sandbox.side import SandboxSide, load_side
from evolve.sandbox.supervise import cpu_ns, supervise, vm_kb
from evolve.sandbox.types import SandboxLimits
from evolve.sandbox.wipe import loads, wipe_sets

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
MIN_HEADROOM_KB = 64 * 1024  # address space a candidate gets beyond what the zygote maps


class Zygote(ChildKeeper):
    def __init__(self, chan: socket.socket, init: dict[str, Any]) -> None:
        self.chan = chan
        self.fin = self.fout = chan.fileno()
        self.pid = os.getpid()
        self.side: SandboxSide = init["side"]
        self.base: str = init["base"]
        self.limits: SandboxLimits = init["limits"]
        self.uid: int | None = init["uid"]
        self.hide_paths: tuple[str, ...] = tuple(init.get("hide_paths") or ())
        self.package_roots: list[str] = list(init["package_roots"])  # view.package_roots, worked out by Sandbox
        self.private_dirs: tuple[str, ...] = ()
        self.renewal: view.Renewal | None = None
        self.sets: dict[int, list[Any]] = {}
        self.sets_version = 0  # bumped by every load: a spare forked before lacks the new set
        self.spare: Child | None = None  # forked and locked down, waiting for its work order
        self.pending: Child | None = None  # ended, its clean-up not done yet
        self.forker: Forker | None = None  # forks the children once set-up is done (forker.py)
        self.overlap = False  # a spare is being forked while the last child may still count in the cgroup
        self.tasks_limit = 0  # the cgroup's pids.max as last written (0: as created)
        self.use_forker = False
        self.counter = 0
        self.base_ino = 0  # the inode of the private work dirs' parent, once it exists
        self.solve: Any = None
        self.respond: Any = None
        self.seccomp: syscalls.Filter | None = None
        self.cgroup: cgroups.CandidateCgroup | None = None
        self.pid_namespace = False
        self.exit_requested = False
        # Kept open so the dir can be removed even once a private /tmp hides it.
        self.controller_base = self.base
        self.base_parent_fd = os.open(os.path.dirname(self.base), os.O_RDONLY | os.O_DIRECTORY)
        sys.path[:] = init["sys_path"]

    # -- start-up -----------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        report: isolation.Report = {}
        oslevel.prctl(oslevel.PR_SET_CHILD_SUBREAPER, 1)
        lock_down_calls()  # made here once, inherited by every child
        # Imports first: after isolation the checkout and site-packages are out of sight.
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        try:  # the verifier's sandbox side only: never its references, reports or solvers
            self.solve, self.respond = load_side(self.side)
        except Exception as exc:
            return {"ok": False, "kind": "verifier", "error": f"{type(exc).__name__}: {exc}"}
        packages = (*view.DEFAULT_PACKAGES, *self.side.packages)
        programs, note = syscalls.build()
        report["seccomp"] = (programs is not None, note)
        self.cgroup, note = cgroups.create(self.limits.memory_mb, self.limits.max_processes)
        report["cgroup limits"] = (self.cgroup is not None, note)
        self.private_dirs, problem = isolation.enter_namespaces(  # once for all
            self.limits.file_size_mb, self.hide_paths, packages, self.package_roots, self.base, report)
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
            os.mkdir(self.base, BASE_MODE)
            self.base_ino = os.lstat(self.base).st_ino
            self.renewal = view.renewal(self.private_dirs, self.limits.file_size_mb, self.base)
        if self.hide_paths and not self.private_dirs:
            return {"ok": False, "kind": "isolation",
                    "error": "hide_paths needs mount namespaces (root with CAP_SYS_ADMIN, or user namespaces)"}
        mapped_kb = vm_kb("self", "VmSize") or 0
        if self.limits.memory_mb * 1024 < mapped_kb + MIN_HEADROOM_KB:
            return {"ok": False, "kind": "config",
                    "error": f"memory_mb={self.limits.memory_mb} is too small: the warm interpreter "
                             f"alone maps {mapped_kb // 1024} MiB; use at least "
                             f"{(mapped_kb + MIN_HEADROOM_KB) // 1024 + 1}"}
        if programs is not None:
            self.seccomp = _filter_self(programs)
        problem = self._probe_uid(report)
        self.finish_clean_up()
        if problem:
            return {"ok": False, "kind": "isolation", "error": problem}
        if self.uid is not None:
            isolation.kill_uid(self.uid)  # leftovers of a predecessor that died
        gc.collect()
        gc.freeze()  # keeps the collector from touching (and copying) shared pages in children
        self.use_forker = oslevel.clone_parent_is_safe()  # from now on (the probe above forked for itself)
        order = ("filesystem", "pid namespace", "network", "uid", "seccomp", "cgroup limits")
        facts = {name: report[name] for name in order if name in report}
        return {"ok": True, "pid": self.pid, "uid": self.uid, "facts": facts,
                "isolation": [detail for _, detail in facts.values()],
                "interactive": self.respond is not None, "modules": sorted(sys.modules),
                "rss_kb": vm_kb("self", "VmRSS")}

    def _probe_uid(self, report: isolation.Report) -> str | None:
        """Fork one trivial candidate.  As root, failing to drop privileges is fatal:
        hostile code never runs as root."""
        facts, blob = self.execute(PROBE_SOURCE, "probe", None, self.limits)
        ended_badly = facts["reaped"] and facts["exit_code"] != 0  # not reaped: its output was complete
        if ended_badly or not blob.startswith(b'{"event": "loaded"}'):
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
                self.prepare_spare()
                if not self._answer(read_frame(self.fin, wipe=True)):
                    return
            except WorkerLost:
                return

    def _answer(self, frame: bytes) -> bool:
        """One request; False: stop serving.  Its frame, the request and the reply are locals of
        this call, gone when it returns: the loop's top forks the next spare (and a new forker),
        and every frame of this stack is in the child's.  A batch reply kept in ``serve``'s
        frame was the last split's schedules, which a jssp rule driven in the next session read
        off ``sys._getframe()`` (their ends less their starts are the durations; ninth red team)."""
        if os.getpid() != self.pid:  # never in a child, whatever a candidate did
            os._exit(99)
        try:
            req = loads(frame)  # from the controller: trusted (numpy scalars: wipe.loads)
            oslevel.scrub(frame)  # a load's frame is the set's pickle
            del frame
            op = req.get("op")
            if op == "exit":
                return False
            if op == "end":  # a session that already ended by itself: nothing to do
                return True
            if op == "session":
                self.session(req)
                return not self.exit_requested
            if op == "settle":  # the loop's top has cleaned up and forked the spare
                send_reply(self.fout, {"ok": True, "spare": self.spare.pid if self.spare else None,
                                       "forker": self.forker.pid if self.forker else None})
            elif op == "drop":  # zeroed first: freed, its bytes would reach every child forked later
                wipe_sets({0: self.sets.pop(req["set"], [])})
            elif op == "load":
                self.sets[req["set"]] = req["instances"]
                self.sets_version += 1
                del req
                gc.freeze()
                send_reply(self.fout, {"ok": True})
            elif op == "run":
                limits = self.limits
                if req.get("timeout_s"):
                    limits = dataclasses.replace(limits, timeout_s=float(req["timeout_s"]))
                facts, blob = self.execute(req["source"], req["function"], req["set"], limits)
                tail = facts.pop(TAIL)
                send_reply(self.fout, {"ok": True, **facts}, blob, tail)
                oslevel.scrub(blob)  # the batch's results: a jssp schedule gives its durations
                if facts["killed"] == "controller":
                    return False
            else:
                send_reply(self.fout, {"ok": False, "error": f"unknown op {op!r}"})
        except WorkerLost:
            return False
        except Exception as exc:
            send_reply(self.fout, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return True

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):  # the sweep below kills what this leaves
            self.finish_clean_up()
        if self.spare is not None:
            self._discard(self.spare)
            self.spare = None
        with contextlib.suppress(OSError):  # the cgroup's task limit: it is removed below
            self._drop_forker()
        isolation.sweep(None, self.uid)
        if self.uid is not None and self.solve is not None:
            isolation.kill_uid(self.uid)
        if self.cgroup is not None:
            self.cgroup.remove()
        # The controller's temp dir goes too: if it died (orphaned), or if it asked us to exit and
        # is killed before its own clean-up (its rmtree after ours finds nothing, harmlessly).
        oslevel.rmtree(os.path.basename(self.controller_base), dir_fd=self.base_parent_fd)

    # -- one candidate ------------------------------------------------------------
    #
    # The child comes from ``ChildKeeper`` (children.py): the spare forked ahead of
    # time if it is still good; the last one's clean-up waits until after the reply.

    def execute(
        self, source: str, function: str, set_id: int | None, limits: SandboxLimits
    ) -> tuple[dict[str, Any], bytes]:
        """A batch run: the child's result stream comes back through us."""
        child = self._take_child()
        lines = 1 + len(self.sets.get(set_id, ())) if set_id is not None else 1  # "loaded", then one per instance
        facts: dict[str, Any] = {"reaped": True}
        try:
            cpu_from = cpu_ns(child.pid)  # the batch's CPU is counted from here, by us (line_cpu_ns)
            self._order(child.sock, Work("batch", source, function, limits.timeout_s, set_id))
            facts, blob = supervise(child.pid, child.sock.fileno(), self.fin, limits, self._controller_says, lines,
                                    cpu_from)
        finally:
            child.sock.close()
            child.reaped = facts["reaped"]
            self.pending = child
            facts.update(self._report(child))
        return facts, blob

    def session(self, req: dict[str, Any]) -> None:
        """Take a child, hand its channel to the controller, supervise it until it ends."""
        limits = dataclasses.replace(self.limits, timeout_s=float(req["timeout_s"]))
        if self.respond is None:
            send_reply(self.fout, {"ok": False, "error": "the verifier defines no respond()"})
            return
        child = self._take_child()
        child.reaped = True  # supervise waits for a session child's end
        facts: dict[str, Any] = {}
        try:
            self._order(child.sock, Work("session", req["source"], req["function"], limits.timeout_s))
            send_reply(self.fout, {"ok": True})
            pidfd = os.pidfd_open(child.pid)  # the controller learns the child's pid in its own namespace
            try:
                socket.send_fds(self.chan, [b"S"], [child.sock.fileno(), pidfd])
            finally:
                os.close(pidfd)
            child.sock.close()  # from now on only the controller and the child hold the pair
            facts, _ = supervise(child.pid, None, self.fin, limits, self._controller_says)
        finally:
            child.sock.close()
            self.pending = child
            facts.update(self._report(child))
        if facts["killed"] == "controller":
            raise WorkerLost("controller gone during a session")
        tail = facts.pop(TAIL)
        if not self.exit_requested:
            send_reply(self.fout, {"ok": True, **facts}, tail=tail)
        else:
            oslevel.scrub(tail)

    @staticmethod
    def _order(zsock: socket.socket, work: Work) -> None:
        with contextlib.suppress(OSError):  # a child that died at once: supervision tells
            channel.send(zsock.fileno(), channel.PAYLOAD, 0, blob=work.encode())

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


def _filter_self(programs: syscalls.Programs) -> syscalls.Filter:
    """Load the zygote's part of the seccomp filter into the zygote (it needs none of those
    calls after its set-up); the filter each child then adds: the rest, or all of it if
    that failed."""
    try:
        oslevel.prctl(oslevel.PR_SET_NO_NEW_PRIVS, 1)  # needed without CAP_SYS_ADMIN; we never exec
        syscalls.Filter(programs.zygote).install()
        if programs.newer is not None:
            syscalls.Filter(programs.newer).install()
    except OSError as exc:
        print(f"zygote: no seccomp filter of its own ({exc}); each child loads the whole one", file=sys.stderr)
        return syscalls.Filter(programs.whole, programs.newer)
    return syscalls.Filter(programs.child)


def _fatal_message(blob: bytes) -> str | None:
    for line in blob.splitlines():
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict) and "fatal" in obj:
                return str(obj.get("message"))
    return None


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
    # Everything of ours is gone by now (children swept, the uid's processes killed, the
    # cgroup and the temp dir removed); the interpreter's own teardown (numpy, the verifier,
    # the instances) would only delay the controller's close, which waits for this exit.
    # Exit handlers still run, as at a normal exit.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
