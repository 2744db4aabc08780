"""Router variant: cluster simulation, equivalence with one replica, hostile routes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.serving import RouterVerifier
from evolve.evaluators.serving.engine import Trace, run_engine
from evolve.evaluators.serving.policy import PolicyDecider, fcfs_priority
from evolve.evaluators.serving.router import round_robin, run_router
from evolve.evaluators.serving.workload import WorkloadSpec, generate
from evolve.verifier import Instance

PROBLEM = Path(__file__).resolve().parents[1] / "problems" / "serving_router"


@pytest.fixture(scope="module")
def verifier() -> RouterVerifier:
    return RouterVerifier(PROBLEM, {"replicas": 3})


@pytest.fixture(scope="module")
def instance(verifier: RouterVerifier) -> Instance:
    trace = generate(WorkloadSpec("mixed", "bursty", 3.6, 450, 4), verifier.opts.engine, 0.85)
    return verifier.make_instance("small", "mixed", trace, "test")


def least_outstanding(outstanding: np.ndarray, **_: Any) -> np.ndarray:
    return outstanding


def test_one_replica_is_the_single_engine() -> None:
    v = RouterVerifier(PROBLEM, {"replicas": 1})
    trace: Trace = generate(WorkloadSpec("conversation", "bursty", 1.2, 400, 3), v.opts.engine, 0.85)
    (replica,), route = run_router([v.opts.engine], trace, round_robin, 10**7)
    single = run_engine(v.opts.engine, trace, PolicyDecider(fcfs_priority, trace.predicted), 10**7)
    assert (route == 0).all()
    assert np.array_equal(replica.first_token, single.first_token)
    assert np.array_equal(replica.finish, single.finish)
    assert replica.steps == single.steps


def test_round_robin_is_the_reference(verifier: RouterVerifier, instance: Instance) -> None:
    solution = json.loads(json.dumps(verifier.solve(round_robin_route, instance)))
    assert solution["route"][:6] == [0, 1, 2, 0, 1, 2]
    result = verifier.score(instance, solution)
    assert result.feasible and result.gap == pytest.approx(0.0)
    assert result.extra["starved_pct"] == 0.0


def round_robin_route(arrival_index: float, outstanding: np.ndarray, **_: Any) -> np.ndarray:
    return (np.arange(outstanding.size) - arrival_index) % outstanding.size


def test_every_request_lands_where_it_was_routed(verifier: RouterVerifier, instance: Instance) -> None:
    solution = json.loads(json.dumps(verifier.solve(least_outstanding, instance)))
    engines, table = verifier.replay(instance, solution)
    route = np.array(solution["route"])
    for r, engine in enumerate(engines):
        assert np.isfinite(engine.finish[route == r]).all()
        assert np.isnan(engine.finish[route != r]).all()
    assert np.allclose(table.e2e, solution["e2e"], atol=2e-6)
    assert verifier.score(instance, solution).feasible


def test_sending_everything_to_one_replica_is_valid_and_worse(verifier: RouterVerifier,
                                                                instance: Instance) -> None:
    solution = json.loads(json.dumps(verifier.solve(lambda outstanding, **_: np.arange(outstanding.size), instance)))
    assert set(solution["route"]) == {0}
    result = verifier.score(instance, solution)
    assert result.feasible and result.gap > 0.5 and result.extra["starved_pct"] > 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {**s, "route": s["route"][:-1]}, "'route' must be a list of 450 replica indices"),
        (lambda s: {**s, "route": [3] + s["route"][1:]}, r"request 0: replica 3 does not exist \(expected 0..2\)"),
        (lambda s: {**s, "route": [True] + s["route"][1:]}, "request 0: replica True does not exist"),
        (lambda s: {**s, "route": s["route"][:5] + [1.0] + s["route"][6:]}, "request 5: replica 1.0"),
        # replicas are identical, so a relabelling is harmless; a different split is not
        (lambda s: {**s, "route": [0] * 60 + s["route"][60:]}, "differs from the replayed"),
        (lambda s: [], "the solution must be an object"),
    ],
)
def test_hostile_routes_fail_naming_the_request(verifier: RouterVerifier, instance: Instance,
                                                change: Any, message: str) -> None:
    solution = json.loads(json.dumps(verifier.solve(least_outstanding, instance)))
    result = verifier.score(instance, change(copy.deepcopy(solution)))
    assert not result.feasible and result.error
    assert __import__("re").search(message, result.error), result.error


def test_router_output_is_validated(verifier: RouterVerifier, instance: Instance) -> None:
    with pytest.raises(ValueError, match=r"request 0: the router returned shape \(5,\)"):
        verifier.solve(lambda **_: np.zeros(5), instance)


def test_replicas_option_is_strict() -> None:
    with pytest.raises(UserError, match="verifier.options.replicas: expected an integer from 1 to 256"):
        RouterVerifier(PROBLEM, {"replicas": 0})
    with pytest.raises(UserError, match="replicas: 3 does not match the 2 entries of replica_profiles"):
        RouterVerifier(PROBLEM, {"replicas": 3, "replica_profiles": ["h100-llama3.1-8b"] * 2})
    with pytest.raises(UserError, match="replica_profiles: expected a list"):
        RouterVerifier(PROBLEM, {"replica_profiles": "h100-llama3.1-8b"})


def test_a_mixed_fleet_rewards_load_aware_routing() -> None:
    fleet = RouterVerifier(PROBLEM, {"replica_profiles": ["h100-llama3.1-8b", "a100-80gb-llama3.1-8b"]})
    assert fleet.opts.replica_names == ("h100-llama3.1-8b", "a100-80gb-llama3.1-8b")
    assert fleet.opts.replica_engines[1].max_num_batched_tokens == 2048  # the A100's own default
    seen: list[np.ndarray] = []

    def least_prefill_time(queued_tokens: np.ndarray, prefill_time: np.ndarray, **_: Any) -> np.ndarray:
        seen.append(prefill_time)
        return queued_tokens * prefill_time + prefill_time

    trace = generate(WorkloadSpec("conversation", "poisson", 1.0, 500, 8), fleet.opts.engine, 0.85)
    instance = fleet.make_instance("fleet", "conversation", trace, "test")
    result = fleet.score(instance, json.loads(json.dumps(fleet.solve(least_prefill_time, instance))))
    assert seen[0][1] > 2 * seen[0][0]  # the A100 is slower per prefill token
    assert result.feasible and result.gap < -0.2  # round robin overloads the A100


def test_picture(verifier: RouterVerifier, instance: Instance, tmp_path: Path) -> None:
    solution = json.loads(json.dumps(verifier.solve(least_outstanding, instance)))
    out = tmp_path / "router.png"
    verifier.picture([instance], [verifier.score(instance, solution)], [solution], out)
    assert out.stat().st_size > 10_000
