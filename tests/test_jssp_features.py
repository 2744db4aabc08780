"""The JSSP builder's aggregates (next operation, bottleneck, shop totals), checked against the
instance and the schedule it builds, and rules that name only some features."""

from __future__ import annotations

import numpy as np

from evolve.evaluators.jssp.builder import FEATURES, accepted_features, build_schedule
from evolve.evaluators.jssp.generator import taillard_like


def _recorded(shop):
    seen: list[dict] = []

    def recorder(**f):
        seen.append({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in f.items()})
        return f["job_work_left"]

    start = build_schedule(recorder, shop.machines, shop.durations, shop.lengths, shop.n_machines, "non_delay")
    return start, seen


def test_aggregates_lie_between_what_starts_after_and_what_starts_from_each_decision() -> None:
    # Non-delay decisions come in order of time: an operation that starts after a decision's
    # time was still unscheduled then, one that started before was not. Those two recounts from
    # the finished schedule bracket every aggregate the builder keeps incrementally.
    shop = taillard_like("feat", 8, 5, 11)
    d, m = shop.durations.astype(float), shop.machines
    start, seen = _recorded(shop)
    assert seen and set(seen[0]) == set(FEATURES)
    checked_next = 0
    for f in seen:
        now = f["now"]
        after, from_now = start > now, start >= now
        chosen = int(np.argmax(f["job_work_left"]))
        assert d[after].sum() + f["proc_time"][chosen] <= f["total_work_left"] <= d[from_now].sum()
        per_machine = [(d[after & (m == k)].sum(), d[from_now & (m == k)].sum()) for k in range(shop.n_machines)]
        assert max(lo for lo, _ in per_machine) <= f["max_machine_work_left"] <= max(hi for _, hi in per_machine)
        assert np.any(after, axis=1).sum() <= f["jobs_left"] <= np.any(from_now, axis=1).sum()
        for i in range(len(f["proc_time"])):
            k = int(f["op_index"][i])
            jobs = [j for j in range(shop.n_jobs)
                    if d[j, k] == f["proc_time"][i] and d[j, :k].sum() == f["job_work_done"][i]]
            if len(jobs) != 1:
                continue  # two jobs alike so far: cannot tell which one this is
            j = jobs[0]
            if k + 1 >= shop.lengths[j]:
                assert f["next_proc_time"][i] == 0.0 and f["next_machine_work_left"][i] == 0.0
                continue
            nm = m[j, k + 1]
            assert f["next_proc_time"][i] == d[j, k + 1]
            lo, hi = per_machine[nm]
            assert lo <= f["next_machine_work_left"][i] <= hi
            checked_next += 1
    assert checked_next > 20


def test_the_first_decision_sees_the_whole_shop() -> None:
    shop = taillard_like("first", 6, 4, 3)
    d = shop.durations.astype(float)
    _, seen = _recorded(shop)
    first = seen[0]
    assert first["now"] == 0.0
    assert first["total_work_left"] == d.sum()
    assert first["max_machine_work_left"] == max(d[shop.machines == k].sum() for k in range(shop.n_machines))
    assert first["jobs_left"] == shop.n_jobs


def test_a_rule_naming_only_some_features_gets_only_those() -> None:
    def old_rule(proc_time, job_work_left, job_ops_left, job_work_done, job_ready, machine_ready,
                 earliest_start, now, machine_work_left, op_index, n_jobs, n_machines):
        return job_work_left

    def strict(proc_time, jobs_left):
        assert np.ndim(jobs_left) == 0
        return -proc_time

    assert accepted_features(old_rule) == FEATURES[:12]
    assert accepted_features(strict) == ("proc_time", "jobs_left")
    assert accepted_features(lambda **kw: 0) == FEATURES
    shop = taillard_like("compat", 5, 3, 2)
    for rule in (old_rule, strict):
        start = build_schedule(rule, shop.machines, shop.durations, shop.lengths, shop.n_machines, "non_delay")
        assert np.all(start >= 0)


def _first_call(scheme: str, durations: list[list[int]], machines: list[list[int]]) -> list[int]:
    calls: list[list[int]] = []

    def recorder(proc_time, **_):
        calls.append([int(x) for x in proc_time])
        return -proc_time

    d, m = np.array(durations), np.array(machines)
    build_schedule(recorder, m, d, np.full(len(d), d.shape[1]), int(m.max()) + 1, scheme)
    return calls[0]


def test_the_machine_offered_first_is_the_one_the_prompt_names() -> None:
    # SCHEME_FACTS tells a model which machine's operations a call offers when several machines
    # have a decision at once (a rule reading shop totals can see the order). Jobs 0 and 1 wait
    # for machine 1, jobs 2 and 3 for machine 0; each job's length names it.
    machines = [[1, 0], [1, 0], [0, 1], [0, 1]]
    # Non-delay: the machine of the lowest job index among those that can start at `now`.
    assert _first_call("non_delay", [[5, 1], [7, 1], [3, 1], [9, 1]], machines) == [5, 7]
    # Active: the machine of the operation that would end first (job 2, ending at 3) ...
    assert _first_call("active", [[5, 1], [7, 1], [3, 1], [9, 1]], machines) == [3, 9]
    # ... and the lowest job index when two would end at once (jobs 0 and 2 at 3).
    assert _first_call("active", [[3, 1], [7, 1], [3, 1], [9, 1]], machines) == [3, 7]
