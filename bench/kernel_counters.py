"""Channels between consecutive candidates through counters of the whole kernel (fifteenth red team).

Each probe runs pairs of candidates in one worker (``Sandbox.run``): a sender, then a reader, and
prints what the reader saw against what the sender did.

* ``inode``: pipes and sockets take inode numbers from one counter (get_next_ino, in batches of
  1,024 per CPU). The sender, pinned to CPU 0, makes pipes until the counter's bits 12-15 are its
  message; the reader, pinned too, reads them off a pipe of its own.
* ``pid``: a pidfd's inode number is its pid's unique id. The sender leaves a System V segment or
  not (which decides whether the zygote replaces the IPC namespace and forks the next spare again);
  the reader's pidfd number minus the sender's is the step.
* ``mount``: the same lever, read through ``statx``'s STATX_MNT_ID_UNIQUE on the reader's ``/tmp``.
* ``aio``: the inode counter again, moved by ``io_setup`` (an AIO context's ring takes a number from it;
  so do ``mq_open`` and ``mmap`` with MAP_HUGETLB, refused or not) and read off fd 3 alone, which the
  zygote makes for the next candidate. The counter is per CPU, its number within a batch of 1,024 one
  more per inode made on that CPU: the sender reads its own fd 3 and makes, on each CPU, as many
  contexts as put the next fd 3 (the zygote's few inodes in between, calibrated first on pairs that
  send nothing) at its message x 64 + 32 within the batch; the reader takes bits 6-9. It fails where
  the zygote made the two fds on different CPUs or other processes made inodes on that one between
  (sixteenth red team).

Since the fifteenth red team candidates may make no pipe, socketpair, pidfd or System V object, and
since the sixteenth no AIO context: the probes then print what was refused.

Usage: PYTHONPATH=.:tests python bench/kernel_counters.py inode|pid|mount|aio [--pairs N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import statistics
import textwrap
from pathlib import Path

from evolve.sandbox import Sandbox, SandboxLimits
from evolve.verifier import Instance

TESTS = Path(__file__).resolve().parents[1] / "tests"

INODE_SENDER = """
import os
def f(m):
    os.sched_setaffinity(0, {0})
    for made in range(1, 400_001):
        r, w = os.pipe()
        number = os.fstat(r).st_ino
        os.close(r)
        os.close(w)
        if (number >> 12) & 15 == m and number & 4095 >= 512:
            return made
    return made
"""
INODE_READER = """
import os
def f(x):
    os.sched_setaffinity(0, {0})
    return (os.fstat(os.pipe()[0]).st_ino >> 12) & 15
"""
LEVER = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(256)
def f(x):
    if x["read"] == "pid":
        number = os.fstat(os.pidfd_open(os.getpid())).st_ino
    else:
        assert libc.syscall(332, -100, b"/tmp", 0, 0x4000, buf) == 0, ctypes.get_errno()  # statx (x86_64)
        number = int.from_bytes(buf.raw[144:152], "little")
    if x["sysv"] and libc.shmget(0, 4096, 0o1600) < 0:
        raise PermissionError(ctypes.get_errno(), "shmget refused")
    return number
"""

AIO_SENDER = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def f(x):
    here = os.fstat(3).st_ino
    if x["message"] is None:
        return here
    made = (x["message"] * 64 + 32 - here - x["step"]) % 1024
    ctx = ctypes.c_ulong(0)
    for cpu in (0, 1):
        os.sched_setaffinity(0, {cpu})
        for _ in range(made):
            ctx.value = 0
            if libc.syscall(206, 1, ctypes.byref(ctx)) != 0:  # io_setup (x86_64)
                raise PermissionError(ctypes.get_errno(), "io_setup refused")
            libc.syscall(207, ctypes.c_ulong(ctx.value))  # io_destroy
    return here
"""
FD3_READER = """
import os
def f(x):
    return os.fstat(3).st_ino
"""


def run(sb: Sandbox, source: str, x: object) -> object:
    outcome = sb.run(textwrap.dedent(source), "f", [Instance("probe", "g", {"x": x})])
    if not outcome.runs or outcome.runs[0].error is not None:
        return f"refused: {outcome.runs[0].error if outcome.runs else outcome.error}"
    return outcome.runs[0].solution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("probe", choices=["inode", "pid", "mount", "aio"])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    limits = SandboxLimits(timeout_s=20)
    with Sandbox("sandbox_fixtures:EchoVerifier", limits, slot=12, extra_sys_path=[str(TESTS)]) as sb:
        if args.probe == "inode":
            right = 0
            for _ in range(args.pairs):
                message = rng.randrange(16)
                sent, got = run(sb, INODE_SENDER, message), run(sb, INODE_READER, None)
                right += got == message
                print(f"sent {message:2d} ({sent} pipes)  read {got}")
            print(f"{right} of {args.pairs} 4-bit messages read right")
            return
        if args.probe == "aio":
            aio(sb, rng, args.pairs)
            return
        steps: dict[bool, list[object]] = {False: [], True: []}
        for _ in range(args.pairs):
            sysv = rng.random() < 0.5
            sent = run(sb, LEVER, {"read": args.probe, "sysv": sysv})
            got = run(sb, LEVER, {"read": args.probe, "sysv": False})
            steps[sysv].append(got - sent if isinstance(got, int) and isinstance(sent, int) else f"{sent} / {got}")
        for sysv, found in steps.items():
            numbers = sorted(s for s in found if isinstance(s, int))
            median = statistics.median(numbers) if numbers else None
            print(f"sender {'left' if sysv else 'did not leave'} a System V segment: median step {median}, {found}")


def aio(sb: Sandbox, rng: random.Random, pairs: int) -> None:
    calibration = []
    for _ in range(8):
        sent, got = run(sb, AIO_SENDER, {"message": None, "step": 0}), run(sb, FD3_READER, None)
        if isinstance(sent, int) and isinstance(got, int):
            calibration.append(got - sent)
    step = int(statistics.median(calibration)) if calibration else 0
    print(f"fd 3 steps with nothing sent: {calibration}, taken as {step}")
    right = 0
    for _ in range(pairs):
        message = rng.randrange(16)
        sent, got = run(sb, AIO_SENDER, {"message": message, "step": step}), run(sb, FD3_READER, None)
        read = (got % 1024) // 64 if isinstance(got, int) and isinstance(sent, int) else sent
        right += read == message
        print(f"sent {message:2d}  read {read}")
    print(f"{right} of {pairs} 4-bit messages read right")


if __name__ == "__main__":
    main()
