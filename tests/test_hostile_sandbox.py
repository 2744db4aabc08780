"""Hostile candidates against the sandbox itself: each attack ends as a failure or gains nothing.

Every attack is a real program run in a real sandbox, written as a model that
optimises against the verifier would write it: it knows where the checkout,
the references and the run folders are, and tries every way there.  Where the
machine lacks a defence (no root, no cgroups, no libseccomp) the test says so
and checks the fallback instead.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sandbox import assert_nothing_left

from evolve.sandbox import Sandbox, SandboxError, SandboxLimits, SandboxOutcome
from evolve.sandbox.doctor import weaknesses
from evolve.sandbox.view import package_roots, plan
from evolve.verifier import Instance

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
REFERENCES = REPO / "problems" / "smtt" / "data" / "references.json"
KEY = "sk-test-HOSTILE-0123456789abcdef"
LIMITS = SandboxLimits(timeout_s=5.0, memory_mb=512, file_size_mb=4, max_output_mb=1)


@pytest.fixture(scope="module")
def other_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another run's folder with an archive a candidate would love to copy from."""
    run = tmp_path_factory.mktemp("runs") / "smtt" / "20261205-000000-abcdef"
    run.mkdir(parents=True)
    (run / "archive.sqlite").write_bytes(b"SQLite format 3\0" + b"best sequence 3 1 2" * 50)
    run.chmod(0o755)
    (run / "archive.sqlite").chmod(0o644)
    return run


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    os.environ["OPENAI_API_KEY"] = KEY  # the controller holds a key, as in a real run
    try:
        with Sandbox("sandbox_fixtures:EchoVerifier", LIMITS, slot=16, extra_sys_path=[str(TESTS)]) as sb:
            yield sb
    finally:
        del os.environ["OPENAI_API_KEY"]


def attack(sb: Sandbox, source: str, hints: dict[str, object] | None = None) -> SandboxOutcome:
    """Run ``f(hints)``; the key must appear nowhere in what comes back, and the
    sandbox must still run a good candidate afterwards."""
    outcome = sb.run(textwrap.dedent(source), "f", [Instance("attack", "g", {"x": hints or {}})])
    assert KEY not in json.dumps([r.solution for r in outcome.runs]) + str(outcome.error) + outcome.stderr_tail
    good = sb.run("def f(x):\n    return 7\n", "f", [Instance("good", "g", {"x": 0})])
    assert good.status == "ok" and good.runs[0].solution == 7, good
    return outcome


def found(outcome: SandboxOutcome) -> object:
    assert outcome.status == "ok" and outcome.runs[0].error is None, outcome
    return outcome.runs[0].solution


def needs(sb: Sandbox, aspect: str) -> None:
    if not sb.facts[aspect][0]:
        pytest.skip(f"{aspect} not in force here: {sb.facts[aspect][1]}")


# -- the answers: references, the checkout, .git, other runs ------------------------------


def test_git_packs_of_the_checkout_cannot_be_found_or_read(sandbox: Sandbox) -> None:
    needs(sandbox, "filesystem")
    source = """
    import os, zlib, glob
    def f(hints):
        seen = {"git dirs": [], "packs": [], "objects": 0, "hits": 0}
        for top in ("/", hints["repo"], hints["git"]):
            for root, dirs, files in os.walk(top):
                if ".git" in dirs or os.path.basename(root) == ".git":
                    seen["git dirs"].append(root)
                for name in files:
                    if name.endswith(".pack"):
                        seen["packs"].append(os.path.join(root, name))
        for pack in seen["packs"] + glob.glob(hints["git"] + "/objects/pack/*.pack"):
            data = open(pack, "rb").read()
            for start in range(12, len(data) - 2):
                try:
                    text = zlib.decompressobj().decompress(data[start:start + 65536])
                except zlib.error:
                    continue
                seen["objects"] += 1
                seen["hits"] += b"best_known" in text or b"sequence" in text
        return seen
    """
    git = os.path.realpath(REPO / ".git")
    if os.path.isfile(git):  # a worktree: .git names the real git dir
        git = Path(git).read_text().split(":", 1)[1].strip().rsplit("/worktrees/", 1)[0]
    seen = found(attack(sandbox, source, {"repo": str(REPO), "git": git}))
    assert seen == {"git dirs": [], "packs": [], "objects": 0, "hits": 0}


def test_git_itself_cannot_be_run(sandbox: Sandbox) -> None:
    source = """
    import subprocess
    def f(hints):
        return subprocess.run(["git", "-C", hints["repo"], "cat-file", "-p", "HEAD:problems/smtt/data/references.json"],
                              capture_output=True).stdout.decode()
    """
    outcome = attack(sandbox, source, {"repo": str(REPO)})
    error = outcome.runs[0].error or ""
    # No fork allowed (max_processes 1); with more processes execve itself is refused.
    assert error.startswith(("BlockingIOError", "PermissionError: [Errno 1] Operation not permitted")), error


def test_references_checkout_home_and_other_runs_are_not_there(sandbox: Sandbox, other_run: Path) -> None:
    needs(sandbox, "filesystem")
    assert REFERENCES.exists()
    import evolve

    targets = [str(REFERENCES), str(REPO / "pyproject.toml"), str(REPO / ".git"), str(other_run / "archive.sqlite"),
               str(Path(evolve.__file__).parent / "problems"), os.path.expanduser("~"), "/root", "/home",
               str(Path(sys.prefix) / "lib"), "/proc/1/environ", "/sys/fs/cgroup", "/etc/passwd", "/etc/shadow"]
    source = """
    import os
    def f(hints):
        out = {}
        for path in hints["targets"]:
            try:
                if os.path.isdir(path):
                    out[path] = sorted(os.listdir(path))
                else:
                    out[path] = open(path, "rb").read(64).decode("latin-1")
            except OSError as exc:
                out[path] = type(exc).__name__
        return out
    """
    seen = found(attack(sandbox, source, {"targets": targets}))
    readable = {path: what for path, what in seen.items() if what not in ("FileNotFoundError", "PermissionError")}
    # Only the runtime remains: skeleton dirs on the way to it (pyenv under /root, a
    # venv's lib/) and, for an interpreter outside a venv, the libpython it links.
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    skeleton = {".pyenv", f"python{version}"}

    def runtime_only(what: object) -> bool:
        return isinstance(what, list) and all(
            name in skeleton or name.startswith(f"libpython{version}") for name in what)

    assert all(runtime_only(what) for what in readable.values()), readable


def test_site_packages_shows_only_the_allowed_packages(sandbox: Sandbox) -> None:
    needs(sandbox, "filesystem")
    source = """
    import os, site, sys
    def f(hints):
        dirs = set(site.getsitepackages()) | {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
        return sorted({name for d in dirs if os.path.isdir(d) for name in os.listdir(d)})
    """
    names = found(attack(sandbox, source))
    assert names and all(n.startswith("numpy") for n in names), names


def test_the_base_interpreters_site_packages_shows_only_the_allowed_packages(sandbox: Sandbox) -> None:
    """From a venv the stdlib shown is the base interpreter's, with its own site-packages
    inside: every package installed there (here scipy, ortools, evolve's editable finder)
    was listed and importable after a ``sys.path.append``. From a venv that dir is empty; run
    without one (as CI installs into the machine's own interpreter) it is the dir numpy comes
    from, and shows numpy alone."""
    needs(sandbox, "filesystem")
    source = """
    import importlib, os, sys
    def f(hints):
        d = os.path.join(os.path.dirname(os.__file__), "site-packages")
        names = sorted(os.listdir(d)) if os.path.isdir(d) else []
        sys.path.append(d)
        imported = []
        for name in names:
            if name.isidentifier() and name not in sys.modules:
                try:
                    importlib.import_module(name)
                    imported.append(name)
                    break  # one is enough
                except BaseException:
                    pass
        return names[:20], imported
    """
    names, imported = found(attack(sandbox, source))
    allowed = [n for n in names if n.startswith("numpy")]
    if sys.prefix != sys.base_prefix:
        assert allowed == [], names
    assert names == allowed and all(n.startswith("numpy") for n in imported), (names, imported)


def test_the_view_is_copies_of_what_imports_need_and_nothing_else_of_usr(sandbox: Sandbox) -> None:
    """The view's files are private copies (page cache and dentries of the host's files were a
    channel, tests/test_page_cache_attacks.py): every extension module of the stdlib that is
    shown and not yet imported still finds the system libraries it needs (copied by their
    DT_NEEDED entries: libuuid for _uuid here), and nothing else of /usr is there."""
    needs(sandbox, "filesystem")
    source = """
    import importlib, os, sys, sysconfig
    def f(hints):
        dynload = os.path.join(sysconfig.get_paths()["stdlib"], "lib-dynload")
        names = sorted({name.split(".")[0] for name in os.listdir(dynload) if name.endswith(".so")})
        failed = {}
        for name in names:
            if name not in sys.modules:
                try:
                    importlib.import_module(name)
                except Exception as exc:
                    failed[name] = repr(exc)
        there = [p for p in ("/usr/share", "/usr/bin", "/usr/lib/os-release", "/etc/passwd") if os.path.lexists(p)]
        return {"imported": len(names) > 20, "failed": failed, "there": there}
    """
    assert found(attack(sandbox, source)) == {"imported": True, "failed": {}, "there": []}


def test_the_view_is_read_only(sandbox: Sandbox) -> None:
    needs(sandbox, "filesystem")
    source = """
    import os, numpy
    def f(hints):
        out = []
        for path in ("/usr/lib/evil.so", os.path.join(os.path.dirname(numpy.__file__), "evil.py"), "/evil", "/etc/evil"):
            try:
                open(path, "w").write("x")
                out.append("written")
            except OSError as exc:
                out.append(type(exc).__name__)
        return out
    """
    assert "written" not in found(attack(sandbox, source))


def test_the_next_candidates_work_dir_cannot_be_planted(sandbox: Sandbox) -> None:
    # The zygote creates each candidate's work dir, already owned by the candidate's uid, next to
    # the others: a candidate that made (or symlinked) the next one first would own the next
    # candidate's files, or point its writes anywhere.
    needs(sandbox, "filesystem")
    source = """
    import os
    def f(hints):
        here = os.getcwd()
        parent, number = os.path.dirname(here), int(here.rsplit("-", 1)[1])
        out = []
        for k in (number + 1, number + 2, 0):
            target = os.path.join(parent, f"run-{k}")
            for make in (os.mkdir, lambda path: os.symlink("/", path)):
                try:
                    make(target)
                    out.append("planted")
                except OSError as exc:
                    out.append(type(exc).__name__)
        return out
    """
    assert found(attack(sandbox, source)) == ["PermissionError"] * 6


# -- keys, other processes, the kernel --------------------------------------------------------


def test_inode_numbers_in_the_writable_dirs_carry_nothing_to_the_next_candidate(sandbox: Sandbox) -> None:
    """A tmpfs numbers its inodes from a counter that only grows, and the worker's /tmp was one
    tmpfs for all its candidates: one made and deleted files until the next number was its
    message (12 bits crossed exactly), the next read it off its work dir's inode.  Now every
    child has fresh writable dirs of its own: the numbers are the same whatever ran before."""
    needs(sandbox, "filesystem")
    reader = """
    import os
    def f(hints):
        numbers = [os.stat(os.environ["HOME"]).st_ino]
        for d in ("/tmp", "/var/tmp", "/dev/shm", os.environ["HOME"]):
            fd = os.open(os.path.join(d, "probe"), os.O_CREAT | os.O_WRONLY, 0o600)
            numbers.append(os.fstat(fd).st_ino)
            os.close(fd)
        return numbers
    """
    writer = """
    import os
    def f(hints):
        for d in ("/tmp", "/var/tmp", "/dev/shm", os.environ["HOME"]):
            for k in range(1000):
                path = os.path.join(d, f"bump-{k}")
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
                os.unlink(path)
        return "bumped"
    """
    before = found(attack(sandbox, reader))
    assert found(attack(sandbox, writer)) == "bumped"
    assert found(attack(sandbox, reader)) == before


def test_the_machines_inode_counter_for_pipes_and_sockets_carries_nothing_to_the_next_candidate(
        sandbox: Sandbox) -> None:
    """Pipes and sockets take their inode numbers from one counter of the whole kernel (get_next_ino,
    in batches per CPU), which any candidate reads off an fd of its own: a pipe, or fd 3 (made by
    the zygote after the last candidate ended). A sender pinned to CPU 0 made pipes until the
    counter's bits 12-15 were its message, the next candidate read them off a pipe of its own: 16 of
    16 4-bit messages at 0.1-0.3 s each, and so from a run to its audit's fresh process (fifteenth
    red team). Candidates may make no pipe or socketpair now, so nothing of theirs moves it."""
    needs(sandbox, "seccomp")
    sender = """
    import os, socket
    def f(hints):
        os.sched_setaffinity(0, {0})
        made = 0
        for _ in range(200_000):
            try:
                r, w = os.pipe()
            except PermissionError:
                try:
                    r, w = (s.detach() for s in socket.socketpair())
                except PermissionError:
                    return "refused"
            number = os.fstat(r).st_ino
            os.close(r)
            os.close(w)
            made += 1
            if (number >> 12) & 15 == hints["message"] and number & 4095 >= 512:
                return made
        return made
    """
    receiver = """
    import os
    def f(hints):
        os.sched_setaffinity(0, {0})
        try:
            fd = os.pipe()[0]  # a number from CPU 0's batch, where the sender left it
        except PermissionError:
            fd = 3  # made by the zygote, on either CPU
        return (os.fstat(fd).st_ino >> 12) & 15
    """
    crossed, sent = [], []
    for message in (5, 11, 2, 14):
        sent.append(found(sandbox.run(textwrap.dedent(sender), "f", [Instance("send", "g", {"x": {"message": message}})])))
        got = found(sandbox.run(textwrap.dedent(receiver), "f", [Instance("read", "g", {"x": {}})]))
        crossed.append(got == message)
    assert not all(crossed), sent  # all four by chance: 1 in 65,536
    assert sent == ["refused"] * 4


LEVERS = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
def f(x):
    os.sched_setaffinity(0, {0})
    ctx = ctypes.c_ulong(0)
    answers = set()
    for i in range(x["calls"]):
        ctypes.set_errno(0)
        if x["lever"] == "io_setup":  # an AIO context: its ring is a file with an inode of that counter
            ctx.value = 0  # kept: io_destroy waits for RCU (~1 ms each); exit frees them all at once
            libc.syscall(206, 1, ctypes.byref(ctx))
        elif x["lever"] == "mq_open":  # RLIMIT_MSGQUEUE 0 refuses it (EMFILE), after the inode is made
            libc.syscall(240, b"q%d" % i, os.O_CREAT | os.O_RDWR, 0o600, None)
        else:  # MAP_HUGETLB: a file on the kernel's hugetlbfs, made before there is no huge page (ENOMEM)
            address = libc.mmap(None, 2 << 20, 3, 0x02 | 0x20 | 0x40000, -1, 0)
            if address not in (None, ctypes.c_void_p(-1).value):
                libc.munmap(ctypes.c_void_p(address), 2 << 20)
        answers.add(os.strerror(ctypes.get_errno()) if ctypes.get_errno() else "made")
    return sorted(answers)
"""


@pytest.mark.parametrize("lever", ["io_setup", "mq_open", "MAP_HUGETLB"])
def test_no_call_of_a_candidates_moves_the_machines_inode_counter(sandbox: Sandbox, lever: str) -> None:
    """Three more calls take a number from the kernel's one inode counter for pipes and sockets
    (get_next_ino; the test above) whether they succeed or not: io_setup (an AIO context's ring is
    an anonymous file), mq_open (the queue's inode is made before RLIMIT_MSGQUEUE refuses it with
    EMFILE) and mmap with MAP_HUGETLB (a file on the kernel's hugetlbfs, made before ENOMEM says
    there is no huge page). A sender moved the counter with io_setup by the amount that put its
    message in the next candidate's fd 3, read with fstat(3): 16 of 20 4-bit messages at load 6.6
    (sixteenth red team; ``bench/kernel_counters.py aio``). Here the reader is this process, on the
    sender's CPU: the counter is per-CPU in batches of 1,024, its number within a batch one more per
    inode made on that CPU, whatever batch comes next (a batch's start jumps by what the other CPUs
    took meanwhile: only the step within the batch counts)."""
    needs(sandbox, "seccomp")
    calls = 3 * 1024 + 512  # half a batch on from where it was: far from what others make meanwhile
    before_affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        first = _pipe_inode()
        answers = found(sandbox.run(textwrap.dedent(LEVERS), "f",
                                    [Instance("send", "g", {"x": {"lever": lever, "calls": calls}})]))
        moved = (_pipe_inode() - first) % 1024
    finally:
        os.sched_setaffinity(0, before_affinity)
    assert answers == ["Operation not permitted"], (answers, moved)
    assert moved < 256, (answers, moved)  # before: 512 and the few others made (EMFILE, ENOMEM, made)


def _pipe_inode() -> int:
    r, w = os.pipe()
    try:
        return os.fstat(r).st_ino
    finally:
        os.close(r)
        os.close(w)


def test_no_count_of_the_whole_machine_is_shown_to_concurrent_candidates(sandbox: Sandbox, tmp_path: Path) -> None:
    """Two readings of the whole machine, each a channel between candidates running at the same time
    (as sysinfo's shared memory was, above): io_setup succeeds while the machine's AIO events in use
    (aio-nr, of 65,536 by default) leave room for it, so a candidate halving the size it asks for
    reads what every other process holds exactly (here 4,321, held by this process; a sender holds n
    of them for as long as it runs); and ustat(dev) answers the free blocks and inodes of any file
    system by its device number, mounted in the candidate's view or not: every other sandbox's
    private /tmp, /var/tmp and /dev/shm (a sender that made k files there would read as 4,095 - k free
    inodes; sixteenth red team). Both are refused (EPERM)."""
    needs(sandbox, "seccomp")
    source = """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    def fits(events):
        ctx = ctypes.c_ulong(0)
        if libc.syscall(206, events, ctypes.byref(ctx)) != 0:
            return ctypes.get_errno()
        libc.syscall(207, ctypes.c_ulong(ctx.value))
        return 0
    def f(hints):
        low, high = 0, 1 << 20
        while low < high:  # the most events a context may have now: aio-max-nr less aio-nr
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle) == 0 else (low, middle - 1)
        buf = ctypes.create_string_buffer(32)
        ctypes.set_errno(0)
        answered = libc.syscall(136, hints["dev"], buf) == 0  # ustat
        return {"aio events free": low, "io_setup": fits(1), "ustat": 0 if answered else ctypes.get_errno(),
                "free inodes there": int.from_bytes(buf.raw[8:16], "little")}
    """
    libc = ctypes.CDLL(None, use_errno=True)
    held = ctypes.c_ulong(0)
    assert libc.syscall(206, 4321, ctypes.byref(held)) == 0, ctypes.get_errno()
    try:
        out = found(attack(sandbox, source, {"dev": os.stat(tmp_path).st_dev}))
    finally:
        libc.syscall(207, ctypes.c_ulong(held.value))
    # before: io_setup and ustat answered (0), with this test's file system's free inodes, and the
    # halving read the events the machine had left (61,215 = 65,536 less the 4,321 held here, in the
    # red team's probe with nothing else holding any)
    assert out == {"aio events free": 0, "io_setup": 1, "ustat": 1, "free inodes there": 0}, out


def test_the_zygotes_forks_carry_no_bit_to_the_next_candidate_through_the_pid_counter(
        sandbox: Sandbox) -> None:
    """A pidfd's inode number is its pid's unique id, a counter of every process the machine made.
    A candidate that leaves a System V object makes the zygote replace the IPC namespace and fork
    the next spare again: the next candidate's pidfd read 5 more than the previous one's instead of 3,
    a bit per candidate (39 of 40 pairs read right at load 9.5; fifteenth red team). pidfd_open is
    refused to candidates now."""
    needs(sandbox, "seccomp")
    program = textwrap.dedent("""
    import ctypes, os
    def f(x):
        try:
            number = os.fstat(os.pidfd_open(os.getpid())).st_ino
        except PermissionError:
            number = "refused"
        if x["sysv"]:
            ctypes.CDLL(None).shmget(0, 4096, 0o1600)  # IPC_CREAT | 0600, left behind
        return number
    """)
    steps: dict[bool, list[object]] = {False: [], True: []}
    for sysv in (False, True) * 4:
        sent = found(sandbox.run(program, "f", [Instance("send", "g", {"x": {"sysv": sysv}})]))
        got = found(sandbox.run(program, "f", [Instance("read", "g", {"x": {"sysv": False}})]))
        steps[sysv].append(got - sent if isinstance(got, int) and isinstance(sent, int) else got)
    assert steps == {False: ["refused"] * 4, True: ["refused"] * 4}, steps


def test_a_system_v_leftover_moves_nothing_the_next_candidate_can_read(sandbox: Sandbox) -> None:
    """A System V object left behind made the zygote replace the IPC namespace (which has a mount of
    its own) and fork the next spare again: the next candidate's mount id (statx with
    STATX_MNT_ID_UNIQUE, a counter of the whole machine) was 73 past the sender's instead of 48,
    40 of 40 bits read right by parity in a sandbox of its own (the red team's probe; and its pids,
    the test above; fifteenth red team). This module's sandbox runs other tests' candidates too, so
    the test checks the lever: candidates may make no System V object now."""
    needs(sandbox, "seccomp")
    program = textwrap.dedent("""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(256)
    def f(x):
        read = libc.syscall(332, -100, b"/tmp", 0, 0x4000, buf) == 0  # statx, STATX_MNT_ID_UNIQUE
        number = int.from_bytes(buf.raw[144:152], "little") if read else 0  # refused too (test below)
        made = [libc.shmget(0, 4096, 0o1600), libc.semget(0, 1, 0o1600), libc.msgget(0, 0o1600)]
        return [number, made if x["sysv"] else [], ctypes.get_errno()]
    """)
    if platform.machine() != "x86_64":
        pytest.skip("statx's number here is x86_64's")
    steps: dict[bool, list[int]] = {False: [], True: []}
    made = []
    for sysv in (False, True) * 4:
        sent = found(sandbox.run(program, "f", [Instance("send", "g", {"x": {"sysv": sysv}})]))
        got = found(sandbox.run(program, "f", [Instance("read", "g", {"x": {"sysv": False}})]))
        steps[sysv].append(got[0] - sent[0])  # type: ignore[index]
        made += [(sent[1], sent[2])] if sysv else []  # type: ignore[index]
    assert made == [([-1, -1, -1], 1)] * 4, (made, steps)  # EPERM; before: created, steps odd against even


def test_no_mount_id_can_be_read(sandbox: Sandbox) -> None:
    """Mount ids count the machine's mounts (STATX_MNT_ID_UNIQUE), and what the zygote mounts for the
    next candidate depended on what the last one did (the System V lever above; a crash, a timeout
    or a memory bomb were not sized under this machine's load). The reading is refused too: statx
    with either mount-id bit, statmount and listmount (fifteenth red team)."""
    needs(sandbox, "seccomp")
    if platform.machine() != "x86_64":
        pytest.skip("the numbers here are x86_64's")
    source = """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(256)
    def f(hints):
        out = {}
        for name, number, args in (("statx 0x1000", 332, (-100, b"/tmp", 0, 0x1000, buf)),
                                   ("statx 0x4000", 332, (-100, b"/tmp", 0, 0x4000, buf)),
                                   ("statx plain", 332, (-100, b"/tmp", 0, 0x7FF, buf)),
                                   ("statmount", 457, (0, 0, 0, 0)), ("listmount", 458, (0, 0, 0, 0))):
            ctypes.set_errno(0)
            out[name] = 0 if libc.syscall(number, *args) == 0 else ctypes.get_errno()
        out["os.stat"] = os.stat("/tmp").st_ino > 0
        return out
    """
    out = found(attack(sandbox, source))
    assert out == {"statx 0x1000": 1, "statx 0x4000": 1, "statx plain": 0, "statmount": 1, "listmount": 1,
                   "os.stat": True}, out  # EPERM; a plain statx and os.stat still work



def test_mount_ids_are_refused_by_number_where_it_is_known_and_said_where_it_is_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """libseccomp before 2.6 does not know statmount and listmount by name, and they were refused by
    number on x86_64 and aarch64 only: on riscv64, ppc64le, s390x, arm or i686 (the same numbers,
    457 and 458) a candidate read mount ids again, and nothing said so (sixteenth red team). Now
    by number wherever the numbers are those, and where they are not (alpha, mips) the filter's
    description, which Sandbox.facts and evolve doctor show, says they are not refused."""
    from evolve.sandbox import syscalls
    sc = pytest.importorskip("pyseccomp")
    if syscalls._knows(sc, "statmount") and syscalls._knows(sc, "listmount"):
        pytest.skip("this libseccomp refuses them by name everywhere")
    here = syscalls.build()
    assert here[0] is not None and "NOT refused" not in here[1], here[1]
    counted = {}
    for machine in ("riscv64", "s390x", "mips64"):
        monkeypatch.setattr(syscalls.platform, "machine", lambda machine=machine: machine)
        _, counted[machine] = syscalls.build()
    refused = {machine: text.split(" system calls refused")[0] for machine, text in counted.items()}
    assert refused["riscv64"] == refused["s390x"] == here[1].split(" system calls refused")[0], counted
    assert "statmount" not in counted["riscv64"] + counted["s390x"], counted  # before: 2 fewer refused, not said
    assert ("NOT refused: statmount and listmount (mount ids: a counter of the whole machine), unknown to this "
            "libseccomp on mips64") in counted["mips64"], counted


def test_calls_newer_than_the_filter_knows_do_not_exist_for_candidates(sandbox: Sandbox) -> None:
    """The filter refuses by name what its libseccomp knows (2.5.4 here: nothing past 456), and
    allowed every newer call whatever it did: statmount and listmount read mount ids until refused
    by number (fifteenth red team); on this 6.18 kernel mseal, the *xattrat calls, open_tree_attr (the
    mount API's, whose older calls are refused) and file_getattr answered. Every call from 459 on
    now answers ENOSYS, as on a kernel without it (sixteenth red team)."""
    needs(sandbox, "seccomp")
    if platform.machine() not in ("x86_64", "aarch64"):
        pytest.skip("the range is x86_64's and aarch64's numbers")
    source = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def f(hints):
        out = {}
        for number in range(456, 475):
            ctypes.set_errno(0)
            result = libc.syscall(number, -1, 0, 0, 0, 0)
            out[number] = 0 if result == 0 else ctypes.get_errno()
        return out
    """
    out = {int(k): v for k, v in found(attack(sandbox, source)).items()}  # type: ignore[union-attr]
    assert out[456] != 38 and out[457] == out[458] == 1, out  # a known call answers; statmount: EPERM
    assert {n: e for n, e in out.items() if n >= 459} == dict.fromkeys(range(459, 475), 38), out  # ENOSYS

def test_key_hunting_in_proc_finds_nothing(sandbox: Sandbox) -> None:
    source = f"""
    import glob, os
    def f(hints):
        out = [repr(dict(os.environ))]
        for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline") + ["/proc/{os.getpid()}/environ"]:
            try:
                out.append(open(path, "rb").read().decode("latin-1"))
            except OSError as exc:
                out.append(type(exc).__name__)
        return out
    """
    found(attack(sandbox, source))  # attack() asserts the key is nowhere in the result


def test_walking_modules_and_the_heap_finds_no_secret(sandbox: Sandbox) -> None:
    other = [Instance("other-split", "g", {"x": "SECRET-OF-ANOTHER-SPLIT"})]
    assert sandbox.run("def f(x):\n    return 0\n", "f", other).status == "ok"  # now cached in the zygote
    # The secrets are searched for in fragments, so that the search itself holds none of them.
    source = """
    import gc, sys
    OURS = ("evolve.sandbox", "evolve.verifier", "evolve.errors", "sandbox_fixtures")
    def f(hints):
        gc.unfreeze()
        modules = sorted(m for m in sys.modules if m.startswith("evolve.") and not m.startswith(OURS))
        fragments = [["sk-test-", "HOSTILE"], ["SECRET-OF-", "ANOTHER-SPLIT"], ["OPENAI_", "API_KEY"]]
        hits = []
        for obj in gc.get_objects():
            if not isinstance(obj, (dict, list, tuple)) or obj is fragments:
                continue
            try:
                text = repr(obj)
            except Exception:
                continue
            for k in range(3):
                if fragments[k][0] + fragments[k][1] in text and k not in hits:
                    hits.append(k)
        return {"modules": modules, "hits": hits}
    """
    assert found(attack(sandbox, source)) == {"modules": [], "hits": []}


def test_new_namespaces_are_refused(sandbox: Sandbox) -> None:
    needs(sandbox, "seccomp")
    source = """
    import ctypes, os
    def f(hints):
        libc = ctypes.CDLL(None, use_errno=True)
        out = {}
        for name, flag in (("user", 0x10000000), ("mount", 0x00020000), ("pid", 0x20000000), ("net", 0x40000000)):
            out[name] = (libc.unshare(flag), os.strerror(ctypes.get_errno()))
        out["setns"] = (libc.setns(0, 0), os.strerror(ctypes.get_errno()))
        out["clone3"] = (libc.syscall(435, 0, 0), os.strerror(ctypes.get_errno()))
        return out
    """
    out = found(attack(sandbox, source))
    refused = [-1, "Operation not permitted"]
    assert out == {"user": refused, "mount": refused, "pid": refused, "net": refused, "setns": refused,
                   "clone3": [-1, "Function not implemented"]}


def test_the_zygote_runs_under_most_of_the_filter_and_each_child_adds_the_rest(sandbox: Sandbox) -> None:
    """Stacked filters: the zygote loads all but what it still calls (unshare, setns,
    kill(-1) as a candidate's uid) once; a child loads only that rest (the whole set is
    refused to candidates: the tests around this one)."""
    needs(sandbox, "seccomp")
    status = dict(line.split(":", 1) for line in Path(f"/proc/{sandbox.worker_pid}/status").read_text().splitlines())
    assert status["Seccomp"].strip() == "2" and status["Seccomp_filters"].strip() == "2"  # and calls from 459 on
    assert sandbox.run("def f(hints):\n    return 1\n", "f", [Instance("a", "g", {})]).status == "ok"
    source = """
    import ctypes, os
    def f(hints):
        libc = ctypes.CDLL(None, use_errno=True)
        return [libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), libc.unshare(0x08000000), libc.kill(-1, 0)]
    """
    assert found(attack(sandbox, source)) == [-1, -1, -1]


def test_ptrace_mount_keyrings_bpf_and_io_uring_are_refused(sandbox: Sandbox) -> None:
    needs(sandbox, "seccomp")
    source = """
    import ctypes, os
    def f(hints):
        libc = ctypes.CDLL(None, use_errno=True)
        calls = {
            "ptrace attach": lambda: libc.ptrace(16, os.getppid() or 1, 0, 0),
            "ptrace traceme": lambda: libc.ptrace(0, 0, 0, 0),
            "process_vm_readv": lambda: libc.syscall(310, 1, 0, 0, 0, 0, 0),
            "mount": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
            "keyctl": lambda: libc.syscall(250, 0, 0, 0, 0, 0),
            "bpf": lambda: libc.syscall(321, 0, 0, 0),
            "io_uring_setup": lambda: libc.syscall(425, 1, 0),
            "perf_event_open": lambda: libc.syscall(298, 0, 0, -1, -1, 0),
        }
        return {name: (call(), os.strerror(ctypes.get_errno())) for name, call in calls.items()}
    """
    out = found(attack(sandbox, source))
    assert all(result == [-1, "Operation not permitted"] for result in out.values()), out


def test_locks_and_notifications_on_the_views_files_are_refused(sandbox: Sandbox) -> None:
    """Every sandbox shows the same files under /usr: a lock one candidate takes on one, or an
    inotify/dnotify event when it opens or reads one, is seen by a candidate of another
    sandbox running at the same time (a flock held in one ``evolve eval`` was seen from
    another: a channel between concurrent candidates, e.g. for true output lengths)."""
    needs(sandbox, "seccomp")
    source = """
    import ctypes, fcntl, os, struct
    def f(hints):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(os.__file__, os.O_RDONLY)
        lock = struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0)
        def errno_of(call):
            try:
                call()
                return 0
            except OSError as exc:
                return exc.errno
        return {
            "flock": errno_of(lambda: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)),
            "F_SETLK": errno_of(lambda: fcntl.fcntl(fd, fcntl.F_SETLK, lock)),
            "F_GETLK": errno_of(lambda: fcntl.fcntl(fd, fcntl.F_GETLK, lock)),
            "F_OFD_SETLK": errno_of(lambda: fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lock)),
            "F_NOTIFY": errno_of(lambda: fcntl.fcntl(os.open("/usr/lib", os.O_RDONLY), fcntl.F_NOTIFY,
                                                     fcntl.DN_ACCESS | fcntl.DN_MULTISHOT)),
            "inotify_init1": libc.inotify_init1(0) == -1 and ctypes.get_errno(),
            "inotify_add_watch": libc.inotify_add_watch(3, b"/usr", 1) == -1 and ctypes.get_errno(),
            "F_GETFD still works": fcntl.fcntl(fd, fcntl.F_GETFD) >= 0,
        }
    """
    out = found(attack(sandbox, source))
    assert out.pop("F_GETFD still works") is True
    assert out == dict.fromkeys(out, 1), out  # EPERM


def test_the_machines_memory_and_load_are_not_shown(sandbox: Sandbox) -> None:
    """sysinfo() gives every process the machine's free and shared memory and load averages: a
    candidate that filled its private /dev/shm with 45 MiB or not per 0.1 s slot moved
    ``sharedram`` for a candidate of another worker running at the same time, which read 68 of 80
    bits right at load 9 (docs/sandbox.md). Refused; /proc/meminfo and /proc/loadavg are not in
    the view, so glibc's readers of them fail too."""
    needs(sandbox, "seccomp")
    source = """
    import ctypes, os
    def f(hints):
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(256)
        def errno_of(call):
            try:
                call()
                return 0
            except OSError as exc:
                return exc.errno or -1
        return {
            "sysinfo": libc.sysinfo(buf) == -1 and ctypes.get_errno(),
            "buffer untouched": buf.raw == bytes(256),
            "getloadavg": errno_of(os.getloadavg) != 0,
            "pages": os.sysconf("SC_PHYS_PAGES"), "free pages": os.sysconf("SC_AVPHYS_PAGES"),
        }
    """
    out = found(attack(sandbox, source))
    assert {k: out.pop(k) for k in ("sysinfo", "buffer untouched", "getloadavg")} == {
        "sysinfo": 1, "buffer untouched": True, "getloadavg": True}  # EPERM
    # glibc asks sysinfo() for these and ignores its failure: what it returns is not the machine's
    assert out["pages"] != os.sysconf("SC_PHYS_PAGES"), out



def test_no_socket_but_a_unix_one(sandbox: Sandbox) -> None:
    """The network namespace is empty, but not every address family is the network namespace's:
    ``AF_VSOCK`` reaches the hypervisor's host from any namespace (this VM has a virtio vsock
    transport: a candidate could have talked to whatever listens on the host), and ``AF_ALG``,
    ``AF_NETLINK`` and the rest are kernel interface no heuristic needs; without a network
    namespace (root without CAP_SYS_ADMIN) ``AF_INET`` reached the machine's network and its
    loopback services. No socket may be made now, nor a socketpair (the inode counter below). The
    probe only creates sockets: it connects nowhere (tenth red team)."""
    needs(sandbox, "seccomp")
    source = """
    import socket
    def f(hints):
        made = {}
        for name in ("AF_UNIX", "AF_INET", "AF_INET6", "AF_VSOCK", "AF_NETLINK", "AF_ALG", "AF_PACKET"):
            try:
                kind = {"AF_VSOCK": socket.SOCK_STREAM, "AF_ALG": socket.SOCK_SEQPACKET}.get(name, socket.SOCK_DGRAM)
                socket.socket(getattr(socket, name), kind).close()
                made[name] = 0
            except OSError as exc:
                made[name] = exc.errno or -1
        for kind in ("SOCK_STREAM", "SOCK_SEQPACKET", "SOCK_DGRAM"):
            try:
                socket.socketpair(socket.AF_UNIX, getattr(socket, kind) | socket.SOCK_CLOEXEC)
                made["socketpair " + kind] = 0
            except OSError as exc:
                made["socketpair " + kind] = exc.errno or -1
        return made
    """
    out = found(attack(sandbox, source))
    assert out == dict.fromkeys(out, 1), out  # EPERM (socketpairs too, since the fifteenth red team)


def test_no_unix_socket_that_could_reach_the_file_system(sandbox: Sandbox) -> None:
    """Without a mount namespace (root without CAP_SYS_ADMIN, a user without user namespaces)
    the machine's unix sockets are in the candidate's file system: an ssh or gpg agent, a session
    bus, a container runtime's. A new ``AF_UNIX`` socket connects to one, and a datagram
    socketpair sends to one (``sendto`` with a path); both were allowed (the tenth red team's open
    row, for datagram sockets). Now refused (EPERM); a connected stream or seqpacket pair, which
    reaches no one else, is not (``multiprocessing.Pipe``). The probe binds a datagram socket of
    its own in its work dir (the view shows no other) and sends to it (eleventh red team)."""
    needs(sandbox, "seccomp")
    source = """
    import os
    import socket
    def f(hints):
        made = {}
        path = os.path.join(os.getcwd(), "s")
        try:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            server.bind(path)
            made["bound"] = 0
        except OSError as exc:
            made["bound"] = exc.errno or -1
        try:
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            made["sent"] = 0 if a.sendto(b"x", path) == 1 else -2
        except OSError as exc:
            made["sent"] = exc.errno or -1
        return made
    """
    assert found(attack(sandbox, source)) == {"bound": 1, "sent": 1}  # EPERM both

def test_kill_minus_one_and_pid_sweeps_hurt_nobody_else(sandbox: Sandbox) -> None:
    zygote = sandbox.worker_pid
    source = f"""
    import os, signal
    def f(hints):
        hit = 0
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        for pid in list(range(2, 400)) + [{os.getpid()}, {zygote}]:
            try:
                os.kill(pid, signal.SIGTERM)
                hit += 1
            except OSError:
                pass
        return hit
    """
    outcome = attack(sandbox, source)
    assert outcome.status == "ok" and outcome.runs[0].solution == 0  # nothing to hit: alone in its namespace
    assert sandbox.worker_pid == zygote and os.getpid() > 0  # we are alive, the zygote too


@pytest.mark.skipif(os.geteuid() != 0, reason="starts a process as another uid")
def test_processes_of_another_uid_cannot_be_found_by_that_uid(sandbox: Sandbox) -> None:
    """getpriority(PRIO_USER, uid) and ioprio_get(IOPRIO_WHO_USER, uid) look for every process of a
    uid, which a candidate of another sandbox (another slot uid) could use as a message (its own nice
    or I/O priority, which any process may lower). The kernel counts only the processes the caller's
    pid namespace shows, so here: none (ESRCH), while this machine sees one at nice 19 (seventeenth
    red team; a concurrent candidate at nice 7 was not found either)."""
    needs(sandbox, "pid namespace")
    uid = 61099  # no sandbox's: slot uids are 61000 + slot
    other = subprocess.Popen(["sleep", "60"], user=uid)
    os.setpriority(os.PRIO_PROCESS, other.pid, 19)  # as root: nice 19 whatever ours is
    try:
        assert os.getpriority(os.PRIO_USER, uid) == 19  # the reading works outside
        source = f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def f(hints):
            out = []
            for call, which in ((140, 2), (252, 3)):  # getpriority(PRIO_USER), ioprio_get(IOPRIO_WHO_USER)
                ctypes.set_errno(0)
                out.append([libc.syscall(call, which, {uid}), ctypes.get_errno()])
            return out
        """
        assert found(attack(sandbox, source)) == [[-1, 3], [-1, 3]]  # ESRCH: no such process
    finally:
        other.kill()
        other.wait()


# -- limits for the candidate as a whole ------------------------------------------------------


def test_forking_is_refused_by_default(sandbox: Sandbox) -> None:
    source = """
    import os, threading
    def f(hints):
        out = []
        try:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            out.append("forked")
        except OSError as exc:
            out.append(type(exc).__name__)
        try:
            threading.Thread(target=lambda: None).start()
            out.append("thread")
        except RuntimeError:
            out.append("no thread")
        return out
    """
    assert found(attack(sandbox, source)) == ["BlockingIOError", "no thread"]


FORK_MEMORY = """
import os, time
def f(hints):
    for _ in range(6):
        if os.fork() == 0:
            block = bytearray(300 * 1024 ** 2)  # under the per-process limit...
            for k in range(0, len(block), 4096):
                block[k] = 1  # ...but really resident
            time.sleep(3)
            os._exit(0)
    total = 0
    for _ in range(6):
        total += os.wait()[1] == 0
    return total
"""


def test_forking_to_exceed_memory_as_a_whole_is_a_memory_failure() -> None:
    limits = SandboxLimits(timeout_s=8.0, memory_mb=512, max_processes=8)
    with Sandbox("sandbox_fixtures:EchoVerifier", limits, slot=17, extra_sys_path=[str(TESTS)]) as sb:
        outcome = sb.run(FORK_MEMORY, "f", [Instance("a", "g", {"x": 0})])
        if not sb.facts["cgroup limits"][0]:
            pytest.skip(f"no cgroup here ({sb.facts['cgroup limits'][1]}); forking is refused by default")
    assert outcome.status == "memory", outcome
    assert (outcome.error or "").startswith("killed: memory limit 512 MiB exceeded by the candidate's processes")


def test_every_candidate_forking_past_the_memory_limit_is_a_memory_failure_and_only_that_one() -> None:
    """The cgroup's OOM count is read afresh after every candidate (its file is kept open and
    read again from its start): a second OOM kill in a row is seen, and the next candidate's
    run is not charged with either."""
    limits = SandboxLimits(timeout_s=8.0, memory_mb=512, max_processes=8)
    with Sandbox("sandbox_fixtures:EchoVerifier", limits, slot=17, extra_sys_path=[str(TESTS)]) as sb:
        if not sb.facts["cgroup limits"][0]:
            pytest.skip(f"no cgroup here ({sb.facts['cgroup limits'][1]})")
        first, second = (sb.run(FORK_MEMORY, "f", [Instance("a", "g", {"x": 0})]) for _ in range(2))
        after = sb.run("def f(hints):\n    return 1\n", "f", [Instance("a", "g", {"x": 0})])
    for outcome in (first, second):
        assert outcome.status == "memory", outcome
        assert (outcome.error or "").startswith("killed: memory limit 512 MiB exceeded by the candidate's processes")
    assert after.status == "ok" and after.runs[0].solution == 1, after


def test_fork_bomb_is_held_to_max_processes_and_leaves_nothing() -> None:
    limits = SandboxLimits(timeout_s=2.0, memory_mb=512, max_processes=8)
    source = """
    import os
    def f(hints):
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """
    with Sandbox("sandbox_fixtures:EchoVerifier", limits, slot=18, extra_sys_path=[str(TESTS)]) as sb:
        outcome = sb.run(textwrap.dedent(source), "f", [Instance("a", "g", {"x": 0})])
        assert outcome.status == "timeout", outcome
        assert_nothing_left(sb)  # the clean-up follows the reply; then the next child is forked
        assert sb.run("def f(x):\n    return 1\n", "f", [Instance("b", "g", {"x": 0})]).status == "ok"


# -- what the machine gives, said up front -------------------------------------------------


def test_doctor_names_every_aspect_and_whether_it_is_in_force() -> None:
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "doctor"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "250"})
    assert done.returncode == 0, done.stderr
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in done.stdout.splitlines() if line.count("│") == 4}
    aspects = ("filesystem", "pid namespace", "network", "uid", "seccomp", "cgroup limits")
    assert set(aspects) <= set(rows) and all(rows[a] in ("yes", "no") for a in aspects)


def test_missing_isolation_is_one_line_naming_what_candidates_can_reach() -> None:
    full = {a: (True, "") for a in ("filesystem", "pid namespace", "network", "uid", "seccomp", "cgroup limits")}
    assert weaknesses(full) is None
    no_root = {**full, "filesystem": (False, "x"), "pid namespace": (False, "x"), "uid": (False, "same uid")}
    line = weaknesses(no_root)
    assert line is not None and "\n" not in line
    assert "read the checkout, problems/*/data and runs/" in line and "signal your other processes" in line
    assert "signal" not in (weaknesses({**full, "filesystem": (False, "x")}) or "")


def test_view_masks_every_site_packages_and_binds_back_only_allowed_packages() -> None:
    """A wheel install: evolve (with problems/*/data) sits in site-packages next to numpy."""
    site = "/usr/local/lib/python3.11/site-packages"
    ops = plan(["/usr", "/usr/local/lib/python3.11", f"{site}/numpy", f"{site}/numpy.libs", "/opt/py/lib/python3.11"],
               [site, f"{site}/evolve", "/home/me/checkout", "/opt/py/lib/python3.11/site-packages"])
    # /usr/local/lib/python3.11 is already in /usr; evolve is inside a mask; the checkout is not in the view.
    assert ops == [("/usr", "bind"), ("/opt/py/lib/python3.11", "bind"),
                   ("/opt/py/lib/python3.11/site-packages", "mask"), (site, "mask"),
                   (f"{site}/numpy", "bind"), (f"{site}/numpy.libs", "bind")]


WHEEL_SPY = """
import os
TARGETS = {targets!r}
def schedule(p, d):
    seen = []
    for path in TARGETS:
        try:
            seen.append(sorted(os.listdir(path)) if os.path.isdir(path) else open(path).read(200))
        except OSError as exc:
            seen.append(type(exc).__name__)
    raise RuntimeError("seen: " + repr(seen))
"""



def test_a_package_whose_record_names_an_absolute_path_brings_only_its_own_files(tmp_path: Path) -> None:
    """The view holds the files of the allowed packages, read from their distributions' RECORD. A
    RECORD may name a file outside the distribution's dir by an absolute path (a legacy install's
    data file): its first part, '/', became a root of the view, the whole machine (sixteenth red
    team). Such entries are passed over, as '../' ones were."""
    site = tmp_path / "site"
    (site / "plugpkg").mkdir(parents=True)
    (site / "plugpkg" / "__init__.py").write_text("")
    info = site / "plugpkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugpkg\nVersion: 1.0\n")
    (info / "RECORD").write_text("plugpkg/__init__.py,,\n/etc/hostname,,\n../../../bin/plug,,\n"
                                 "plugpkg-1.0.dist-info/RECORD,,\n")
    assert package_roots(("plugpkg",), [str(site)]) == [str(site / "plugpkg")]  # before: also '/'

def test_a_wheel_install_shows_candidates_nothing_of_evolve(evolve_wheel: Path, tmp_path: Path) -> None:
    """Installed from a wheel, problems/*/data lies in site-packages next to numpy: masked."""
    from nested_venv import fresh_venv, install, see_this_environment, site_packages

    with Sandbox("sandbox_fixtures:EchoVerifier", LIMITS, slot=19, extra_sys_path=[str(TESTS)]) as probe:
        needs(probe, "filesystem")
    wheel = evolve_wheel  # the checkout's, built once for this test and tests/test_wheel.py
    python = fresh_venv(tmp_path / "venv")
    install(python, wheel, tmp_path)
    see_this_environment(python)
    packages = site_packages(python)
    refs = packages / "evolve" / "problems" / "smtt" / "data" / "references.json"
    assert refs.exists()
    spy = tmp_path / "spy.py"
    spy.write_text(WHEEL_SPY.format(targets=[str(refs), str(packages / "evolve"), str(packages)]))
    done = subprocess.run([str(python.parent / "evolve"), "eval", "smtt", str(spy), "--split", "quick", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    feedback = json.loads(done.stdout)["feedback"]
    # The venv's lib/python3.X is runtime (its platstdlib), so its site-packages shows as a masked,
    # empty dir; where numpy lies next to evolve only numpy's files are bound back into it
    # (test_site_packages_shows_only_the_allowed_packages). Nothing of evolve either way.
    assert "seen: ['FileNotFoundError', 'FileNotFoundError', []]" in feedback, feedback


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_a_run_without_the_view_says_so_in_one_line_before_it_starts() -> None:
    """Root without CAP_SYS_ADMIN (Docker's default): no namespaces, hence no view."""
    seed = REPO / "problems" / "smtt" / "seed.py"
    done = subprocess.run(["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", sys.executable,
                           "-m", "evolve.cli", "eval", "smtt", str(seed), "--split", "quick", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["sandbox: candidates can read the checkout, problems/*/data and runs/ "
                                        "(no filesystem view) on this machine; see `evolve doctor`"]


def test_instance_data_needing_a_module_imported_only_after_isolation_is_a_clear_error(tmp_path: Path) -> None:
    module = tmp_path / "late_module.py"
    module.write_text("class Late:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import late_module

        with Sandbox("sandbox_fixtures:EchoVerifier", LIMITS, slot=23, extra_sys_path=[str(TESTS), str(tmp_path)]) as sb:
            needs(sb, "filesystem")
            with pytest.raises(SandboxError, match="name this module in the verifier's sandbox_modules"):
                sb.run("def f(x):\n    return 1\n", "f", [Instance("a", "g", {"x": late_module.Late()})])
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("late_module", None)


def test_memfd_is_refused_so_memory_outside_the_address_space_needs_no_cgroup(sandbox: Sandbox) -> None:
    """A memfd's pages are in no address space until mapped: RLIMIT_AS does not see them, only
    the cgroup does. Without cgroup controllers a candidate (an unprivileged uid, RLIMIT_FSIZE 16 MiB
    and RLIMIT_NOFILE 256) held 249 memfds of 16 MiB open and parked 400 more in flight in a
    socketpair: ~10 GiB against memory_mb (docs/sandbox.md). memfd_create is refused."""
    needs(sandbox, "seccomp")
    source = """
    import os
    def f(hints):
        try:
            fd = os.memfd_create("pages")
        except OSError as exc:
            return {"memfd_create": exc.errno}
        os.close(fd)
        return {"memfd_create": 0}
    """
    assert found(attack(sandbox, source)) == {"memfd_create": 1}  # EPERM
