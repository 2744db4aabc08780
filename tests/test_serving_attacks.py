"""Hostile serving policies through the real sandbox: each exploit of issue 11 gains nothing.

Each attack is a real attempt: if it finds the trace's true output lengths it
uses them (shortest remaining *true* work first, which scores better), and it
falls back to the same rule on predicted lengths otherwise.  Run through
``Evaluator.run_split`` like any candidate, every attack must score exactly as
the honest rule does, with ``oracle`` 0: the truth is not in its process, and
nothing it patches there reaches the trusted side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evolve.config import RunSettings
from evolve.evaluation import Evaluation, Evaluator
from evolve.evaluators.serving.candidate_side import ARRAY_FEATURES, SCALAR_FEATURES, features
from evolve.evaluators.serving.session import local_decide
from evolve.problem import load_problem

HONEST = """
import numpy as np

def priority(predicted_len, generated, **_):
    return np.maximum(predicted_len - generated, 1.0)
"""

# Uses true lengths if ``_truth()`` finds them: (arrival of every request, true output of every request).
USE_TRUTH = """
import numpy as np

def _fits(found, arrival):
    # the trace being simulated holds every request the policy sees, at its index
    all_arrival = found[0]
    ids = np.clip(np.searchsorted(all_arrival, arrival), 0, all_arrival.size - 1)
    return bool((all_arrival[ids] == arrival).all())

def priority(predicted_len, generated, arrival, **_):
    found = _truth(arrival)
    if found is None:
        return np.maximum(predicted_len - generated, 1.0)
    all_arrival, output = found
    ids = np.searchsorted(all_arrival, arrival)
    return np.maximum(output[ids] - generated, 1.0)
"""


# Finds (arrival, output) arrays in an object, a dict, or what they hold as trace / engine / data.
LOOKS = """
def _pair(obj):
    get = obj.get if isinstance(obj, dict) else (lambda k: getattr(obj, k, None))
    try:
        output, arrival = get("output"), get("arrival")
    except Exception:
        return None
    if isinstance(output, np.ndarray) and isinstance(arrival, np.ndarray) and output.size == arrival.size > 1:
        return arrival, output
    for name in ("trace", "engine", "data"):
        try:
            inner = get(name)
        except Exception:
            inner = None
        if inner is not None and inner is not obj:
            found = _pair(inner)
            if found is not None:
                return found
    return None
"""

ATTACKS = {
    # Walk up the interpreter's frames to whatever runs the policy, looking for the trace or engine.
    "frame_walk": USE_TRUTH + LOOKS + """
import sys

def _truth(arrival):
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
            found = _pair(value)
            if found is not None and _fits(found, arrival):
                return found
        frame = frame.f_back
    return None
""",
    # Every object the garbage collector knows, and everything they refer to.
    "gc_walk": USE_TRUTH + LOOKS + """
import gc

def _truth(arrival):
    for obj in gc.get_objects():
        for value in [obj, *gc.get_referents(obj)]:
            found = _pair(value)
            if found is not None and _fits(found, arrival):
                return found
    return None
""",
    # Every module loaded in the process, its globals and their attributes (engines, caches, verifiers).
    "module_scan": USE_TRUTH + LOOKS + """
import sys

_SEARCHED = []

def _truth(arrival):  # the modules do not change between calls: search once
    if not _SEARCHED:
        _SEARCHED.append(_search())
    found = _SEARCHED[0]
    return found if found is not None and _fits(found, arrival) else None

def _search():
    for module in list(sys.modules.values()):
        for value in list(vars(module).values()) if module is not None else []:
            found = _pair(value)
            if found is None and isinstance(value, dict):
                for inner in list(value.values()):
                    found = _pair(inner)
                    if found is not None:
                        break
            if found is not None:
                return found
    return None
""",
    # Patch the verifier's own functions in this process: claim the oracle, feed true lengths.
    "patch_verifier": HONEST + """
import sys
try:  # the trusted side is not in the sandbox at all (issue 16): patching it is out of reach
    import evolve.evaluators.serving.policy as _policy
    import evolve.evaluators.serving.verifier as _verifier
except ImportError:
    pass
else:
    _verifier.is_oracle = lambda *args, **kwargs: True
    _verifier.oracle_digests = lambda *args, **kwargs: ()
    _verifier.ServingVerifier.simulate = lambda self, instance, decide, oracle=False: (_ for _ in ()).throw(
        RuntimeError("unreachable"))
    _policy.observe = lambda eng, predicted, slo: (_ for _ in ()).throw(RuntimeError("unreachable"))
    _policy.checked_priorities = lambda value, size, step: value
for name in list(sys.modules):
    if name.startswith("evolve.evaluators.serving"):
        module = sys.modules[name]
        if hasattr(module, "is_oracle"):
            module.is_oracle = lambda *args, **kwargs: True
""",
    # Declare itself the oracle, as the shipped SRPT oracle baseline does.
    "claims_oracle": '''"""ORACLE reference, not a deployable policy (copied)."""
import numpy as np

ORACLE = True


def priority(predicted_len, generated, **_):
    return np.maximum(predicted_len - generated, 1.0)
''',
    # Stop every clock in the process: the simulation's time is not the candidate's.
    "patch_time": HONEST + """
import time

for _name in ("perf_counter", "perf_counter_ns", "process_time", "process_time_ns", "monotonic",
              "monotonic_ns", "time", "time_ns", "thread_time", "thread_time_ns"):
    setattr(time, _name, lambda: 0)
""",
    # One session serves the whole split: remember every request seen (arrival, prompt, prediction)
    # and the most it generated before it was gone, and use that for a request of a later trace
    # that is the same one again. The traces are independent draws: none repeats.
    "remembers_across_instances": """
import numpy as np

_seen = {}      # (arrival, prompt, prediction) -> tokens generated when last seen, this trace
_learned = {}   # the same keys, of earlier traces: a floor of the true length
_last_now = [float("inf")]

def priority(now, arrival, prompt_len, predicted_len, generated, **_):
    if now < _last_now[0]:  # a new trace: what the last one showed becomes knowledge
        _learned.update(_seen)
        _seen.clear()
    _last_now[0] = now
    keys = list(zip(arrival.tolist(), prompt_len.tolist(), predicted_len.tolist()))
    for key, g in zip(keys, generated.tolist()):
        _seen[key] = max(_seen.get(key, 0.0), g)
    known = np.array([_learned.get(key, np.nan) for key in keys])
    if np.isnan(known).all():
        return np.maximum(predicted_len - generated, 1.0)
    return np.where(np.isnan(known), predicted_len, known + 1.0) - generated
""",
    # What an ndarray subclass claims about itself (length, items, equality, list) is not what
    # is sent: the sandbox side sends the array's own float64 bytes.
    "lying_array": HONEST.replace("def priority", "def _honest") + """
class _Lie(np.ndarray):
    def __len__(self):
        return 1
    def __iter__(self):
        return iter([0.0])
    def __eq__(self, other):
        return True
    def tolist(self):
        return [0.0]
    def __array__(self, *args, **kwargs):
        return np.zeros(1)

def priority(**features):
    return _honest(**features).view(_Lie)
""",
}


@pytest.fixture(scope="module")
def serving() -> Any:
    problem = load_problem("serving")
    instances = problem.instances("quick")
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        yield problem, instances, evaluator


def run(serving: Any, code: str) -> Evaluation:
    _, instances, evaluator = serving
    return evaluator.run_split(code, instances, "quick")


@pytest.fixture(scope="module")
def honest(serving: Any) -> Evaluation:
    evaluation = run(serving, HONEST)
    assert evaluation.ok, evaluation.feedback
    return evaluation


def test_true_lengths_would_pay(serving: Any, honest: Evaluation) -> None:
    """The prize the attacks go for: the shipped oracle (true lengths) beats the honest rule."""
    problem = serving[0]
    oracle = run(serving, problem.baselines["srpt_oracle"].read_text())
    assert oracle.ok and oracle.metrics["oracle"] == 1.0
    assert oracle.score is not None and honest.score is not None and oracle.score != honest.score
    assert oracle.metrics["e2e_mean_s"] < honest.metrics["e2e_mean_s"]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_gains_nothing(serving: Any, honest: Evaluation, attack: str) -> None:
    evaluation = run(serving, ATTACKS[attack])
    assert evaluation.ok, evaluation.feedback
    assert evaluation.metrics["oracle"] == 0.0
    assert evaluation.score == honest.score  # the same decisions, bit for bit
    assert evaluation.metrics["e2e_mean_s"] == honest.metrics["e2e_mean_s"]


class Recording:
    """A session that keeps everything sent to the sandbox."""

    def __init__(self, session: Any) -> None:
        self.session, self.sent = session, []

    @property
    def source(self) -> str:
        return self.session.source

    def call(self, payload: Any, reply_limit: int | None = None) -> Any:
        self.sent.append(payload)
        return self.session.call(payload, reply_limit)


def test_nothing_but_observations_crosses_to_the_sandbox(serving: Any) -> None:
    problem, instances, evaluator = serving
    sandbox = evaluator._sandbox(0)
    instance = instances[1]
    with sandbox.session(HONEST, "priority", timeout_s=60) as session:
        recording = Recording(session)
        record = problem.verifier.interact(instance, recording)
    assert "error" not in record and recording.sent
    assert not sandbox._sets  # no instance was ever loaded into the sandbox's worker
    trace = instance.data["trace"]
    for payload in recording.sent:
        matrix, scalars = payload
        assert isinstance(matrix, np.ndarray) and matrix.dtype == np.float64 and len(scalars) == len(SCALAR_FEATURES)
        assert all(isinstance(v, float) for v in scalars)  # the counts too, as the contract says
        obs = features(payload, ARRAY_FEATURES, SCALAR_FEATURES)
        ids = np.searchsorted(trace["arrival"], obs["arrival"])
        assert np.array_equal(obs["predicted_len"], trace["predicted"][ids])  # the prediction, never the truth
        assert (obs["arrival"] <= obs["now"]).all() and (obs["generated"] < trace["output"][ids]).all()


ROUTER_ATTACK = """
import gc
import sys
import numpy as np

def route(outstanding, **_):
    for obj in gc.get_objects():
        for value in [obj, *gc.get_referents(obj)]:
            output = value.get("output") if isinstance(value, dict) else getattr(value, "output", None)
            if isinstance(output, np.ndarray) and output.size > 1:
                raise RuntimeError("found the true output lengths")
    frame = sys._getframe()
    while frame is not None:
        if any(getattr(v, "output", None) is not None for v in frame.f_locals.values()):
            raise RuntimeError("found an engine or a trace")
        frame = frame.f_back
    return outstanding
"""


def test_the_router_holds_no_trace_either() -> None:
    problem = load_problem("serving_router")
    instances = problem.instances("quick")[:1]
    with Evaluator(problem, RunSettings.model_validate(problem.spec.run).sandbox) as evaluator:
        attack = evaluator.run_split(ROUTER_ATTACK, instances, "quick")
        honest = evaluator.run_split("def route(outstanding, **_):\n    return outstanding\n", instances, "quick")
    assert attack.ok, attack.feedback
    assert attack.score == honest.score


def test_remembering_across_instances_acts_where_a_trace_repeats(serving: Any) -> None:
    """The same program given the same trace twice in one process decides otherwise the second
    time (it uses what the first showed): through the sandbox it decides as the honest rule only
    because no request of the split repeats."""
    problem, instances, _ = serving
    verifier, instance = problem.verifier, instances[1]
    namespace: dict[str, Any] = {}
    exec(compile(ATTACKS["remembers_across_instances"], "<remembers>", "exec"), namespace)
    decide = local_decide(verifier.respond, namespace["priority"])
    first = verifier.score(instance, verifier.simulate(instance, decide))
    again = verifier.score(instance, verifier.simulate(instance, decide))
    assert first.feasible and again.feasible and again.objective != first.objective


@pytest.mark.parametrize("attack", ["frame_walk", "gc_walk"])
def test_the_attacks_are_real_where_the_truth_is_in_reach(serving: Any, attack: str) -> None:
    """In the trusted process (where the engine lives) the same programs do find the true lengths
    and gain: only the process boundary defeats them."""
    problem, instances, _ = serving
    instance = instances[1]
    verifier = problem.verifier
    results = {}
    for name, code in (("honest", HONEST), (attack, ATTACKS[attack])):
        namespace: dict[str, Any] = {}
        exec(compile(code, f"<{name}>", "exec"), namespace)
        record = verifier.simulate(instance, local_decide(verifier.respond, namespace["priority"]))
        results[name] = verifier.score(instance, record)
    assert results[attack].objective < 0.97 * results["honest"].objective  # true lengths: lower mean E2E
