"""The forked candidate process: lock down, take its work order, load the candidate, run it.

Runs in a fresh fork of the zygote.  Its only link is fd 3, a seqpacket socket
(``channel``).  It locks itself down first and only then reads its work order
from the socket, so a child could be forked and locked down before its work is
known.  Then, for a batch run, it writes one JSON line per event:

* ``{"event": "loaded"}`` -- the program compiled and defines the function;
* ``{"solution": ..., "error": ...}`` -- one per instance, in order (the time each took is
  read from outside, by the zygote: ``supervise``'s ``line_cpu_ns``);
* ``{"fatal": "error"|"memory"|"sandbox", "message": ...}`` -- and nothing more.

For a session it answers one message per call instead (``session_child``).

The candidate shares this process, so it can tamper with anything here; that
spoils only its own result.  The zygote (another process) only counts and
forwards batch bytes; the controller parses everything as untrusted data.
"""

from __future__ import annotations

import contextlib
import json
import linecache
import marshal
import math
import mmap
import os
import resource
import select
import signal
import sys
import tempfile
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from evolve.sandbox import channel, oslevel, syscalls, view
from evolve.sandbox.cgroups import CandidateCgroup
from evolve.sandbox.types import SandboxLimits
from evolve.sandbox.wipe import wipe_sets

try:
    import numpy as np
except ImportError:  # numpy is a dependency, but the sandbox does not need it
    np = None

RESULT_FD = 3
CANDIDATE_FILE = "<candidate>"
MAX_MESSAGE = 500
RESERVE_BYTES = 8 << 20  # address space handed back to report a MemoryError
MAX_OPEN_FILES = 256
OOM_SCORE_ADJ = "1000"  # if the machine runs out of memory, candidates go first
REHEARSAL = "def f(x):\n    return [x, int(x), None]\n"  # what ``rehearse`` runs: our code only

_result_fd = -1  # where lines go; fd 3 once the descriptors are wired
_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep  # our frames: not the candidate's business


@dataclass
class ChildSpec:
    """What the zygote knows when it forks: enough to lock the child down."""

    sets: dict[int, list[Any]]  # the zygote's instance sets; the child keeps only its own
    solve: Callable[[Callable[..., Any], Any], Any]
    respond: Callable[[Callable[..., Any], Any], Any] | None
    limits: SandboxLimits
    workdir: str  # fresh and empty: the candidate's cwd, HOME and TMPDIR
    out_fd: int  # the candidate's stdout+stderr file
    channel_fd: int  # this child's end of its seqpacket socket
    zygote_pid: int
    uid: int | None = None  # drop to this uid (root only)
    seccomp: syscalls.Filter | None = None  # the BPF program to add to the zygote's (syscalls.build)
    cgroup: CandidateCgroup | None = None  # joined before dropping privileges
    drop_capabilities: bool = False  # in the zygote's user namespace: give up its capabilities
    set_oom_score: bool = True  # False: inherited (the forker set its own oom_score_adj to 1000)
    shared_done: bool = False  # True: inherited (the forker did ``shared_lock_down`` on itself)
    env_done: bool = False  # True: inherited (the forker did ``set_workdir_env(workdir)`` on itself)
    renewal: view.Renewal | None = None  # fresh private writable dirs of our own (view.renew)


@dataclass
class Work:
    """The work order, read from the channel after lock-down: its fields as one marshalled
    tuple (``encode``). Unpickling a dataclass ran ~0.1 ms more of the child's Python, each
    first touch of a page it shares with the forker a copy-on-write fault."""

    mode: str  # "batch" or "session"
    source: str
    function: str
    timeout_s: float
    set_id: int | None = None  # batch: which instance set

    def encode(self) -> bytes:
        return marshal.dumps((self.mode, self.source, self.function, self.timeout_s, self.set_id))


@dataclass(frozen=True)
class LockDownCalls:
    """The libc calls of every child's lock-down, their ctypes arguments made once, in the zygote
    before it forks (``lock_down_calls``): a child only makes the call (``oslevel.prepared``)."""

    close_fds: Callable[[], None]  # every fd above the channel's
    parent_death: Callable[[], None]  # PR_SET_PDEATHSIG, SIGKILL


_calls: LockDownCalls | None = None


def lock_down_calls() -> LockDownCalls:
    """This process's ``LockDownCalls``, made on the first call (the zygote's, in its set-up)."""
    global _calls
    if _calls is None:
        _calls = LockDownCalls(oslevel.fd_closer(RESULT_FD + 1),
                               oslevel.prctl_call(oslevel.PR_SET_PDEATHSIG, signal.SIGKILL))
    return _calls


_REHEARSAL_ORDER = Work("batch", REHEARSAL, "f", 1.0, 0).encode()  # made once, in the zygote
LOADED_LINE = b'{"event": "loaded"}'  # json.dumps({"event": "loaded"}), made once

SessionLoop = Callable[[ChildSpec, Work, Callable[[str, str], Any]], None]


def run_child(spec: ChildSpec, run_session: SessionLoop) -> NoReturn:
    """Never returns: whatever happens ends in ``os._exit``.

    ``run_session`` is ``session_child.run_session``, handed in by the zygote:
    that module uses this one's helpers, so the two must not import each other.
    """
    global _result_fd
    exit_ = os._exit  # bound before the candidate can replace os._exit
    code = 0
    try:
        _result_fd = spec.channel_fd
        try:
            lock_down(spec)
            failure = None
        except BaseException as exc:
            failure = f"sandbox setup failed: {describe(exc)}"
        if failure is None and not _order_waiting():
            rehearse()
        work = _read_work()
        if work is None:
            code = 70
        elif failure is not None:
            code = 70
            _fatal(work, "sandbox", failure)
        else:
            instances = spec.sets.get(work.set_id, []) if work.set_id is not None else []
            if work.mode == "session":  # freed is not gone: a session sees no instance whole
                wipe_sets(spec.sets)
            spec.sets.clear()  # other splits' instances are none of this candidate's business
            try:
                _set_cpu_limit(work.timeout_s)
                if work.mode == "session":
                    run_session(spec, work, load_candidate)
                else:
                    run_candidate(spec, work, instances)
            except BaseException as exc:  # our own code failed (candidate errors are caught inside)
                code = 71
                _fatal(work, "sandbox", f"sandbox failed: {describe(exc)}")
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    finally:
        exit_(code)


def rehearse() -> None:
    """Go once through our own path (work order, compile, run, encode) with a fixed trivial
    program, before the work order arrives (skipped if it is already waiting: `_order_waiting`).

    A child is forked ahead of its work, so the copy-on-write faults these first touches
    of the zygote's pages cost (a few hundred, a fraction of a millisecond) fall in idle
    time instead of between the candidate's order and its results. Only our own code
    runs, after lock-down; what it leaves (the probe module) is removed.
    """
    with contextlib.suppress(BaseException):
        work = Work(*marshal.loads(_REHEARSAL_ORDER))
        fn, _ = load_candidate(work.source, work.function)
        if fn is not None:
            _encode(fn(0.5), None)
    module = sys.modules.pop("candidate", None)
    if module is not None:
        module.__dict__.clear()  # breaks the function <-> globals cycle: freed now, not at a collection
    linecache.cache.pop(CANDIDATE_FILE, None)


def _order_waiting() -> bool:
    """The work order is already here (it came while we locked down): no idle time is left to
    rehearse in, and the rehearsal would only stand between the candidate and its results."""
    try:
        return bool(select.select([_result_fd], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _read_work() -> Work | None:
    got = channel.recv_trusted(_result_fd)
    if got is None or got[0] != channel.PAYLOAD:
        return None
    try:
        return Work(*marshal.loads(got[3]))  # from the zygote: trusted
    except (ValueError, TypeError, EOFError):
        return None


def _fatal(work: Work, kind: str, message: str) -> None:
    if work.mode == "session":
        meta = json.dumps({"fatal": kind, "message": message}).encode()[: channel.MAX_META]
        channel.send(_result_fd, channel.FATAL, 0, meta)
    else:
        _emit({"fatal": kind, "message": message})


def lock_down(spec: ChildSpec) -> None:
    global _result_fd
    calls = lock_down_calls()
    os.setpgid(0, 0)  # own process group: the zygote kills it as a whole
    if spec.set_oom_score:
        with contextlib.suppress(OSError):  # if the machine runs out of memory, candidates go first
            oslevel.write_proc("self/oom_score_adj", OOM_SCORE_ADJ)
    if spec.cgroup is not None:
        spec.cgroup.join()
    _wire_fds(spec, calls.close_fds)  # from here on only fds 0-3 are open
    _result_fd = RESULT_FD
    workdir = spec.workdir  # the zygote made it ours (the candidate uid's)
    if spec.renewal is not None:
        view.renew(spec.renewal, workdir, spec.uid)
    os.chdir(workdir)
    if not spec.env_done:
        set_workdir_env(workdir)
    if not spec.shared_done:
        shared_lock_down(spec)
    if spec.uid is None:  # as root shared_lock_down set it (in the forker, or just above)
        _limit_processes(spec.limits)
    if spec.uid is not None:
        uid = spec.uid
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
            raise RuntimeError(f"could not drop to uid {uid}")
    if spec.drop_capabilities:
        oslevel.drop_capabilities()
    calls.parent_death()  # after setuid, which clears it
    if os.getppid() not in (spec.zygote_pid, 0):  # 0: the zygote is outside our pid namespace
        raise RuntimeError("the zygote exited")
    if spec.seccomp is not None:
        spec.seccomp.install()  # last: nothing after it needs a refused call


def _workdir_env_setter() -> Callable[[str], None]:
    environb, tempfile_module = os.environb, tempfile  # os.environ's own dict (and putenv)
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()

    def set_workdir_env(workdir: str) -> None:
        """The work dir as the candidate's ``HOME``, ``TMPDIR`` and ``tempfile`` dir.

        The forker sets it for the next child right after forking the last one (it knows the
        next work dir's name ahead), so that child inherits it instead of writing ~50 shared
        pages between its fork and its work order. What it needs is bound once (the forker
        writes a page of its own for every object it touches after a clone).
        """
        value = workdir.encode(encoding, errors)  # os.fsencode, without its Python
        environb[b"HOME"] = environb[b"TMPDIR"] = value
        tempfile_module.tempdir = workdir

    return set_workdir_env


set_workdir_env = _workdir_env_setter()


def shared_lock_down(spec: ChildSpec) -> None:
    """The part of the lock-down that is the same for every child: the file mode mask,
    ``PR_SET_NO_NEW_PRIVS`` (no privilege gain through a set-user-ID program), no
    supplementary groups and RLIMIT_NPROC (as root) and every other rlimit but RLIMIT_CPU.

    The forker does it once on itself and its children inherit it (``spec.shared_done``),
    ~60 us and ~15 copy-on-write faults less per child, ~0.06 ms more since 2026-12-07
    (no new privileges and, as root, the process limit). It can: it never opens a file
    (umask), never executes a program (no new privileges), never needs a group, holds a few
    fds (RLIMIT_NOFILE 256), writes nothing (RLIMIT_FSIZE, RLIMIT_CORE, RLIMIT_MSGQUEUE) and
    maps no more than the zygote it was forked from, which ``memory_mb`` must already exceed
    by 64 MiB (RLIMIT_AS; its children start at the same size either way). RLIMIT_NPROC
    limits the forks of a process whose real uid already has that many, and the forker must
    fork: the kernel exempts a real uid of root from it, so as root (``spec.uid``) the forker
    sets it too; otherwise each child does.
    """
    os.umask(0o077)
    oslevel.prctl(oslevel.PR_SET_NO_NEW_PRIVS, 1)
    if spec.uid is not None:
        os.setgroups([])
        _limit_processes(spec.limits)
    _set_limits(spec.limits)


def _limit_processes(limits: SandboxLimits) -> None:
    n = limits.max_processes
    _lower(resource.RLIMIT_NPROC, n, n)  # it counts the processes of the uid, the forker's too


def _wire_fds(spec: ChildSpec, close_fds: Callable[[], None]) -> None:
    # fds 0-2 of the zygote are taken, so the sources are >= 3 and channel_fd
    # (moved last) cannot be overwritten before it is copied.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(spec.out_fd, 1)
    os.dup2(spec.out_fd, 2)
    os.dup2(spec.channel_fd, RESULT_FD)
    close_fds()  # from RESULT_FD + 1: null and the zygote's channel among them
    # sys.stdin/stdout/stderr keep their objects, which now write to the new fds 0-2.


def _set_limits(limits: SandboxLimits) -> None:
    mb = 1 << 20
    for res, soft, hard in (
        (resource.RLIMIT_AS, limits.memory_mb * mb, limits.memory_mb * mb),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mb, limits.file_size_mb * mb),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES, MAX_OPEN_FILES),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_MSGQUEUE, 0, 0),  # no POSIX message queues: they outlive the process
    ):
        _lower(res, soft, hard)


def _set_cpu_limit(timeout_s: float) -> None:
    """Set once the work is known (a child may be locked down before): lowering needs no privilege."""
    cpu = math.ceil(timeout_s) + 1  # SIGXCPU at cpu s, SIGKILL one second later
    _lower(resource.RLIMIT_CPU, cpu, cpu + 1)


def _lower(res: int, soft: int, hard: int) -> None:
    cur_hard = resource.getrlimit(res)[1]
    if cur_hard != resource.RLIM_INFINITY:  # lowering only: we may lack CAP_SYS_RESOURCE
        soft, hard = min(soft, cur_hard), min(hard, cur_hard)
    resource.setrlimit(res, (soft, hard))


def load_candidate(source: str, function: str) -> tuple[Callable[..., Any] | None, dict[str, str] | None]:
    """Compile and run the program as module ``candidate``; (function, None) or (None, fatal)."""
    module = types.ModuleType("candidate")
    module.__file__ = CANDIDATE_FILE
    sys.modules["candidate"] = module
    # Lets tracebacks in the stderr tail show the candidate's own lines.
    linecache.cache[CANDIDATE_FILE] = (len(source), None, source.splitlines(True), CANDIDATE_FILE)
    try:
        exec(compile(source, CANDIDATE_FILE, "exec"), module.__dict__)
        fn = module.__dict__.get(function)
    except MemoryError:
        return None, {"fatal": "memory", "message": "MemoryError"}
    except BaseException as exc:
        show_traceback(exc)
        return None, {"fatal": "error", "message": describe(exc)}
    if fn is None or not callable(fn):
        what = "" if fn is None else f" ({function!r} is a {type(fn).__name__})"
        return None, {"fatal": "error", "message": f"program does not define a function {function!r}{what}"}
    return fn, None


def run_candidate(spec: ChildSpec, work: Work, instances: list[Any]) -> None:
    # Untouched address space (no page faults, unlike a bytearray) to give back on MemoryError.
    reserve = [mmap.mmap(-1, RESERVE_BYTES)]
    fn, fatal = load_candidate(work.source, work.function)
    if fatal is not None:
        release(reserve)
        _emit(fatal)
        return
    _write(LOADED_LINE)
    shown = False
    for instance in instances:
        try:
            solution, error = spec.solve(fn, instance), None
        except MemoryError:
            release(reserve)
            _emit({"fatal": "memory", "message": "MemoryError"})
            return
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too
            solution, error = None, describe(exc)
            if not shown:  # one traceback is enough feedback
                shown = show_traceback(exc)
        try:
            line = _encode(solution, error)
        except MemoryError:
            release(reserve)
            _emit({"fatal": "memory", "message": "MemoryError while encoding the solution"})
            return
        _flush_output()  # the zygote may reply as soon as the last line is in: its printout first
        _write(line)


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # the candidate's own streams: its own problem
            stream.flush()


def release(reserve: list[mmap.mmap]) -> None:
    for block in reserve:
        block.close()
    reserve.clear()


def _encode(solution: Any, error: str | None) -> bytes:
    record = {"solution": solution, "error": error}
    try:
        text = encode_json(record)
    except MemoryError:
        raise
    except BaseException as exc:
        # NaN/inf never cross the boundary (strict JSON); say so in plain words.
        why = "it contains NaN or infinity" if "Out of range float" in str(exc) else describe(exc)
        record = {"solution": None, "error": f"solution is not JSON-serialisable: {why}"}
        text = json.dumps(record)
    return text.encode()


def plain(obj: Any) -> Any:
    """numpy values -> Python values; anything else is not part of a solution."""
    if np is not None:
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# Strict JSON of a solution or a session reply (numpy values made plain, NaN refused), with one
# encoder made once: ``json.dumps`` with arguments makes an encoder per call, ~40 % of a short
# session reply's encoding (15 -> 9 us at load 16).
encode_json = json.JSONEncoder(default=plain, allow_nan=False, separators=(",", ":")).encode


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


def show_traceback(exc: BaseException) -> bool:
    """Traceback into the candidate's stderr (feedback), without our own frame."""
    with contextlib.suppress(BaseException):
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_DIR):
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    return True


def _emit(obj: dict[str, Any]) -> None:
    _write(json.dumps(obj).encode())


def _write(line: bytes) -> None:
    channel.write_stream(_result_fd, line + b"\n")
