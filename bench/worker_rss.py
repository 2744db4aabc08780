"""Resident memory and modules of each shipped problem's warm sandbox worker (the zygote candidates fork from).

    python bench/worker_rss.py [--rounds N]

What the worker holds is what every candidate's process starts with: numpy, the
common stdlib, and the verifier's sandbox side (the module defining its
``solve``/``respond``, with what that imports).  Prints the median RSS over the
rounds (each round starts every worker afresh), the number of modules, and the
modules of ``evolve.evaluators`` the worker holds.
"""

from __future__ import annotations

import argparse
import os
import statistics

from evolve.problem import discover
from evolve.sandbox import Sandbox, SandboxLimits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    problems = {name: p for name, p in sorted(discover().items()) if p.origin == "builtin"}
    rss: dict[str, list[float]] = {name: [] for name in problems}
    held: dict[str, frozenset[str]] = {}
    for _ in range(rounds):
        for name, problem in problems.items():
            with Sandbox(problem.spec.verifier.entry, SandboxLimits(timeout_s=10),
                         extra_sys_path=problem.sys_path) as sb:
                rss[name].append((sb.worker_rss_kb or 0) / 1024)
                held[name] = sb.worker_modules
    print(f"{'problem':<16} {'RSS MiB (median)':>16} {'modules':>8}  evolve.evaluators modules held")
    for name in problems:
        ours = sorted(m.removeprefix("evolve.evaluators.") for m in held[name] if m.startswith("evolve.evaluators."))
        print(f"{name:<16} {statistics.median(rss[name]):>16.1f} {len(held[name]):>8}  {', '.join(ours)}")
    print(f"{rounds} rounds; load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
