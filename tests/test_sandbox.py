"""The sandbox contains hostile candidates, says why, and keeps working.

Real subprocesses throughout.  Every hostile candidate runs in the same shared
Sandbox, which must then run a good candidate correctly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolve.errors import UserError
from evolve.sandbox import Sandbox, SandboxError, SandboxLimits, SandboxOutcome, oslevel
from evolve.sandbox.outcome import build_outcome
from evolve.verifier import Instance, Reference

TESTS = Path(__file__).resolve().parent
ENTRY = "sandbox_fixtures:EchoVerifier"
LIMITS = SandboxLimits(timeout_s=1.5, memory_mb=512, max_processes=16, file_size_mb=4, max_output_mb=1)
INSTANCES = [Instance(f"n{x}", "g", {"x": x}) for x in (1, 2, 3)]
GOOD = "def f(x):\n    return x * 2\n"
SECRETS = {"OPENAI_API_KEY": "sk-test-FAKE-0123456789abcdef", "ANTHROPIC_API_KEY": "sk-ant-FAKE-fedcba9876543210"}
ROOT = os.geteuid() == 0


def make(**kw: object) -> Sandbox:
    return Sandbox(ENTRY, kw.pop("limits", LIMITS), extra_sys_path=[str(TESTS)], **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with make(slot=7) as sb:
        yield sb


def hostile(sb: Sandbox, source: str, instances: list[Instance] = INSTANCES) -> SandboxOutcome:
    """Run ``source`` (dedented), then check the same sandbox still runs a good candidate."""
    outcome = sb.run(textwrap.dedent(source), "f", instances)
    good = sb.run(GOOD, "f", INSTANCES)
    assert good.status == "ok", good
    assert [r.solution for r in good.runs] == [2, 4, 6]
    return outcome


def processes_of(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                status = Path(f"/proc/{name}/status").read_text()
            except OSError:
                continue
            fields = dict(li.split(":", 1) for li in status.splitlines() if ":" in li)
            if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
                found.append(int(name))  # zombies are dead (init may reap them late)
    return found


def alive(pid: int) -> bool:
    """Running, not just a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_nothing_left(sb: Sandbox) -> None:
    """Nothing of the last candidate survives: the zygote's only children are the fresh
    spare forked for the next candidate after the clean-up, and its forker."""
    assert sb.worker_pid is not None
    spare = sb.settle()
    ours = {pid for pid in (spare, sb.forker_pid) if pid}
    children = [int(p) for p in Path(f"/proc/{sb.worker_pid}/task/{sb.worker_pid}/children").read_text().split()]
    if sb.uid is not None:  # root: the zygote shares our pid namespace, so pids compare
        assert sorted(children) == sorted(ours)
        # The spare may still be dropping its privileges: then it is not the uid's yet.
        assert set(processes_of(sb.uid)) <= ({spare} if spare else set())
    else:
        assert len(children) == len(ours)


# -- the normal case ------------------------------------------------------------------


def test_good_candidate_returns_one_solution_per_instance(sandbox: Sandbox) -> None:
    outcome = sandbox.run(GOOD, "f", INSTANCES)
    assert outcome.status == "ok" and outcome.error is None
    assert [(r.solution, r.error) for r in outcome.runs] == [(2, None), (4, None), (6, None)]
    assert all(0 <= r.seconds < 1 for r in outcome.runs) and outcome.wall_seconds > 0


def test_numpy_results_come_back_as_plain_json(sandbox: Sandbox) -> None:
    source = "import numpy as np\ndef f(x):\n    return {'order': np.arange(x), 'best': np.int64(x), 'w': np.float32(0.5)}\n"
    outcome = sandbox.run(source, "f", INSTANCES[:2])
    assert [r.solution for r in outcome.runs] == [
        {"order": [0], "best": 1, "w": 0.5},
        {"order": [0, 1], "best": 2, "w": 0.5},
    ]


def test_candidate_does_not_see_reference_values(sandbox: Sandbox) -> None:
    inst = Instance("ref", "g", {"x": 1}, Reference(value=42.0, kind="optimal", source="paper"))
    source = """
    import sys
    def f(x):
        instance = sys._getframe(1).f_locals["instance"]
        return [instance.reference.value, instance.reference.kind]
    """
    assert hostile(sandbox, source, [inst]).runs[0].solution == [None, "none"]


# -- hostile candidates -----------------------------------------------------------------


def test_infinite_loop_times_out_naming_the_instance_and_keeps_earlier_results(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, """
    def f(x):
        while x == 3:
            pass
        return x
    """)
    assert outcome.status == "timeout"
    assert outcome.error == "timed out after 1.5 s on instance 'n3' (instance 3 of 3)"
    assert [r.solution for r in outcome.runs] == [1, 2]  # trusted partial result


def test_a_run_can_get_its_own_wall_clock_limit(sandbox: Sandbox) -> None:
    source = "def f(x):\n    while x == 3:\n        pass\n    return x\n"
    outcome = sandbox.run(source, "f", INSTANCES, timeout_s=0.4)
    assert outcome.status == "timeout"
    assert outcome.error == "timed out after 0.4 s on instance 'n3' (instance 3 of 3)"
    assert sandbox.run("def f(x):\n    return x\n", "f", INSTANCES).status == "ok"  # back to the default


def test_loop_at_import_time_times_out_while_loading(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, "while True:\n    pass\ndef f(x):\n    return x\n")
    assert outcome.status == "timeout" and outcome.error is not None
    assert outcome.error.endswith("while loading the program") and outcome.runs == []


def test_memory_bomb_is_reported_as_memory(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, "def f(x):\n    return len(bytearray(50 * 1024 ** 3))\n")
    assert outcome.status == "memory"
    assert outcome.error == "memory limit 512 MiB exceeded (MemoryError) on instance 'n1' (instance 1 of 3)"


def test_memory_bomb_that_swallows_memory_error_is_stopped_as_memory(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, """
    def f(x):
        hoard = []
        while True:
            try:
                hoard.append(bytearray(4 * 1024 ** 2))
            except MemoryError:
                pass
    """)
    assert outcome.status == "memory", outcome
    assert outcome.error is not None and "memory limit 512 MiB reached" in outcome.error


def test_fork_bomb_is_contained_and_leaves_no_process(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, """
    import os
    def f(x):
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    assert outcome.status == "timeout", outcome
    assert_nothing_left(sandbox)


def test_fork_bomb_escaping_with_setsid_leaves_no_process(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, """
    import os, time
    def f(x):
        for _ in range(40):
            try:
                if os.fork() == 0:
                    os.setsid()
                    while True:
                        try:
                            os.fork()
                        except OSError:
                            time.sleep(0.001)
            except OSError:
                pass
        return x
    """)
    assert outcome.status == "ok" and [r.solution for r in outcome.runs] == [1, 2, 3]
    assert_nothing_left(sandbox)


SPY = """
import glob, os
def f(x):
    found = [repr(dict(os.environ))]
    pids = [os.getppid(), CONTROLLER]  # the zygote and the controller
    for path in [f"/proc/{p}/environ" for p in pids] + glob.glob("/proc/*/environ"):
        try:
            with open(path, "rb") as fh:
                found.append(fh.read().decode("latin-1"))
        except OSError as exc:
            found.append(f"{path}: {exc}")
    return found
"""


def test_api_keys_are_invisible_to_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    with make(slot=8) as sb:
        outcome = hostile(sb, SPY.replace("CONTROLLER", str(os.getpid())), INSTANCES[:1])
    text = json.dumps(outcome.runs[0].solution) + outcome.stderr_tail
    assert outcome.runs[0].error is None and f"/proc/{os.getpid()}/environ" in text
    assert all(value not in text for value in SECRETS.values())


def test_api_key_in_the_controllers_initial_environment_is_unreadable() -> None:
    # /proc/<pid>/environ shows the environment a process started with, so the
    # key must be there from exec, as when a user exports it in the shell.
    script = textwrap.dedent(f"""
        import json, os, sys
        sys.path.insert(0, {str(TESTS)!r})
        from evolve.sandbox import Sandbox, SandboxLimits
        from evolve.verifier import Instance
        with Sandbox({ENTRY!r}, SandboxLimits(timeout_s=5, memory_mb=512), slot=9,
                     extra_sys_path=[{str(TESTS)!r}]) as sb:
            out = sb.run({SPY!r}.replace("CONTROLLER", str(os.getpid())), "f", [Instance("a", "g", {{"x": 1}})])
        print(json.dumps([os.getpid(), out.runs[0].solution, out.runs[0].error]))
    """)
    env = {**os.environ, **SECRETS, "PYTHONPATH": str(TESTS.parent)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid, found, error = json.loads(done.stdout)
    assert error is None and any(f"/proc/{pid}/environ" in item for item in found)
    assert all(value not in done.stdout for value in SECRETS.values())


def test_candidate_sees_no_other_process(sandbox: Sandbox) -> None:
    if not sandbox.facts["pid namespace"][0]:
        pytest.skip("no pid namespace here")
    source = "import os\ndef f(x):\n    return [os.getpid(), os.getppid(), os.path.exists('/proc')]\n"
    assert hostile(sandbox, source, INSTANCES[:1]).runs[0].solution == [1, 0, False]


def test_printed_fake_score_is_ignored(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, """
    import sys
    def f(x):
        print("score: 1e9")
        print('{"solution": 0, "error": null, "seconds": 0}', file=sys.stderr)
        return x * 2
    """)
    assert outcome.status == "ok" and [r.solution for r in outcome.runs] == [2, 4, 6]
    assert "score: 1e9" in outcome.stderr_tail


def test_exception_becomes_that_instance_error_with_type_message_and_line(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, """
    def f(x):
        if x == 2:
            raise ValueError(f"bad x {x}")
        return x
    """)
    assert outcome.status == "ok"
    assert [(r.solution, r.error) for r in outcome.runs] == [
        (1, None), (None, "ValueError: bad x 2 (line 4)"), (3, None)]
    assert "Traceback" in outcome.stderr_tail and "bad x 2" in outcome.stderr_tail


def test_sys_exit_is_an_instance_error(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, "import sys\ndef f(x):\n    sys.exit(0)\n")
    assert outcome.status == "ok" and outcome.runs[0].error == "SystemExit: 0 (line 3)"


def test_nan_and_non_json_solutions_are_reported_per_instance(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, """
    def f(x):
        return [float("nan"), {1, 2}, object()][x - 1]
    """)
    assert outcome.status == "ok" and len(outcome.runs) == 3
    for run in outcome.runs:
        assert run.solution is None and run.error is not None
        assert run.error.startswith("solution is not JSON-serialisable")


def test_os_exit_is_a_crash_with_its_status(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, "import os\ndef f(x):\n    if x == 2:\n        os._exit(3)\n    return x\n")
    assert outcome.status == "crash"
    assert outcome.error == "exited with status 3 on instance 'n2' (instance 2 of 3)"
    assert [r.solution for r in outcome.runs] == [1]


def test_segfault_is_a_crash_naming_the_signal(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, "import ctypes\ndef f(x):\n    return ctypes.string_at(0)\n")
    assert outcome.status == "crash"
    assert outcome.error is not None and outcome.error.startswith("killed by SIGSEGV")


def test_syntax_error_is_an_error_with_its_line(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, "def f(x):\n    return x\nif x = 3:\n    pass\n")
    assert outcome.status == "error" and outcome.runs == []
    assert outcome.error is not None and outcome.error.startswith("SyntaxError: ")
    assert outcome.error.endswith("(line 3)")


def test_missing_function_is_an_error(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, "def g(x):\n    return x\n")
    assert (outcome.status, outcome.error) == ("error", "program does not define a function 'f'")


def test_huge_file_hits_the_file_size_limit(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, """
    def f(x):
        with open("big.bin", "wb") as fh:
            fh.write(bytes(8 * 1024 ** 2))
        return x
    """, INSTANCES[:1])
    assert outcome.status == "ok"
    assert outcome.runs[0].error is not None and "File too large" in outcome.runs[0].error


def test_huge_result_is_cut_off_at_the_output_limit(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, "def f(x):\n    return 'x' * (3 * 1024 ** 2)\n")
    assert outcome.status == "crash"
    assert outcome.error == "killed: output limit 1 MiB exceeded on instance 'n1' (instance 1 of 3)"


def test_huge_printout_is_bounded_and_ignored(sandbox: Sandbox) -> None:
    outcome = hostile(sandbox, """
    import sys
    def f(x):
        for _ in range(10_000):
            sys.stdout.write("y" * 1000 + "\\n")
        return x
    """, INSTANCES[:1])
    # The printout file stops at RLIMIT_FSIZE; the write error is this instance's error.
    assert outcome.status == "ok" and outcome.runs[0].error is not None
    assert "File too large" in outcome.runs[0].error and len(outcome.stderr_tail) <= 2048


def test_files_a_candidate_leaves_are_gone_for_the_next_one(sandbox: Sandbox) -> None:
    writer = """
    import os, tempfile
    def f(x):
        for d in (".", "/tmp", "/dev/shm", tempfile.gettempdir()):
            try:
                with open(os.path.join(d, "leftover-7f3a"), "w") as fh:
                    fh.write("state for the next candidate")
            except OSError:
                pass
        return os.getcwd()
    """
    outcome = sandbox.run(textwrap.dedent(writer), "f", INSTANCES[:1])
    cwd = outcome.runs[0].solution
    assert outcome.status == "ok" and os.path.isabs(cwd)
    sandbox.settle()  # the clean-up follows the reply
    assert not Path(f"/proc/{sandbox.worker_pid}/root{cwd}").exists()  # the zygote's view
    reader = """
    import os
    def f(x):
        return [d for d in (".", "/tmp", "/dev/shm") if os.path.exists(os.path.join(d, "leftover-7f3a"))]
    """
    assert hostile(sandbox, reader, INSTANCES[:1]).runs[0].solution == []


def test_candidate_cannot_take_the_zygote_down_for_good(sandbox: Sandbox) -> None:
    zygote = sandbox.worker_pid
    source = f"""
    import os, signal
    def f(x):
        out = []
        for pid in ({zygote}, os.getppid() or {zygote}):
            try:
                os.kill(pid, signal.SIGKILL)
                out.append("killed")
            except OSError as exc:
                out.append(type(exc).__name__)
        return out
    """
    outcome = hostile(sandbox, source, INSTANCES[:1])
    if sandbox.uid is not None or sandbox.facts["pid namespace"][0]:  # other uid, or out of sight
        assert outcome.status == "ok" and "killed" not in outcome.runs[0].solution
        assert sandbox.worker_pid == zygote
    else:
        assert outcome.status in ("ok", "crash")


def test_candidate_has_no_network(sandbox: Sandbox) -> None:
    if not sandbox.facts["network"][0]:
        pytest.skip("no network namespace here (needs root)")
    outcome = hostile(sandbox, """
    import socket
    def f(x):
        socket.create_connection(("1.1.1.1", 53), timeout=1)
    """, INSTANCES[:1])
    # Refused by the seccomp filter (no socket at all: a unix socketpair only) where there is one, else unreachable.
    error = (outcome.runs[0].error or "").lower()
    assert "unreachable" in error or "operation not permitted" in error, error


# -- the worker itself --------------------------------------------------------------


def test_zygote_death_is_one_crash_then_the_sandbox_recovers(sandbox: Sandbox) -> None:
    old = sandbox.worker_pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    outcome = sandbox.run(GOOD, "f", INSTANCES)
    assert outcome.status == "crash" and "sandbox worker failed" in (outcome.error or "")
    assert sandbox.run(GOOD, "f", INSTANCES).status == "ok" and sandbox.worker_pid != old


def test_a_spare_child_that_died_is_replaced_before_it_gets_work(sandbox: Sandbox) -> None:
    spare = sandbox.settle()
    if spare is None or sandbox.uid is None:
        pytest.skip("needs root (the spare's pid as the zygote sees it is ours)")
    os.kill(spare, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(spare) and time.monotonic() < deadline:  # dead (a zombie) before the run takes it
        time.sleep(0.01)
    outcome = sandbox.run(GOOD, "f", INSTANCES)
    assert outcome.status == "ok" and [r.solution for r in outcome.runs] == [2, 4, 6]
    assert sandbox.settle() != spare


def test_instances_loaded_after_the_spare_was_forked_reach_the_candidate(sandbox: Sandbox) -> None:
    sandbox.settle()  # the spare exists and predates this list
    fresh = [Instance(f"late{x}", "g", {"x": x}) for x in (10, 20)]
    outcome = sandbox.run(GOOD, "f", fresh)
    assert outcome.status == "ok" and [r.solution for r in outcome.runs] == [20, 40]


def test_forged_lines_only_end_the_forgers_own_run_early(sandbox: Sandbox) -> None:
    """The zygote answers once a batch's lines are in: lines written to fd 3 before the
    load report count, and the run fails with nothing (never someone else's result)."""
    outcome = hostile(sandbox, """
    import os
    os.write(3, b"junk\\n" * 10)
    def f(x):
        return x
    """)
    assert outcome.status == "crash" and outcome.runs == []
    assert_nothing_left(sandbox)


def test_close_kills_the_zygote_and_removes_its_files() -> None:
    sb = make(slot=10)
    pid, base = sb.worker_pid, sb._res.base
    assert sb.run(GOOD, "f", INSTANCES).status == "ok"
    sb.close()
    sb.close()  # idempotent
    assert not alive(pid) and not os.path.exists(base)
    with pytest.raises(SandboxError):
        sb.run(GOOD, "f", INSTANCES)


def test_controller_killed_mid_run_leaves_nothing_behind() -> None:
    script = textwrap.dedent(f"""
        import json, sys
        from evolve.sandbox import Sandbox, SandboxLimits
        from evolve.verifier import Instance
        sb = Sandbox({ENTRY!r}, SandboxLimits(timeout_s=60, memory_mb=512), slot=13,
                     extra_sys_path=[{str(TESTS)!r}])
        print(json.dumps([sb.worker_pid, sb.uid, sb._res.base]), flush=True)
        sb.run("import os\\ndef f(x):\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass\\n"
               "    while True:\\n        pass\\n", "f", [Instance("a", "g", {{"x": 1}})])
    """)
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    zygote, uid, base = json.loads(proc.stdout.readline())
    # The candidate is running (its fork is refused: max_processes = 1). It once let the fork's
    # error end its run at once: the controller was then killed while closing the sandbox, after
    # it had told the zygote to exit, and nobody removed its temp dir (one time in two or three).
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    # A bound on liveness, not a speed figure: the loop ends as soon as all is gone (well under a
    # second on a quiet machine); at load 14 the zygote's clean-up once took more than 10 s.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (alive(zygote) or os.path.exists(base)):
        time.sleep(0.05)
    assert not alive(zygote) and not os.path.exists(base)
    if uid is not None:
        assert processes_of(uid) == []


def test_controller_killed_after_telling_the_zygote_to_exit_leaves_no_temp_dir() -> None:
    """The window close() had: the zygote told to exit (so not orphaned: it left the temp dir to
    the controller), then the controller killed before its own clean-up.  The zygote removes
    the dir on every way out now."""
    script = textwrap.dedent(f"""
        import json, os
        from evolve.sandbox import Sandbox, SandboxLimits
        sb = Sandbox({ENTRY!r}, SandboxLimits(timeout_s=60, memory_mb=512), slot=14,
                     extra_sys_path=[{str(TESTS)!r}])
        print(json.dumps([sb.worker_pid, sb._res.base]), flush=True)
        sb._res.stop_worker()  # what close() does first
        os._exit(0)  # killed before close() removes the dir
    """)
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    zygote, base = json.loads(proc.stdout.splitlines()[0])
    assert proc.returncode == 0 and not alive(zygote)
    assert not os.path.exists(base)


def test_hidden_paths_are_out_of_candidates_sight(tmp_path: Path) -> None:
    secret = tmp_path / "solutions"
    secret.mkdir()
    (secret / "best.json").write_text("[0, 1, 2]")
    # The tests dir holds the verifier itself: hiding it must not break solve().
    hidden = [str(secret), str(TESTS)]
    try:
        sb = make(slot=11, hide_paths=hidden)
    except UserError as exc:
        pytest.skip(str(exc))
    source = f"""
    import os
    def f(x):
        seen = []
        for path in {hidden!r}:
            try:
                seen.append(os.listdir(path))
            except OSError as exc:
                seen.append(type(exc).__name__)
        return seen
    """
    with sb:
        outcome = hostile(sb, source, INSTANCES[:1])
    seen_secret, seen_tests = outcome.runs[0].solution
    assert seen_secret in ([], "FileNotFoundError")  # under /tmp it is behind the private tmpfs too
    assert seen_tests in ([], "FileNotFoundError")  # likewise when the checkout is under /tmp


def test_bad_verifier_entry_and_too_little_memory_are_user_errors() -> None:
    with pytest.raises(UserError, match="no_such_module"):
        Sandbox("no_such_module:V", LIMITS)
    with pytest.raises(UserError, match="memory_mb=64 is too small"):
        make(limits=SandboxLimits(memory_mb=64))


def controller_elsewhere(prefix: list[str], python: str, sources: list[str], cwd: Path,
                         tmpdir: Path | None = None) -> list:
    """Run a Sandbox in a separate controller process (as another user, or with fewer
    capabilities), with the fake keys in its real environment (and ``TMPDIR``, where given);
    returns [uid, isolation, [status, error, solutions] per source]."""
    script = textwrap.dedent(f"""
        import json, sys
        from evolve.sandbox import Sandbox, SandboxLimits
        from evolve.verifier import Instance
        inst = [Instance("a", "g", {{"x": 1}})]
        with Sandbox({ENTRY!r}, SandboxLimits(timeout_s=1, memory_mb=512), slot=12,
                     extra_sys_path=[{str(TESTS)!r}]) as sb:
            res = [sb.run(src, "f", inst) for src in sys.argv[1:]]
            print(json.dumps([sb.uid, sb.isolation] + [[o.status, o.error, [r.solution for r in o.runs]] for o in res]))
    """)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TESTS.parent), **SECRETS, "HOME": str(cwd),
           **({"TMPDIR": str(tmpdir)} if tmpdir is not None else {})}
    done = subprocess.run([*prefix, python, "-c", script, *sources], env=env, capture_output=True,
                          text=True, timeout=60, cwd=cwd)
    if done.returncode != 0 and "Permission denied" in done.stderr:
        pytest.skip("the repository is not readable by that user")
    assert done.returncode == 0, done.stderr
    assert all(value not in done.stdout for value in SECRETS.values())
    return json.loads(done.stdout)


SETPRIV = ROOT and shutil.which("setpriv") is not None
LOOP = "def f(x):\n    while True:\n        pass\n"
LEAVE = """
import ctypes
def f(x):
    with open("/tmp/leftover-c0ffee", "w") as fh:
        fh.write("state")
    return ctypes.CDLL(None).shmget(0xC0FFEE, 4096, 0o1666) >= 0
"""
FIND = """
import ctypes, os
def f(x):
    return [os.path.exists("/tmp/leftover-c0ffee"), ctypes.CDLL(None).shmget(0xC0FFEE, 4096, 0o666) >= 0]
"""


@pytest.mark.skipif(not SETPRIV or not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs root, setpriv and a world-readable /usr/bin/python3")
def test_non_root_mode_contains_candidates_too(tmp_path: Path) -> None:
    """Same sandbox run by an unprivileged user: no uid drop, non-dumpable controller."""
    controller = "int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])"
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    uid, isolation, loop, spied, good = controller_elsewhere(
        prefix, "/usr/bin/python3", [LOOP, SPY.replace("CONTROLLER", controller), GOOD], tmp_path)
    assert uid is None and "non-dumpable" in " ".join(isolation)
    assert loop[0] == "timeout" and spied[0] == "ok" and good == ["ok", None, [2]]


# Without root the candidates share the zygote's uid, so they own the work dirs' parent
# (/tmp/evolve-runs in the view), which the shared-dir scrub keeps whole.  Until 2026-12-06 a
# file left there reached every later candidate (a channel: a serving policy could hand the true
# output lengths it saw at each request's end to the next program); a chmod 000 of it left later
# candidates without their HOME; a symlink in its place made the sandbox refuse every later run
# (SandboxError: the work dirs were made through it and scrubbed away).
PLANT_IN_BASE = """
import os
def f(x):
    with open("/tmp/evolve-runs/plant-c0ffee", "w") as fh:
        fh.write("true lengths")
    os.chmod("/tmp/evolve-runs", 0)
    return True
"""
FIND_IN_BASE = """
import os
def f(x):
    return [os.path.exists("/tmp/evolve-runs/plant-c0ffee"), os.access(os.environ["HOME"], os.W_OK)]
"""
SWAP_BASE = """
import os
def f(x):
    os.rename("/tmp/evolve-runs", "/tmp/moved")
    os.makedirs("/dev/shm/elsewhere")
    os.symlink("/dev/shm/elsewhere", "/tmp/evolve-runs")
    return True
"""
HOME_IS_THERE = "import os\ndef f(x):\n    return os.path.isdir(os.environ['HOME'])\n"


@pytest.mark.skipif(not SETPRIV or not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs root, setpriv and a world-readable /usr/bin/python3")
def test_a_candidate_of_the_zygotes_uid_cannot_plant_in_or_break_the_work_dirs_parent(tmp_path: Path) -> None:
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    uid, isolation, *runs = controller_elsewhere(
        prefix, "/usr/bin/python3", [PLANT_IN_BASE, FIND_IN_BASE, SWAP_BASE, HOME_IS_THERE, HOME_IS_THERE], tmp_path)
    if not any(line.startswith("allow-list view") for line in isolation):
        pytest.skip("no user namespaces here: no view, so no private work dirs' parent")
    assert uid is None
    assert runs == [["ok", None, [True]], ["ok", None, [[False, True]]], ["ok", None, [True]],
                    ["ok", None, [True]], ["ok", None, [True]]]


@pytest.mark.skipif(not SETPRIV, reason="needs root and setpriv")
def test_root_without_cap_sys_admin_still_drops_uid_and_cleans_up(tmp_path: Path) -> None:
    """Docker's default profile: no namespaces, but the uid drop and the clean-up work."""
    tmp_path.chmod(0o755)
    prefix = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin"]
    uid, isolation, loop, leave, find, spied = controller_elsewhere(
        prefix, sys.executable, [LOOP, LEAVE, FIND, SPY.replace("CONTROLLER", "os.getppid()")], tmp_path)
    assert uid is not None and "NOT isolated: no mount namespace" in " ".join(isolation)
    refused = any(line.startswith("seccomp filter") for line in isolation)  # System V objects, since the 15th red team
    assert loop[0] == "timeout" and leave == ["ok", None, [not refused]]
    assert find == ["ok", None, [[False, False]]] and spied[0] == "ok"
    assert not os.path.exists("/tmp/leftover-c0ffee")



DEEP = """
import os
def f(x):
    os.chdir(os.environ["HOME"])
    for made in range(3000):
        os.mkdir("d")
        os.chdir("d")
    return made + 1
"""


@pytest.mark.skipif(not SETPRIV, reason="needs root and setpriv")
def test_a_tree_thousands_of_dirs_deep_is_removed_and_spoils_no_other_candidate(tmp_path: Path) -> None:
    """Without a mount namespace (Docker's default profile) the work dir is on the machine's /tmp,
    and the zygote removes it after the candidate. A chain of 3,000 dirs made there raised
    RecursionError in CPython 3.11's shutil.rmtree: the zygote died, so the next candidate's run
    came back 'crash: sandbox worker failed', and Sandbox.close raised it in the controller
    (sixteenth red team). Both remove trees without recursion now."""
    tmp_path.chmod(0o755)
    # The controller's own temp dir, so that another run of this test (a colleague's, on a shared
    # machine) cannot leave its tree where this one looks; under /tmp, which the candidate's uid
    # can traverse (pytest's basetemp is 0700).
    own_tmp = Path(tempfile.mkdtemp(prefix="evolve-deep-"))
    own_tmp.chmod(0o1777)
    try:
        prefix = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin"]
        uid, isolation, deep, good = controller_elsewhere(prefix, sys.executable, [DEEP, GOOD], tmp_path, own_tmp)
        assert uid is not None and "NOT isolated: no mount namespace" in " ".join(isolation)
        assert deep == ["ok", None, [3000]] and good == ["ok", None, [2]], (deep, good)  # before: good a crash
        assert list(own_tmp.iterdir()) == []  # the controller removed its dir, and all below it
    finally:
        oslevel.rmtree(str(own_tmp))


def test_trees_are_removed_without_recursion_and_through_no_symlink(tmp_path: Path) -> None:
    """oslevel.rmtree, as the zygote and the controller remove what candidates left: a chain deeper
    than Python's recursion limit goes, and a symlink to a dir outside is removed, not followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    tree = tmp_path / "tree"
    tree.mkdir()
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(2000):  # deeper than Python's recursion limit (1,000 here)
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open("file", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
    os.close(fd)
    (tree / "link").symlink_to(outside)
    (tree / "d" / "link").symlink_to(outside / "keep")
    oslevel.rmtree(str(tree))
    assert not tree.exists() and (outside / "keep").read_text() == "kept"

# -- classification of what came back (no subprocess) -----------------------------------


def facts(**kw: object) -> dict[str, object]:
    return {"killed": None, "exit_code": 0, "signal": None, "maxrss_kb": 1000, "vm_peak_kb": None,
            "wall": 0.1, "stderr_tail": "", **kw}


def test_forged_lines_cannot_smuggle_nan_or_extra_results() -> None:
    blob = b'{"event": "loaded"}\n{"solution": NaN, "error": null, "seconds": 0.1}\n' + \
        b'{"solution": 1, "error": null, "seconds": -5}\n{"solution": 9, "error": null, "seconds": 1}\n'
    out = build_outcome(facts(), blob, INSTANCES[:2], LIMITS)
    assert out.status == "ok"
    assert [(r.solution, r.error, r.seconds) for r in out.runs] == [
        (None, "malformed result line from the sandbox", 0.0), (1, None, 0.0)]


def test_cpu_limit_is_a_timeout_and_kernel_kill_near_the_limit_is_memory() -> None:
    blob = b'{"event": "loaded"}\n'
    out = build_outcome(facts(exit_code=None, signal=signal.SIGXCPU), blob, INSTANCES, LIMITS)
    assert out.status == "timeout" and "CPU time limit" in (out.error or "")
    out = build_outcome(facts(exit_code=None, signal=signal.SIGKILL, maxrss_kb=500 * 1024), blob, INSTANCES, LIMITS)
    assert out.status == "memory" and out.error is not None and "instance 'n1'" in out.error


@pytest.mark.parametrize("blob_bytes", [0, 3000, 200_000])
def test_a_reply_arrives_whole_and_a_small_one_in_one_write(blob_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zygote's reply is a JSON header frame and a blob frame: read back as sent, and
    written at once when small, so the controller's thread wakes once for it, not twice."""
    from evolve.sandbox import frames

    writes: list[int] = []
    real_write = frames.os.write

    def counted(fd: int, data: object) -> int:
        done = real_write(fd, data)  # type: ignore[arg-type]
        writes.append(done)
        return done

    ours, theirs = socket.socketpair()
    blob = bytes(range(256)) * (blob_bytes // 256) + b"x" * (blob_bytes % 256)
    reader = threading.Thread(target=lambda: got.append(frames.recv_reply(theirs.fileno(), None, 1 << 20)))
    got: list[tuple[dict, bytes]] = []
    reader.start()
    monkeypatch.setattr(frames.os, "write", counted)
    try:
        frames.send_reply(ours.fileno(), {"ok": True, "note": "é"}, blob)
    finally:
        monkeypatch.undo()
    reader.join(10)
    ours.close()
    theirs.close()
    assert got == [({"ok": True, "note": "é"}, blob)]
    if blob_bytes < 60_000:
        assert len(writes) == 1


@pytest.mark.parametrize("blob_bytes", [0, 3000, 200_000])
def test_a_reply_already_in_is_read_with_one_wait_and_never_past_its_end(
    blob_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller reads a reply with its socket: what has come is taken without a select,
    and nothing after the reply is read (a session's channel follows it, with its fds)."""
    from evolve.sandbox import frames

    waits: list[float] = []
    real_select = frames.select.select

    def counted(*args: object) -> object:
        waits.append(1.0)
        return real_select(*args)  # type: ignore[arg-type]

    ours, theirs = socket.socketpair()
    blob = bytes(range(256)) * (blob_bytes // 256) + b"x" * (blob_bytes % 256)
    r, w = os.pipe()
    try:
        writer = threading.Thread(target=lambda: (
            frames.send_reply(ours.fileno(), {"ok": True, "n": blob_bytes}, blob),
            socket.send_fds(ours, [b"S"], [w])))
        writer.start()
        monkeypatch.setattr(frames.select, "select", counted)
        got = frames.recv_reply(theirs.fileno(), time.monotonic() + 10, 1 << 20, theirs)
        monkeypatch.undo()
        writer.join(10)
        assert got == ({"ok": True, "n": blob_bytes}, blob)
        if blob_bytes < 60_000:  # in one write: one wait, for its first bytes
            assert len(waits) == 1
        msg, fds, _, _ = socket.recv_fds(theirs, 1, 1)
        assert msg == b"S" and len(fds) == 1  # the channel that follows, intact
        os.write(fds[0], b"ok")
        assert os.read(r, 2) == b"ok"
        os.close(fds[0])
    finally:
        for fd in (r, w):
            os.close(fd)
        ours.close()
        theirs.close()
