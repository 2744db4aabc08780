"""Backend for any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, OpenAI).

Used when the user passes ``--api-base``: talking to ``/v1/chat/completions``
directly avoids litellm's multi-second import and its provider routing, which a
local server does not need. Completions go through a plain keep-alive HTTP
client (``http_chat``, ~0.07 ms of CPU per call against the openai client's ~1.6)
unless a proxy is configured for the endpoint; the preflight probe and the model
list use the ``openai`` client. Either way our retry policy, error
classification and pricing apply unchanged.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evolve.llm.base import Completion, LLMError, ProposalRequest
from evolve.llm.http_chat import ChatEndpoint, Sent, usable
from evolve.llm.pricing import cost_usd
from evolve.llm.retry import RetryPolicy, complete_with_retries

# litellm-style prefixes that mean "an OpenAI-compatible endpoint"; the server
# itself knows the model by the remaining name (``hosted_vllm/Qwen/Qwen2.5-7B``
# is served as ``Qwen/Qwen2.5-7B``). Any other first path component is part of
# the served name and is kept.
OPENAI_COMPATIBLE_PREFIXES = frozenset(
    {"openai", "hosted_vllm", "vllm", "ollama", "ollama_chat", "lm_studio", "llamafile",
     "openai_like", "custom_openai"}
)

# Local servers ignore the key but the openai client refuses to start without one.
PLACEHOLDER_KEY = "EMPTY"

# The preflight request: as small as a chat request gets, and cheap to answer.
PROBE_MESSAGES = [{"role": "user", "content": "Reply with the single word OK."}]
PROBE_MAX_TOKENS = 16


def split_provider(model: str) -> tuple[str | None, str]:
    """``"hosted_vllm/Qwen/Q"`` -> ``("hosted_vllm", "Qwen/Q")``; unknown prefix -> ``(None, model)``."""
    head, sep, rest = model.partition("/")
    if sep and rest and head in OPENAI_COMPATIBLE_PREFIXES:
        return head, rest
    return None, model


@dataclass
class OpenAICompatLLM:
    """One model behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    model: str  # the spec as the user wrote it, e.g. "openai/gpt-4.1-mini"
    api_base: str | None = None
    seed: int = 0
    temperature: float = 0.8
    max_tokens: int = 4096
    timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str = ""
    # Completions through the plain keep-alive client where it can reach api_base;
    # False: always the openai client (tests compare the two).
    plain_http: bool = True
    provider: str | None = field(default=None, init=False)  # "openai", "hosted_vllm", ...
    served_model: str = field(default="", init=False)  # the name the server knows
    # repr=False: the client holds the API key; keep it out of reprs and logs.
    _client: Any = field(default=None, init=False, repr=False)
    # The loop proposes from a thread pool: build the client once, not per thread.
    _client_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    # The plain client for completions (None: use the openai client); also holds the key.
    _endpoint: ChatEndpoint | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or self.model
        self.provider, self.served_model = split_provider(self.model)

    def _get_client(self) -> Any:
        # Built on first use so constructing a backend (e.g. while validating a
        # config) neither imports openai nor reads the key.
        with self._client_lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> Any:
        import openai

        from evolve.llm.openai_body import bounded_client

        client = openai.OpenAI(
            api_key=os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY,
            base_url=self.api_base,
            timeout=self.timeout_s,
            max_retries=0,  # ours are the only retries (see retry.py)
            http_client=bounded_client(self.timeout_s),  # a reply body bounded as the plain client's
        )
        _ = client.chat.completions  # resources are built lazily too; do it now
        return client

    def _plain(self) -> ChatEndpoint | None:
        """The keep-alive client, where it reaches the endpoint as the openai client would."""
        with self._client_lock:
            if self._endpoint is None and self.plain_http and self.api_base is not None and usable(self.api_base):
                self._endpoint = ChatEndpoint(self.api_base, os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY)
            return self._endpoint

    def _body(self, request: ProposalRequest) -> dict[str, Any]:
        return {"model": self.served_model, "messages": request.messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": request.seed}

    def _attempt(self, request: ProposalRequest, sent: Sent | None = None) -> Any:
        """One try; ``sent``: the request was sent already (``begin``), only its reply is read."""
        endpoint = self._plain()
        if endpoint is not None:
            try:
                if sent is not None:
                    return endpoint.receive(sent)
                return endpoint.post(self._body(request), self.timeout_s)
            except json.JSONDecodeError as exc:  # 200 with a body that is not JSON
                raise LLMError(f"{self.model}: empty completion (malformed reply: {type(exc).__name__})") from None
        import openai

        try:
            return self._get_client().chat.completions.create(
                model=self.served_model,
                messages=request.messages,  # type: ignore[arg-type]
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                seed=request.seed,
            )
        except (json.JSONDecodeError, openai.APIResponseValidationError) as exc:
            # 200 with a body that is not valid JSON / not a completion object.
            raise LLMError(
                f"{self.model}: empty completion (malformed reply: {type(exc).__name__})"
            ) from None

    def probe(self, timeout_s: float) -> Any:
        """One minimal request (preflight): raises the client's exception on failure."""
        return self._get_client().chat.completions.create(
            model=self.served_model, messages=PROBE_MESSAGES,  # type: ignore[arg-type]
            max_tokens=PROBE_MAX_TOKENS, timeout=timeout_s,
        )

    def list_models(self, timeout_s: float) -> list[str]:
        """Names the server says it serves (``GET /models``); [] if it cannot say."""
        try:
            page = self._get_client().models.list(timeout=timeout_s)
            return sorted(str(m.id) for m in page.data)
        except Exception:  # any failure: the caller falls back to a generic hint
            return []

    def complete(self, request: ProposalRequest) -> Completion:
        # Client set-up (importing openai, ~2 s once) is not the model's latency.
        if self._plain() is None:
            self._get_client()
        return self._with_retries(lambda: self._attempt(request), request, time.monotonic())

    def begin(self, request: ProposalRequest) -> PendingCompletion | None:
        """``complete`` in two steps: the request is sent now, and ``PendingCompletion.result``
        reads its reply (then retries as ``complete`` would) in whichever thread calls it. The
        loop sends the next request while a child is evaluated and reads the answer once that
        child is archived, with no proposal thread between. None where the plain client is not
        used (the openai client's call is one piece): the caller then calls ``complete``."""
        endpoint = self._plain()
        if endpoint is None:
            return None
        started = time.monotonic()
        return PendingCompletion(self, request, endpoint.send(self._body(request), self.timeout_s), started)

    def _with_retries(self, attempt: Callable[[], Any], request: ProposalRequest, started: float) -> Completion:
        return complete_with_retries(
            attempt,
            model=self.model, policy=self.retry, timeout_s=self.timeout_s,
            seed=self.seed, iteration=request.iteration,
            cost=lambda _response, tokens_in, tokens_out: cost_usd(
                self.provider, self.served_model, tokens_in, tokens_out
            ),
            started=started,
        )


@dataclass
class PendingCompletion:
    """A request ``OpenAICompatLLM.begin`` sent; ``result`` reads its reply, once."""

    llm: OpenAICompatLLM
    request: ProposalRequest
    sent: Sent
    started: float  # time.monotonic() when it was sent: the Completion's seconds count from it

    def answered(self) -> bool:
        """The reply has begun to arrive (or sending failed): ``result`` would not wait for the
        server to start answering."""
        return self.sent.answered()

    def result(self) -> Completion:
        """The completion, as ``complete`` gives it: the first try is the request already sent,
        the retries (if it fails) are new requests."""
        first = [self.sent]
        return self.llm._with_retries(
            lambda: self.llm._attempt(self.request, first.pop() if first else None), self.request, self.started)

    def discard(self) -> None:
        """Never to be read (the run stopped): its connection is closed."""
        self.sent.discard()
