"""Attacks on jssp's promise that a program is a priority rule, and the trusted builder that
stops them.

Run in the candidate's process, the schedule builder is at a program's mercy: it can replace it
(randomised restarts of MWKR, keeping the best schedule), read the whole instance from its
caller's frames and plan, or keep state, and what comes back is still a valid schedule of the
scheme's class, which ``check_schedule`` accepts.  So for every program that is not provably
one pure expression the engine has the trusted side build the schedules
(``evaluators/jssp/drive.py``), asking the rule one decision at a time.  Each attack is shown to
pay when the builder runs in its process and to gain nothing when it does not; honest rules and
the shipped baselines build the same schedules either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from replay_attacks import problem_evaluator

from evolve.evaluation import Evaluation, Evaluator
from evolve.evaluators.jssp.builder import build_schedule, schedule_solution
from evolve.evaluators.jssp.candidate_side import respond
from evolve.evaluators.jssp.check import check_schedule
from evolve.evaluators.jssp.drive import drive
from evolve.evaluators.jssp.generator import taillard_like
from evolve.evaluators.jssp.model import JobShop
from evolve.problem import load_problem
from evolve.verifier import Instance

# The best of 25 noisy MWKR schedules, built by replacing the builder at import.
OWN_BUILDER = '''
import sys

import numpy as np

_side = sys.modules["evolve.evaluators.jssp.candidate_side"]
_build = _side.build_schedule


def _restarts(rule, machines, durations, lengths, n_machines, scheme):
    rng = np.random.default_rng(0)
    best, best_makespan = None, None
    for k in range(25):
        noise = 0.0 if k == 0 else 0.3
        start = _build(lambda job_work_left, **_: job_work_left * (1 + noise * rng.random(job_work_left.shape)),
                       machines, durations, lengths, n_machines, scheme)
        makespan = np.where(start >= 0, start + durations, 0).max()
        if best is None or makespan < best_makespan:
            best, best_makespan = start, makespan
    return best


_side.build_schedule = _restarts


def priority(job_work_left, **_):
    return job_work_left
'''

# The same restarts planned at the rule's first call of each instance, with the instance
# read from the builder's frame; later calls dispatch what the plan starts first.
KEEPS_STATE = '''
import sys

import numpy as np

_plan = {}


def priority(op_index, **_):
    frame = sys._getframe(1)
    while "steps" not in frame.f_locals:
        frame = frame.f_back
    here = frame.f_locals["steps"].gi_frame.f_locals
    if _plan.get("machines") is not here["machines"]:
        build = sys.modules["evolve.evaluators.jssp.builder"].build_schedule
        rng = np.random.default_rng(0)
        best = None
        for k in range(25):
            noise = 0.0 if k == 0 else 0.3
            start = build(lambda job_work_left, **_: job_work_left * (1 + noise * rng.random(job_work_left.shape)),
                          here["machines"], here["durations"], here["lengths"], here["n_machines"], here["scheme"])
            makespan = np.where(start >= 0, start + here["durations"], 0).max()
            if best is None or makespan < best[0]:
                best = (makespan, start)
        _plan.update(machines=here["machines"], start=best[1])
    return -_plan["start"][here["cand"], op_index.astype(int)]
'''

MWKR = "def priority(job_work_left, **_):\n    return job_work_left\n"

# MWKR that departs at one decision per large instance: the best of the 3 next candidates at each
# of the first 40 decisions, found by rebuilding the instance (read from the builder's frame) with
# the builder in its process.  Against the old replay audit, in whose fresh process no instance
# was in reach, a sample of 8 decisions caught an instance only when it held the departure
# (~0.04 here): on train it escaped 4 times in 4 at 11.23 % against MWKR's 12.06 %.
ONE_DEPARTURE = '''
import sys

import numpy as np

_STATE = {"instance": None, "calls": 0, "plan": (None, 1)}


def _instance():
    frame = sys._getframe(2)
    while frame is not None:
        inst = frame.f_locals.get("instance")
        if inst is not None and hasattr(inst, "data"):
            return inst
        frame = frame.f_back
    return None


def _pick(values, k, depart_at, rank):
    if k == depart_at and values.size > rank:
        out = np.zeros(values.size)
        out[np.argsort(-values, kind="stable")[rank]] = 1.0
        return out
    return values


def _rule(depart_at, rank, calls):
    def rule(job_work_left, **_):
        calls[0] += 1
        return _pick(np.asarray(job_work_left, dtype=np.float64), calls[0] - 1, depart_at, rank)
    return rule


def _plan(inst):
    build = sys.modules["evolve.evaluators.jssp.builder"].build_schedule
    d = inst.data
    args = (d["machines"], d["durations"], d["lengths"], int(d["n_machines"]), d["scheme"])
    valid = np.arange(d["durations"].shape[1])[None, :] < d["lengths"][:, None]

    def span(depart_at, rank, calls):
        start = build(_rule(depart_at, rank, calls), *args)
        return int(np.where(valid, start + d["durations"], 0).max())

    calls = [0]
    best = (span(None, 1, calls), -1, 1)
    if calls[0] >= 150:  # few departures, where the replay rarely looks
        for k in range(min(40, calls[0])):
            for rank in (1, 2):
                best = min(best, (span(k, rank, [0]), k, rank))
    return (None if best[1] < 0 else best[1]), best[2]


def priority(job_work_left, **features):
    inst = _instance()
    if inst is not None and inst is not _STATE["instance"]:
        _STATE.update(instance=inst, calls=0, plan=_plan(inst))
    k = _STATE["calls"]
    _STATE["calls"] += 1
    values = np.asarray(job_work_left, dtype=np.float64)
    return _pick(values, k, *_STATE["plan"]) if inst is not None else values
'''


@pytest.fixture(scope="module")
def evaluator() -> Iterator[Evaluator]:
    """jssp's sandbox with 60 s per instance, not its 2 s: the attacks that build in their own
    process build up to 81 schedules of a 30x20 instance each (5.4 s of wall time for 4 of them at
    load 5, against 2 s + 4 x 2 s), and the sandbox's limit is wall clock, so at load 17 on
    2 cores the control timed out. No test here is about the limit; each holds at any limit
    an honest rule meets."""
    yield from problem_evaluator("jssp", instance_timeout_s=60.0)


@pytest.fixture(scope="module")
def instances() -> list[Instance]:
    """quick, and train's instances up to 15x15 (where restarts leave MWKR's choice often)."""
    problem = load_problem("jssp")
    small = [i for i in problem.instances("train") if int(i.group.split("/")[1].split("x")[0]) <= 15]
    return problem.instances("quick") + small[:12]


def _in_its_own_process(evaluator: Evaluator, attack: str, instances: list[Instance],
                        monkeypatch: pytest.MonkeyPatch) -> Evaluation:
    """The attack with the builder in the candidate's process (as before the trusted builder)."""
    with monkeypatch.context() as patch:
        patch.setattr(evaluator.problem.verifier, "drive", None)
        return evaluator.run_split(attack, instances, "quick")


def assert_pays_then_gains_nothing(evaluator: Evaluator, attack: str, instances: list[Instance],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With the builder in its process the attack beats MWKR (the control: it is worth
    stopping); built by the trusted side, each instance gets MWKR's schedule or fails."""
    fair = evaluator.run_split(MWKR, instances, "quick")
    paid = _in_its_own_process(evaluator, attack, instances, monkeypatch)
    assert fair.ok and paid.ok, paid.feedback
    assert paid.score is not None and fair.score is not None and paid.score > fair.score
    driven = evaluator.run_split(attack, instances, "quick")
    for honest, got, result in zip(fair.solutions, driven.solutions, driven.instances, strict=True):
        assert got == honest or (got is None and not result.feasible), result
    assert driven.score is None or driven.score <= fair.score


@pytest.mark.parametrize("attack", [OWN_BUILDER, KEEPS_STATE], ids=["own_builder", "keeps_state"])
def test_restarts_passed_off_as_a_rule_pay_in_its_own_process_and_gain_nothing_when_driven(
        attack: str, evaluator: Evaluator, instances: list[Instance], monkeypatch: pytest.MonkeyPatch) -> None:
    assert_pays_then_gains_nothing(evaluator, attack, instances, monkeypatch)


def test_a_rule_departing_at_one_decision_per_instance_gains_nothing_when_driven(
        evaluator: Evaluator, monkeypatch: pytest.MonkeyPatch) -> None:
    problem = load_problem("jssp")
    large = [i for i in problem.instances("train") if i.group in ("non_delay/30x15", "non_delay/30x20")][::2]
    assert_pays_then_gains_nothing(evaluator, ONE_DEPARTURE, large, monkeypatch)


@pytest.mark.parametrize("name", ["mwkr", "spt", "fdd_mwkr", "random"])
def test_the_shipped_rules_build_the_same_schedules_driven_as_in_the_sandbox(
        name: str, evaluator: Evaluator, instances: list[Instance]) -> None:
    """As baselines (batch, in the sandbox) and as candidates that are not one pure expression
    (an import added: built by the trusted side), every schedule is the same."""
    baseline = evaluator.problem.baselines[name].read_text()
    assert evaluator._exempt(baseline, "priority") and not evaluator._driven(baseline, "priority")
    candidate = "import sys  # a candidate now\n" + baseline
    assert evaluator._driven(candidate, "priority")
    batch, driven = evaluator.run_split(baseline, instances, "quick"), evaluator.run_split(candidate, instances, "quick")
    assert batch.ok and driven.ok, driven.feedback
    assert driven.solutions == batch.solutions and driven.score == batch.score


def test_a_rule_that_fails_at_some_decisions_fails_those_instances_only(
        evaluator: Evaluator, instances: list[Instance]) -> None:
    """NaN on the 6x6 instances, a raise on those with 10 jobs: the others are built and scored."""
    source = ("import numpy as np\n\ndef priority(job_work_left, n_jobs, **_):\n"
              "    if n_jobs == 6:\n        return np.full(len(job_work_left), np.nan)\n"
              "    if n_jobs == 10:\n        raise ValueError('ten')\n"
              "    return job_work_left\n")
    evaluation = evaluator.run_split(source, instances, "quick")
    sizes = {r.name: int(i.data["durations"].shape[0]) for r, i in zip(evaluation.instances, instances, strict=True)}
    for result in evaluation.instances:
        if sizes[result.name] == 6:
            assert not result.feasible and "NaN" in (result.error or ""), result
        elif sizes[result.name] == 10:
            assert not result.feasible and "ValueError: ten" in (result.error or ""), result
        else:
            assert result.feasible, result
    assert {6, 10} & set(sizes.values()) and set(sizes.values()) - {6, 10}


def test_a_rule_that_draws_fresh_random_numbers_is_scored_on_what_it_built(
        evaluator: Evaluator, instances: list[Instance]) -> None:
    """Built by the trusted side, a rule may keep state or draw random numbers (an online rule):
    its schedules are valid and scored as what it built."""
    source = "import numpy as np\n\ndef priority(proc_time, **_):\n    return np.random.random(len(proc_time))\n"
    evaluation = evaluator.run_split(source, instances, "quick")
    assert evaluation.ok and all(r.feasible for r in evaluation.instances), evaluation.feedback


RULES = {
    "mwkr": lambda job_work_left, **_: job_work_left,
    "spt": lambda proc_time: -proc_time,
    "mixed": lambda proc_time, next_machine_work_left, machine_ready, op_index, jobs_left, **_:
        next_machine_work_left / (1 + proc_time) - 0.1 * machine_ready + op_index * jobs_left,
    "one_number": lambda now: 1.0,
}


class _Reply:
    def __init__(self, value: object, error: str | None = None) -> None:
        self.value, self.error = value, error


class _InProcess:
    """The session's contract (``call(payload) -> reply``) with the rule in this process; each
    reply, as JSON, within the bound the builder gives the call."""

    def __init__(self, rule: object) -> None:
        self.rule, self.calls = rule, 0

    def call(self, payload: dict, reply_limit: int | None = None) -> _Reply:
        self.calls += 1
        value = respond(self.rule, payload)  # type: ignore[arg-type]
        assert reply_limit is not None and len(json.dumps(value, separators=(",", ":"))) <= reply_limit
        return _Reply(value)


@pytest.mark.parametrize("scheme", ["non_delay", "active"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_trusted_builder_makes_the_schedule_the_rule_makes_in_one_process(scheme: str, rule: str) -> None:
    """Lockstep over the instances, one call per round: the schedules are the builder's own,
    and the calls are as many as the longest instance's decisions, not their sum."""
    shops = [taillard_like(f"t{k}", n, m, 100 + k) for k, (n, m) in enumerate([(3, 3), (6, 6), (10, 5), (15, 15)])]
    instances = [Instance(s.name, s.size, s.payload(scheme)) for s in shops]
    session = _InProcess(RULES[rule])
    built = drive(instances, session)
    for shop, (solution, error) in zip(shops, built, strict=True):
        start = build_schedule(RULES[rule], shop.machines, shop.durations, shop.lengths, shop.n_machines, scheme)
        assert error is None and solution == schedule_solution(start, shop.durations, shop.lengths, scheme)
    assert session.calls <= max(int(s.lengths.sum()) for s in shops)


@pytest.mark.parametrize("reply", [np.array([0.0]), [True], [-1], [99], [1.5], {"0": 0}, ["x" * 5000]])
def test_a_hostile_reply_fails_the_instance_it_answers(reply: object) -> None:
    shop = taillard_like("t", 6, 6, 7)
    instance = Instance(shop.name, shop.size, shop.payload("non_delay"))

    class Hostile:
        def call(self, payload: dict, reply_limit: int | None = None) -> _Reply:
            return _Reply(reply)

    [(solution, error)] = drive([instance], Hostile())
    assert solution is None and error and len(error) < 400


def test_a_zero_duration_operation_held_back_to_open_a_gap_is_refused() -> None:
    """Job 0's middle operation takes no time; placed at 6 instead of 5 it would let its
    successor wait on an idle machine and still pass the non-delay check."""
    shop = JobShop("zero", np.array([[0, 1, 1], [1, 0, -1]]), np.array([[5, 0, 3], [4, 2, 0]]),
                   np.array([3, 2]), 2)
    built = {"scheme": "non_delay", "start": [[0, 5, 5], [0, 5]], "end": [[5, 5, 8], [4, 7]]}
    late = {"scheme": "non_delay", "start": [[0, 6, 6], [0, 5]], "end": [[5, 6, 9], [4, 7]]}
    assert check_schedule(shop, built, "non_delay")[0] is None  # what the builder makes passes
    assert check_schedule(shop, late, None)[0] is None  # the control: feasible, and not what the scheme builds
    reason, _ = check_schedule(shop, late, "non_delay")
    assert reason == "operation 1 of job 0 takes no time and runs when its job reaches it, at 5, not at 6"


# A driven rule looking through its whole process for the instance: every frame's locals, every
# object the collector tracks, every module's globals.  It raises if it finds an instance's
# arrays (a dict with "durations" or "machines", an Instance, a JobShop).
SEARCHES_ITS_PROCESS = '''
import gc
import sys


def _holds_instance(value):
    if isinstance(value, dict) and ("durations" in value or "machines" in value):
        return True
    return type(value).__name__ in ("Instance", "JobShop")


def priority(job_work_left, **_):
    frame = sys._getframe()
    while frame is not None:
        if any(_holds_instance(v) for v in frame.f_locals.values()):
            raise ValueError("found in a frame: " + frame.f_code.co_name)
        frame = frame.f_back
    if any(_holds_instance(o) for o in gc.get_objects()):
        raise ValueError("found among the tracked objects")
    for module in list(sys.modules.values()):
        if any(_holds_instance(v) for v in list(getattr(module, "__dict__", {}).values())):
            raise ValueError("found in module " + module.__name__)
    return job_work_left
'''


def test_a_driven_rule_finds_no_instance_anywhere_in_its_process(evaluator: Evaluator,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    quick = load_problem("jssp").instances("quick")
    paid = _in_its_own_process(evaluator, SEARCHES_ITS_PROCESS, quick, monkeypatch)
    assert not paid.ok and "found in a frame" in paid.feedback  # the control: the batch run holds it
    driven = evaluator.run_split(SEARCHES_ITS_PROCESS, quick, "quick")
    assert driven.ok, driven.feedback
    assert driven.solutions == evaluator.run_split(MWKR, quick, "quick").solutions


# A program whose helper bears the GP's name and nests a sum of 1,500 terms: it compiles and runs,
# but the exemption test compared the helper with the GP's through the recursive ast.dump, and
# the RecursionError left Evaluator.run_split on the trusted side (`evolve eval` printed a
# traceback; a search refuses such children earlier, evolve/edits/blocks.py MAX_NESTING).
DEEP_HELPER = ("import numpy as np\n\n\ndef protected_div(a, b):\n    return " + " + ".join(["a"] * 1500)
               + "\n\n\ndef priority(job_work_left, **_):\n    return job_work_left\n")


def test_a_program_too_deep_for_the_exemption_test_is_judged_as_a_driven_rule(evaluator: Evaluator) -> None:
    quick = load_problem("jssp").instances("quick")
    assert evaluator._driven(DEEP_HELPER, "priority")
    evaluation = evaluator.run_split(DEEP_HELPER, quick, "quick")
    assert evaluation.ok, evaluation.feedback
    assert evaluation.solutions == evaluator.run_split(MWKR, quick, "quick").solutions


def test_a_rule_with_a_long_error_sends_it_cut_within_the_calls_bound() -> None:
    shop = taillard_like("t", 6, 6, 7)

    def rule(proc_time: np.ndarray) -> np.ndarray:
        raise ValueError("\U0001f600" * 100_000)  # 12 bytes each as JSON: the widest text there is

    [(solution, error)] = drive([Instance(shop.name, shop.size, shop.payload("non_delay"))], _InProcess(rule))
    assert solution is None and error is not None and error.startswith("ValueError: \U0001f600") and len(error) < 400


# Every reply the builder reads costs the controller: JSON allows any amount of whitespace, so a
# program that pads its replies (here by wrapping the sandbox side's JSON encoder) to 60 MiB made
# the controller count and parse 60 MiB per call, 6.1 s of its CPU (and GIL) on quick until the
# split's wall limit, where an honest rule costs it a few milliseconds.
PADDED = r'''
import sys

_side = sys.modules["evolve.sandbox.session_child"]  # loaded in every candidate's process
_encode = _side.encode_json

def _padded(value):
    text = _encode(value)
    if isinstance(value, list):
        return text[:-1] + " " * (60 << 20) + "]"
    return text

_side.encode_json = _padded

def priority(job_work_left, **_):
    return job_work_left
'''


def test_a_rule_padding_its_replies_ends_its_session_at_the_first_one(evaluator: Evaluator) -> None:
    evaluation = evaluator.run_split(PADDED, load_problem("jssp").instances("quick"), "quick")
    assert evaluation.status == "crash", evaluation.feedback
    assert "killed: a reply over the" in evaluation.feedback and "bytes the call allows on call 1" in evaluation.feedback
