"""MoE runtime through the real sandbox: measured from outside, whatever the candidate does to clocks.

Every attack below spends 30 ms of CPU per call and tries to make the verifier
see less.  The time of a call is read by the trusted side from the kernel's CPU
clock of the candidate's process (the sandbox session), so each must still be
timed at 30 ms, like the same rule that does not cheat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evolve.config import RunSettings
from evolve.evaluation import Evaluator
from evolve.problem import load_problem

BURN = """
import os
import sys
import time
import numpy as np

_tick = time.thread_time

def burn(seconds):
    end = _tick() + seconds
    while _tick() < end:
        pass
"""
BODY = """
def place(weight, num_replicas, num_gpus):
    layers, experts = weight.shape
    phy2log = np.tile(np.arange(num_replicas) % experts, (layers, 1))
    logcnt = np.tile(np.bincount(phy2log[0], minlength=experts), (layers, 1))
    log2phy = np.full((layers, experts, int(logcnt.max())), -1)
    for s in range(num_replicas):
        log2phy[:, s % experts, s // experts] = s
    return phy2log, log2phy, logcnt

def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    key = weight.tobytes()
    if key in _CACHE:
        return _CACHE[key]
    burn(0.03)
    out = place(weight, num_replicas, num_gpus)
    _CACHE[key] = out
    return out
"""
HONEST = BURN + "_CACHE = {}\n" + BODY

CHEATS = {
    # Every clock of the time module stopped before anything is timed.
    "patched_time": """
for _name in ("perf_counter", "perf_counter_ns", "process_time", "process_time_ns", "thread_time",
              "thread_time_ns", "monotonic", "monotonic_ns", "time", "time_ns", "clock_gettime",
              "clock_gettime_ns"):
    setattr(time, _name, lambda *args: 0)
""",
    # The old harness's clocks, and any clock-like name in any module of the process.
    "rebound_clocks": """
import resource
os.times = lambda: os.times_result((0.0,) * 5)
resource.getrusage = lambda who: None
for _module in list(sys.modules.values()):
    for _name in list(vars(_module)) if _module is not None else []:
        if _name.startswith("_") and not _name.startswith("__") and any(k in _name.upper() for k in ("NS", "CLOCK", "TIME")):
            try:
                setattr(_module, _name, lambda *args: 0)
            except Exception:
                pass
try:  # the harness is trusted side: not in this process, and not importable (the import
    # machinery itself may fail here, its private names rebound above)
    import evolve.evaluators.moe.harness as _h
    _h._WALL_NS = _h._CPU_NS = _h._THREAD_NS = lambda: 0
    _h.run_workload = lambda *args, **kwargs: {"placements": [], "cpu_s": [0.0], "wall_s": [0.0]}
except Exception:
    pass
""",
}


@pytest.fixture(scope="module")
def moe() -> Any:
    problem = load_problem("moe").with_options({"timing_repeats": 2, "warmup_calls": 1})
    chosen = problem.instances("quick", names=["quick-small64-0"])
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        yield lambda code: evaluator.run_split(code, chosen, "quick")


@pytest.fixture(scope="module")
def honest(moe: Any) -> Any:
    evaluation = moe(HONEST)
    assert evaluation.ok, evaluation.feedback
    (result,) = evaluation.instances
    assert result.extra["cpu_ms"] >= 25 and result.extra["wall_ms"] >= 25  # caching across calls does not pay
    return result


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_rebinding_clocks_in_the_candidate_changes_nothing(moe: Any, honest: Any, cheat: str) -> None:
    evaluation = moe(BURN + CHEATS[cheat] + "_CACHE = {}\n" + BODY)
    assert evaluation.ok, evaluation.feedback
    (result,) = evaluation.instances
    assert result.extra["cpu_ms"] >= 25 and result.extra["wall_ms"] >= 25, result.extra
    assert result.extra["runtime_ms"] == result.extra["cpu_ms"]
    assert result.objective == honest.objective  # the same placements, judged the same


HAND_OFFS = {
    # CPU time of a forked helper is not the candidate's process's: it would escape the clock.
    "fork": """
_burn = burn

def burn(seconds):
    pid = os.fork()
    if pid == 0:
        _burn(seconds)
        os._exit(0)
    os.waitpid(pid, 0)
""",
    # Threads count in the process's clock; they are refused all the same (they are tasks too).
    "thread": """
import threading

_burn = burn

def burn(seconds):
    worker = threading.Thread(target=_burn, args=(seconds,))
    worker.start()
    worker.join()
""",
}


@pytest.mark.parametrize("hand_off", sorted(HAND_OFFS))
def test_work_handed_to_another_task_is_refused(moe: Any, hand_off: str) -> None:
    # The moe problem runs candidates with max_processes = 1: the fork (or thread) fails,
    # and the program with it.
    evaluation = moe(BURN + HAND_OFFS[hand_off] + "_CACHE = {}\n" + BODY)
    assert evaluation.status == "error", evaluation.feedback
    assert any(why in evaluation.feedback for why in ("BlockingIOError", "can't start new thread")), \
        evaluation.feedback


# A balancer that hunts for the window it will be judged on: every integer array that any
# container in the process holds (numpy arrays are not tracked by gc, their holders are) and every
# local of every caller (frames). The placement from window k is scored on window k + 1, so that
# window must not be in the candidate's process. The probe first checks that it sees what it
# should (its own window, in its caller's frame), and a leak planted on purpose is caught (the
# second test), so a probe that finds nothing because it is broken fails instead of passing.
PEEK = """
import gc
import sys
import numpy as np

_SEEN = []
_PLANTED = []

def _held(value, depth=0):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)) and depth < 3:
        for item in value:
            yield from _held(item, depth + 1)
    elif isinstance(value, dict) and depth < 3:
        for item in list(value.values()):
            yield from _held(item, depth + 1)

def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    _PLANT_HERE
    in_frames, frame = [], sys._getframe(1)
    while frame is not None:
        in_frames += list(_held(frame.f_locals))
        frame = frame.f_back
    if not any(a.shape == weight.shape and np.array_equal(a, weight) for a in in_frames):
        raise RuntimeError("probe broken: its own window is not in its callers' frames")
    in_containers = [a for o in gc.get_objects() if isinstance(o, (dict, list, tuple))
                     for a in _held(o, 2)]
    others = [a for a in in_frames + in_containers
              if a.shape == weight.shape and a.dtype.kind in "iu" and not np.array_equal(a, weight)
              and not any(np.array_equal(a, s) for s in _SEEN)]
    if others:
        raise RuntimeError(f"found {len(others)} load arrays besides this window's")
    _SEEN.append(weight.copy())
    return place(weight, num_replicas, num_gpus)
""" + BODY.split("def rebalance_experts")[0]


def test_the_judged_window_is_not_in_the_candidates_process(moe: Any) -> None:
    evaluation = moe("import numpy as np\n" + PEEK.replace("_PLANT_HERE", "pass"))
    assert evaluation.ok, evaluation.feedback
    (result,) = evaluation.instances
    assert result.feasible


def test_the_window_probe_finds_a_planted_window(moe: Any) -> None:
    evaluation = moe("import numpy as np\n" + PEEK.replace("_PLANT_HERE", "_PLANTED.append(weight + 1)"))
    assert evaluation.status == "error"
    assert "found 1 load arrays besides this window's" in evaluation.feedback, evaluation.feedback


# A balancer that remembers what the untimed warm-up calls showed it.  Until 2026-12-06 the k-th
# warm-up call sent a noisy copy of window k, so with warmup_calls >= 2 (the option allows 100)
# the candidate saw copies of the windows its placements are judged on before the timed calls:
# at each timed call it finds the copy of its own window among those it was shown and balances
# (LPT) on the copy that followed it.  On train with warmup_calls = 4 that scored 0.890
# balancedness against LPT's 0.846.  Warm-up calls then copied window 0 only (the first timed
# call's input), and since the eighth red team they are made-up windows (the last test), so it
# has nothing to find.
LPT = (Path(__file__).parents[1] / "problems" / "moe" / "baselines" / "lpt.py").read_text()
WARMUP_MEMORY = LPT.replace("def rebalance_experts(", "def _lpt(") + """

_SEEN = []


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    w = np.asarray(weight, dtype=np.float64)
    target, best = w, 0.2
    for old, following in zip(_SEEN, _SEEN[1:]):
        distance = np.abs(old - w).sum() / max(w.sum(), 1.0)
        if old.shape == w.shape == following.shape and 0 < distance < best:
            target, best = following, distance  # the copy shown after this window's copy
    _SEEN.append(w.copy())
    return _lpt(target, num_replicas, num_groups, num_nodes, num_gpus)
"""


def test_warm_up_calls_show_no_window_a_placement_is_judged_on() -> None:
    problem = load_problem("moe").with_options({"timing_repeats": 0, "warmup_calls": 3})
    chosen = problem.instances("train", names=["train-small64-0", "train-small64-1"])
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        honest, memory = (evaluator.run_split(code, chosen, "train") for code in (LPT, WARMUP_MEMORY))
    assert honest.ok and memory.ok, (honest.feedback, memory.feedback)
    # Balancing on a noisy copy of window 0 is LPT on slightly other loads: by chance a hair
    # better or worse (-0.007 to +0.001 over 26 secret seeds); before the fix the memory won by 0.020.
    assert memory.metrics["balancedness"] <= honest.metrics["balancedness"] + 0.01, (memory.metrics, honest.metrics)


def test_a_balancer_over_its_cpu_budget_pays_for_each_doubling(moe: Any) -> None:
    """The problem's per-call CPU budget is 10 ms on small64: within it runtime costs nothing,
    over it each doubling costs a point.  A balancer that burns 30 ms of CPU per call is charged
    what the kernel counted for its process (at least the 30 ms it burnt), not less, and pays
    log2(charged / 10 ms) of its score."""
    import math

    evaluation = moe(HONEST)
    assert evaluation.ok, evaluation.feedback
    (result,) = evaluation.instances
    assert result.extra["runtime_budget_ms"] == 10.0 and result.extra["runtime_ms"] >= 25, result.extra
    penalty = evaluation.metrics["runtime_penalty"]
    assert penalty == pytest.approx(math.log2(result.extra["runtime_ms"] / 10.0)) and penalty > 1.3
    metrics = evaluation.metrics
    assert evaluation.score == pytest.approx(100 * (metrics["balancedness"] - 2 * metrics.get("lpt_shortfall", 0.0))
                                             - penalty)


# A balancer that spends its time only where it is judged.  The repeats (timed, not scored) are
# noisy copies of windows it has just seen, so it knows them and answers from a cache: until
# 2026-12-06 runtime_ms was the median over all timed calls, and with five repeats to three
# judged calls that median was a cached answer (quick: 0.7 ms against LPT's 8.4 while it burnt
# 100 ms per judged call).  The judged calls' median is now a floor.
CHEAP_REPEATS = BURN + BODY.split("def rebalance_experts")[0] + """
_ANSWERS = []

def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    w = np.asarray(weight, dtype=np.float64)
    for old, answer in _ANSWERS:
        if old.shape == w.shape and np.abs(old - w).sum() < 0.08 * max(w.sum(), 1.0):
            return answer  # a noisy copy of a window seen before
    burn(0.03)
    answer = place(weight, num_replicas, num_gpus)
    _ANSWERS.append((w, answer))
    return answer
"""


def test_time_spent_only_on_the_judged_calls_is_counted() -> None:
    problem = load_problem("moe").with_options({"timing_repeats": 5, "warmup_calls": 1})
    chosen = problem.instances("quick", names=["quick-small64-0"])
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        evaluation = evaluator.run_split(CHEAP_REPEATS, chosen, "quick")
    assert evaluation.ok, evaluation.feedback
    (result,) = evaluation.instances
    assert result.extra["runtime_ms"] == result.extra["cpu_ms"] >= 25, result.extra


@pytest.mark.parametrize("config", ["v3", "tiny16"])
def test_the_widest_placement_a_balancer_may_return_fits_its_calls_reply_bound(config: str) -> None:
    """A call's reply is bounded by what a placement can hold (a reply padded past it ends the
    session unread, tests/test_jssp_attacks.py): log2phy as wide as there are replicas, packed
    by the sandbox side, fits with room to spare for the note a wrong answer becomes."""
    import numpy as np

    from evolve.evaluators.moe.candidate_side import pack
    from evolve.evaluators.moe.configs import TINY, V3
    from evolve.evaluators.moe.harness import reply_bytes

    c = {"v3": V3, "tiny16": TINY}[config]
    layers = 58 if config == "v3" else 2
    weight = np.ones((layers, c.experts), dtype=np.int64)
    widest = (np.zeros((layers, c.replicas), np.int64), np.full((layers, c.experts, c.replicas), -1, np.int64),
              np.ones((layers, c.experts), np.int64))
    assert pack(widest).nbytes <= reply_bytes(weight, c.replicas) < 64 << 20


# A balancer that pays for one costly judged call and is cheap on the others (it could cache
# or cheaply adjust what the costly call found).  Until 2026-12-06 runtime_ms was a median (over
# all timed calls, floored by the judged calls' median), and a median of three or more judged
# calls hides the costliest: here the first judged call does ~100 times the work of the others
# and was charged as a cheap one.  The judged calls' mean CPU time is now a floor, and the wall
# figure is never below it.  The work is a fixed count of steps, and the test compares the
# kernel's CPU counts of the calls (the record's cpu_s), not how long anything took.
ONE_COSTLY = BODY.split("def rebalance_experts")[0] + """
_CALLS = []

def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    _CALLS.append(1)
    if len(_CALLS) == 2:  # the first judged call (after one warm-up call)
        _CALLS.append(sum(i * i for i in range(3_000_000)))
    return place(weight, num_replicas, num_gpus)
"""


def _on_small64(code: str, repeats: int, warmup: int) -> Any:
    """``code`` evaluated on quick's small64 workload (3 judged calls) with these options."""
    problem = load_problem("moe").with_options({"timing_repeats": repeats, "warmup_calls": warmup})
    chosen = problem.instances("quick", names=["quick-small64-0"])
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        return evaluator.run_split("import numpy as np\n" + code, chosen, "quick")


def test_one_costly_judged_call_among_cheap_ones_is_charged() -> None:
    evaluation = _on_small64(ONE_COSTLY, repeats=2, warmup=1)
    assert evaluation.ok, evaluation.feedback
    (result,), (record,) = evaluation.instances, evaluation.solutions
    judged, cpu = len(record["placements"]), record["cpu_s"]
    assert judged == 3 and len(cpu) == 5, record
    assert cpu[0] > 10 * max(cpu[1:]), cpu  # the attack's shape: one costly call, the rest cheap
    mean_ms = 1e3 * sum(cpu[:judged]) / judged
    assert result.extra["runtime_ms"] == result.extra["cpu_ms"] >= mean_ms * (1 - 1e-9), (result.extra, cpu)
    assert result.extra["wall_ms"] >= result.extra["cpu_ms"], result.extra


# The same shape under the per-call budget (10 ms on small64): the first judged call spends 25 ms,
# two and a half budgets, the others well under one.  Until the twelfth red team the budget was
# held against the judged calls' mean (~9 ms here) and such a balancer paid nothing, as if every
# call had stayed within its budget; now each judged call is charged on its own, so the costly
# one pays log2(25 / 10) points, shared over the three judged calls.  Decided on the kernel's
# CPU counts of the calls (the record's cpu_s), not on how long anything took.
BANKED = BURN + BODY.split("def rebalance_experts")[0] + """
_CALLS = []

def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    _CALLS.append(1)
    if len(_CALLS) == 2:  # the first judged call (after one warm-up call)
        burn(0.025)
    return place(weight, num_replicas, num_gpus)
"""


def test_the_budget_of_cheap_judged_calls_does_not_pay_for_a_costly_one() -> None:
    import math

    evaluation = _on_small64(BANKED, repeats=2, warmup=1)
    assert evaluation.ok, evaluation.feedback
    (result,), (record,) = evaluation.instances, evaluation.solutions
    judged, cpu = len(record["placements"]), record["cpu_s"]
    budget = result.extra["runtime_budget_ms"]
    assert judged == 3 and budget == 10.0, (record, result.extra)
    assert 1e3 * cpu[0] >= 25 and 1e3 * sum(cpu[:judged]) / judged < budget, cpu  # the attack's shape
    assert result.extra["runtime_ms"] < budget  # the judged mean: under the budget, free before
    expected = sum(math.log2(max(1e3 * c, budget) / budget) for c in cpu[:judged]) / judged
    assert expected >= math.log2(2.5) / 3
    assert evaluation.metrics["runtime_penalty"] == pytest.approx(expected), (evaluation.metrics, cpu)
    metrics = evaluation.metrics
    assert evaluation.score == pytest.approx(100 * (metrics["balancedness"] - 2 * metrics.get("lpt_shortfall", 0.0))
                                             - expected)


# A balancer that does its costly work in the untimed warm-up call and hands the result in at the
# first judged call.  Until 2026-12-06 warm-up calls were noisy copies of window 0, the first
# judged call's input (sigma 0.05): it could balance that copy for as long as it liked, uncharged,
# and answer window 0 from it at the cost of a look-up.  Here it says so instead (the call fails
# with the distance), so the test decides by the loads it was shown, not by any clock: every
# warm-up input must be far from window 0, also after sorting each layer's loads by expert (a
# permuted copy would be given back by the values).
WARM_COPY = BODY.split("def rebalance_experts")[0] + """
_WARM = []

def _distance(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).sum() / max(b.sum(), 1.0))

def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    if len(_WARM) < 2:  # the two warm-up calls
        _WARM.append(np.array(weight))
    elif len(_WARM) == 2:  # the first judged call: window 0
        _WARM.append(None)
        for seen in _WARM[:2]:
            near = _distance(seen, weight)
            sorted_near = _distance(np.sort(seen, axis=1), np.sort(weight, axis=1))
            if min(near, sorted_near) < 0.2:
                raise RuntimeError(f"warm-up showed window 0: distance {near:.3f}, sorted {sorted_near:.3f}")
    return place(weight, num_replicas, num_gpus)
"""


def test_warm_up_calls_show_nothing_of_the_first_judged_window() -> None:
    evaluation = _on_small64(WARM_COPY, repeats=0, warmup=2)
    assert evaluation.ok, evaluation.feedback
