"""What the counted CPU time of an smtt instance holds besides the candidate's own function:
`PYTHONPATH=. python bench/smtt_call_overhead.py [--split train] [--rounds 3] [--work-ms 20] [--thread-clock]`.

The budget of 0.1 s + 2 ms per job is counted by the kernel from when the instance is sent until
the next one is (the child's process CPU clock, read by the trusted side; ``settle``), so it also
holds the child's reading of the instance and sending of the answer. Programs through the real
sandbox and verifier (``evolve.evaluate``, as ``evolve eval`` runs them), per size group:

* ``empty``: ``schedule`` returns ``list(range(len(p)))``: its counted time is the overhead.
* ``burn``: ``schedule`` spins on ``time.process_time()`` for ``--work-ms`` from its entry, then
  returns the same list: counted minus work-ms is the overhead seen by a program that works.
* ``burn-thread`` (with ``--thread-clock``): the same spin on ``time.thread_time()``. In the
  sandbox ``process_time()`` advances in steps of up to a scheduler tick (~4 ms here: RLIMIT_CPU
  makes the kernel keep a process-wide CPU timer, read at its last update), so a program that
  stops on it runs up to a tick past its mark, and that overrun was counted here as overhead;
  ``thread_time()`` reads the one thread's own clock, exact to the microsecond, and the sandbox
  allows no second thread, so it is the same count.

Prints mean / max counted ms per group and the overhead's share of each group's budget, with the
machine and the load. Nothing here is the candidate's word: the times are the trusted side's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402  (bench/machine.py)

import evolve  # noqa: E402

EMPTY = "def schedule(p, d):\n    return list(range(len(p)))\n"
BURN = """import time


def schedule(p, d):
    start = time.{clock}()
    while time.{clock}() - start < {work}:
        pass
    return list(range(len(p)))
"""


def budget_ms(n: int) -> float:
    return 100.0 + 2.0 * n  # problems/smtt/problem.toml's contract


def per_group(code: str, split: str) -> dict[str, list[float]]:
    evaluation = evolve.evaluate("smtt", code, split=split)
    assert evaluation.status == "ok", evaluation.status
    times: dict[str, list[float]] = defaultdict(list)
    for result in evaluation.instances:
        times[result.group].append(result.seconds * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-ms", type=float, default=20.0)
    parser.add_argument("--thread-clock", action="store_true", help="also burn on time.thread_time()")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.system()} {platform.machine()}, {cpu_model()}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f} at the start; split {args.split}, "
          f"{args.rounds} rounds, burn {args.work_ms:g} ms")
    programs = {"empty": EMPTY, "burn": BURN.format(clock="process_time", work=args.work_ms / 1e3)}
    if args.thread_clock:
        programs["burn-thread"] = BURN.format(clock="thread_time", work=args.work_ms / 1e3)
    times: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in programs}
    for _ in range(args.rounds):  # interleaved, so that both see the same load
        for name, code in programs.items():
            for group, ms in per_group(code, args.split).items():
                times[name][group].extend(ms)
    burns = [name for name in programs if name != "empty"]
    print(f"{'group':>8} {'budget ms':>9} {'empty mean':>10} {'max':>7}"
          + "".join(f" {name + '-work mean':>19} {'max':>7}" for name in burns)
          + f" {'overhead % of budget (max)':>27}")
    for group in sorted(times["empty"], key=lambda g: int(g.split("=")[1]) if "=" in g else 0):
        n = int(group.split("=")[1]) if "=" in group else 0
        empty = times["empty"][group]
        over = {name: [ms - args.work_ms for ms in times[name][group]] for name in burns}
        worst = max(max(empty), *(max(ms) for ms in over.values()))
        print(f"{group:>8} {budget_ms(n):>9.0f} {statistics.mean(empty):>10.3f} {max(empty):>7.3f}"
              + "".join(f" {statistics.mean(ms):>19.3f} {max(ms):>7.3f}" for ms in over.values())
              + f" {100 * worst / budget_ms(n):>27.2f}")
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
