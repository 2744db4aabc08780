"""Fidelity of the serving simulator: queueing theory, conservation, capacity, ordering."""

from __future__ import annotations

import numpy as np
import pytest

from evolve.evaluators.serving.candidate_side import respond_priority
from evolve.evaluators.serving.engine import (
    DONE,
    Engine,
    EngineConfig,
    EngineError,
    Trace,
    run_engine,
)
from evolve.evaluators.serving.metrics import engine_table, isolated_latency
from evolve.evaluators.serving.policy import PolicyDecider, fcfs_priority, policy_ask
from evolve.evaluators.serving.profiles import PROFILES
from evolve.evaluators.serving.workload import WorkloadSpec, generate

PUBLIC = bytes(16)  # the secret of the tests' own traces (only built-in splits need a real one)

B0, B1, B2, _ = PROFILES["h100-llama3.1-8b"].seconds()


def config(**changes: object) -> EngineConfig:
    base = dict(max_num_batched_tokens=8192, max_num_seqs=1024, kv_blocks=29200, block_size=16,
                chunked_prefill=True, b0=B0, b1=B1, b2=B2, b3=0.0)
    base.update(changes)
    return EngineConfig(**base)  # type: ignore[arg-type]


def random_trace(n: int, seed: int, rate: float, prompt_max: int = 3000, out_max: int = 400) -> Trace:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    prompt = rng.integers(1, prompt_max, n)
    output = rng.integers(1, out_max, n)
    predicted = output * np.exp(0.5 * rng.standard_normal(n))
    return Trace(arrival, prompt, output, predicted, rng.integers(0, 3, n))


def decider(fn, predicted: np.ndarray) -> PolicyDecider:  # noqa: ANN001
    """The trusted decider asking ``fn`` in-process, through the same respond as the sandbox."""
    return PolicyDecider(policy_ask(lambda obs: respond_priority(fn, obs), predicted, (2.0, 0.2)))


def run(cfg: EngineConfig, trace: Trace, fn=fcfs_priority, predicted: np.ndarray | None = None,  # noqa: ANN001
        event_driven: bool = True) -> Engine:
    return run_engine(cfg, trace, decider(fn, trace.predicted if predicted is None else predicted), 10**7,
                      event_driven)


def srpt(predicted_len: np.ndarray, generated: np.ndarray, **_: object) -> np.ndarray:
    return predicted_len - generated


# -- single-server reduction ------------------------------------------------------------


def lindley_e2e(arrival: np.ndarray, service: np.ndarray) -> np.ndarray:
    """FCFS single-server latencies from the Lindley recursion, computed independently."""
    wait = np.zeros_like(arrival)
    for i in range(1, arrival.size):
        wait[i] = max(0.0, wait[i - 1] + service[i - 1] - (arrival[i] - arrival[i - 1]))
    return wait + service


@pytest.mark.parametrize("chunked", [False, True])
def test_one_sequence_at_a_time_is_a_single_server_queue(chunked: bool) -> None:
    trace = random_trace(300, seed=1, rate=4.0, prompt_max=5000, out_max=60)
    cfg = config(max_num_seqs=1, chunked_prefill=chunked, max_num_batched_tokens=2048 if chunked else 8192)
    engine = run(cfg, trace)
    # service: prefill steps (one per chunk, or one whole prompt) then one decode step per token
    chunks = -(-trace.prompt // 2048) if chunked else np.ones_like(trace.prompt)
    service = chunks * B0 + B1 * trace.prompt + (trace.output - 1) * (B0 + B2)
    expected = lindley_e2e(trace.arrival, service)
    assert np.allclose(engine.finish - trace.arrival, expected, rtol=0, atol=1e-9)
    assert np.allclose(service, isolated_latency(cfg, trace.prompt, trace.output))
    assert engine.preempted_total == 0


def test_first_token_arrives_after_the_whole_prefill() -> None:
    trace = Trace(np.array([0.0]), np.array([20000]), np.array([3]), np.array([3.0]), np.array([0]))
    engine = run(config(), trace)
    # three chunks of 8192, 8192, 3616 tokens, then two decode steps
    assert engine.first_token[0] == pytest.approx(3 * B0 + B1 * 20000)
    assert engine.finish[0] == pytest.approx(3 * B0 + B1 * 20000 + 2 * (B0 + B2))
    assert engine.steps == 5


# -- conservation and capacity ------------------------------------------------------------


class Audit:
    """Wraps the engine to check its invariants after every step."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lost = 0  # computed tokens thrown away by preemptions
        self.steps = 0
        execute, preempt = Engine._execute, Engine.preempt
        audit = self

        def checked_execute(engine: Engine) -> None:
            execute(engine)
            audit.steps += 1
            assert engine.free >= 0, "KV blocks over capacity"
            held = engine.r_blocks.sum()
            assert held + engine.free == engine.cfg.kv_blocks, "blocks leaked"
            # paged allocation is exact: a running request holds ceil(computed / block) blocks
            assert np.array_equal(engine.r_blocks, -(-engine.r_computed // engine.cfg.block_size))
            assert engine.running.size <= engine.cfg.max_num_seqs

        def counted_preempt(engine: Engine, victim: int) -> None:
            at = int(np.flatnonzero(engine.running == victim)[0])
            audit.lost += int(engine.r_computed[at])
            preempt(engine, victim)

        monkeypatch.setattr(Engine, "_execute", checked_execute)
        monkeypatch.setattr(Engine, "preempt", counted_preempt)


@pytest.mark.parametrize("chunked", [True, False])
def test_tokens_are_computed_once_per_computation_and_kv_stays_in_capacity(
    monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    trace = random_trace(400, seed=2, rate=60.0)
    # a small KV cache forces preemptions by recompute
    cfg = config(kv_blocks=600, max_num_seqs=64, chunked_prefill=chunked)
    audit = Audit(monkeypatch)  # checks every step: step by step (stretches are checked against it)
    engine = run(cfg, trace, srpt, event_driven=False)
    assert engine.preempted_total > 10
    assert (engine.state == DONE).all() and np.array_equal(engine.generated, trace.output)
    # every prompt token and every output token but the last is computed once, plus what
    # preemptions threw away (recomputed on readmission)
    expected = int((trace.prompt + trace.output - 1).sum()) + audit.lost
    assert engine.prefill_tokens + engine.decode_tokens == expected
    assert engine.free == cfg.kv_blocks
    assert audit.steps == engine.steps


def test_no_request_beats_its_isolated_latency_or_the_capacity() -> None:
    trace = random_trace(500, seed=3, rate=80.0)
    cfg = config(kv_blocks=3000)
    engine = run(cfg, trace)
    table = engine_table(engine)
    assert (engine.first_token >= trace.arrival).all()
    assert (table.e2e >= isolated_latency(cfg, trace.prompt, trace.output) - 1e-9).all()
    # a step computes at most the budget and costs at least b0 + min(b1, b2) per token
    tokens = engine.prefill_tokens + engine.decode_tokens
    bound = cfg.max_num_batched_tokens / (B0 + min(B1, B2) * cfg.max_num_batched_tokens)
    assert tokens / engine.busy_s <= bound
    assert engine.busy_s <= engine.now


def test_srpt_oracle_beats_fcfs_on_mean_latency_under_load() -> None:
    cfg = config()
    trace = generate(WorkloadSpec("mixed", "poisson", 1.3, 800, 5), cfg, 0.85, PUBLIC)
    fcfs = engine_table(run(cfg, trace)).e2e.mean()
    oracle = engine_table(run(cfg, trace, srpt, trace.output.astype(float))).e2e.mean()
    assert oracle < 0.95 * fcfs


def test_fcfs_admits_in_arrival_order() -> None:
    trace = random_trace(300, seed=4, rate=200.0)
    engine = run(config(max_num_seqs=8), trace)
    order = np.argsort(engine.admit_seq, kind="stable")
    assert engine.preempted_total == 0
    assert np.array_equal(order, np.arange(300))


def test_prefill_first_pauses_decodes_while_admitting() -> None:
    # request 0 decodes; request 1 arrives and is prefilled in a step of its own
    trace = Trace(np.array([0.0, 0.001]), np.array([100, 4000]), np.array([50, 2]),
                  np.array([50.0, 2.0]), np.array([0, 0]))
    engine = run(config(chunked_prefill=False), trace)
    first_1 = engine.first_token[1]
    # request 1 waits for the step in progress (request 0's prefill), then a prefill-only step
    assert first_1 == pytest.approx((B0 + B1 * 100) + (B0 + B1 * 4000))
    chunked = run(config(), trace)
    # chunked: request 1's prefill shares a step with request 0's decode
    assert chunked.first_token[1] == pytest.approx((B0 + B1 * 100) + (B0 + B1 * 4000 + B2))


def test_victims_follow_the_policy_and_default_to_the_latest_admitted() -> None:
    trace = random_trace(200, seed=6, rate=500.0, prompt_max=400, out_max=300)
    cfg = config(kv_blocks=200, max_num_seqs=32)
    latest: list[bool] = []
    preempt = Engine.preempt

    def spy(engine: Engine, victim: int) -> None:
        running = engine.running
        latest.append(victim == running[np.argmax(engine.admit_seq[running])])
        preempt(engine, victim)

    Engine.preempt = spy  # type: ignore[method-assign]
    try:
        run(cfg, trace, lambda arrival, **_: np.zeros_like(arrival))  # all ties
    finally:
        Engine.preempt = preempt  # type: ignore[method-assign]
    assert latest and all(latest)


def test_a_stuck_policy_is_reported_with_the_request() -> None:
    trace = random_trace(20, seed=7, rate=10.0)
    with pytest.raises(EngineError, match=r"request \d+ never finished: still .* after the step limit of 5"):
        run_engine(config(), trace, decider(fcfs_priority, trace.predicted), 5)


@pytest.mark.parametrize("event_driven", [True, False])
def test_kv_bound_steps_count_memory_not_the_batch_limits(event_driven: bool) -> None:
    """A step is KV-bound when KV memory refused an admission with a slot and budget left, or
    forced a preemption: with ample memory and a sequence cap that binds, none are."""
    trace = random_trace(400, seed=2, rate=60.0)
    capped = run(config(max_num_seqs=4), trace, event_driven=event_driven)
    assert capped.kv_bound_steps == 0 and capped.preempted_total == 0
    assert capped.finish.max() - trace.arrival[-1] > 10  # requests waited: the cap bound
    tight = run(config(kv_blocks=600, max_num_seqs=64), trace, srpt, event_driven=event_driven)
    assert tight.preempted_total > 10
    assert tight.kv_bound_steps >= 10 and tight.kv_bound_steps <= tight.steps
