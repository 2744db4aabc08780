"""Router variant: cluster simulation, equivalence with one replica, the router's answers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.serving import RouterVerifier
from evolve.evaluators.serving.candidate_side import ROUTER_ARRAYS, ROUTER_SCALARS, features
from evolve.evaluators.serving.engine import Trace, run_engine
from evolve.evaluators.serving.policy import PolicyDecider, fcfs_ask
from evolve.evaluators.serving.router import ROUTER_FEATURES, round_robin, run_router
from evolve.evaluators.serving.session import local_decide
from evolve.evaluators.serving.workload import WorkloadSpec, generate
from evolve.verifier import Instance

PUBLIC = bytes(16)  # the secret of the tests' own traces (only built-in splits need a real one)

PROBLEM = Path(__file__).resolve().parents[1] / "problems" / "serving_router"


@pytest.fixture(scope="module")
def verifier() -> RouterVerifier:
    return RouterVerifier(PROBLEM, {"replicas": 3})


@pytest.fixture(scope="module")
def instance(verifier: RouterVerifier) -> Instance:
    trace = generate(WorkloadSpec("mixed", "bursty", 3.6, 450, 4), verifier.opts.engine, 0.85, PUBLIC)
    return verifier.make_instance("small", "mixed", trace, "test")


def least_outstanding(outstanding: np.ndarray, **_: Any) -> np.ndarray:
    return outstanding


def route(verifier: RouterVerifier, instance: Instance, fn: Any) -> dict[str, Any]:
    """The trusted cluster simulation, the router answering in-process through the sandbox's respond()."""
    return verifier.simulate(instance, local_decide(RouterVerifier.respond, fn))


def test_one_replica_is_the_single_engine() -> None:
    v = RouterVerifier(PROBLEM, {"replicas": 1})
    trace: Trace = generate(WorkloadSpec("conversation", "bursty", 1.2, 400, 3), v.opts.engine, 0.85, PUBLIC)
    (replica,), route = run_router([v.opts.engine], trace, round_robin, 10**7)
    single = run_engine(v.opts.engine, trace, PolicyDecider(fcfs_ask), 10**7)
    assert (route == 0).all()
    assert np.array_equal(replica.first_token, single.first_token)
    assert np.array_equal(replica.finish, single.finish)
    assert replica.steps == single.steps


def test_round_robin_is_the_reference(verifier: RouterVerifier, instance: Instance) -> None:
    solution = route(verifier, instance, round_robin_route)
    assert solution["route"][:6] == [0, 1, 2, 0, 1, 2]
    result = verifier.score(instance, solution)
    assert result.feasible and result.gap == pytest.approx(0.0)
    assert result.extra["starved_pct"] == 0.0


def round_robin_route(arrival_index: float, outstanding: np.ndarray, **_: Any) -> np.ndarray:
    return (np.arange(outstanding.size) - arrival_index) % outstanding.size


def test_every_request_lands_where_it_was_routed(verifier: RouterVerifier, instance: Instance) -> None:
    solution = route(verifier, instance, least_outstanding)
    trace = Trace.from_data(instance.data["trace"])
    engines, routed = run_router([e for e in verifier.opts.replica_engines], trace,
                                 lambda _, i: solution["route"][i], 10**7)
    for r, engine in enumerate(engines):
        assert np.isfinite(engine.finish[routed == r]).all()
        assert np.isnan(engine.finish[routed != r]).all()
    assert np.allclose(verifier.table(instance, solution).e2e, engine_e2e(engines, routed, trace))
    assert verifier.score(instance, solution).feasible


def engine_e2e(engines: list[Any], routed: np.ndarray, trace: Trace) -> np.ndarray:
    finish = np.empty(len(trace))
    for r, engine in enumerate(engines):
        finish[routed == r] = engine.finish[routed == r]
    return finish - trace.arrival


def test_sending_everything_to_one_replica_is_valid_and_worse(verifier: RouterVerifier,
                                                                instance: Instance) -> None:
    solution = route(verifier, instance, lambda outstanding, **_: np.arange(outstanding.size))
    assert set(solution["route"]) == {0}
    result = verifier.score(instance, solution)
    assert result.feasible and result.gap > 0.5 and result.extra["starved_pct"] > 10


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda **_: np.zeros(5), r"^raised ValueError: the router returned shape \(5,\); expected \(3,\), at request 0$"),
        (lambda outstanding, **_: outstanding * np.nan, r"^raised ValueError: the router returned NaN .*, at request 0$"),
        (lambda now, **_: [1, 2, 3][int(now) + 7], r"^raised IndexError: .*, at request 0$"),
    ],
)
def test_a_failing_router_makes_the_instance_fail_naming_the_request(verifier: RouterVerifier, instance: Instance,
                                                                     fn: Any, message: str) -> None:
    result = verifier.score(instance, route(verifier, instance, fn))
    assert not result.feasible and re.search(message, result.error or ""), result.error


def test_answers_are_validated_on_the_trusted_side(verifier: RouterVerifier, instance: Instance) -> None:
    for answer, message in ((np.zeros(2), r"request 0: the router returned shape \(2,\)"),
                            ("fast", "request 0: the router returned str, not numbers"),
                            (np.array([0.0, np.inf, 1.0]), "request 0: the router returned NaN or infinity")):
        result = verifier.score(instance, verifier.simulate(instance, lambda obs, a=answer: a))
        assert not result.feasible and re.search(message, result.error or ""), result.error


def test_the_router_sees_the_request_and_the_replicas_only(verifier: RouterVerifier, instance: Instance) -> None:
    seen: list[dict[str, Any]] = []
    verifier.simulate(instance, lambda obs: seen.append(features(obs, ROUTER_ARRAYS, ROUTER_SCALARS))
                      or seen[-1]["outstanding"])
    true, predicted = instance.data["trace"]["output"], instance.data["trace"]["predicted"]
    assert len(seen) == len(true) and all(set(obs) == set(ROUTER_FEATURES) for obs in seen)
    shown = np.array([obs["predicted_len"] for obs in seen])
    assert np.array_equal(shown, predicted) and not np.array_equal(shown, true)  # the prediction, never the truth


def test_replicas_option_is_strict() -> None:
    with pytest.raises(UserError, match=r"\[verifier.options\] replicas: Input should be greater than or equal to 1 \(got 0\)"):
        RouterVerifier(PROBLEM, {"replicas": 0})
    with pytest.raises(UserError, match="replicas: 3 does not match the 2 entries of replica_profiles"):
        RouterVerifier(PROBLEM, {"replicas": 3, "replica_profiles": ["h100-llama3.1-8b"] * 2})
    with pytest.raises(UserError, match=r"replica_profiles: Input should be a valid list \(got .h100-llama3.1-8b.\)"):
        RouterVerifier(PROBLEM, {"replica_profiles": "h100-llama3.1-8b"})


def test_a_mixed_fleet_rewards_load_aware_routing() -> None:
    fleet = RouterVerifier(PROBLEM, {"replica_profiles": ["h100-llama3.1-8b", "a100-80gb-llama3.1-8b"]})
    assert fleet.opts.replica_names == ("h100-llama3.1-8b", "a100-80gb-llama3.1-8b")
    assert fleet.opts.replica_engines[1].max_num_batched_tokens == 2048  # the A100's own default
    seen: list[np.ndarray] = []

    def least_prefill_time(queued_tokens: np.ndarray, prefill_time: np.ndarray, **_: Any) -> np.ndarray:
        seen.append(prefill_time)
        return queued_tokens * prefill_time + prefill_time

    trace = generate(WorkloadSpec("conversation", "poisson", 1.0, 500, 8), fleet.opts.engine, 0.85, PUBLIC)
    instance = fleet.make_instance("fleet", "conversation", trace, "test")
    result = fleet.score(instance, route(fleet, instance, least_prefill_time))
    assert seen[0][1] > 2 * seen[0][0]  # the A100 is slower per prefill token
    assert result.feasible and result.gap < -0.2  # round robin overloads the A100


def test_picture(verifier: RouterVerifier, instance: Instance, tmp_path: Path) -> None:
    solution = route(verifier, instance, least_outstanding)
    out = tmp_path / "router.png"
    verifier.picture([instance], [verifier.score(instance, solution)], [solution], out)
    assert out.stat().st_size > 10_000


def test_prompts_get_the_router_figures_serving_prompts_get(verifier: RouterVerifier, instance: Instance) -> None:
    """As for one engine (facts.py): round robin's slowest request per train trace and the
    spreads of lengths in the system message; each program's goodput and starved shares and
    KV-bound steps in its results."""
    [line] = verifier.train_facts([instance])
    ref = instance.data["reference"]
    assert line.startswith(f"Train traces after the fact (given to no program): round robin's slowest request end "
                           f"to end (slower is starved): mixed small {ref['e2e_max_s']:.1f} s. Prompt tokens")
    result = verifier.score(instance, route(verifier, instance, least_outstanding))
    shares = f"{result.extra['goodput_pct']:.1f}/{result.extra['starved_pct']:.1f}"
    assert verifier.feedback_lines([result]) == [
        f"Goodput % / starved % per trace: mixed small {shares}",
        f"KV-bound steps and preemptions per trace, mean per group: mixed {result.extra['kv_bound_pct']:.1f}%, "
        f"{result.extra['preemptions']:.0f}"]
    from evolve.config import resolve_settings
    from evolve.problem import load_problem
    from evolve.prompt_facts import evaluation_setup

    problem = load_problem(str(PROBLEM))
    setup = evaluation_setup(problem, resolve_settings(problem.spec.run, None, {}), [], [instance], None)
    assert line in setup  # the system message states it, for the train split it is given


def test_the_fine_print_context_md_gives_about_the_routers_arguments_is_what_the_simulator_does(
        verifier: RouterVerifier, instance: Instance) -> None:
    """problems/serving_router/context.md, "Fine print": called for every request before it joins
    a replica, with the replicas' state as their steps left it."""
    seen: list[dict[str, Any]] = []

    def record(**kw: Any) -> np.ndarray:
        seen.append({k: np.array(v, copy=True) for k, v in kw.items()})
        return least_outstanding(**kw)

    record_ = route(verifier, instance, record)
    assert len(seen) == len(instance.data["trace"]["arrival"]) == record_["policy_calls"]
    assert [int(kw["arrival_index"]) for kw in seen] == list(range(len(seen)))
    first = seen[0]
    assert (first["queued_tokens"] == 0).all() and (first["free_blocks"] == first["total_blocks"]).all()
    assert all((kw["waiting"] + kw["running"] == kw["outstanding"]).all() for kw in seen)
    text = " ".join((PROBLEM / "context.md").read_text().split())
    assert "called for every request, before it joins a replica" in text
    assert "queued_tokens = waiting requests' whole prompts" in text
