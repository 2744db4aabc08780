"""Backend for hosted providers through ``litellm.completion``.

litellm maps ``anthropic/...``, ``gemini/...``, ``ollama/...`` etc. to each
provider's API and reads each provider's key from its usual environment
variable (``ANTHROPIC_API_KEY``, ...); we never pass or store keys ourselves,
except the placeholder an OpenAI-compatible local server needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evolve.llm.base import Completion, ProposalRequest
from evolve.llm.openai_body import call_timeout
from evolve.llm.openai_compat import (
    OPENAI_COMPATIBLE_PREFIXES,
    PLACEHOLDER_KEY,
    PROBE_MAX_TOKENS,
    PROBE_MESSAGES,
)
from evolve.llm.retry import RetryPolicy, complete_with_retries


def import_litellm() -> ModuleType:
    """Import litellm (slow: ~3 s) only when a litellm model is actually used."""
    # Without this, importing litellm fetches its price table from GitHub: a
    # network call at import time, and a hang on offline machines.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    # Otherwise litellm prints "Give Feedback / Get Help" banners on every error.
    litellm.suppress_debug_info = True
    return litellm


def bound_litellm(litellm: ModuleType, timeout_s: float) -> None:
    """Every reply litellm reads bounded as the openai client's (``openai_body``): 64 MiB of body,
    inflated to 64 MiB at most, head and body within the call's timeout.  Its OpenAI-compatible
    calls take the openai client's HTTP client from ``client_session``; every other provider's
    HTTP client is made by ``HTTPHandler.create_client``, which is wrapped here (litellm offers no
    setting for it).  Without either, a hostile server's gzip bomb was inflated whole and run
    through litellm's secret-redacting patterns, and ``100 Continue`` replies held a call for
    ever (ninth red team; ``test_http_chat.py``)."""
    from litellm.llms.custom_httpx.http_handler import HTTPHandler

    from evolve.llm.openai_body import bound, bounded_client
    from evolve.llm.token_requests import bound_aws_requests, bound_google_token

    if litellm.client_session is None:
        litellm.client_session = bounded_client(timeout_s)
    bound_databricks_token(timeout_s)
    bound_aws_requests(timeout_s)  # Bedrock's STS and credential requests (botocore)
    bound_google_token(timeout_s)  # Vertex's token refresh (google-auth)
    made = HTTPHandler.create_client
    if getattr(made, "bounded", False):
        return

    def create_client(self: Any) -> Any:
        return bound(made(self), timeout_s)

    create_client.bounded = True  # type: ignore[attr-defined]
    HTTPHandler.create_client = create_client


@dataclass
class LiteLLMBackend:
    model: str  # a litellm model string, e.g. "anthropic/claude-sonnet-4-5"
    api_base: str | None = None
    seed: int = 0
    temperature: float = 0.8
    max_tokens: int = 4096
    timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str = ""
    _litellm: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = self.name or self.model

    def _kwargs(self, request: ProposalRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": request.seed,
            "timeout": self.timeout_s,
            # Ours are the only retries: litellm's wrapper and the openai client
            # it drives would otherwise multiply them.
            "num_retries": 0,
            "max_retries": 0,
            # e.g. o-series models reject temperature/seed; drop, don't fail.
            "drop_params": True,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
            provider = self.model.partition("/")[0]
            if provider in OPENAI_COMPATIBLE_PREFIXES and not os.environ.get("OPENAI_API_KEY"):
                kwargs["api_key"] = PLACEHOLDER_KEY
        return kwargs

    def _cost(self, response: Any) -> float:
        try:
            cost = self._litellm.completion_cost(completion_response=response)
        except Exception:  # litellm raises for models missing from its price map
            return 0.0
        return float(cost) if isinstance(cost, (int, float)) and cost > 0 else 0.0

    def litellm(self) -> Any:
        if self._litellm is None:
            self._litellm = import_litellm()
            bound_litellm(self._litellm, self.timeout_s)
        return self._litellm

    def probe(self, timeout_s: float) -> Any:
        """One minimal request (preflight): raises litellm's exception on failure."""
        probe = ProposalRequest(messages=PROBE_MESSAGES, iteration=0, seed=0, mode="diff",
                                parent_code="")
        kwargs = self._kwargs(probe)
        kwargs.update(max_tokens=PROBE_MAX_TOKENS, timeout=timeout_s)
        for key in ("temperature", "seed"):
            kwargs.pop(key)
        litellm = self.litellm()
        with call_timeout(timeout_s):
            return litellm.completion(**kwargs)

    def _completion(self, kwargs: dict[str, Any]) -> Any:
        # litellm's clients are bounded once per process (bound_litellm, by the first backend):
        # this call's timeout reaches them here.
        with call_timeout(self.timeout_s):
            return self._litellm.completion(**kwargs)

    def complete(self, request: ProposalRequest) -> Completion:
        self.litellm()
        kwargs = self._kwargs(request)
        return complete_with_retries(
            lambda: self._completion(kwargs),
            model=self.model, policy=self.retry, timeout_s=self.timeout_s,
            seed=self.seed, iteration=request.iteration,
            cost=lambda response, _in, _out: self._cost(response),
        )


def bound_databricks_token(timeout_s: float) -> None:
    """Databricks' OAuth M2M token request (with ``DATABRICKS_CLIENT_ID`` and ``_SECRET``) made
    through our bounded client.  litellm makes it with ``requests`` (30 s per read, the body read
    whole) to the workspace that serves the model: a host dripping its reply held a call with a
    1 s timeout for as long as it liked (eleventh red team; ``test_http_chat.py``).  The same
    request, form and errors as litellm's own (1.110); left alone where litellm has no such
    method.  Google's and AWS's token requests go to their identity services, not to the host
    that serves the model, and stay as they are."""
    try:
        from litellm.llms.databricks import common_utils
    except ImportError:
        return
    base = getattr(common_utils, "DatabricksBase", None)
    made = getattr(base, "get_oauth_m2m_token_and_lifetime", None)
    if made is None or getattr(made, "bounded", False):
        return

    def token(self: Any, api_base: str, client_id: str, client_secret: str) -> Any:
        from evolve.llm.openai_body import bounded_client

        parts = urlsplit(api_base)
        url = common_utils.join_api_base(urlunsplit((parts.scheme, parts.netloc, "", "", "")), "oidc/v1/token")
        try:
            with bounded_client(timeout_s) as client:
                response = client.post(url, data={"grant_type": "client_credentials", "scope": "all-apis"},
                                       auth=(client_id, client_secret), timeout=timeout_s)
        except Exception as exc:  # httpx's or httpx2's errors (whichever the openai client uses), as litellm's RequestException
            raise common_utils.DatabricksException(
                status_code=500, message=f"OAuth M2M token request failed: {exc}") from None
        if response.status_code != 200:
            raise common_utils.DatabricksException(
                status_code=response.status_code, message=f"OAuth M2M token request failed: {response.text}")
        return common_utils.OAuthM2MToken.model_validate(response.json())

    token.bounded = True  # type: ignore[attr-defined]
    base.get_oauth_m2m_token_and_lifetime = token
