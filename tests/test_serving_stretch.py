"""Event-driven time advance: decode-only stretches in one computation give, bit for bit, the
same simulation as stepping one engine iteration at a time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from evolve.evaluators.serving import engine as engine_module
from evolve.evaluators.serving.candidate_side import respond_priority
from evolve.evaluators.serving.engine import Engine, EngineConfig, Trace, run_engine
from evolve.evaluators.serving.policy import PolicyDecider, fcfs_ask, policy_ask
from evolve.evaluators.serving.profiles import PROFILES
from evolve.evaluators.serving.router import run_router

B0, B1, B2, B3 = PROFILES["h100-llama3.1-8b"].seconds()
EXACT = ("first_token", "finish", "client_tokens", "admit_seq", "preemptions", "generated", "state")
SCALARS = ("now", "busy_s", "kv_block_s", "steps", "decode_tokens", "prefill_tokens", "preempted_total",
           "free", "finished", "kv_bound_steps")


def config(**changes: Any) -> EngineConfig:
    base = dict(max_num_batched_tokens=2048, max_num_seqs=64, kv_blocks=700, block_size=16,
                chunked_prefill=True, b0=B0, b1=B1, b2=B2, b3=B3)
    base.update(changes)
    return EngineConfig(**base)


def trace(n: int, seed: int, rate: float, clients: int = 3) -> Trace:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    prompt = rng.integers(1, 1500, n)
    output = rng.integers(1, 300, n)
    return Trace(arrival, prompt, output, output * np.exp(0.5 * rng.standard_normal(n)),
                 rng.integers(0, clients, n))


def srpt(predicted_len: np.ndarray, generated: np.ndarray, **_: Any) -> np.ndarray:
    return predicted_len - generated


def simulate(cfg: EngineConfig, tr: Trace, event_driven: bool) -> tuple[Engine, int]:
    decider = PolicyDecider(policy_ask(lambda obs: respond_priority(srpt, obs), tr.predicted, (2.0, 0.2)))
    return run_engine(cfg, tr, decider, 10**7, event_driven), decider.calls


def assert_same(a: Engine, b: Engine) -> None:
    for name in EXACT:
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    for name in SCALARS:
        assert getattr(a, name) == getattr(b, name), (name, getattr(a, name), getattr(b, name))


CONFIGS = {
    "chunked, small KV (preemptions)": config(),
    "prefill-first": config(chunked_prefill=False, max_num_batched_tokens=4096),
    "no KV read cost, large KV": config(b3=0.0, kv_blocks=5000),
    "one-token blocks": config(block_size=1, kv_blocks=6000),
    "few sequence slots": config(max_num_seqs=8, kv_blocks=3000),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize(("seed", "rate", "clients"), [(0, 4.0, 3), (1, 40.0, 1), (2, 400.0, 5)])
def test_event_driven_matches_step_by_step_exactly(name: str, seed: int, rate: float, clients: int) -> None:
    tr = trace(250, seed, rate, clients)
    (stepped, calls_stepped), (jumped, calls_jumped) = (simulate(CONFIGS[name], tr, ev) for ev in (False, True))
    assert_same(stepped, jumped)
    assert calls_stepped == calls_jumped  # the policy is asked at the same steps


def test_stretches_cover_most_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []
    original = engine_module.decode_stretch

    def counted(eng: Engine, next_arrival: float, max_steps: int) -> int:
        ran.append(original(eng, next_arrival, max_steps))
        return ran[-1]

    monkeypatch.setattr(engine_module, "decode_stretch", counted)
    engine, _ = simulate(config(kv_blocks=5000), trace(250, 3, 4.0), True)
    assert sum(ran) > 0.8 * engine.steps  # most steps were jumped over, not iterated


def test_a_step_limit_inside_a_stretch_stops_at_the_same_step() -> None:
    tr = trace(40, 4, 2.0)
    errors = []
    for event_driven in (False, True):
        with pytest.raises(engine_module.EngineError) as info:
            run_engine(config(), tr, PolicyDecider(fcfs_ask), 333, event_driven)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "step limit of 333" in errors[0]


def test_router_replicas_match_step_by_step() -> None:
    tr = trace(300, 5, 60.0)
    cfgs = [config(kv_blocks=3000), config(b0=3 * B0, b1=3 * B1, b2=3 * B2, b3=2 * B3, max_num_seqs=16)]

    def least_loaded(engines: list[Engine], _: int) -> int:
        return int(np.argmin([e.waiting.size + e.running.size for e in engines]))

    stepped, route_a = run_router(cfgs, tr, least_loaded, 10**7, event_driven=False)
    jumped, route_b = run_router(cfgs, tr, least_loaded, 10**7, event_driven=True)
    assert np.array_equal(route_a, route_b)
    for a, b in zip(stepped, jumped, strict=True):
        assert_same(a, b)
