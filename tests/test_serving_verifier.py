"""Serving verifier: options, traces, trusted replay of hostile solutions, score, picture."""

from __future__ import annotations

import copy
import hashlib
import json
import linecache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.serving import ServingVerifier
from evolve.evaluators.serving.engine import Trace
from evolve.evaluators.serving.metrics import engine_table
from evolve.evaluators.serving.policy import fcfs_priority
from evolve.evaluators.serving.traces import read_trace
from evolve.evaluators.serving.workload import WorkloadSpec, generate
from evolve.verifier import Instance, Verifier

PROBLEM = Path(__file__).resolve().parents[1] / "problems" / "serving"


@pytest.fixture(scope="module")
def verifier() -> ServingVerifier:
    return ServingVerifier(PROBLEM, {})


SMALL = {"kv_blocks": 700, "max_num_seqs": 48, "max_num_batched_tokens": 2048}


@pytest.fixture(scope="module")
def small() -> ServingVerifier:
    # a small KV cache: admissions, blocked admissions and preemptions all occur
    return ServingVerifier(PROBLEM, SMALL)


@pytest.fixture(scope="module")
def instance(small: ServingVerifier) -> Instance:
    trace = generate(WorkloadSpec("mixed", "bursty", 1.3, 250, 9), small.opts.engine, 0.85)
    return small.make_instance("small", "mixed", trace, "test")


def srpt(predicted_len: np.ndarray, generated: np.ndarray, **_: Any) -> np.ndarray:
    return predicted_len - generated


@pytest.fixture(scope="module")
def solution(small: ServingVerifier, instance: Instance) -> dict[str, Any]:
    return json.loads(json.dumps(small.solve(srpt, instance)))


def test_protocol(verifier: ServingVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.direction == "minimize"


# -- options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"x": 1}, r"verifier.options: unknown key 'x' \(expected one of profile, "),
        ({"replicas": 2}, "unknown key 'replicas'"),
        ({"ttft_slo_s": "2"}, r"verifier.options.ttft_slo_s: expected a number"),
        ({"ttft_slo_s": 0}, "verifier.options.ttft_slo_s"),
        ({"chunked_prefill": 1}, "verifier.options.chunked_prefill: expected true or false"),
        ({"max_num_seqs": 2.5}, "verifier.options.max_num_seqs: expected an integer"),
        ({"max_num_seqs": True}, "verifier.options.max_num_seqs"),
        ({"max_num_batched_tokens": 100, "max_num_seqs": 200}, "smaller than max_num_seqs"),
        ({"profile": "tpu-v9"}, "unknown profile 'tpu-v9'"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        ServingVerifier(PROBLEM, options)


def test_user_profile_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "l4.toml"
    path.write_text('step_base_us = 9000\nprefill_us_per_token = 80\ndecode_us_per_token = 25\n'
                    'kv_blocks = 5000\nsource = "my fit"\n')
    v = ServingVerifier(PROBLEM, {"profile": str(path)})
    assert v.opts.engine.b0 == pytest.approx(0.009) and v.opts.engine.kv_blocks == 5000
    path.write_text("step_base_us = 9000\nkv_blocks = 5000\nwarp = 1\n")
    with pytest.raises(UserError, match=r"l4.toml: unknown key 'warp'"):
        ServingVerifier(PROBLEM, {"profile": str(path)})


# -- traces -----------------------------------------------------------------------------


def test_both_public_trace_formats_load(tmp_path: Path) -> None:
    vidur = tmp_path / "v.csv"
    vidur.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.5,100,10\n0.0,2000,0\n")
    arrival, prompt, output, client = read_trace(vidur)
    assert arrival.tolist() == [0.0, 0.5] and prompt.tolist() == [2000, 100]
    assert output.tolist() == [1, 10] and client.tolist() == [0, 0]  # 0 generated -> 1
    azure = tmp_path / "a.csv"
    azure.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:15:46.6805900,4808,10\n2023-11-16 18:15:50.9951690,3180,8\n")
    arrival, prompt, _, _ = read_trace(azure)
    assert arrival[1] == pytest.approx(4.314579) and prompt.tolist() == [4808, 3180]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c\n1,2,3\n", "line 1: header 'a,b,c' has neither arrived_at"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,12.5,3\n",
         "line 2: field 'num_prefill_tokens': expected a whole number >= 0, got '12.5'"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,3\nx,1,1\n",
         "line 3: field 'arrived_at': expected seconds >= 0, got 'x'"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5\n", "line 2: 2 fields, expected 3"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,5,5\n", "field 'TIMESTAMP': expected a date-time"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n", "no requests after the header"),
    ],
)
def test_malformed_trace_rows_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        read_trace(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_request_larger_than_the_kv_cache_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,500000,10\n")
    with pytest.raises(UserError, match="request 0 needs 500010 tokens of KV cache"):
        ServingVerifier(PROBLEM, {}).load_instances(path)


def test_time_scale_stretches_arrivals(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,3\n2,10,3\n")
    (inst,) = ServingVerifier(PROBLEM, {"time_scale": 0.5}).load_instances(path)
    assert inst.data["trace"]["arrival"].tolist() == [0.0, 1.0]


def test_splits_are_reproducible_and_disjoint(verifier: ServingVerifier) -> None:
    train = verifier.instances("train")
    again = verifier.instances("train")
    assert [i.name for i in train] == [i.name for i in again]
    assert all(np.array_equal(a.data["trace"]["prompt"], b.data["trace"]["prompt"]) for a, b in zip(train, again, strict=True))
    test_names = {i.name for i in verifier.instances("test")}
    assert not test_names & {i.name for i in train}
    assert all(i.reference.kind == "none" and "FCFS" in i.reference.source for i in train)


# -- solve and trusted score ------------------------------------------------------------


def test_replay_reproduces_the_sandbox_run(small: ServingVerifier, instance: Instance,
                                           solution: dict[str, Any]) -> None:
    assert solution["victims"] and solution["blocked"], "the fixture must exercise every decision kind"
    result = small.score(instance, solution)
    assert result.feasible, result.error
    engine = small.replay(instance, solution)
    table = engine_table(engine)
    assert np.allclose(table.e2e, solution["e2e"], atol=2e-6)
    assert result.objective == pytest.approx(table.e2e.mean())
    assert result.gap == pytest.approx(result.objective / instance.reference.value - 1)
    # the reference is FCFS itself: FCFS scores a zero gap
    fcfs = small.score(instance, json.loads(json.dumps(small.solve(fcfs_priority, instance))))
    assert fcfs.gap == pytest.approx(0.0) and fcfs.extra["starved_pct"] == 0.0


def tampered(solution: dict[str, Any], key: str, change: Any) -> dict[str, Any]:
    bad = copy.deepcopy(solution)
    bad[key] = change(bad[key]) if callable(change) else change
    return bad


@pytest.mark.parametrize(
    ("key", "change", "message"),
    [
        ("admit", "all", "'admit' must be a list of integers"),
        ("admit", lambda xs: xs + [1], "even length"),
        ("admit", lambda xs: xs[:-2] + [xs[-2], 1.5], "integers only, found 1.5"),
        ("admit", lambda xs: xs[:-1] + [10**9], "names a request outside"),
        ("admit", lambda xs: [xs[2], xs[3], xs[0], xs[1]] + xs[4:] if xs[2] > xs[0] else xs[:-2],
         "non-decreasing|admission stopped|recorded at step"),
        ("admit", lambda xs: xs[:-2], r"step \d+: admission stopped with 1 requests waiting"),
        ("admit", lambda xs: [0, 249] + xs, r"step 0: request 249 cannot be admitted: it is not waiting"),
        ("victims", lambda xs: [0, 0] + xs, r"^a preemption of request 0 is recorded at step 0, but the engine had no such choice then$"),
        ("victims", lambda xs: xs[:2] + [xs[0], 10**4 % 250] + xs[2:],
         r"^step \d+: request \d+ (cannot be preempted: it is not running|was preempted, but the running)"),
        ("victims", lambda xs: xs[2:], r"step \d+: .*preempt|recorded at step"),
        ("victims", [], r"more KV blocks than are free after the recorded preemptions"),
        ("blocked", [], r"admission stopped with \d+ requests waiting"),
        ("e2e", lambda xs: xs[:-1] + [xs[-1] - 1.0], "the reported E2E .* differs from the replayed"),
        ("ttft", lambda xs: xs[:3], "'ttft' must be a list of 250 numbers"),
        ("ttft", lambda xs: [float("nan")] + xs[1:], "finite numbers only"),
    ],
)
def test_hostile_solutions_fail_naming_the_rule(small: ServingVerifier, instance: Instance,
                                                solution: dict[str, Any], key: str, change: Any,
                                                message: str) -> None:
    result = small.score(instance, tampered(solution, key, change))
    assert not result.feasible
    assert result.error and __import__("re").search(message, result.error), result.error


@pytest.mark.parametrize("junk", [None, [], "x", 3, {"admit": []}, {"admit": [0, 0], "blocked": [], "victims": []}])
def test_junk_is_infeasible_never_an_exception(small: ServingVerifier, instance: Instance, junk: Any) -> None:
    result = small.score(instance, junk)
    assert not result.feasible and result.error


def test_policy_output_is_validated_in_the_sandbox(small: ServingVerifier, instance: Instance) -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        small.solve(lambda arrival, **_: arrival * np.nan, instance)
    with pytest.raises(ValueError, match=r"returned shape \(2,\); expected"):
        small.solve(lambda **_: np.zeros(2), instance)
    scalar = small.solve(lambda **_: 1.0, instance)  # one scalar for all: FCFS order by ties
    assert small.score(instance, json.loads(json.dumps(scalar))).feasible


def candidate(source: str, name: str) -> Any:
    """A function compiled from ``source`` the way the sandbox does (source in linecache)."""
    filename = f"<candidate {hashlib.sha1(source.encode()).hexdigest()}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def test_only_the_shipped_oracle_sees_true_lengths(small: ServingVerifier, instance: Instance) -> None:
    shipped = (PROBLEM / "baselines" / "srpt_oracle.py").read_text()
    assert small.solve(candidate(shipped, "priority"), instance)["oracle"] is True
    impostor = shipped.replace("ORACLE reference", "ORACLE reference (copy)")
    seen: list[np.ndarray] = []
    spy = impostor.replace("def priority(predicted_len, generated, **_):",
                           "def priority(predicted_len, generated, **_):\n    SEEN.append(predicted_len)")
    fn = candidate(spy, "priority")
    fn.__globals__["SEEN"] = seen
    solution = small.solve(fn, instance)
    assert solution["oracle"] is False
    true = instance.data["trace"]["output"].astype(float)
    assert not any(np.isin(s, true).all() for s in seen if s.size > 3)


# -- aggregate, picture -------------------------------------------------------------------


def test_score_is_goodput_minus_starved_minus_weighted_gap(small: ServingVerifier, instance: Instance,
                                                           solution: dict[str, Any]) -> None:
    result = small.score(instance, solution)
    score, metrics = small.aggregate([result, result])
    expected = result.extra["goodput_pct"] - result.extra["starved_pct"] - 0.2 * 100 * result.gap
    assert score == pytest.approx(expected)
    assert metrics["gap_mean_pct"] == pytest.approx(100 * result.gap)
    good = (np.array(solution["ttft"]) <= 2.0)
    tpot_ok = engine_table(small.replay(instance, solution)).tpot <= 0.2
    assert result.extra["goodput_pct"] == pytest.approx(100 * np.mean(good & tpot_ok), abs=0.5)


def test_picture_draws_latency_cdfs(small: ServingVerifier, instance: Instance, solution: dict[str, Any],
                                    tmp_path: Path) -> None:
    out = tmp_path / "cdf.png"
    small.picture([instance], [small.score(instance, solution)], [solution], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_trace_instances_are_deterministic(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{t:.3f},{p},{o}" for t, p, o in zip(np.cumsum(rng.exponential(0.05, 60)),
                                                            rng.integers(10, 900, 60), rng.integers(1, 90, 60), strict=True))
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n" + rows + "\n")
    v = ServingVerifier(PROBLEM, {})
    (a,), (b,) = v.load_instances(path), v.load_instances(path)
    assert np.array_equal(a.data["trace"]["predicted"], b.data["trace"]["predicted"])
    assert isinstance(Trace.from_data(a.data["trace"]), Trace)
