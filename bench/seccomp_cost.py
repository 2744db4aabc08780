"""What the sandbox's seccomp filter costs a candidate: its load, and each system call after it.

    python bench/seccomp_cost.py [--calls 300000] [--rounds 4]

Builds the filters the zygote builds (``evolve.sandbox.syscalls.build``) and forks children
from this process (numpy imported, as the zygote has it) that load none of them, the zygote's
two (its part and the ENOSYS range of ``newer_calls_program``, inherited by every candidate), or
all three (a candidate's: the child's own part stacked on them), interleaved, and prints per call,
as CPU (user + system, the kernel's count): ``getppid`` (a call no rule names: the kernel's
per-call cache allows it without running any filter), ``fcntl(F_GETFD)`` and ``mmap``+``munmap``
(calls with argument rules, which run every stacked filter), and a ctypes call that makes no
system call (the Python overhead in each figure). Then the child's own filter's load (the
``prctl``, which builds and JIT-compiles it), CPU per child. Needs no root; Linux only.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy  # noqa: E402, F401 (the zygote's children have it)

from evolve.sandbox import oslevel, syscalls  # noqa: E402

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
LEVELS = ("no filter", "the zygote's (inherited)", "a candidate's (all three)")
F_GETFD, PROT_RW, MAP_PRIVATE_ANON = 1, 3, 0x22


def _mmap_munmap() -> None:
    LIBC.munmap(ctypes.c_void_p(LIBC.mmap(None, 4096, PROT_RW, MAP_PRIVATE_ANON, -1, 0)), 4096)


CALLS: tuple[tuple[str, Callable[[], object]], ...] = (
    ("getppid (no rule: cached allow)", LIBC.getppid),
    ("fcntl(F_GETFD) (argument rules)", lambda: LIBC.fcntl(0, F_GETFD)),
    ("mmap + munmap (argument rules on mmap)", _mmap_munmap),
    ("ctypes, no system call", lambda: LIBC.abs(1)),
)


def load(programs: syscalls.Programs, level: int) -> None:
    oslevel.prctl(oslevel.PR_SET_NO_NEW_PRIVS, 1)
    if level >= 1:
        syscalls.Filter(programs.zygote, programs.newer).install()
    if level >= 2:
        syscalls.Filter(programs.child).install()


def in_child(work: Callable[[], list[float]]) -> list[float]:
    """``work()`` in a forked child; its figures back through a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.write(write, " ".join(f"{x:.6g}" for x in work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        text = f.read().decode()
    os.waitpid(pid, 0)
    return [float(x) for x in text.split()]


def per_call(programs: syscalls.Programs, level: int, calls: int) -> list[float]:
    def work() -> list[float]:
        load(programs, level)
        out = []
        for _, call in CALLS:
            for _ in range(1000):
                call()
            start = time.process_time()
            for _ in range(calls):
                call()
            out.append((time.process_time() - start) / calls * 1e9)
        return out
    return in_child(work)


def child_load(programs: syscalls.Programs, children: int) -> float:
    """Median us of CPU of the child filter's load in a fresh child that has the zygote's two."""
    prepared = syscalls.Filter(programs.child)  # as the zygote has it: ctypes objects made once

    def work() -> list[float]:
        load(programs, 1)
        start = time.process_time()
        prepared.install()
        return [(time.process_time() - start) * 1e6]
    return statistics.median(in_child(work)[0] for _ in range(children))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--children", type=int, default=200)
    args = parser.parse_args()
    programs, note = syscalls.build()
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Linux "
          f"{platform.release()}, load {os.getloadavg()[0]:.2f}; python {platform.python_version()}")
    if programs is None:
        raise SystemExit(note)
    print(f"{note}\nBPF instructions: the zygote's part {len(programs.zygote) // 8}, newer calls "
          f"{len(programs.newer or b'') // 8}, a child's own part {len(programs.child) // 8}")
    got: dict[int, list[list[float]]] = {level: [] for level in range(len(LEVELS))}
    order = [*range(len(LEVELS)), *reversed(range(len(LEVELS)))]
    for _ in range(args.rounds):
        for level in order:
            got[level].append(per_call(programs, level, args.calls))
    print(f"\nCPU ns per call, median of {2 * args.rounds} children each ({args.calls} calls), "
          f"load {os.getloadavg()[0]:.2f} now:")
    print(f"{'':<42}" + "".join(f"{name:>28}" for name in LEVELS))
    for k, (name, _) in enumerate(CALLS):
        print(f"{name:<42}" + "".join(f"{statistics.median(r[k] for r in got[level]):>28.1f}"
                                       for level in range(len(LEVELS))))
    print(f"\nthe child's own filter loaded (prctl), median of {args.children} children: "
          f"{child_load(programs, args.children):.1f} us of CPU")


if __name__ == "__main__":
    main()
