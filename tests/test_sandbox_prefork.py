"""The next candidate's child is forked and locked down ahead of time: it serves one
candidate only, and nothing of the candidate before reaches it. The forker
(evolve/sandbox/forker.py) forks every child with clone(CLONE_PARENT): each is the
zygote's own, and nothing of the forker reaches a candidate.

Real sandboxes, real forks.  A candidate that wants to pass state on tries the ways a
hostile one would: its own process memory (if its child were reused), shared
directories, SysV IPC, an abstract unix socket, and a leftover that keeps writing into
the next child's work dir after its reply, while that child is already forked.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sandbox import ROOT, alive, assert_nothing_left, make

from evolve.sandbox import Sandbox
from evolve.verifier import Instance

ONE = [Instance("n1", "g", {"x": 1})]
MARK = "prefork-7f3a"

LEAVE_STATE = f"""
import builtins, ctypes, os, socket, sys, types
import numpy
def f(x):
    builtins.{MARK.replace("-", "_")} = 1
    numpy.{MARK.replace("-", "_")} = 1
    os.environ["{MARK}"] = "1"
    sys.modules["{MARK}"] = types.ModuleType("{MARK}")
    for d in (".", "/tmp", "/dev/shm"):
        try:
            with open(os.path.join(d, "{MARK}"), "w") as fh:
                fh.write("state")
        except OSError:
            pass
    shm = ctypes.CDLL(None).shmget(0x7F3A, 4096, 0o1666) >= 0
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("\\0{MARK}")
    sock.listen()
    builtins.keep = sock
    return shm
"""
FIND_STATE = f"""
import builtins, ctypes, os, socket, sys
import numpy
def f(x):
    found = []
    if hasattr(builtins, "{MARK.replace("-", "_")}"):
        found.append("builtins")
    if hasattr(numpy, "{MARK.replace("-", "_")}"):
        found.append("numpy")
    if "{MARK}" in os.environ:
        found.append("environ")
    if "{MARK}" in sys.modules:
        found.append("sys.modules")
    found += [d for d in (".", "/tmp", "/dev/shm") if os.path.exists(os.path.join(d, "{MARK}"))]
    if ctypes.CDLL(None).shmget(0x7F3A, 4096, 0o666) >= 0:
        found.append("shm")
    try:
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect("\\0{MARK}")
        found.append("socket")
    except OSError:
        pass
    return found
"""
# Answers, then lingers: the run's last flush blocks while a thread keeps writing into
# the shared dirs and into the work dirs the next children will get (run-N+1, ...).
LINGER = f"""
import os, sys, threading, time
class Stalling:
    calls = 0
    def write(self, text):
        return len(text)
    def flush(self):
        Stalling.calls += 1
        if Stalling.calls > 1:  # after the last result line: hold the child here
            time.sleep(30)
def scribble():
    here = os.getcwd()
    base, name = os.path.split(here)
    n = int(name.rsplit("-", 1)[1])
    targets = ["/tmp", "/dev/shm"] + [os.path.join(base, f"run-{{n + k}}") for k in range(1, 4)]
    while True:
        for d in targets:
            try:
                with open(os.path.join(d, "{MARK}"), "w") as fh:
                    fh.write("late")
            except OSError:
                pass
def f(x):
    threading.Thread(target=scribble, daemon=True).start()
    time.sleep(0.02)
    sys.stdout = Stalling()
    return os.getcwd()
"""
FIND_FILES = f"""
import os
def f(x):
    return [d for d in (".", "/tmp", "/dev/shm") if os.path.exists(os.path.join(d, "{MARK}"))]
"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with make(slot=21) as sb:
        yield sb


def run(sb: Sandbox, source: str, instances: list[Instance] = ONE) -> object:
    outcome = sb.run(textwrap.dedent(source), "f", instances)
    assert outcome.status == "ok", outcome
    return outcome.runs[0].solution


def test_each_candidate_gets_a_fresh_child_that_serves_it_alone(sandbox: Sandbox) -> None:
    spares = [sandbox.settle()]
    for _ in range(3):
        assert run(sandbox, "def f(x):\n    return x\n") == 1
        spares.append(sandbox.settle())
    if sandbox.uid is None or None in spares:
        pytest.skip("needs root and a spare (the zygote's pids are ours to compare)")
    assert len(set(spares)) == len(spares)  # a new child for every candidate
    assert not any(alive(pid) for pid in spares[:-1])  # the ones that served are gone


def test_nothing_a_candidate_leaves_reaches_the_next_ones_child(sandbox: Sandbox) -> None:
    for _ in range(2):  # the second round's child was forked while the first one's was ending
        run(sandbox, LEAVE_STATE)
        assert run(sandbox, FIND_STATE) == []
    assert_nothing_left(sandbox)


def test_a_candidate_lingering_after_its_reply_cannot_write_into_later_children(sandbox: Sandbox) -> None:
    for _ in range(3):
        cwd = run(sandbox, LINGER)
        assert isinstance(cwd, str) and Path(cwd).name.startswith("run-")
        assert run(sandbox, FIND_FILES) == []
        assert run(sandbox, FIND_FILES) == []
    assert_nothing_left(sandbox)


# The spare rehearses our own path on a fixed probe program before its work order comes.
FIND_REHEARSAL = """
import gc, linecache, sys
def f(x):
    mine = sys.modules["candidate"]
    others = [o for o in gc.get_objects() if type(o).__name__ == "module" and o.__name__ == "candidate"
              and o is not mine]
    funcs = [o.__name__ for o in gc.get_objects() if type(o).__name__ == "function"
             and o.__code__.co_filename == "<candidate>" and o.__globals__ is not mine.__dict__]
    return [len(others), funcs, linecache.getline("<candidate>", 2).strip()]
"""


def test_the_spares_rehearsal_leaves_nothing_the_candidate_sees(sandbox: Sandbox) -> None:
    for _ in range(2):
        assert run(sandbox, FIND_REHEARSAL) == [0, [], "import gc, linecache, sys"]


# Children are forked without CPython's after-fork hooks (oslevel.light_fork): the
# zygote has one thread, so they would only repair state that is already right; the
# one a candidate could notice, random's fresh seed, is redone.
DRAW = """
import random
def f(x):
    return [random.random(), random.gauss(0, 1)]
"""
THREADS = """
import os, threading
def f(x):
    out = []
    worker = threading.Thread(target=lambda: out.append((threading.get_native_id(), os.getpid(), threading.active_count())))
    worker.start()
    worker.join()
    main = threading.main_thread()
    return [threading.current_thread() is main, out[0][2], threading.active_count(), len(out),
            out[0][0] != threading.get_native_id(), out[0][1] == os.getpid()]
"""


def test_every_child_draws_fresh_random_numbers(sandbox: Sandbox) -> None:
    draws = [tuple(run(sandbox, DRAW)) for _ in range(4)]  # type: ignore[arg-type]
    assert len(set(draws)) == len(draws)


def test_a_candidate_can_start_and_join_a_thread_in_its_child(sandbox: Sandbox) -> None:
    assert sandbox.limits.max_processes > 1
    for _ in range(2):
        assert run(sandbox, THREADS) == [True, 2, 1, 1, True, True]


# -- the forker ---------------------------------------------------------------------

OPEN_FDS = """
import os
def f(x):
    found = []
    for fd in range(1024):
        try:
            os.fstat(fd)
        except OSError:
            continue
        found.append(fd)
    return [found, os.getppid()]
"""


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_candidate_holds_only_its_own_four_fds_never_the_forkers_socket(sandbox: Sandbox) -> None:
    for _ in range(3):
        fds, parent = run(sandbox, OPEN_FDS)  # type: ignore[misc]
        assert fds == [0, 1, 2, 3]
        assert parent == 0  # pid 1 of its own namespace: its parent (the zygote) is outside


@pytest.mark.skipif(not ROOT, reason="pids compare only when the zygote shares our pid namespace")
def test_children_are_the_zygotes_own_not_the_forkers(sandbox: Sandbox) -> None:
    run(sandbox, "def f(x):\n    return x\n")
    spare = sandbox.settle()
    forker = sandbox.forker_pid
    assert spare is not None and forker is not None and spare != forker
    assert parent_of(forker) == sandbox.worker_pid
    assert parent_of(spare) == sandbox.worker_pid
    assert_nothing_left(sandbox)


@pytest.mark.skipif(not ROOT, reason="pids compare only when the zygote shares our pid namespace")
def test_a_new_instance_set_gets_a_new_forker_that_has_it(sandbox: Sandbox) -> None:
    run(sandbox, "def f(x):\n    return x\n")
    sandbox.settle()
    before = sandbox.forker_pid
    fresh = [Instance("m", "g", {"x": 41})]  # loaded now: the old forker's copy lacks it
    assert run(sandbox, "def f(x):\n    return x + 1\n", fresh) == 42
    sandbox.settle()
    assert sandbox.forker_pid not in (None, before)
    assert before is not None and not alive(before)


@pytest.mark.skipif(not ROOT, reason="pids compare only when the zygote shares our pid namespace")
def test_a_killed_forker_costs_nothing_and_is_replaced(sandbox: Sandbox) -> None:
    run(sandbox, "def f(x):\n    return x\n")
    sandbox.settle()
    forker = sandbox.forker_pid
    assert forker is not None
    os.kill(forker, signal.SIGKILL)
    for k in range(3):
        assert run(sandbox, f"def f(x):\n    return x + {k}\n") == 1 + k
    sandbox.settle()
    assert sandbox.forker_pid not in (None, forker)
    assert_nothing_left(sandbox)


@pytest.mark.skipif(not ROOT, reason="pids compare only when the zygote shares our pid namespace")
def test_the_forker_ends_with_its_sandbox() -> None:
    with make(slot=24) as sb:
        run(sb, "def f(x):\n    return x\n")
        sb.settle()
        forker = sb.forker_pid
        assert forker is not None and alive(forker)
    deadline = time.monotonic() + 60  # liveness, not speed: ends as soon as the forker is gone
    while alive(forker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(forker)


@pytest.mark.skipif(not ROOT, reason="pids compare only when the zygote shares our pid namespace")
def test_children_have_an_oom_score_adj_of_1000_the_forker_1000_or_minus_1000(sandbox: Sandbox) -> None:
    """Children inherit the forker's 1000, or write their own where the forker (in the cgroup)
    could ask never to be the OOM killer's choice (-1000; refused on some machines even to root)."""
    run(sandbox, "def f(x):\n    return x\n")
    spare = sandbox.settle()
    assert spare is not None and sandbox.forker_pid is not None
    assert Path(f"/proc/{sandbox.forker_pid}/oom_score_adj").read_text().strip() in ("1000", "-1000")
    for _ in range(100):  # a spare may still be in its lock-down (it writes its own 1000 there)
        if Path(f"/proc/{spare}/oom_score_adj").read_text().strip() == "1000":
            break
        time.sleep(0.01)
    assert Path(f"/proc/{spare}/oom_score_adj").read_text().strip() == "1000"
    assert Path(f"/proc/{sandbox.worker_pid}/oom_score_adj").read_text().strip() != "1000"


# Part of the lock-down is the same for every child (umask, no supplementary groups, the
# rlimits but RLIMIT_NPROC), and the forker sets the next child's HOME, TMPDIR and tempfile dir
# right after the last fork: children of the forker inherit all of it, a child the zygote forks
# itself (before the forker exists, or after it died) does it all.
LOCKED_DOWN = """
import os, resource, tempfile
def f(x):
    names = ("RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_MSGQUEUE")
    limits = [list(resource.getrlimit(getattr(resource, name))) for name in names]
    umask = os.umask(0o077)
    here = os.getcwd()
    return [limits, umask, os.getgroups(), [os.environ["HOME"], os.environ["TMPDIR"], tempfile.gettempdir()], here]
"""


def test_every_child_is_locked_down_alike_whoever_forked_it(sandbox: Sandbox) -> None:
    mib, limits = 1 << 20, sandbox.limits
    want = [[limits.memory_mb * mib] * 2, [limits.max_processes] * 2, [limits.file_size_mb * mib] * 2,
            [256, 256], [0, 0], [0, 0]]
    seen = []

    def check(instances: list[Instance] = ONE) -> None:
        got_limits, umask, groups, dirs, here = run(sandbox, LOCKED_DOWN, instances)  # type: ignore[misc]
        assert got_limits == want
        assert umask == 0o077
        if sandbox.uid is not None:
            assert groups == []
        assert dirs == [here, here, here] and here not in seen
        seen.append(here)

    for _ in range(3):  # forked by the forker: inherited, set up ahead for the next work dir
        check()
    check([Instance("m", "g", {"x": 5})])  # a new instance set: a new forker, nothing set up ahead
    if ROOT:  # the zygote shares our pid namespace: the forker is ours to kill
        sandbox.settle()
        assert sandbox.forker_pid is not None
        os.kill(sandbox.forker_pid, signal.SIGKILL)
        for _ in range(3):  # the spare forked before, one the zygote forks itself, a new forker's first
            check()


# The forker joins the sandbox's cgroup once, so that children are born in it (a child that
# moved there itself often waited for an RCU grace period): pids.max counts it as one task
# more, and one more again while a spare is forked before the last child's tasks are reaped.
# A candidate still gets max_processes tasks, not one more or less, whoever forked it.
TASKS = """
import threading
def f(x):
    threading.stack_size(1 << 16)  # address space (RLIMIT_AS) is not what is counted here
    stop = threading.Event()
    started = 0
    while started < 64:
        try:
            threading.Thread(target=stop.wait, daemon=True).start()
        except RuntimeError:  # can't start new thread: the task limit
            break
        started += 1
    stop.set()
    return started + 1
"""


def pids_dir(pid: int) -> Path:
    line = next(x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ":pids:" in x)
    return Path("/sys/fs/cgroup/pids" + line.split(":", 2)[2])


def test_a_candidate_gets_max_processes_tasks_with_the_forker_in_its_cgroup(sandbox: Sandbox) -> None:
    if not sandbox.facts["cgroup limits"][0]:
        pytest.skip(f"no cgroup here ({sandbox.facts['cgroup limits'][1]})")
    n = sandbox.limits.max_processes
    for _ in range(3):
        assert run(sandbox, TASKS) == n
    if not ROOT or not Path("/sys/fs/cgroup/pids").is_dir():
        return  # the zygote's pids (and a v1 pids hierarchy) are ours to look at only as root
    sandbox.settle()
    forker = sandbox.forker_pid
    assert forker is not None
    group = pids_dir(forker)
    assert group.name.startswith("evolve-sandbox-")
    assert str(forker) in (group / "cgroup.procs").read_text().split()
    assert (group / "pids.max").read_text().strip() == str(n + 1)
    os.kill(forker, signal.SIGKILL)
    for _ in range(2):  # the spare the dead forker made, then one the zygote forks itself
        assert run(sandbox, TASKS) == n
    sandbox.settle()  # a new forker again
    assert sandbox.forker_pid not in (None, forker)
    assert (group / "pids.max").read_text().strip() == str(n + 1)
    assert run(sandbox, TASKS) == n


# clone() skips glibc's fork bookkeeping, its cached thread id included: a signal a candidate
# raises on itself must still reach it (glibc >= 2.34 asks the kernel for the thread id). As pid
# 1 of its namespace a candidate gets only signals it handles, so it handles them here.
SIGNALS_ITSELF = """
import signal, threading
def f(x):
    got = []
    signal.signal(signal.SIGUSR1, lambda *a: got.append("raise"))
    signal.signal(signal.SIGUSR2, lambda *a: got.append("pthread_kill"))
    signal.raise_signal(signal.SIGUSR1)
    signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)
    return got
"""


def test_a_signal_a_candidate_raises_on_itself_reaches_it(sandbox: Sandbox) -> None:
    for _ in range(2):
        assert run(sandbox, SIGNALS_ITSELF) == ["raise", "pthread_kill"]


@pytest.mark.parametrize(("libc", "safe"), [
    (("glibc", "2.36"), True), (("glibc", "2.34"), True), (("glibc", "2.31"), False),
    (("", ""), False), (("glibc", "unknown"), False),
])
def test_the_forker_is_used_only_where_raw_clone_is_safe(libc: tuple[str, str], safe: bool) -> None:
    """Older glibc (and other libcs) keep a thread id that raw clone leaves stale: there the
    zygote forks its children itself."""
    from evolve.sandbox import oslevel

    assert oslevel.clone_parent_is_safe(libc) is (safe and oslevel.SYS_CLONE is not None)


@pytest.mark.parametrize("size", [0, 100, 16384 - 65, 16384 - 64, 16384, 3 * 16384 + 7])
def test_a_kept_file_is_read_whole_whatever_its_size(tmp_path: Path, size: int) -> None:
    """The zygote's sweep reads its children list (one pid per 8 bytes at most) with a small
    first read and a whole one only if that may have been cut: every pid comes back."""
    from evolve.sandbox import oslevel

    data = os.urandom(size)
    path = tmp_path / "kept"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert oslevel.pread_whole(fd) == data
        assert oslevel.pread_whole(fd) == data  # from offset 0 again
    finally:
        os.close(fd)
    assert oslevel.SMALL_READ == 16384


def test_the_task_limit_written_again_and_again_through_one_kept_fd_is_each_time_the_new_one() -> None:
    """The zygote writes ``pids.max`` twice per candidate through a file it keeps open."""
    from evolve.sandbox import cgroups

    group, why = cgroups.create(512, 1)
    if group is None:
        pytest.skip(why)
    try:
        for count in (3, 2, 3, 17, 2):
            group.limit_tasks(count)
            with open(os.path.join(group.dirs[-1], "pids.max")) as f:
                assert f.read().strip() == str(count)
    finally:
        group.remove()
    assert not any(os.path.exists(d) for d in group.dirs)
