"""Serving verifier: options, traces and load, the trusted simulation and what the policy sees, score.

The policy answers in-process here (through the same ``respond`` the sandbox runs);
tests/test_serving_attacks.py drives the same verifier through the real sandbox.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.evaluators.serving import ServingVerifier
from evolve.evaluators.serving.candidate_side import ARRAY_FEATURES, SCALAR_FEATURES, features
from evolve.evaluators.serving.engine import EngineConfig, Trace, run_engine
from evolve.evaluators.serving.load import offered_load
from evolve.evaluators.serving.policy import FEATURES, PolicyDecider, fcfs_ask, fcfs_priority
from evolve.evaluators.serving.profiles import PROFILES
from evolve.evaluators.serving.session import local_decide
from evolve.evaluators.serving.traces import read_trace
from evolve.evaluators.serving.verifier import is_oracle, table_of
from evolve.evaluators.serving.workload import WorkloadSpec, generate
from evolve.verifier import Instance, Verifier

PUBLIC = bytes(16)  # the secret of the tests' own traces (only built-in splits need a real one)

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
    trace = generate(WorkloadSpec("mixed", "bursty", 1.3, 250, 9), small.opts.engine, 0.85, PUBLIC)
    return small.make_instance("small", "mixed", trace, "test")


def srpt(predicted_len: np.ndarray, generated: np.ndarray, **_: Any) -> np.ndarray:
    return predicted_len - generated


def view(payload: Any) -> dict[str, Any]:
    """An observation as the policy receives it (keyword arguments)."""
    return features(payload, ARRAY_FEATURES, SCALAR_FEATURES)


def run(verifier: ServingVerifier, instance: Instance, fn: Any, source: str | None = None) -> dict[str, Any]:
    """The trusted simulation, the policy answering in-process through the sandbox's respond()."""
    return verifier.simulate(instance, local_decide(ServingVerifier.respond, fn), is_oracle(source, verifier.digests))


@pytest.fixture(scope="module")
def solution(small: ServingVerifier, instance: Instance) -> dict[str, Any]:
    return run(small, instance, srpt)


def test_protocol(verifier: ServingVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.direction == "minimize"
    assert callable(verifier.interact) and callable(ServingVerifier.respond)


# -- options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"x": 1}, r"\[verifier.options\] x: unknown key \(expected one of profile, "),
        ({"replicas": 2}, r"\[verifier.options\] replicas: unknown key"),
        ({"ttft_slo_s": "2"}, r"\[verifier.options\] ttft_slo_s: Input should be a valid number"),
        ({"ttft_slo_s": 0}, r"\[verifier.options\] ttft_slo_s: Input should be greater than or equal to"),
        ({"chunked_prefill": 1}, r"\[verifier.options\] chunked_prefill: Input should be a valid boolean"),
        ({"max_num_seqs": 2.5}, r"\[verifier.options\] max_num_seqs: Input should be a valid integer"),
        ({"max_num_seqs": True}, r"\[verifier.options\] max_num_seqs: "),
        ({"max_num_batched_tokens": 100, "max_num_seqs": 200}, "smaller than max_num_seqs"),
        ({"profile": "tpu-v9"}, "unknown profile 'tpu-v9'"),
        ({"target_load": 0}, r"\[verifier.options\] target_load: Input should be greater than or equal to 0.001"),
        ({"target_load": 0.9, "time_scale": 2.0}, "give time_scale or target_load, not both"),
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
    assert v.opts.engine.b3 == 0.0  # optional in a user's profile
    path.write_text("step_base_us = 9000\nkv_blocks = 5000\nwarp = 1\n")
    with pytest.raises(UserError, match=r"l4.toml: unknown key 'warp'"):
        ServingVerifier(PROBLEM, {"profile": str(path)})


def test_shipped_profiles_charge_decodes_for_reading_the_kv_cache() -> None:
    # Llama-3.1-8B: 2 x 32 layers x 8 KV heads x 128 x 2 bytes = 128 KiB per token
    h100, a100 = PROFILES["h100-llama3.1-8b"], PROFILES["a100-80gb-llama3.1-8b"]
    assert h100.kv_read_us_per_token == pytest.approx(131072 / 3.35e12 * 1e6)
    assert a100.kv_read_us_per_token == pytest.approx(131072 / 2.039e12 * 1e6)
    cfg = ServingVerifier(PROBLEM, {}).opts.engine
    one = Trace(np.array([0.0]), np.array([4000]), np.array([3]), np.array([3.0]), np.array([0]))
    engine = run_engine(cfg, one, PolicyDecider(fcfs_ask), 100)
    # two decodes read 4000 and 4001 cached tokens
    expected = cfg.b0 + cfg.b1 * 4000 + 2 * (cfg.b0 + cfg.b2) + cfg.b3 * (4000 + 4001)
    assert engine.finish[0] == pytest.approx(expected, rel=1e-12)


# -- traces and load -----------------------------------------------------------------------


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


def test_azure_date_times_with_utc_offsets_load_in_absolute_time(tmp_path: Path) -> None:
    """ISO date-times with offsets (a 'Z', +01:00, or none: UTC) were a pandas ValueError traceback
    ('Mixed timezones detected') when the offsets differed."""
    path = tmp_path / "tz.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16T18:15:46Z,300,5\n"
                    "2023-11-16 19:15:50+01:00,200,5\n2023-11-16 18:15:48,100,5\n")
    arrival, prompt, _, _ = read_trace(path)
    assert arrival.tolist() == [0.0, 2.0, 4.0] and prompt.tolist() == [300, 100, 200]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c\n1,2,3\n", "line 1: header 'a,b,c' has neither arrived_at"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,12.5,3\n",
         "line 2: field 'num_prefill_tokens': expected a whole number from 0 to 1,000,000,000, got '12.5'"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,3\nx,1,1\n",
         "line 3: field 'arrived_at': expected seconds >= 0, got 'x'"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5\n",
         "line 2: field .num_decode_tokens.: expected a whole number from 0 to 1,000,000,000, got .."),
        # beyond int64 once counted: the engine failed with a traceback (1e30) or took a wrapped value
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1e30,5\n",
         "line 2: field 'ContextTokens': expected a whole number from 0 to 1,000,000,000, got '1e30'"),
        ("arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,99999999999999999999999\n",
         "line 2: field 'num_decode_tokens': expected a whole number from 0 to 1,000,000,000, got '9999"),
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


def poisson_csv(path: Path, n: int, rate: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = "\n".join(f"{t:.4f},{p},{o}" for t, p, o in zip(np.cumsum(rng.exponential(1 / rate, n)),
                                                           rng.integers(100, 2000, n), rng.integers(10, 400, n),
                                                           strict=True))
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n" + rows + "\n")
    return path


def test_a_trace_reports_its_load_and_warns_when_policies_must_tie(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = poisson_csv(tmp_path / "slow.csv", 200, 0.5)
    (inst,) = ServingVerifier(PROBLEM, {}).load_instances(path)
    err = capsys.readouterr().err
    report = offered_load(EngineConfig.from_data(inst.data["engine"]), Trace.from_data(inst.data["trace"]))
    assert report.load < 0.05 and f"offered load {report.load:.2f} of the engine's capacity" in err
    assert "warning" in err and "target_load" in err
    # at that load FCFS never has two requests to order: every policy gives the same latencies
    assert inst.data["reference_decisions"] == 0
    assert run(ServingVerifier(PROBLEM, {}), inst, srpt)["e2e"] == run(ServingVerifier(PROBLEM, {}), inst,
                                                                        fcfs_priority)["e2e"]


def test_target_load_sets_the_time_scale_from_capacity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = poisson_csv(tmp_path / "slow.csv", 300, 0.5)
    (inst,) = ServingVerifier(PROBLEM, {"target_load": 0.9}).load_instances(path)
    trace = Trace.from_data(inst.data["trace"])
    report = offered_load(EngineConfig.from_data(inst.data["engine"]), trace)
    assert report.load == pytest.approx(0.9)
    assert "offered load 0.90" in capsys.readouterr().err
    (slow,) = ServingVerifier(PROBLEM, {}).load_instances(path)
    assert np.allclose(trace.arrival, slow.data["trace"]["arrival"] * (trace.arrival[-1] / slow.data["trace"]["arrival"][-1]))
    (busy,) = ServingVerifier(PROBLEM, {"target_load": 2.0}).load_instances(path)
    assert busy.data["reference_decisions"] > 0  # queues form: the order matters


def test_a_trace_without_an_arrival_rate_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "one.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,300,5\n")
    ServingVerifier(PROBLEM, {}).load_instances(path)
    err = capsys.readouterr().err
    assert "one.csv: 1 request: no arrival rate, so no offered load of the engine's capacity" in err
    assert "inf" not in err  # was "1 requests over 0 s (inf req/s); offered load inf"


def test_the_tie_warning_does_not_advise_a_target_load_already_set(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Two requests at target_load 0.9 were told 'set target_load (e.g. --option target_load=0.9)'."""
    path = tmp_path / "two.csv"
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0,300,5\n1,300,5\n")
    ServingVerifier(PROBLEM, {"target_load": 0.9}).load_instances(path)
    err = capsys.readouterr().err
    assert "every policy ties exactly" in err and "with target_load = 0.9 already set" in err
    assert "e.g. --option target_load=0.9" not in err


def test_splits_are_reproducible_and_disjoint(verifier: ServingVerifier) -> None:
    train = verifier.instances("train")
    again = verifier.instances("train")
    assert [i.name for i in train] == [i.name for i in again]
    assert all(np.array_equal(a.data["trace"]["prompt"], b.data["trace"]["prompt"]) for a, b in zip(train, again, strict=True))
    test_names = {i.name for i in verifier.instances("test")}
    assert not test_names & {i.name for i in train}
    assert all(i.reference.kind == "none" and "FCFS" in i.reference.source for i in train)


def shortest_prompt(prompt_len: np.ndarray, running: np.ndarray, arrival: np.ndarray, **_: Any) -> np.ndarray:
    return np.where(running > 0, arrival, prompt_len)


def sjf_predicted(predicted_len: np.ndarray, generated: np.ndarray, **_: Any) -> np.ndarray:
    return np.maximum(predicted_len - generated, 1.0)


def test_the_quick_split_sits_where_policies_differ(verifier: ServingVerifier) -> None:
    instances = verifier.instances("quick")
    scores = {}
    for name, fn in (("fcfs", fcfs_priority), ("shortest_prompt", shortest_prompt), ("sjf", sjf_predicted)):
        results = [verifier.score(i, run(verifier, i, fn)) for i in instances]
        scores[name] = verifier.aggregate(results)[0]
    assert all(i.data["reference_decisions"] > 20 for i in instances)  # FCFS had choices to make
    assert scores["shortest_prompt"] > scores["fcfs"] + 5 and scores["sjf"] > scores["fcfs"] + 5
    assert abs(scores["shortest_prompt"] - scores["sjf"]) > 1


# -- the trusted simulation and its record -----------------------------------------------


def test_the_record_is_the_trusted_engine_run(small: ServingVerifier, instance: Instance,
                                              solution: dict[str, Any]) -> None:
    assert solution["preemptions"] > 0 and solution["policy_calls"] > 0
    result = small.score(instance, solution)
    assert result.feasible, result.error
    assert result.objective == pytest.approx(np.mean(solution["e2e"]))
    assert result.gap == pytest.approx(result.objective / instance.reference.value - 1)
    # the reference is FCFS itself: FCFS scores a zero gap
    fcfs = small.score(instance, run(small, instance, fcfs_priority))
    assert fcfs.gap == pytest.approx(0.0) and fcfs.extra["starved_pct"] == 0.0


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (lambda arrival, **_: arrival * np.nan, r"^raised ValueError: the policy returned NaN or infinity.*, at step \d+$"),
        (lambda **_: np.zeros(2), r"^raised ValueError: the policy returned shape \(2,\); expected \(\d+,\).*at step"),
        (lambda **_: 1 / 0, r"^raised ZeroDivisionError: division by zero.*, at step \d+$"),
    ],
)
def test_a_failing_policy_makes_the_instance_fail_naming_the_step(small: ServingVerifier, instance: Instance,
                                                                  policy: Any, message: str) -> None:
    record = run(small, instance, policy)
    result = small.score(instance, record)
    assert not result.feasible and re.search(message, result.error or ""), result.error


def test_answers_are_validated_on_the_trusted_side(small: ServingVerifier, instance: Instance) -> None:
    # What a subverted sandbox could send back instead of priorities.
    for answer, message in ((np.zeros(3), r"step \d+: the policy returned shape \(3,\)"),
                            ("fast", "the policy returned str, not numbers"),
                            ({"a": 1}, "the policy returned dict, not numbers"),
                            (np.array(np.inf), "NaN or infinity")):
        result = small.score(instance, small.simulate(instance, lambda obs, a=answer: a))
        assert not result.feasible and re.search(message, result.error or ""), result.error
    scalar = small.simulate(instance, lambda obs: 1.0)  # one scalar for all: FCFS order by ties
    assert small.score(instance, scalar).feasible


@pytest.mark.parametrize("junk", [None, [], "x", 3, {"admit": []}, {"error": "boom"}])
def test_junk_records_are_infeasible_never_an_exception(small: ServingVerifier, instance: Instance,
                                                        junk: Any) -> None:
    result = small.score(instance, junk)
    assert not result.feasible and result.error


def test_a_stuck_policy_fails_naming_the_request(small: ServingVerifier, instance: Instance) -> None:
    stuck = {**instance.data, "max_steps": 50}
    result = small.score(instance, small.simulate(Instance("s", "g", stuck), lambda obs: view(obs)["arrival"]))
    assert not result.feasible and "never finished" in (result.error or "")


# -- what the policy is shown -------------------------------------------------------------


def test_observations_hold_only_what_a_scheduler_knows(small: ServingVerifier, instance: Instance) -> None:
    seen: list[dict[str, Any]] = []

    def spy(payload: Any) -> np.ndarray:
        seen.append(view(payload))
        return seen[-1]["arrival"]

    small.simulate(instance, spy)
    assert seen and all(set(obs) == set(FEATURES) for obs in seen)
    true = instance.data["trace"]["output"].astype(float)
    arrival = instance.data["trace"]["arrival"]
    for obs in seen:
        ids = np.searchsorted(arrival, obs["arrival"])  # arrivals are distinct here
        assert np.array_equal(arrival[ids], obs["arrival"])
        assert (obs["arrival"] <= obs["now"]).all()  # nobody from the future
        assert not np.array_equal(obs["predicted_len"], true[ids])  # predictions, not the truth
        assert (obs["generated"] < true[ids]).all()  # unfinished requests only


def test_only_the_shipped_oracle_text_sees_true_lengths(small: ServingVerifier, instance: Instance) -> None:
    shipped = (PROBLEM / "baselines" / "srpt_oracle.py").read_text()
    assert is_oracle(shipped, small.digests)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def spy(predicted_len: np.ndarray, generated: np.ndarray, arrival: np.ndarray, **_: Any) -> np.ndarray:
        seen.append((arrival.copy(), predicted_len.copy()))
        return predicted_len - generated

    trace = instance.data["trace"]
    true, predicted = trace["output"].astype(float), trace["predicted"]

    times, counts = np.unique(trace["arrival"], return_counts=True)
    alone = set(times[counts == 1].tolist())  # requests known by their arrival time

    def shown(lengths: np.ndarray) -> bool:  # every observation showed these lengths, request by request
        for arrival, values in seen:
            known = np.array([a in alone for a in arrival.tolist()], dtype=bool)
            ids = np.searchsorted(trace["arrival"], arrival[known])
            if not np.array_equal(values[known], lengths[ids]):
                return False
        return True

    oracle = run(small, instance, spy, shipped)
    assert oracle["oracle"] is True and small.score(instance, oracle).extra["oracle"] == 1.0
    assert seen and shown(true) and not shown(predicted)
    seen.clear()
    for impostor in (shipped.replace("ORACLE reference", "ORACLE reference (copy)"), shipped + "\n", None):
        record = run(small, instance, spy, impostor)
        assert record["oracle"] is False and small.score(instance, record).extra["oracle"] == 0.0
    assert seen and shown(predicted) and not shown(true)


# -- aggregate, picture -------------------------------------------------------------------


def test_score_is_goodput_minus_starved_minus_weighted_gap(small: ServingVerifier, instance: Instance,
                                                           solution: dict[str, Any]) -> None:
    result = small.score(instance, solution)
    score, metrics = small.aggregate([result, result])
    expected = result.extra["goodput_pct"] - result.extra["starved_pct"] - 0.2 * 100 * result.gap
    assert score == pytest.approx(expected)
    assert metrics["gap_mean_pct"] == pytest.approx(100 * result.gap)
    good = (np.array(solution["ttft"]) <= 2.0)
    tpot_ok = table_of(Trace.from_data(instance.data["trace"]), small.opts.engine, solution).tpot <= 0.2
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


def test_the_time_limit_grows_with_the_trace(tmp_path: Path) -> None:
    from evolve.config import RunSettings
    from evolve.evaluation import Evaluator, run_timeout
    from evolve.problem import load_problem

    problem = load_problem("serving")
    small = problem.instances("quick")
    (big,) = problem.instances("train", poisson_csv(tmp_path / "big.csv", 10_000, 20.0))
    assert problem.verifier.time_weight(small[0]) == 1.0 and problem.verifier.time_weight(big) == 4.0
    settings = RunSettings.model_validate(problem.spec.run).sandbox
    evaluator = Evaluator(problem, settings)  # no sandbox is started until a run
    assert evaluator._time_units(small) == 2.0 and evaluator._time_units([big]) == 4.0
    assert run_timeout(settings.instance_timeout_s, 4.0) == 2.0 + 4 * 6.0


def test_a_trace_that_is_not_utf8_names_its_line_and_byte(tmp_path: Path) -> None:
    """A Latin-1 byte on line 3 was reported as 'not UTF-8 text (byte 2)', an offset in pandas' buffer."""
    from evolve.problem import load_problem

    path = tmp_path / "latin1.csv"
    path.write_bytes(b"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,308,131\n2023-11-16 18:15:47,30\xe9,1\n")
    with pytest.raises(UserError, match=r"latin1.csv: not UTF-8 text \(line 3, byte 90: b'\\xe9'\)$"):
        load_problem("serving").instances("train", path)


def test_prompts_get_train_figures_after_the_fact_and_each_programs_kv_bound_steps(
        small: ServingVerifier, instance: Instance, solution: dict[str, Any]) -> None:
    """What an agent playing the model asked for: FCFS's slowest request per trace (the starvation
    line), how often KV memory binds, and the spread of prompt and output lengths per group; all
    figures of the trusted side after the runs, never among what the policy is given."""
    calm = small.make_instance("calm", "code", generate(WorkloadSpec("code", "poisson", 0.5, 200, 3),
                                                         small.opts.engine, 0.85, PUBLIC), "test")
    [line] = small.train_facts([instance, calm])
    ref = instance.data["reference"]
    assert "kv_bound_pct" not in ref  # instance data pin a run: resuming one of older code still works
    assert ref["preemptions"] > 0  # the small cache binds under FCFS (the seed, whose results say how often)
    calm_ref = calm.data["reference"]
    assert (f"(slower is starved): code calm {calm_ref['e2e_max_s']:.1f} s; mixed small {ref['e2e_max_s']:.1f} s."
            in line)  # by group; a trace by the last part of its name
    prompt, output = instance.data["trace"]["prompt"], instance.data["trace"]["output"]
    spread = "/".join(f"{v:,.0f}" for v in np.percentile(output, [10, 50, 90]))
    assert line.endswith(f"true output tokens (programs see predicted_len): code "
                         f"{'/'.join(f'{v:,.0f}' for v in np.percentile(calm.data['trace']['output'], [10, 50, 90]))}"
                         f", mixed {spread}.")
    assert "mixed " + "/".join(f"{v:,.0f}" for v in np.percentile(prompt, [10, 50, 90])) in line
    result = small.score(instance, solution)
    assert 0 < result.extra["kv_bound_pct"] <= 100
    assert small.feedback_lines([result])[-1] == (
        f"KV-bound steps and preemptions per trace, mean per group: mixed {result.extra['kv_bound_pct']:.1f}%, "
        f"{result.extra['preemptions']:.0f}")
    assert not set(ARRAY_FEATURES + SCALAR_FEATURES) & {"kv_bound_pct", "e2e_max_s", "output"}  # not the policy's
    from evolve.config import resolve_settings
    from evolve.problem import load_problem
    from evolve.prompt_facts import evaluation_setup

    problem = load_problem("serving")
    setup = evaluation_setup(problem, resolve_settings(problem.spec.run, None, {}), [], [instance, calm], None)
    assert line in setup  # the system message states it, for the train split it is given


def test_the_program_feedback_a_prompt_shows_says_how_often_kv_memory_bound() -> None:
    import evolve

    seed = (PROBLEM / "seed.py").read_text()
    evaluation = evolve.evaluate("serving", seed, split="quick")
    assert evaluation.ok, evaluation.feedback
    last = evaluation.feedback.splitlines()[-1]
    assert last.startswith("KV-bound steps and preemptions per trace, mean per group: ")
    assert all(f"{r.extra['kv_bound_pct']:.1f}%" in last for r in evaluation.instances)


def test_the_program_feedback_a_prompt_shows_gives_goodput_and_starved_shares_per_group_and_trace(
        small: ServingVerifier, instance: Instance, solution: dict[str, Any]) -> None:
    """What an agent playing the model asked for: the score folds goodput and the starved share
    into one number per trace; the feedback says each, per trace, by group."""
    other = small.make_instance("mixed-poisson-s7", "mixed", generate(WorkloadSpec("mixed", "poisson", 1.1, 200, 7),
                                                                     small.opts.engine, 0.85, PUBLIC), "test")
    calm = small.make_instance("code-poisson-s3", "code", generate(WorkloadSpec("code", "poisson", 0.5, 200, 3),
                                                                  small.opts.engine, 0.85, PUBLIC), "test")
    results = [small.score(i, run(small, i, srpt)) for i in (instance, other, calm)]
    shares = [(r.extra["goodput_pct"], r.extra["starved_pct"]) for r in results]
    assert shares[0] != shares[1]  # the traces of one group differ: a mean alone would hide it
    line = small.feedback_lines(results)[0]
    assert line == (f"Goodput % / starved % per trace: code s3 {shares[2][0]:.1f}/{shares[2][1]:.1f}; mixed small "
                    f"{shares[0][0]:.1f}/{shares[0][1]:.1f}, s7 {shares[1][0]:.1f}/{shares[1][1]:.1f}")


def test_the_fine_print_context_md_gives_about_the_rules_arguments_is_what_the_simulator_does(
        small: ServingVerifier, instance: Instance) -> None:
    """What clean-room agents asked (problems/serving/context.md, "Fine print"): blocks_needed is
    the whole prompt's (plus generated tokens) less the blocks held, not the next chunk's; waited is
    the age since arrival, running requests' too; the rule is asked only with two or more waiting
    requests or two or more running ones. Checked on every call of a run with a small KV cache."""
    seen: list[dict[str, Any]] = []

    def record(**kw: Any) -> np.ndarray:
        seen.append({k: np.array(v, copy=True) for k, v in kw.items()})
        return srpt(**kw)

    run(small, instance, record)
    assert len(seen) > 20
    chunked = decoding = 0
    for kw in seen:
        waiting, running = kw["running"] == 0, kw["running"] == 1
        need = -(-(kw["prompt_len"] + kw["generated"]) // 16) - kw["blocks_held"]
        assert np.array_equal(kw["blocks_needed"], need)
        assert (kw["blocks_held"][waiting] == 0).all() and (kw["computed"][waiting] == 0).all()
        chunked += int((waiting & (kw["prompt_len"] > small.opts.engine.max_num_batched_tokens)).sum())
        decode = running & (kw["computed"] == kw["prompt_len"] + kw["generated"] - 1)
        decoding += int(decode.sum())
        assert set(kw["blocks_needed"][decode].tolist()) <= {0, 1}
        assert np.allclose(kw["waited"], kw["now"] - kw["arrival"])  # running ones too: their age
        assert kw["queue_len"] >= 2 or kw["num_running"] >= 2
    assert chunked and decoding  # whole prompts beyond one chunk were seen waiting; decodes running
    text = " ".join((PROBLEM / "context.md").read_text().split())
    for said in ("blocks_needed = ceil((prompt_len + generated) / 16) - blocks_held, the whole prompt's (not "
                 "the next chunk's)", "waited = now - arrival, running requests' too",
                 "Not called when no waiting request fits alone"):
        assert said in text
    from evolve.problem import load_problem

    docs = {i.name: i.doc for rule in load_problem("serving").spec.rule for i in rule.inputs}  # the GP's inputs
    assert docs["waited"] == "time since each request arrived (s), running ones too"
    assert docs["blocks_needed"] == "KV blocks its whole prompt and generated tokens lack"
