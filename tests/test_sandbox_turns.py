"""A dead candidate's leftovers never lower the next candidate's limits.

Each child's writable dirs are a fresh tmpfs in a mount namespace of its own; what a
candidate writes there is charged to its cgroup until that namespace is torn down. The
zygote takes the teardown off the way to the next candidate (a helper drops the dead
child's namespace, ``evolve/sandbox/nsdrop.py``) only where its children can take turns
in two cgroups, and a child gets its order only once the last candidate of its cgroup
charges it nothing more. The dropper here is made slow on purpose (1.5 s a namespace).
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest
from test_sandbox import assert_nothing_left

from evolve.sandbox import Sandbox, SandboxLimits, nsdrop
from evolve.verifier import Instance

TESTS = Path(__file__).resolve().parent
LIMITS = SandboxLimits(timeout_s=10.0, memory_mb=512, file_size_mb=32, max_output_mb=1)

FILL = textwrap.dedent("""
    import os
    def f(x):
        block = b"x" * (25 << 20)
        for d in ("/tmp", "/var/tmp", "/dev/shm"):
            for k in range(4):  # 100 MiB of each 128 MiB tmpfs: 300 MiB in all
                with open(os.path.join(d, f"fill-{k}"), "wb") as out:
                    out.write(block)
        return "filled"
""")
EAT = textwrap.dedent("""
    def f(x):
        block = bytearray(360 << 20)  # with the 300 MiB above, far over the 512 MiB limit
        for k in range(0, len(block), 4096):
            block[k] = 1  # really resident
        return "ate"
""")


def kernel_gives_mount_namespaces() -> bool:
    fd = nsdrop.mount_namespace(os.getpid())
    if fd < 0:
        return False
    os.close(fd)
    return True


def run(sb: Sandbox, source: str) -> object:
    outcome = sb.run(source, "f", [Instance("a", "g", {"x": 0})])
    assert outcome.status == "ok", outcome
    return outcome.runs[0].solution


def test_a_candidate_filling_its_tmpfs_leaves_the_next_one_its_whole_memory_limit() -> None:
    with Sandbox("slow_teardown_fixtures:SlowTeardownVerifier", LIMITS, slot=19,
                 extra_sys_path=[str(TESTS)]) as sb:
        if not (sb.facts["cgroup limits"][0] and sb.facts["filesystem"][0]):
            pytest.skip(f"no cgroup or no private writable dirs here: {sb.facts}")
        taking_turns = nsdrop.NOTE in sb.facts["cgroup limits"][1]
        assert taking_turns == kernel_gives_mount_namespaces()
        for source in (FILL, EAT, FILL, EAT, EAT, FILL, FILL, EAT):
            assert run(sb, source) in ("filled", "ate")
        assert_nothing_left(sb)


def test_without_its_namespace_dropper_the_zygote_goes_on_as_before() -> None:
    """The dropper killed: the zygote waits for it to be gone (with every reference it
    held), then lets each child's exit tear its namespace down, as where the kernel has
    no PIDFD_GET_MNT_NAMESPACE."""
    with Sandbox("slow_teardown_fixtures:SlowTeardownVerifier", LIMITS, slot=19,
                 extra_sys_path=[str(TESTS)]) as sb:
        if not (sb.facts["cgroup limits"][0] and sb.facts["filesystem"][0]):
            pytest.skip(f"no cgroup or no private writable dirs here: {sb.facts}")
        if nsdrop.NOTE not in sb.facts["cgroup limits"][1]:
            pytest.skip(f"no namespace dropper here: {sb.facts['cgroup limits'][1]}")
        assert run(sb, FILL) == "filled"
        sb.settle()
        dropper = sb.helper_pids[-1]
        os.kill(dropper, signal.SIGKILL)
        for source in (EAT, FILL, EAT, EAT):
            assert run(sb, source) in ("filled", "ate")
        sb.settle()
        assert dropper not in sb.helper_pids
        assert_nothing_left(sb)
