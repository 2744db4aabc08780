"""The inputs a program receives have the types its problem's prompt says: floats, the counts too
(a clean-room agent found smtt's jobs_left and n arriving as 20.0 where nothing said so). Each
problem's real dispatcher or simulator calls a spy, and the text the model reads is checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evolve.evaluators.jssp.builder import build_schedule
from evolve.evaluators.jssp.generator import taillard_like
from evolve.evaluators.serving import RouterVerifier
from evolve.evaluators.serving.session import local_decide
from evolve.evaluators.serving.workload import WorkloadSpec, generate
from evolve.evaluators.smtt.dispatch import dispatch
from evolve.problem import load_problem

ROUTER = Path(__file__).resolve().parents[1] / "problems" / "serving_router"


class Spy:
    """Records the type of every keyword argument it is called with; ranks as ``key`` says."""

    def __init__(self, key: str) -> None:
        self.key, self.types = key, {}

    def __call__(self, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            self.types.setdefault(name, set()).add(_kind(value))
        return kwargs[self.key]


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array {value.dtype}"
    return "float" if isinstance(value, float) else type(value).__name__


def _floats_only(types: dict[str, set[str]]) -> None:
    assert types
    for name, kinds in types.items():
        assert kinds <= {"float", "array float64"}, (name, kinds)


def test_smtt_programs_get_float_arrays_and_float_counts_as_its_context_says() -> None:
    smtt = load_problem("smtt")
    spy, seen = Spy("d"), {}
    namespace: dict[str, Any] = {}
    exec(compile(smtt.seed_code, "seed.py", "exec"), namespace)  # the real fixed schedule()

    def improve(sequence: list[int], p: np.ndarray, d: np.ndarray) -> list[int]:
        seen.update(sequence={type(j).__name__ for j in sequence}, p=_kind(p), d=_kind(d))
        return sequence

    namespace.update(priority=spy, improve=improve)
    instance = smtt.instances("quick")[0]
    order = namespace["schedule"](instance.data["p"], instance.data["d"])
    assert sorted(order) == list(range(len(instance.data["p"])))
    _floats_only(spy.types)
    assert spy.types["jobs_left"] == spy.types["n"] == {"float"}
    assert seen == {"sequence": {"int"}, "p": "array float64", "d": "array float64"}
    assert ("every other input as a\n  Python float, the counts too (jobs_left and n: 20.0, not 20; int(n) for "
            "range() or an index);\n  improve()'s sequence is a list of ints.") in smtt.context


def test_smtt_rule_gets_floats_the_counts_too() -> None:
    problem = load_problem("smtt_rule")
    spy = Spy("d")
    instance = problem.instances("quick")[0]
    dispatch(spy, np.asarray(instance.data["p"]), np.asarray(instance.data["d"]))
    _floats_only(spy.types)
    assert set(spy.types) >= {"jobs_left", "n", "t"}
    assert "every other argument is a float, the counts too (20.0, not 20)" in problem.spec.function.contract
    assert "floats (the counts too: jobs_left 20.0, not 20)" in problem.context


def test_jssp_rules_get_float_arrays_and_float_scalars() -> None:
    problem = load_problem("jssp")
    spy = Spy("proc_time")
    shop = taillard_like("t0", 6, 4, 7)
    build_schedule(spy, shop.machines, shop.durations, shop.lengths, shop.n_machines, "non_delay")
    _floats_only(spy.types)
    assert {"jobs_left", "n_jobs", "n_machines", "op_index"} <= set(spy.types)
    assert "jobs_left are floats; every other argument is a float numpy array" in problem.spec.function.contract


def test_the_serving_router_gets_floats_the_counts_too() -> None:
    verifier = RouterVerifier(ROUTER, {"replicas": 3})
    trace = generate(WorkloadSpec("mixed", "bursty", 3.6, 200, 4), verifier.opts.engine, 0.85, bytes(16))
    instance = verifier.make_instance("small", "mixed", trace, "test")
    spy = Spy("outstanding")
    verifier.simulate(instance, local_decide(RouterVerifier.respond, spy))
    _floats_only(spy.types)
    assert {"arrival_index", "waiting", "prompt_len"} <= set(spy.types)
    contract = load_problem("serving_router").spec.function.contract
    assert "All are floats, the counts\ntoo (arrival_index 0.0, 1.0, ...; waiting 3.0, not 3)" in contract
    assert "All are floats, the counts too (queue_len 3.0, not 3)" in load_problem("serving").spec.function.contract
