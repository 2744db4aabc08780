"""Evaluations off the controller's GIL: one trusted worker process per slot.

With ``--workers N`` (N > 1, local executor) each slot is a process of its own,
started at launch, all at once: it loads the problem, starts that slot's
sandbox and then runs whole evaluations -- the candidate in the sandbox, the
verifier's trusted ``score`` (and ``interact``, which for an interactive
verifier runs the whole simulation on the trusted side), the cascade -- so the
controller's thread only sends the child's code and receives the ``Evaluation``.
A worker is trusted code: it holds the instances with their references and
never runs candidate code (that happens in its sandbox's children). Requests and
replies are pickles over a socket pair, between trusted processes only.

A worker is started as ``python -m evolve.workers FD`` (like the zygote) rather
than with ``multiprocessing``, which would re-import the user's ``__main__``.
If one dies, the evaluation it was running is a ``crash`` and the slot gets a
new worker.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from evolve.config import RunSettings, SandboxSettings
from evolve.errors import UserError
from evolve.evaluation import Evaluation, results_json, warn_once
from evolve.executors import (
    Executor,
    LocalExecutor,
    RayExecutor,
    SlotCalls,
    pack_splits,
    problem_reference,
    unpack_splits,
)
from evolve.problem import Problem
from evolve.sandbox.controller import wait_for_exit
from evolve.verifier import Instance

START_TIMEOUT_S = 300.0  # importing numpy and a verifier, then starting a sandbox, on a cold disk
CLOSE_TIMEOUT_S = 10.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # on PYTHONPATH: `-m evolve.workers` imports this code


class WorkerLost(Exception):
    """A worker process died or stopped answering."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build its slot: sent once, at start."""

    problem: str  # a name or a folder (problem_reference)
    options: dict[str, Any]
    sandbox: dict[str, Any]  # SandboxSettings, as plain data
    splits: bytes  # pack_splits: opened after the problem is loaded
    hide: list[str]
    slot: int
    sys_path: list[str] = field(default_factory=list)


def start_module(module: str, *args: str, new_session: bool = False,
                 piped: bool = False) -> tuple[subprocess.Popen[bytes], Connection]:
    """``python -m MODULE FD *args`` with this checkout importable, and our end of the
    socket pair whose other end is its FD (pickles between trusted processes).  ``piped``:
    its stdout and stderr are one pipe, ``proc.stdout`` (unbuffered), instead of ours."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno()), *args], pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path}, start_new_session=new_session,
            stdout=subprocess.PIPE if piped else None, stderr=subprocess.STDOUT if piped else None, bufsize=0,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, Connection(ours.detach())


class _Worker:
    """The controller's handle on one worker process."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.proc, self.conn = start_module("evolve.workers")
        self._stopped = False
        self.conn.send(spec)

    def ready(self, deadline: float) -> dict[str, tuple[bool, str]]:
        """Wait for the start-up report: the sandbox's isolation facts, or its error raised here."""
        kind, value = self._receive(deadline)
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        try:
            self.conn.send((method, args))
        except OSError as exc:
            raise WorkerLost(f"send failed: {exc}") from None
        kind, value = self._receive(None)
        if kind == "error":
            raise value
        return value

    def _receive(self, deadline: float | None) -> tuple[str, Any]:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                if self.conn.poll(1.0 if wait is None else min(wait, 1.0)):
                    return self.conn.recv()  # type: ignore[no-any-return]
            except (EOFError, OSError) as exc:
                raise WorkerLost(f"exited ({self._status()})") from exc
            if self.proc.poll() is not None:
                raise WorkerLost(f"exited ({self._status()})")
            if deadline is not None and time.monotonic() >= deadline:
                raise WorkerLost("did not start in time")

    def _status(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "still running"
        return f"signal {-code}" if code < 0 else f"status {code}"

    def stop(self) -> None:
        """Tell the worker to close its slot and exit (``close`` then waits for it)."""
        if not self._stopped:
            self._stopped = True
            with contextlib.suppress(OSError):
                self.conn.send(None)

    def close(self, graceful: bool = True) -> None:
        if graceful:
            self.stop()
        self.conn.close()
        try:
            wait_for_exit(self.proc, CLOSE_TIMEOUT_S if graceful else 0.1)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # its sandbox's zygote sees its channel close and cleans up
            self.proc.wait()


class WorkerProcesses(SlotCalls):
    """An ``Executor``: ``workers`` trusted worker processes, one per slot, used one call at a time each."""

    def __init__(
        self, problem: Problem, settings: SandboxSettings, workers: int,
        splits: dict[str, list[Instance]], hide: list[Path] | None = None,
    ) -> None:
        base = WorkerSpec(problem_reference(problem), dict(problem.spec.verifier.options),
                          settings.model_dump(), pack_splits(splits), [str(p) for p in hide or []], 0,
                          [os.path.abspath(p or ".") for p in sys.path])
        self._workers: list[_Worker] = []
        self._free: queue.Queue[_Worker] = queue.Queue()
        try:
            for slot in range(workers):  # all start at once; each imports and starts its sandbox
                self._workers.append(_Worker(_with_slot(base, slot)))
            deadline = time.monotonic() + START_TIMEOUT_S
            for worker in self._workers:
                warn_once(self._ready(worker, deadline))
        except BaseException:
            self.close()
            raise
        for worker in self._workers:
            self._free.put(worker)

    @staticmethod
    def _ready(worker: _Worker, deadline: float) -> dict[str, tuple[bool, str]]:
        try:
            return worker.ready(deadline)
        except WorkerLost as exc:
            raise UserError(f"evaluation worker {worker.spec.slot} did not start: {exc}") from None

    def _call(self, method: str, *args: Any) -> Evaluation:
        worker = self._free.get()
        try:
            result: Evaluation = worker.call(method, args)
            return result
        except WorkerLost as exc:
            worker = self._replace(worker)
            return Evaluation("crash", None, {}, [], f"evaluation worker failed ({exc}); it was restarted",
                              "quick", 0.0)
        finally:
            self._free.put(worker)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.close(graceful=False)
        fresh = _Worker(worker.spec)
        fresh.ready(time.monotonic() + START_TIMEOUT_S)
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def close(self) -> None:
        # Told all at once, then waited for: each closes its sandbox and exits in parallel.
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            with contextlib.suppress(Exception):
                worker.close()
        self._workers = []


def make_executor(
    problem: Problem, settings: RunSettings, splits: dict[str, list[Instance]], hide: list[Path]
) -> Executor:
    """Ray actors; or, on this machine, one trusted worker process per slot when there are
    several (scoring runs off the controller's GIL), else the one sandbox
    driven from this process. Every sandbox starts here, not at its first candidate."""
    if settings.executor == "ray":
        return RayExecutor(problem, settings, splits, settings.ray_address, hide)
    if settings.workers > 1:
        return WorkerProcesses(problem, settings.sandbox, settings.workers, splits, hide)
    local = LocalExecutor(problem, settings.sandbox, settings.workers, splits, hide)
    try:
        local.start()
    except BaseException:
        local.close()
        raise
    return local


def _with_slot(spec: WorkerSpec, slot: int) -> WorkerSpec:
    return WorkerSpec(spec.problem, spec.options, spec.sandbox, spec.splits, spec.hide, slot, spec.sys_path)


def _serve(conn: Connection) -> None:
    """The worker's side: build the slot, then answer calls until told to stop or orphaned."""
    from evolve.problem import load_problem

    spec: WorkerSpec = conn.recv()
    sys.path[:] = spec.sys_path
    try:
        problem = load_problem(spec.problem).with_options(spec.options)
        splits = unpack_splits(problem, spec.splits)
        local = LocalExecutor(problem, SandboxSettings.model_validate(spec.sandbox), 1, splits,
                              [Path(p) for p in spec.hide], first_slot=spec.slot)
        facts = local.start()
    except Exception as exc:  # UserError, SandboxError: raised again by the controller
        conn.send(("error", exc))
        return
    conn.send(("ready", facts))
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return  # the controller is gone
            if request is None:
                return
            method, args = request
            try:
                evaluation: Evaluation = getattr(local, method)(*args)
                evaluation.solutions = []  # the loop keeps per-instance results, not solutions
                evaluation.instances_json = results_json(evaluation.instances)  # as committed
                reply: tuple[str, Any] = ("ok", evaluation)
            except Exception as exc:
                reply = ("error", exc)
            try:
                conn.send(reply)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an exception that does not pickle
                conn.send(("error", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]} ({exc})")))
    finally:
        local.close()


def main() -> None:
    # Ctrl-C is the controller's to handle: it stops the run and closes us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _serve(Connection(int(sys.argv[1])))
    # The slot is closed (its sandbox stopped, its temp dirs gone): what is left is the
    # interpreter's teardown of numpy, the verifier and the instances, which the controller
    # would wait for at the end of every run (~0.1-0.4 s per worker). The exit handlers
    # (a Python problem's temp dirs) still run, and the streams are flushed.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
