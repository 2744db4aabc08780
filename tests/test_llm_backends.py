"""LLM backends over real HTTP against the fake server in tests/llm_server.py."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import (
    FakeLLMServer,
    drop,
    hang,
    http_error,
    malformed,
    no_choices,
    no_content,
    ok,
    serve,
)
from llm_server import empty as empty_reply

from evolve.errors import UserError
from evolve.llm import LLMConfigError, LLMError, ProposalRequest, make_llm, parse_spec
from evolve.llm.ensemble import EnsembleLLM
from evolve.llm.openai_compat import OpenAICompatLLM
from evolve.llm.record import RECORD_KEYS, ReplayEnded
from evolve.llm.retry import RetryPolicy, call_with_retries, redact

KEY = "sk-test-DO-NOT-LEAK-0123456789abcdef"
MODEL = "openai/gpt-4.1-mini"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    yield from serve()


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


def request(iteration: int = 0, seed: int = 7) -> ProposalRequest:
    return ProposalRequest(messages=[{"role": "user", "content": "improve the heuristic"}],
                           iteration=iteration, seed=seed, mode="diff", parent_code="def f(): ...")


def llm_for(server: FakeLLMServer, spec: str = MODEL, **kw: object):
    kw.setdefault("retry_base_delay_s", 0.01)
    kw.setdefault("timeout_s", 5.0)
    return make_llm(spec, api_base=server.base_url, **kw)  # type: ignore[arg-type]


def assert_clean(message: str) -> None:
    assert KEY not in message and "sk-test" not in message
    assert "\n" not in message


# -- the OpenAI-compatible backend -----------------------------------------------------------

def test_success_reports_text_usage_cost_and_sends_key_and_stripped_model(server):
    server.enqueue(ok("def priority(job): return job.due", prompt_tokens=100, completion_tokens=20))
    llm = llm_for(server, temperature=0.3, max_tokens=256)
    assert isinstance(llm, OpenAICompatLLM) and llm.name == MODEL
    c = llm.complete(request(seed=42))
    assert c.text == "def priority(job): return job.due"
    assert (c.model, c.prompt_tokens, c.completion_tokens) == (MODEL, 100, 20)
    # gpt-4.1-mini is in litellm's price map: 100 * 4e-7 + 20 * 1.6e-6.
    assert c.cost_usd == pytest.approx(100 * 4e-7 + 20 * 1.6e-6)
    assert c.seconds > 0
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.body["model"] == "gpt-4.1-mini"
    assert req.body["messages"] == request().messages
    assert (req.body["temperature"], req.body["max_tokens"], req.body["seed"]) == (0.3, 256, 42)


def test_local_model_costs_nothing_and_keeps_its_tag(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    c = llm_for(server, "ollama/qwen2.5-coder:7b").complete(request())
    assert c.cost_usd == 0.0 and c.model == "ollama/qwen2.5-coder:7b"
    assert server.requests[0].body["model"] == "qwen2.5-coder:7b"
    assert server.requests[0].headers["authorization"] == "Bearer EMPTY"


def test_429_is_retried_after_the_retry_after_header(server):
    server.enqueue(http_error(429, retry_after="1"), ok("second try"))
    c = llm_for(server).complete(request())
    assert c.text == "second try"
    first, second = server.requests
    assert second.at - first.at >= 0.9  # the header, not the 10 ms base delay
    assert c.seconds >= 0.9  # wall time includes the wait


def test_retry_after_is_capped(server):
    server.enqueue(http_error(503, retry_after="30"), ok("fine"))
    llm = OpenAICompatLLM(MODEL, api_base=server.base_url,
                          retry=RetryPolicy(base_delay_s=0.01, retry_after_cap_s=0.2))
    start = time.monotonic()
    assert llm.complete(request()).text == "fine"
    assert time.monotonic() - start < 15  # the header's 30 s would be twice that (no machine is that slow)


def test_500_then_success(server):
    server.enqueue(http_error(500), ok("recovered"))
    assert llm_for(server).complete(request()).text == "recovered"
    assert len(server.requests) == 2


def test_timeout_then_success(server):
    server.enqueue(hang(2.0), ok("fast now"))
    c = llm_for(server, timeout_s=0.3).complete(request())
    assert c.text == "fast now"
    assert len(server.requests) == 2
    assert c.seconds >= 0.3


def test_401_fails_at_once_without_retry_or_key(server):
    server.enqueue(http_error(401, message=f"Incorrect API key provided: {KEY}"))
    with pytest.raises(LLMConfigError) as info:
        llm_for(server).complete(request())
    assert str(info.value) == ("openai/gpt-4.1-mini: HTTP 401 authentication failed "
                               "(check the API key in the environment)")
    assert len(server.requests) == 1


@pytest.mark.parametrize("status, error", [(400, LLMError), (404, LLMConfigError)])
def test_client_errors_fail_at_once_and_redact_echoed_keys(server, status, error):
    server.enqueue(http_error(status, message=f"model nope does not exist (key {KEY})"))
    with pytest.raises(LLMError) as info:
        llm_for(server).complete(request())
    assert type(info.value) is error
    message = str(info.value)
    assert message.startswith(f"{MODEL}: HTTP {status} ") and "does not exist" in message
    assert_clean(message)
    assert len(server.requests) == 1


@pytest.mark.parametrize("behaviour, detail", [
    (malformed(), "malformed reply"),
    (no_choices(), "malformed reply: no choices"),
    (no_content(), "malformed reply: no message content"),
    (empty_reply(""), "empty completion"),
    (empty_reply(" \n\t "), "empty completion"),
])
def test_unusable_replies_are_llm_errors_not_crashes(server, behaviour, detail):
    server.enqueue(behaviour)
    with pytest.raises(LLMError) as info:
        llm_for(server).complete(request())
    assert str(info.value).startswith(f"{MODEL}: empty completion")
    assert detail in str(info.value)
    assert len(server.requests) == 1  # an answered-but-unusable call is not re-bought


def test_retries_exhausted_names_model_and_last_error_without_key(server):
    server.set_default(http_error(503, message=f"overloaded, key={KEY}"))
    with pytest.raises(LLMError) as info:
        llm_for(server, max_retries=2).complete(request())
    message = str(info.value)
    assert message.startswith(f"{MODEL}: failed after 3 attempts; last error: HTTP 503")
    assert "overloaded" in message
    assert_clean(message)
    assert len(server.requests) == 3


def test_timeouts_exhausted(server):
    server.set_default(hang(2.0))
    with pytest.raises(LLMError, match=r"failed after 2 attempts; last error: timeout after 0.2s"):
        llm_for(server, timeout_s=0.2, max_retries=1).complete(request())


def test_connection_refused_fails_at_once_as_permanent():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = make_llm(MODEL, api_base=f"http://127.0.0.1:{port}/v1", max_retries=3,
                   retry_base_delay_s=10.0)
    start = time.monotonic()
    with pytest.raises(LLMConfigError) as info:
        llm.complete(request())
    assert time.monotonic() - start < 5.0  # no backoff: the first retry alone would wait 5-10 s
    assert str(info.value) == (f"{MODEL}: connection refused (nothing listens there: start the "
                               "server or fix --api-base)")
    assert info.value.kind == "connection_refused"


def test_unresolvable_host_fails_at_once_as_permanent():
    llm = make_llm(MODEL, api_base="http://no-such-host.invalid/v1", max_retries=3)
    with pytest.raises(LLMConfigError, match="DNS lookup failed") as info:
        llm.complete(request())
    assert info.value.kind == "dns"


def test_a_dropped_connection_is_transient_and_retried(server):
    server.enqueue(drop(), ok("after the drop"))
    assert llm_for(server).complete(request()).text == "after the drop"
    assert len(server.requests) == 2


def test_litellm_without_a_key_is_a_permanent_credentials_failure(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    llm = make_llm("openai/gpt-4o-mini", max_retries=3)
    with pytest.raises(LLMConfigError, match="missing credentials") as info:
        llm.complete(request())  # litellm raises this as an HTTP 500 before any network
    assert info.value.kind == "credentials"  # permanent: never retried (see the 401 test)


def test_litellm_unknown_provider_is_a_permanent_failure():
    with pytest.raises(LLMConfigError, match="unknown provider") as info:
        make_llm("foo/bar", max_retries=3).complete(request())
    assert info.value.kind == "provider"


def test_backoff_is_seeded_exponential_with_jitter():
    def delays(seed: str) -> list[float]:
        slept: list[float] = []

        def always_503() -> None:
            raise TimeoutError
        with pytest.raises(LLMError):
            call_with_retries(always_503, model="m", policy=RetryPolicy(max_retries=4),
                              timeout_s=1, rng=random.Random(seed), sleep=slept.append)
        return slept

    a = delays("x")
    assert a == delays("x") and a != delays("y")
    for k, d in enumerate(a):
        assert 2**k / 2 <= d <= 2**k

    def seeded(seed: str) -> list[float]:  # the generator made at the first backoff, from its seed
        slept: list[float] = []

        def always_503() -> None:
            raise TimeoutError
        with pytest.raises(LLMError):
            call_with_retries(always_503, model="m", policy=RetryPolicy(max_retries=4),
                              timeout_s=1, rng=seed, sleep=slept.append)
        return slept

    assert seeded("x") == a and seeded("y") == delays("y")


def test_redact_masks_env_secrets_and_key_shapes(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "abcdef-secret-value")
    text = redact("a abcdef-secret-value b sk-proj-12345678 c Bearer xyz\nd api_key=foo123")
    assert "secret-value" not in text and "12345678" not in text and "xyz" not in text
    assert "foo123" not in text and "\n" not in text


# -- ensemble -------------------------------------------------------------------------------

def test_ensemble_is_deterministic_weighted_and_routes_by_model(server):
    spec = "openai/cheap:0.8,openai/strong:0.2"
    llm = llm_for(server, spec, seed=3)
    assert isinstance(llm, EnsembleLLM)
    picks = [llm.pick(i).name for i in range(2000)]
    again = llm_for(server, spec, seed=3)
    assert picks == [again.pick(i).name for i in range(2000)]
    other = llm_for(server, spec, seed=4)
    assert picks != [other.pick(i).name for i in range(2000)]
    assert 0.75 < picks.count("openai/cheap") / 2000 < 0.85
    # A resumed run asking for iteration 17 alone gets the same member.
    assert llm_for(server, spec, seed=3).pick(17).name == picks[17]
    for i in range(6):
        c = llm.complete(request(iteration=i))
        assert c.model == picks[i]
        assert server.requests[-1].body["model"] == picks[i].split("/", 1)[1]


# -- record / replay ------------------------------------------------------------------------

def test_record_then_replay_round_trip(server, tmp_path):
    log = tmp_path / "run" / "llm.jsonl"
    server.enqueue(ok("A0", 10, 1), ok("A1", 20, 2), ok("A1-again", 30, 3))
    llm = llm_for(server, record=log)
    originals = [llm.complete(request(0)), llm.complete(request(1)), llm.complete(request(1))]
    server.enqueue(http_error(401))
    with pytest.raises(LLMError):  # failures are not recorded
        llm.complete(request(2))

    lines = log.read_text().splitlines()
    assert len(lines) == 3
    assert all(tuple(json.loads(line)) == RECORD_KEYS for line in lines)
    assert KEY not in log.read_text() and "improve the heuristic" not in log.read_text()

    replay = make_llm(f"replay:{log}")
    before = len(server.requests)
    again = [replay.complete(request(0)), replay.complete(request(1)), replay.complete(request(1))]
    assert len(server.requests) == before  # no network
    for orig, rep in zip(originals, again, strict=True):
        assert (rep.text, rep.model, rep.prompt_tokens, rep.completion_tokens, rep.cost_usd) == (
            orig.text, orig.model, orig.prompt_tokens, orig.completion_tokens, orig.cost_usd)
    with pytest.raises(LLMError, match="has no completion for iteration 1"):
        replay.complete(request(1))
    # Past the recording's last iteration every request fails the same way: the loop stops.
    with pytest.raises(ReplayEnded, match=rf"replay {log} ends at iteration 1 .* asked for "
                       r"iteration 2; replay with --iterations 1 or fewer$") as ended:
        replay.complete(request(2))
    assert ended.value.kind == "replay_end"


def test_a_replay_iteration_missing_inside_the_recording_is_an_ordinary_failure(tmp_path):
    log = tmp_path / "gap.jsonl"  # iteration 2's call failed in the original run: not recorded
    log.write_text("".join(json.dumps({"iteration": i, "model": "m", "text": f"T{i}"}) + "\n"
                           for i in (1, 3)))
    replay = make_llm(f"replay:{log}")
    with pytest.raises(LLMError, match=rf"replay {log} has no completion for iteration 2$") as info:
        replay.complete(request(2))
    assert not isinstance(info.value, ReplayEnded)
    assert replay.complete(request(3)).text == "T3"


@pytest.mark.parametrize("content, fragment", [
    ("", "has no completions"),
    ("{not json\n", "line 1: not JSON"),
    ('[1, 2]\n', "line 1: not a JSON object"),
    ('{"iteration": 0, "model": "m", "text": "t"}\n{"iteration": "1", "model": "m", '
     '"text": "t"}\n', "line 2: 'iteration' is '1'"),
    ('{"iteration": 0, "model": "m"}\n', "'text' is missing"),
    ('{"iteration": 0, "model": "m", "text": "t", "cost_usd": -1}\n', "'cost_usd' is -1"),
    ('{"iteration": 0, "model": "m", "text": "t", "lookahead": "no"}\n', "'lookahead' is 'no', not true or false"),
])
def test_malformed_replay_file_is_a_user_error(tmp_path, content, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=fragment) as info:
        make_llm(f"replay:{path}")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


# -- factory --------------------------------------------------------------------------------

def test_spec_parsing_keeps_model_tags_and_reads_weights():
    assert [(m.model, m.weight) for m in parse_spec("ollama/qwen2.5-coder:7b")] == [
        ("ollama/qwen2.5-coder:7b", 1.0)]
    assert [(m.model, m.weight) for m in parse_spec(
        " openai/gpt-4.1-mini:0.8, ollama/qwen2.5-coder:7b:.2 ,hosted_vllm/Qwen/Q:1e-1")] == [
        ("openai/gpt-4.1-mini", 0.8), ("ollama/qwen2.5-coder:7b", 0.2),
        ("hosted_vllm/Qwen/Q", 0.1)]
    assert [m.weight for m in parse_spec("a,b")] == [1.0, 1.0]
    # Without any weight in the spec a tag is a tag; a member without a colon defaults to 1.
    assert [(m.model, m.weight) for m in parse_spec("ollama/qwen2.5-coder:7b,openai/b")] == [
        ("ollama/qwen2.5-coder:7b", 1.0), ("openai/b", 1.0)]
    assert [(m.model, m.weight) for m in parse_spec("openai/a,openai/b:3")] == [
        ("openai/a", 1.0), ("openai/b", 3.0)]


@pytest.mark.parametrize("spec, fragment", [
    ("", "is empty"),
    ("   ", "is empty"),
    ("openai/a:0", "weight '0' of 'openai/a' must be a positive number"),
    ("openai/a:0.5,openai/b:-1", "weight '-1' of 'openai/b'"),
    ("openai/a,,openai/b", "empty entry"),
    ("openai/a,", "empty entry"),
    (":0.5", "has no model name"),
    ("open ai/x", "contains whitespace"),
    ("replay:", "names no file"),
    ("replay:/definitely/not/here.jsonl", "does not exist"),
    ("openai/a,replay:x.jsonl", "cannot be part of an ensemble"),
    ("replay:x.jsonl,openai/a", "cannot be part of an ensemble"),
    ("model-a:x,model-b:2", "'x' after the last colon of 'model-a:x' is not a weight; expected a "
                            r"positive number \(model-a:0.5\)"),
    ("ollama/qwen2.5-coder:7b,openai/b:2", r"explicit weight after it \(ollama/qwen2.5-coder:7b:1\)"),
    ("GP", "'GP' is not a model; the offline backends are lower case: 'gp'"),
    ("openai/a:0.5,Stub:0.5", "lower case: 'stub'"),
    ("openai/", "'openai/' names a provider but no model; expected e.g. 'openai/gpt-4.1-mini'"),
])
def test_bad_specs_are_one_line_user_errors(spec, fragment):
    with pytest.raises(UserError, match=fragment) as info:
        make_llm(spec)
    message = str(info.value)
    assert repr(spec) in message or spec.strip().removeprefix("replay:") in message
    assert "\n" not in message


@pytest.mark.parametrize("kw, fragment", [
    ({"api_base": "localhost:8000"}, "is not a URL"),
    ({"timeout_s": 0}, "timeout"),
    ({"max_retries": -1}, "max_retries"),
    ({"backend": "vllm"}, "backend 'vllm' is unknown"),
])
def test_bad_settings_are_user_errors(kw, fragment):
    with pytest.raises(UserError, match=fragment):
        make_llm(MODEL, **kw)


def test_backend_choice_and_lazy_litellm_import(server):
    # In a fresh interpreter: choosing and even calling the OpenAI-compatible
    # backend must not import litellm (seconds of start-up) -- only using it does.
    code = f"""
import sys
from evolve.llm import make_llm
from evolve.llm.litellm_backend import LiteLLMBackend
from evolve.llm.openai_compat import OpenAICompatLLM
from test_llm_backends import request
assert isinstance(make_llm("anthropic/claude-x"), LiteLLMBackend)
assert isinstance(make_llm("openai/x", api_base="http://h/v1", backend="litellm"), LiteLLMBackend)
assert isinstance(make_llm("openai/x", backend="openai"), OpenAICompatLLM)
c = make_llm("openai/gpt-4.1-mini", api_base="{server.base_url}").complete(request())
assert c.cost_usd > 0, c
assert "litellm" not in sys.modules, "litellm imported eagerly"
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin",
                                                       "PYTHONPATH": str(ROOT / "tests")})
    assert result.returncode == 0, result.stderr[-2000:]


def test_stub_spec_uses_the_stub():
    stub = pytest.importorskip("evolve.llm.stub")
    assert isinstance(make_llm("stub", seed=5), stub.StubLLM)


# -- the litellm backend, over the same real HTTP --------------------------------------------

def test_litellm_backend_over_http(server):
    llm = llm_for(server, "openai/local-coder", backend="litellm", max_retries=0)
    server.enqueue(http_error(500))
    with pytest.raises(LLMError, match=r"openai/local-coder: failed after 1 attempt; "
                                       r"last error: HTTP 500"):
        llm.complete(request())
    assert len(server.requests) == 1  # litellm's own retries are off: ours are the only ones

    server.enqueue(ok("from litellm", prompt_tokens=12, completion_tokens=3))
    c = llm.complete(request(iteration=1, seed=9))
    assert (c.text, c.model, c.prompt_tokens, c.completion_tokens) == (
        "from litellm", "openai/local-coder", 12, 3)
    assert c.cost_usd == 0.0  # unknown to litellm's price map
    last = server.requests[-1]
    assert last.headers["authorization"] == f"Bearer {KEY}"
    assert last.body["model"] == "local-coder" and last.body["seed"] == 9

    server.enqueue(http_error(429, retry_after="1"), ok("after 429"))
    retrying = llm_for(server, "openai/local-coder", backend="litellm", max_retries=1)
    assert retrying.complete(request()).text == "after 429"
    assert server.requests[-1].at - server.requests[-2].at >= 0.9


# -- preflight --------------------------------------------------------------------------------

def test_preflight_checks_every_member_of_an_ensemble_and_names_the_one_that_fails():
    from evolve.llm.preflight import PreflightError, preflight

    with FakeLLMServer(default=ok("OK"), models=["cheap"]) as server:
        llm = make_llm("openai/cheap:0.8,openai/strong:0.2", api_base=server.base_url)
        with pytest.raises(PreflightError) as info:
            preflight(llm, timeout_s=5)
        good = preflight(make_llm("openai/cheap", api_base=server.base_url), timeout_s=5)
        requests = [r.body for r in server.chat_requests()]
    assert str(info.value).startswith("openai/strong: ") and "does not serve model 'strong'" in str(info.value)
    assert "it serves: cheap" in str(info.value)
    assert [c.model for c in good] == ["openai/cheap"] and good[0].seconds is not None
    assert all(body["max_tokens"] == 16 for body in requests)  # the probe is a tiny request


def test_preflight_without_the_request_makes_no_call(server):
    from evolve.llm.preflight import preflight

    checked = preflight(llm_for(server), request=False)
    assert [(c.model, c.seconds) for c in checked] == [(MODEL, None)] and not server.requests


def test_the_price_table_is_read_once_when_several_threads_price_their_first_replies_at_once(monkeypatch):
    import threading
    import types

    from evolve.llm import pricing

    reads = []
    started = threading.Barrier(4)

    def slow_loads(text, **kwargs):
        reads.append(threading.get_ident())
        threading.Event().wait(0.05)  # a wide window for a second reader to come in
        return json.loads(text, **kwargs)

    monkeypatch.setattr(pricing, "json", types.SimpleNamespace(loads=slow_loads))
    monkeypatch.delitem(sys.modules, "litellm", raising=False)  # the bundled file, not litellm's live map
    pricing._read_price_file.cache_clear()
    costs = []

    def price() -> None:
        started.wait()
        costs.append(pricing.cost_usd("openai", "gpt-4o", 1000, 100))

    threads = [threading.Thread(target=price) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        pricing._read_price_file.cache_clear()
    assert len(reads) == 1
    assert len(costs) == 4 and len(set(costs)) == 1 and costs[0] > 0
