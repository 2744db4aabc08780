"""JSSP builder and trusted checker: schedules, hostile answers, schedule classes.

The checker is cross-checked against brute force written independently here:
time-unit by time-unit simulation on small instances.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.jssp import JsspVerifier
from evolve.evaluators.jssp.benchmarks import load_benchmarks
from evolve.evaluators.jssp.builder import FEATURES, build_schedule, schedule_solution
from evolve.evaluators.jssp.check import check_schedule, schedule_shape
from evolve.evaluators.jssp.generator import taillard_like
from evolve.evaluators.jssp.model import JobShop
from evolve.problem import builtin_dir
from evolve.verifier import Instance, Reference, Verifier

JSSP_DATA = builtin_dir() / "jssp" / "data"

PROBLEM_DIR = Path(__file__).resolve().parents[1] / "problems" / "jssp"


def mwkr(job_work_left, **_):
    return job_work_left


def spt(proc_time, **_):
    return -proc_time


def instance_of(shop: JobShop, scheme: str = "non_delay", ref: float | None = None) -> Instance:
    reference = Reference(ref, "optimal", "test", ref) if ref else Reference.missing()
    return Instance(shop.name, f"{scheme}/{shop.size}", shop.payload(scheme), reference)


def solved(shop: JobShop, rule=mwkr, scheme: str = "non_delay") -> dict:
    return JsspVerifier.solve(rule, instance_of(shop, scheme))


@pytest.fixture(scope="module")
def verifier() -> JsspVerifier:
    return JsspVerifier(PROBLEM_DIR, {})


TINY = JobShop.from_jobs("tiny", [[(0, 3), (1, 2)], [(0, 2), (1, 4)], [(1, 1), (0, 5)]])


# -- brute force, independent of evolve.evaluators.jssp.check ---------------------------------------


def brute_violation(shop: JobShop, start: list[list[int]], scheme: str | None) -> str | None:
    """Kind of the first violation by time-unit simulation: None, 'precedence', 'overlap',
    'non_delay' or 'active'."""
    ops = [(j, k, int(shop.machines[j, k]), int(shop.durations[j, k]), start[j][k])
           for j in range(shop.n_jobs) for k in range(int(shop.lengths[j]))]
    for j, k, _, _, s in ops:
        if k and s < start[j][k - 1] + int(shop.durations[j, k - 1]):
            return "precedence"
    horizon = max((s + p for *_, p, s in ops), default=0) + 1
    busy = np.zeros((shop.n_machines, horizon), dtype=int)
    for *_, m, p, s in ops:
        busy[m, s:s + p] += 1
    if (busy > 1).any():
        return "overlap"
    if scheme is None:
        return None
    for j, k, m, p, s in ops:
        if p == 0:
            continue
        release = start[j][k - 1] + int(shop.durations[j, k - 1]) if k else 0
        if scheme == "non_delay" and (busy[m, release:s] == 0).any():
            return "non_delay"
        if scheme == "active":
            others = busy[m].copy()
            others[s:s + p] -= 1
            if any(not others[t:t + p].any() for t in range(release, s)):
                return "active"
    return None


def kind_of(reason: str | None) -> str | None:
    if reason is None:
        return None
    for key, kind in (("precedence", "precedence"), ("overlaps", "overlap"),
                      ("non-delay", "non_delay"), ("active", "active")):
        if key in reason:
            return kind
    return "other"


# -- the protocol, options ------------------------------------------------------------------------


def test_verifier_follows_the_protocol(verifier: JsspVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.direction == "minimize"
    assert verifier.scheme == "non_delay"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schema": "active"}, "[verifier.options] schema: unknown key (expected one of scheme, "),
        ({"scheme": "nondelay"}, "[verifier.options] scheme: Input should be 'non_delay' or 'active' (got 'nondelay')"),
        ({"scheme": 1}, "[verifier.options] scheme: "),
        ({"reference_time_limit_s": "5"}, "[verifier.options] reference_time_limit_s: Input should be a valid number"),
        ({"reference_workers": 0}, "[verifier.options] reference_workers: Input should be greater than or equal to 1"),
    ],
)
def test_bad_options_name_the_key(options: dict, message: str) -> None:
    with pytest.raises(UserError) as info:
        JsspVerifier(PROBLEM_DIR, options)
    assert message in str(info.value)


def test_scheme_is_in_every_group_and_in_the_payload() -> None:
    active = JsspVerifier(PROBLEM_DIR, {"scheme": "active"})
    test = active.instances("test")
    assert all(i.group.startswith("active/") and i.data["scheme"] == "active" for i in test)


# -- the builder -----------------------------------------------------------------------------------


def test_rule_gets_every_documented_feature_with_correct_values() -> None:
    calls: list[dict] = []

    def recorder(**features):
        calls.append(copy.deepcopy(features))
        return features["job_work_left"]

    build_schedule(recorder, TINY.machines, TINY.durations, TINY.lengths, TINY.n_machines, "non_delay")
    first = calls[0]
    assert tuple(first) == FEATURES
    # At time 0 all three jobs can start: jobs 0 and 1 compete for M0, job 2 is alone on M1.
    assert first["proc_time"].tolist() == [3, 2]
    assert first["job_work_left"].tolist() == [5, 6]
    assert first["job_ops_left"].tolist() == [2, 2]
    assert first["job_work_done"].tolist() == [0, 0]
    assert first["machine_ready"].tolist() == [0, 0]
    assert first["machine_work_left"].tolist() == [10, 10]
    assert first["op_index"].tolist() == [0, 0]
    assert first["now"] == 0.0 and first["n_jobs"] == 3.0 and first["n_machines"] == 2.0
    # MWKR took job 1 (work 6, lowest index of the tie) on M0 for [0, 2); job 2 was then
    # alone at time 0 (no call) on M1 for [0, 1).  At time 2 all three jobs can start;
    # the candidates of one decision share a machine: jobs 0 and 2 on M0 (job 1 is alone on M1).
    second = calls[1]
    assert second["now"] == 2.0
    assert second["proc_time"].tolist() == [3, 5]
    assert second["earliest_start"].tolist() == [2, 2]
    assert second["job_ready"].tolist() == [0, 1]
    assert second["machine_ready"].tolist() == [2, 2]
    assert second["job_work_done"].tolist() == [0, 1]
    assert second["machine_work_left"].tolist() == [8, 8]
    assert second["op_index"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda n: np.zeros(n + 1), "shape (3,) for 2 candidates"),
        (lambda n: np.full(n, np.nan), "NaN"),
        (lambda n: ["a"] * n, "must return numbers"),
        (lambda n: None, "must return numbers"),
        (lambda n: np.zeros((n, 1)), "shape (2, 1)"),
    ],
)
def test_unusable_rule_output_raises_a_clear_error(answer, message: str) -> None:
    def rule(proc_time, **_):
        return answer(len(proc_time))

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_schedule(rule, TINY.machines, TINY.durations, TINY.lengths, TINY.n_machines, "non_delay")


def test_scalar_priority_means_all_tie_and_infinities_are_ordered() -> None:
    start = build_schedule(lambda **_: 1.0, TINY.machines, TINY.durations, TINY.lengths, 2, "non_delay")
    assert check_schedule(TINY, schedule_solution(start, TINY.durations, TINY.lengths, "non_delay"),
                          "non_delay")[0] is None
    inf_rule = lambda proc_time, **_: np.where(proc_time > 2, np.inf, -np.inf)  # noqa: E731
    start = build_schedule(inf_rule, TINY.machines, TINY.durations, TINY.lengths, 2, "active")
    assert start[0, 0] == 0  # job 0 (p=3, +inf) first on M0


@pytest.mark.parametrize("scheme", ["non_delay", "active"])
def test_random_rules_give_schedules_of_their_class_by_brute_force(scheme: str) -> None:
    rng = np.random.default_rng(5)
    for trial in range(60):
        n, m = int(rng.integers(2, 6)), int(rng.integers(2, 5))
        shop = taillard_like(f"r{trial}", n, m, trial)
        shop = JobShop(shop.name, shop.machines, shop.durations % 7, shop.lengths, shop.n_machines)  # zeros too

        def rule(proc_time, **_):
            return rng.random(len(proc_time))

        solution = solved(shop, rule, scheme)
        reason, checked = check_schedule(shop, solution, scheme)
        assert reason is None, (trial, reason)
        assert brute_violation(shop, solution["start"], scheme) is None, trial
        assert checked.makespan == max(max(row) for row in solution["end"])


def test_every_benchmark_builds_into_a_valid_schedule_under_both_schemes(verifier: JsspVerifier) -> None:
    active = JsspVerifier(PROBLEM_DIR, {"scheme": "active"})
    for v in (verifier, active):
        for inst in v.instances("test"):
            if inst.data["durations"].size > 800 and v is active:
                continue  # the big Taillard ones are covered under non-delay; keeps this test short
            result = v.score(inst, v.solve(spt, inst))
            assert result.feasible, (inst.name, result.error)
            assert result.objective >= inst.reference.bound


def test_zero_duration_operation_of_orb07_takes_no_machine_time(verifier: JsspVerifier) -> None:
    shop = load_benchmarks(JSSP_DATA)["orb07"].shop
    j, k = (int(x) for x in np.argwhere((shop.durations == 0) & (shop.machines >= 0))[0])
    solution = solved(shop)
    release = solution["end"][j][k - 1] if k else 0
    assert solution["start"][j][k] == release  # runs the moment its job reaches it


# -- the trusted checker ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: None, "must be an object with 'start' and 'end'"),
        (lambda s: [1, 2], "must be an object"),
        (lambda s: {**s, "scheme": "active"}, "built with scheme 'active', expected 'non_delay'"),
        (lambda s: {**s, "start": s["start"][:-1]}, "one list per job (3), got 2 entries"),
        (lambda s: {**s, "start": [s["start"][0][:1], *s["start"][1:]]}, "'start'[0] must list the 2 operations"),
        (lambda s: {**s, "start": [[float("nan"), 3], *s["start"][1:]]}, "'start'[0][0] must be an integer time, got nan"),
        (lambda s: {**s, "start": [[0.5, 3], *s["start"][1:]]}, "'start'[0][0] must be an integer time"),
        (lambda s: {**s, "start": [[True, 3], *s["start"][1:]]}, "'start'[0][0] must be an integer time"),
        (lambda s: {**s, "start": [["0", 3], *s["start"][1:]]}, "'start'[0][0] must be an integer time"),
        (lambda s: {**s, "start": [[10**30, 3], *s["start"][1:]]}, "outside [0, 2**53]"),
        (lambda s: {**s, "start": [[-1, 3], *s["start"][1:]]}, "outside [0, 2**53]"),
        (lambda s: {**s, "end": "x"}, "'end' must be a list"),
        # In the last job, after plain ints (checked together first): still named by place.
        (lambda s: {**s, "end": [*s["end"][:-1], [*s["end"][-1][:-1], False]]}, "'end'[2][1] must be an integer time"),
        (lambda s: {**s, "start": [*s["start"][:-1], [s["start"][-1][0], 2**53 + 1]]}, "'start'[2][1] = 9007"),
        (lambda s: {**s, "start": [[3, 0.5], s["start"][1][:1], *s["start"][2:]]}, "'start'[0][1] must be an integer"),
    ],
)
def test_hostile_solutions_are_infeasible_with_the_reason(verifier: JsspVerifier, mutate, message: str) -> None:
    inst = instance_of(TINY)
    good = JsspVerifier.solve(mwkr, inst)
    result = verifier.score(inst, mutate(copy.deepcopy(good)))
    assert not result.feasible
    assert message in result.error


def test_integral_floats_in_a_schedule_score_as_its_ints(verifier: JsspVerifier) -> None:
    inst = instance_of(TINY, ref=10)
    good = JsspVerifier.solve(mwkr, inst)
    floats = {**good, "start": [[float(x) for x in row] for row in good["start"]]}
    assert verifier.score(inst, floats) == verifier.score(inst, good)
    assert verifier.score(inst, good).feasible


def test_each_constraint_is_named_when_violated(verifier: JsspVerifier) -> None:
    inst = instance_of(TINY, ref=10)
    good = JsspVerifier.solve(mwkr, inst)
    assert verifier.score(inst, good).feasible
    # Exact durations: the end must be start + duration.
    bad = copy.deepcopy(good)
    bad["end"][0][0] += 1
    assert "operation 0 of job 0 runs 4 time units" in verifier.score(inst, bad).error
    # Precedence: job 1's second operation moved before its first ends.
    bad = copy.deepcopy(good)
    bad["start"][1][1] = 0
    bad["end"][1][1] = 4
    assert verifier.score(inst, bad).error.startswith("precedence: operation 1 of job 1 starts at 0")
    # Overlap: job 0 on M0 at the same time as job 1.
    bad = copy.deepcopy(good)
    bad["start"][0] = [0, 3]
    bad["end"][0] = [3, 5]
    assert "machine 0:" in verifier.score(inst, bad).error and "overlaps" in verifier.score(inst, bad).error


def test_feasible_but_delayed_schedule_is_not_non_delay_nor_active(verifier: JsspVerifier) -> None:
    inst = instance_of(TINY)
    good = JsspVerifier.solve(mwkr, inst)
    late = copy.deepcopy(good)
    late["start"] = [[s + 100 for s in row] for row in late["start"]]
    late["end"] = [[e + 100 for e in row] for row in late["end"]]
    assert "not a non-delay schedule: machine" in verifier.score(inst, late).error
    active_inst = instance_of(TINY, "active")
    late["scheme"] = "active"
    assert "not an active schedule" in verifier.score(active_inst, late).error


def test_checker_agrees_with_brute_force_on_perturbed_schedules() -> None:
    rng = np.random.default_rng(11)
    seen = set()
    for trial in range(300):
        shop = taillard_like(f"p{trial}", int(rng.integers(2, 5)), int(rng.integers(2, 4)), 1000 + trial)
        shop = JobShop(shop.name, shop.machines, shop.durations % 6 + 1, shop.lengths, shop.n_machines)
        scheme = ["non_delay", "active"][trial % 2]
        solution = solved(shop, lambda proc_time, **_: rng.random(len(proc_time)), scheme)
        for _ in range(int(rng.integers(1, 3))):  # shift one or two operations
            j = int(rng.integers(shop.n_jobs))
            k = int(rng.integers(shop.lengths[j]))
            delta = int(rng.integers(-4, 5))
            solution["start"][j][k] = max(0, solution["start"][j][k] + delta)
            solution["end"][j][k] = solution["start"][j][k] + int(shop.durations[j, k])
        reason, _ = check_schedule(shop, solution, scheme)
        expected = brute_violation(shop, solution["start"], scheme)
        assert kind_of(reason) == expected, (trial, reason, expected, solution["start"])
        seen.add(expected)
    assert seen == {None, "precedence", "overlap", "non_delay", "active"}


def test_makespan_is_computed_here_not_taken_from_the_answer(verifier: JsspVerifier) -> None:
    inst = instance_of(TINY, ref=9)
    solution = JsspVerifier.solve(mwkr, inst)
    solution["makespan"] = 1
    result = verifier.score(inst, solution)
    expected = max(e for row in solution["end"] for e in row)
    assert result.objective == expected
    assert math.isclose(result.gap, (expected - 9) / 9)


def test_completion_share_is_the_mean_jobs_completion_over_the_makespan() -> None:
    # Job 0: machine 0 for 3, then machine 1 for 2; job 1: machine 1 for 4. Job 1 holds machine 1
    # until 4, so job 0 ends at 6 (the makespan) and job 1 at 4: the mean job ends at 5/6 of it.
    shop = JobShop.from_jobs("toy", [[(0, 3), (1, 2)], [(1, 4)]])
    solution = {"scheme": None, "start": [[0, 4], [0]], "end": [[3, 6], [4]]}
    reason, checked = check_schedule(shop, solution, None)
    assert reason is None and checked is not None and checked.makespan == 6
    assert schedule_shape(shop, checked) == {"completion_share": 5 / 6}
