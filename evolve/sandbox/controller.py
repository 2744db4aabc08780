"""``Sandbox``: the trusted side.  Owns one zygote and turns its reports into outcomes.

The controller never forks (it is large and holds API keys): the zygote is a
fresh interpreter started with a scrubbed environment.  See docs/sandbox.md.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from evolve.errors import UserError
from evolve.sandbox import frames, oslevel, view
from evolve.sandbox.frames import WorkerLost
from evolve.sandbox.outcome import build_outcome, malformed_facts
from evolve.sandbox.session import SandboxSession
from evolve.sandbox.side import SandboxSide, side_of
from evolve.sandbox.types import SandboxError, SandboxLimits, SandboxOutcome

START_TIMEOUT_S = 120.0  # importing numpy on a cold disk can be slow
GRACE_S = 15.0  # beyond the candidate's timeout before the zygote itself counts as hung
MAX_SETS = 8  # instance sets kept in the zygote
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # makes `-m evolve...` importable


def scrubbed_env(home: str) -> dict[str, str]:
    """The zygote's whole environment: no API keys, no PYTHONPATH, nothing inherited by name."""
    env = {
        "PATH": os.environ.get("PATH") or os.defpath,
        "HOME": home,
        "TMPDIR": home,
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0"),
        # One thread each, so the zygote stays single-threaded and fork is safe.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    for key in ("LANG", "LC_ALL"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    env.setdefault("LANG", "C.UTF-8")
    return env


def _side(entry: str, sys_path: list[str]) -> SandboxSide:
    """The verifier's sandbox side, read off its class here in the trusted process."""
    module_name, _, class_name = entry.partition(":")
    added = [p for p in sys_path if p not in sys.path]
    sys.path.extend(added)  # after ours, as the worker sees them
    try:
        return side_of(getattr(importlib.import_module(module_name), class_name))
    except Exception as exc:
        raise UserError(f"verifier {entry!r} cannot be loaded in the sandbox: {type(exc).__name__}: {exc}") from None
    finally:
        for p in added:
            sys.path.remove(p)


def strip_reference(instance: Any) -> Any:
    """What the sandbox receives: no reference value a candidate could aim at."""
    from evolve.verifier import Reference

    try:
        return replace(instance, reference=Reference.missing())
    except (TypeError, ValueError):  # not an Instance dataclass
        return instance


def wait_for_exit(proc: subprocess.Popen[Any], timeout: float) -> int:
    """``proc.wait(timeout)``, woken by the kernel when the process exits (a pidfd) instead of
    polling: Python's wait with a timeout checks after 0.5, 1, 2, 4 ... ms, then every 50 ms,
    so a zygote or an evaluation worker that was done closing stayed unreaped for up to tens of
    ms, once per level (the controller waits for a worker, which waits for its zygote). Only
    for a process no other thread waits for (its pid stays ours until we reap it)."""
    if proc.returncode is None:
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pidfd = None  # no pidfds here (Linux < 5.3): Popen's own polling
        if pidfd is not None:
            try:  # poll, not select: a pidfd numbered past FD_SETSIZE (1024) is fine here
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                exited = poller.poll(max(timeout, 0.0) * 1000.0)
            finally:
                os.close(pidfd)
            if not exited:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            return proc.wait()
    return proc.wait(timeout)


class _Resources:
    """What must be released even if the Sandbox is never closed (weakref.finalize)."""

    def __init__(self, base: str, lock_fd: int | None) -> None:
        self.base, self.lock_fd = base, lock_fd
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None  # our end of the zygote's channel

    def stop_worker(self, graceful: bool = True) -> None:
        proc, self.proc = self.proc, None
        sock, self.sock = self.sock, None
        if proc is None or sock is None:
            return
        if graceful:  # the zygote kills every process of its uid on the way out
            with contextlib.suppress(WorkerLost):
                frames.send_request(sock.fileno(), {"op": "exit"})
        else:  # hung or broken: no clean-up of its own (the next zygote sweeps its uid)
            self._kill(proc)
        sock.close()
        try:
            wait_for_exit(proc, 5.0)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            proc.wait()

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session; its child dies by PDEATHSIG

    def release(self) -> None:
        self.stop_worker()
        oslevel.rmtree(self.base)  # a candidate's tree may be thousands of dirs deep (no recursion)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


class Sandbox:
    """Runs candidate programs in forks of a warm, isolated worker ("zygote").

    Use from one thread at a time; one per evaluation worker (``slot``).
    ``hide_paths`` (root only) are covered by empty mounts in every candidate.
    """

    def __init__(
        self,
        verifier_entry: str,
        limits: SandboxLimits | None = None,
        slot: int = 0,
        extra_sys_path: list[str] | None = None,
        *,
        hide_paths: list[str] | None = None,
    ) -> None:
        module, sep, cls = verifier_entry.partition(":")
        if not (sep and module and cls.isidentifier()):
            raise UserError(f"verifier entry {verifier_entry!r}: expected 'package.module:ClassName'")
        self.entry = verifier_entry
        # The problem's folders first, as the trusted process imported its verifier (plugin_import).
        self._sys_path = list(dict.fromkeys(os.path.abspath(p or ".") for p in [*(extra_sys_path or []), *sys.path]))
        self.side = _side(verifier_entry, self._sys_path)
        self.limits = limits or SandboxLimits()
        self.slot = slot
        self.uid: int | None = None  # what candidates run as; None = the controller's uid
        self.isolation: list[str] = []  # what the probe found to work, for logs and docs
        # filesystem, pid namespace, network, uid, seccomp, cgroup limits -> (in force, how or why not)
        self.facts: dict[str, tuple[bool, str]] = {}
        self.worker_pid: int | None = None
        self.forker_pid: int | None = None  # the zygote's forker as of the last settle() (zygote's view)
        self.worker_modules: frozenset[str] = frozenset()  # what every candidate's process starts with
        self.worker_rss_kb: int | None = None  # the warm worker's resident size after its imports
        self._hide = [os.path.realpath(p) for p in hide_paths or []]
        self._sets: OrderedDict[tuple[int, ...], tuple[int, list[Any]]] = OrderedDict()
        self._next_set = 0
        self._closed = False
        self._session: SandboxSession | None = None
        self.interactive = False  # the verifier defines respond(): sessions are possible
        uid, lock_fd = None, None
        if os.geteuid() == 0:
            try:
                uid, lock_fd = oslevel.claim_uid(slot)
            except OSError as exc:
                raise SandboxError(f"no sandbox uid available: {exc}") from None
        else:
            # Candidates share our uid: without this they could read our
            # /proc/<pid>/environ (API keys), memory and fds, or ptrace us.
            oslevel.make_non_dumpable()
        self._uid_wanted = uid
        base = tempfile.mkdtemp(prefix=f"evolve-sandbox-{slot}-")
        os.chmod(base, 0o711)  # the candidate uid may enter its own run dir, not list others
        self._res = _Resources(base, lock_fd)
        self._finalizer = weakref.finalize(self, self._res.release)
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the zygote (and anything of its uid), remove the temp dirs.  Idempotent."""
        self._closed = True
        self._finalizer()

    # -- running --------------------------------------------------------------

    def run(
        self, source: str, function: str, instances: list[Any], timeout_s: float | None = None
    ) -> SandboxOutcome:
        """Run ``function`` of ``source`` on every instance; ``timeout_s`` overrides the
        limits' wall clock for this run (e.g. scaled to the number of instances)."""
        limits = self.limits if timeout_s is None else replace(self.limits, timeout_s=timeout_s)
        self._check_usable()
        if not function.isidentifier():
            raise ValueError(f"function name {function!r} is not an identifier")
        start = time.monotonic()
        try:
            if self._res.proc is None:
                self._start()
            set_id = self._ensure_loaded(instances)
            self._send({"op": "run", "set": set_id, "source": source, "function": function,
                        "timeout_s": limits.timeout_s})
            deadline = time.monotonic() + limits.timeout_s + GRACE_S
            header, blob = self._recv(deadline, (limits.max_output_mb << 20) + 1)
            if header.get("ok") is not False and (why := malformed_facts(header)) is not None:
                raise WorkerLost(f"malformed reply: {why}")
        except WorkerLost as exc:
            self._restart_worker()  # once; SandboxError if it cannot come back
            return SandboxOutcome("crash", [], f"sandbox worker failed ({exc}); it was restarted",
                                  "", time.monotonic() - start)
        if header.get("ok") is not True:
            raise SandboxError(f"sandbox worker refused the run: {header.get('error')}")
        return build_outcome(header, blob, instances, limits)

    def settle(self) -> int | None:
        """Wait until the zygote has cleaned up after the last candidate and forked the
        next child; that child's pid as the zygote sees it (None: no spare).

        ``run`` replies before the clean-up, which then overlaps the caller's own work.
        """
        self._check_usable()
        try:
            self._send({"op": "settle"})
            reply, _ = self._recv(time.monotonic() + START_TIMEOUT_S, 0)
        except WorkerLost as exc:
            self._restart_worker()
            raise SandboxError(f"sandbox worker failed ({exc}); it was restarted") from None
        forker = reply.get("forker")
        self.forker_pid = forker if type(forker) is int else None
        spare = reply.get("spare")
        return spare if type(spare) is int else None

    def session(self, source: str, function: str, timeout_s: float | None = None) -> SandboxSession:
        """Load ``source`` once in a fresh child and answer calls one at a time.

        Use as ``with sandbox.session(src, "f", timeout_s=60) as s: s.call(payload)``;
        ``timeout_s`` (default: the limits') is the wall clock of the whole session.
        The verifier must define ``respond(heuristic, payload)``.  See docs/sandbox.md.
        """
        self._check_usable()
        if not function.isidentifier():
            raise ValueError(f"function name {function!r} is not an identifier")
        if not self.interactive:
            raise UserError(f"verifier {self.entry!r} defines no respond(heuristic, payload): "
                            "it cannot answer calls in a session")
        limits = self.limits if timeout_s is None else replace(self.limits, timeout_s=timeout_s)
        return SandboxSession(self, source, function, limits)

    def _check_usable(self, opening: SandboxSession | None = None) -> None:
        if self._closed:
            raise SandboxError("the Sandbox is closed")
        if self._session is not None and self._session is not opening and not self._session.closed:
            raise SandboxError("a session is open on this Sandbox; close it first")

    def _ensure_loaded(self, instances: list[Any]) -> int:
        """Send an instance list once; later runs name it by id."""
        key = tuple(map(id, instances))
        hit = self._sets.get(key)
        if hit is not None:
            self._sets.move_to_end(key)
            return hit[0]
        set_id, self._next_set = self._next_set, self._next_set + 1
        self._send({"op": "load", "set": set_id, "instances": [strip_reference(i) for i in instances]})
        reply, _ = self._recv(time.monotonic() + START_TIMEOUT_S, 0)
        if not reply.get("ok"):
            error = str(reply.get("error"))
            if error.startswith("ModuleNotFoundError"):  # imported only after isolation: too late
                error += ("; the worker imports only the verifier's sandbox side (the module defining solve) "
                          "before it isolates itself: name this module in the verifier's sandbox_modules")
            raise SandboxError(f"instances could not be loaded in the sandbox: {error}")
        # Holding the objects keeps their ids from being reused by other lists.
        self._sets[key] = (set_id, list(instances))
        while len(self._sets) > MAX_SETS:
            _, (old, _) = self._sets.popitem(last=False)
            self._send({"op": "drop", "set": old})
        return set_id

    # -- the zygote -------------------------------------------------------------

    def _start(self) -> None:
        self._sets.clear()
        base = self._res.base
        os.makedirs(base, mode=0o711, exist_ok=True)  # a zygote that lost us removes it
        log = os.open(os.path.join(base, "zygote.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._res.proc = subprocess.Popen(
                [sys.executable, "-m", "evolve.sandbox.zygote", str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(theirs.fileno(),),
                env=scrubbed_env(base), cwd=_PACKAGE_ROOT, start_new_session=True,
            )
            self._res.sock = ours
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            os.close(log)
        roots = view.package_roots((*view.DEFAULT_PACKAGES, *self.side.packages), self._sys_path)
        init = {"sys_path": self._sys_path, "side": self.side, "base": base, "limits": self.limits,
                "uid": self._uid_wanted, "hide_paths": self._hide, "package_roots": roots}
        try:
            self._send(init)
            reply, _ = self._recv(time.monotonic() + START_TIMEOUT_S, 0)
        except WorkerLost as exc:
            self._res.stop_worker(graceful=False)
            raise SandboxError(f"sandbox worker did not start ({exc}): {self._log_tail()}") from None
        if not reply.get("ok"):
            self._res.stop_worker()
            if reply.get("kind") == "verifier":
                raise UserError(f"verifier {self.entry!r} cannot be loaded in the sandbox: {reply.get('error')}")
            raise UserError(f"sandbox: {reply.get('error')}")
        self.uid, self.isolation, self.worker_pid = reply["uid"], reply["isolation"], reply["pid"]
        self.interactive = bool(reply.get("interactive"))
        self.worker_modules = frozenset(reply.get("modules", ()))
        self.worker_rss_kb = reply.get("rss_kb")
        self.facts = {name: (bool(ok), str(detail)) for name, (ok, detail) in reply.get("facts", {}).items()}

    def _channel(self) -> socket.socket:
        if self._res.sock is None:
            raise WorkerLost("no worker")
        return self._res.sock

    def _send(self, obj: dict[str, Any]) -> None:
        frames.send_request(self._channel().fileno(), obj)

    def _recv(self, deadline: float, max_blob: int) -> tuple[dict[str, Any], bytes]:
        sock = self._channel()
        header, blob = frames.recv_reply(sock.fileno(), deadline, max_blob, sock)
        if type(header.get("ok")) is not bool:  # every reply says ok or not, as a bool (twelfth red team)
            raise WorkerLost(f"malformed reply: ok is {type(header.get('ok')).__name__}")
        return header, blob

    def _restart_worker(self) -> None:
        """After the zygote died or hung: a fresh one (SandboxError if it cannot come back)."""
        self._res.stop_worker(graceful=False)
        self._start()

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self._res.base, "zygote.log"), "rb") as f:
                text = f.read()[-600:].decode("utf-8", "replace")
        except OSError:
            return "no log"
        return " | ".join(line for line in text.splitlines() if line.strip()) or "no log"
