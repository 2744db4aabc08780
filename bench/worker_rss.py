"""Resident memory of each shipped problem's warm sandbox worker (the zygote candidates fork from).

    PYTHONPATH=. python bench/worker_rss.py

What the worker holds is what every candidate's process starts with: numpy, the
common stdlib, and the verifier's module with whatever it imports.
"""

from __future__ import annotations

import os

from evolve.problem import discover
from evolve.sandbox import Sandbox, SandboxLimits


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def main() -> None:
    print(f"{'problem':<16} {'verifier':<44} {'worker RSS MiB':>14}")
    for name, problem in sorted(discover().items()):
        if problem.origin != "builtin":
            continue
        entry = problem.spec.verifier.entry
        with Sandbox(entry, SandboxLimits(timeout_s=10), extra_sys_path=problem.sys_path) as sb:
            assert sb.worker_pid is not None
            print(f"{name:<16} {entry:<44} {rss_mib(sb.worker_pid):>14.1f}")
    print(f"load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
