"""The forked candidate process: lock down, load the candidate, run every instance.

Runs in a fresh fork of the zygote and writes one JSON line per event to fd 3:

* ``{"event": "loaded"}`` -- the program compiled and defines the function;
* ``{"solution": ..., "error": ..., "seconds": ...}`` -- one per instance, in order;
* ``{"fatal": "error"|"memory"|"sandbox", "message": ...}`` -- and nothing more.

The candidate shares this process, so it can tamper with anything here; that
spoils only its own result.  The zygote (another process) only counts and
forwards these bytes; the controller parses them as untrusted JSON.
"""

from __future__ import annotations

import contextlib
import json
import linecache
import math
import mmap
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from evolve.sandbox import oslevel
from evolve.sandbox.types import SandboxLimits

try:
    import numpy as np
except ImportError:  # numpy is a dependency, but the sandbox does not need it
    np = None

RESULT_FD = 3
CANDIDATE_FILE = "<candidate>"
MAX_MESSAGE = 500
RESERVE_BYTES = 8 << 20  # address space handed back to report a MemoryError
MAX_OPEN_FILES = 256

_result_fd = -1  # where lines go; fd 3 once the descriptors are wired


@dataclass
class ChildSpec:
    source: str
    function: str
    instances: list[Any]
    solve: Callable[[Callable[..., Any], Any], Any]
    limits: SandboxLimits
    workdir: str  # fresh and empty: the candidate's cwd, HOME and TMPDIR
    out_fd: int  # the candidate's stdout+stderr file
    result_fd: int  # write end of the result pipe
    zygote_pid: int
    uid: int | None = None  # drop to this uid (root only)


def run_child(spec: ChildSpec) -> NoReturn:
    """Never returns: whatever happens ends in ``os._exit``."""
    global _result_fd
    exit_ = os._exit  # bound before the candidate can replace os._exit
    code = 0
    try:
        _result_fd = spec.result_fd
        try:
            lock_down(spec)
        except BaseException as exc:
            code = 70
            _emit({"fatal": "sandbox", "message": f"sandbox setup failed: {describe(exc)}"})
        else:
            try:
                run_candidate(spec)
            except BaseException as exc:  # our own code failed (candidate errors are caught inside)
                code = 71
                _emit({"fatal": "sandbox", "message": f"sandbox failed: {describe(exc)}"})
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    finally:
        exit_(code)


def lock_down(spec: ChildSpec) -> None:
    global _result_fd
    os.setpgid(0, 0)  # own process group: the zygote kills it as a whole
    _wire_fds(spec)
    _result_fd = RESULT_FD
    try:  # if the machine runs out of memory, the kernel kills candidates first
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    workdir = spec.workdir
    if spec.uid is not None:
        os.chown(workdir, spec.uid, spec.uid)
    os.chdir(workdir)
    os.umask(0o077)
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir
    tempfile.tempdir = workdir
    _set_limits(spec.limits)
    oslevel.prctl(oslevel.PR_SET_NO_NEW_PRIVS, 1)  # no privilege gain via setuid binaries
    if spec.uid is not None:
        uid = spec.uid
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
            raise RuntimeError(f"could not drop to uid {uid}")
    oslevel.prctl(oslevel.PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
    if os.getppid() != spec.zygote_pid:
        raise RuntimeError("the zygote exited")


def _wire_fds(spec: ChildSpec) -> None:
    # fds 0-2 of the zygote are taken, so the sources are >= 3 and result_fd
    # (moved last) cannot be overwritten before it is copied.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(spec.out_fd, 1)
    os.dup2(spec.out_fd, 2)
    os.dup2(spec.result_fd, RESULT_FD)
    oslevel.close_fds_from(RESULT_FD + 1)  # null and the zygote's channel among them
    # sys.stdin/stdout/stderr keep their objects, which now write to the new fds 0-2.


def _set_limits(limits: SandboxLimits) -> None:
    cpu = math.ceil(limits.timeout_s) + 1  # SIGXCPU at cpu s, SIGKILL one second later
    mb = 1 << 20
    for res, soft, hard in (
        (resource.RLIMIT_AS, limits.memory_mb * mb, limits.memory_mb * mb),
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mb, limits.file_size_mb * mb),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES, MAX_OPEN_FILES),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_MSGQUEUE, 0, 0),  # no POSIX message queues: they outlive the process
    ):
        cur_hard = resource.getrlimit(res)[1]
        if cur_hard != resource.RLIM_INFINITY:  # lowering only: we may lack CAP_SYS_RESOURCE
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        resource.setrlimit(res, (soft, hard))


def run_candidate(spec: ChildSpec) -> None:
    # Untouched address space (no page faults, unlike a bytearray) to give back on MemoryError.
    reserve = [mmap.mmap(-1, RESERVE_BYTES)]
    module = types.ModuleType("candidate")
    module.__file__ = CANDIDATE_FILE
    sys.modules["candidate"] = module
    # Lets tracebacks in the stderr tail show the candidate's own lines.
    linecache.cache[CANDIDATE_FILE] = (len(spec.source), None, spec.source.splitlines(True), CANDIDATE_FILE)
    try:
        exec(compile(spec.source, CANDIDATE_FILE, "exec"), module.__dict__)
        fn = module.__dict__.get(spec.function)
    except MemoryError:
        _release(reserve)
        _emit({"fatal": "memory", "message": "MemoryError"})
        return
    except BaseException as exc:
        _show(exc)
        _emit({"fatal": "error", "message": describe(exc)})
        return
    if fn is None or not callable(fn):
        what = "" if fn is None else f" ({spec.function!r} is a {type(fn).__name__})"
        _emit({"fatal": "error", "message": f"program does not define a function {spec.function!r}{what}"})
        return
    _emit({"event": "loaded"})
    shown = False
    for instance in spec.instances:
        start = time.perf_counter()
        try:
            solution, error = spec.solve(fn, instance), None
        except MemoryError:
            _release(reserve)
            _emit({"fatal": "memory", "message": "MemoryError"})
            return
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too
            solution, error = None, describe(exc)
            if not shown:  # one traceback is enough feedback
                shown = _show(exc)
        seconds = time.perf_counter() - start
        try:
            line = _encode(solution, error, seconds)
        except MemoryError:
            _release(reserve)
            _emit({"fatal": "memory", "message": "MemoryError while encoding the solution"})
            return
        _write(line)


def _release(reserve: list[mmap.mmap]) -> None:
    for block in reserve:
        block.close()
    reserve.clear()


def _encode(solution: Any, error: str | None, seconds: float) -> bytes:
    record = {"solution": solution, "error": error, "seconds": seconds}
    try:
        text = json.dumps(record, default=_plain, allow_nan=False, separators=(",", ":"))
    except MemoryError:
        raise
    except BaseException as exc:
        # NaN/inf never cross the boundary (strict JSON); say so in plain words.
        why = "it contains NaN or infinity" if "Out of range float" in str(exc) else describe(exc)
        record = {"solution": None, "error": f"solution is not JSON-serialisable: {why}",
                  "seconds": seconds}
        text = json.dumps(record)
    return text.encode()


def _plain(obj: Any) -> Any:
    """numpy values -> Python values; anything else is not part of a solution."""
    if np is not None:
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def describe(exc: BaseException) -> str:
    """``Type: message (line N)`` on one line; N is the candidate's innermost line."""
    try:
        name = str(type(exc).__name__)
        line = None
        if isinstance(exc, SyntaxError):
            msg = exc.msg
            if exc.filename == CANDIDATE_FILE:
                line = exc.lineno
        else:
            msg = str(exc)
            tb = exc.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == CANDIDATE_FILE:
                    line = tb.tb_lineno
                tb = tb.tb_next
        msg = " ".join(str(msg).split())[:MAX_MESSAGE]
        text = f"{name}: {msg}" if msg else name
        return f"{text} (line {line})" if isinstance(line, int) else text
    except BaseException:  # a hostile __str__ or metaclass
        return "exception (unprintable)"


def _show(exc: BaseException) -> bool:
    """Traceback into the candidate's stderr (feedback), without our own frame."""
    with contextlib.suppress(BaseException):
        tb = exc.__traceback__
        if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    return True


def _emit(obj: dict[str, Any]) -> None:
    _write(json.dumps(obj).encode())


def _write(line: bytes) -> None:
    view = memoryview(line + b"\n")
    while view:
        view = view[os.write(_result_fd, view) :]
