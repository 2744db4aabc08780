"""Where a candidate may not fork (``max_processes = 1``, the default), the zygote keeps two
spares: the next candidate's child is forked, locked down and rehearsed while the candidate
before it runs, at a low priority until it is taken (evolve/sandbox/children.py, ``_ahead``).

Real sandboxes, real forks. What must not change: each candidate gets a child of its own that
nothing of the one before reaches, the candidate runs at the zygote's priority, and it still
gets exactly one task.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sandbox import ENTRY, ROOT, alive, assert_nothing_left
from test_sandbox_prefork import FIND_STATE, LEAVE_STATE, ONE, TASKS, pids_dir

from evolve.sandbox import Sandbox, SandboxLimits
from evolve.sandbox.children import SPARE_NICE

TESTS = Path(__file__).parent
LIMITS = SandboxLimits(timeout_s=5.0, memory_mb=512, max_processes=1, file_size_mb=4, max_output_mb=1)
PRIORITY = """
import os
def f(x):
    return os.getpriority(os.PRIO_PROCESS, 0)
"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(ENTRY, LIMITS, slot=23, extra_sys_path=[str(TESTS)]) as sb:
        yield sb


def run(sb: Sandbox, source: str) -> object:
    outcome = sb.run(textwrap.dedent(source), "f", ONE)
    assert outcome.status == "ok", outcome
    return outcome.runs[0].solution


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_two_spares_wait_and_the_older_one_serves_the_next_candidate(sandbox: Sandbox) -> None:
    assert run(sandbox, "def f(x):\n    return x\n") == 1
    sandbox.settle()
    before = list(sandbox.spare_pids)
    assert len(before) == 2
    assert run(sandbox, "def f(x):\n    return x\n") == 1
    sandbox.settle()
    after = sandbox.spare_pids
    assert after[0] == before[1] and after[1] not in before  # the older one served; a new one waits
    if ROOT:  # the zygote's pids are ours to look at
        assert not alive(before[0])
        assert_nothing_left(sandbox)


@pytest.mark.skipif(not ROOT, reason="the spares' pids and priorities are ours to read only as root")
def test_spares_wait_at_a_low_priority_and_the_candidate_runs_at_the_zygotes(sandbox: Sandbox) -> None:
    sandbox.settle()
    assert sandbox.worker_pid is not None
    zygote = nice_of(sandbox.worker_pid)  # the tests' own (the suite may run under nice)
    if zygote >= SPARE_NICE:
        pytest.skip("the zygote runs at the spares' nice value already")
    assert [nice_of(pid) for pid in sandbox.spare_pids] == [SPARE_NICE, SPARE_NICE]
    for _ in range(3):
        assert run(sandbox, PRIORITY) == zygote


def test_nothing_a_candidate_leaves_reaches_a_spare_forked_while_it_ran(sandbox: Sandbox) -> None:
    for _ in range(3):  # each FIND_STATE child was forked while a LEAVE_STATE candidate ran or ended
        run(sandbox, LEAVE_STATE)
        run(sandbox, LEAVE_STATE)
        assert run(sandbox, FIND_STATE) == []
    assert_nothing_left(sandbox)


def test_a_candidate_gets_one_task_with_a_spare_in_its_cgroup(sandbox: Sandbox) -> None:
    if not sandbox.facts["cgroup limits"][0]:
        pytest.skip(f"no cgroup here ({sandbox.facts['cgroup limits'][1]})")
    for _ in range(3):
        assert run(sandbox, TASKS) == 1
    if not ROOT or not Path("/sys/fs/cgroup/pids").is_dir():
        return
    sandbox.settle()
    assert sandbox.forker_pid is not None
    group = pids_dir(sandbox.forker_pid)
    # the candidate, the forker and the spare that waits beside it: no fourth task
    assert (group / "pids.max").read_text().strip() == "3"
    assert sorted(int(p) for p in (group / "cgroup.procs").read_text().split()) == sorted(
        [sandbox.forker_pid, *sandbox.spare_pids])


@pytest.mark.skipif(not ROOT, reason="needs root (the spares' pids as the zygote sees them are ours)")
def test_spares_that_died_are_replaced_before_they_get_work(sandbox: Sandbox) -> None:
    sandbox.settle()
    dead = list(sandbox.spare_pids)
    for pid in dead:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in dead) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run(sandbox, "def f(x):\n    return x + 1\n") == 2
    assert run(sandbox, PRIORITY) == os.getpriority(os.PRIO_PROCESS, 0)  # the zygote's priority, spare or not
    sandbox.settle()
    assert not set(sandbox.spare_pids) & set(dead)
