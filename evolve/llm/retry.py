"""Our one retry loop for every HTTP backend, and error text that never leaks keys.

The client libraries' own retries are switched off (openai ``max_retries=0``,
litellm ``num_retries=0``) so the policy here is the only one: attempts, delays
and the final message are the same whichever library made the call.
"""

from __future__ import annotations

import email.utils
import os
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from evolve.llm.base import Completion, LLMConfigError, LLMError
from evolve.llm.http_chat import EndpointConnectionError

__all__ = ["LLMConfigError", "RetryPolicy", "Failure", "classify", "call_with_retries",
           "complete_with_retries", "redact", "parse_retry_after"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    # Delay before retry k (0-based) is base * 2**k, capped, with "equal jitter"
    # (half fixed, half random) so concurrent runs do not retry in lockstep.
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    # A server's Retry-After is honoured but capped: a misconfigured proxy must
    # not park the run for an hour.
    retry_after_cap_s: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        delay = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        return delay / 2 + rng.uniform(0, delay / 2)


@dataclass(frozen=True)
class Failure:
    retryable: bool
    summary: str  # one line, already redacted
    retry_after_s: float | None = None
    status: int | None = None
    # Will fail the same way on every call (wrong key, unknown model, nothing
    # listening): not retried, and the loop stops after a few in a row.
    permanent: bool = False
    kind: str = "other"


_RETRYABLE_STATUS = {408, 409, 429}
_STATUS_TEXT = {
    400: "bad request",
    401: "authentication failed (check the API key in the environment)",
    403: "permission denied",
    404: "not found",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    422: "unprocessable request",
    429: "rate limited",
}
_KEY_PATTERNS = [
    re.compile(r"\b(?:sk|pk|rk|key)-[A-Za-z0-9_\-*.]{6,}"),
    re.compile(r"(?i)\bbearer\s+\S+"),
    re.compile(r"(?i)(api[_-]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
]


def _secret_values() -> list[str]:
    names = [n for n in os.environ if re.search(r"(KEY|TOKEN|SECRET)$", n.upper())]
    return [v for n in names if len(v := os.environ[n]) >= 6]


def redact(text: str, limit: int = 200) -> str:
    """One line, at most ``limit`` chars, with env secrets and key-like tokens masked.

    Providers echo (partially masked) keys in 401 bodies and clients put them in
    reprs; any text that reaches an LLMError passes through here first.
    """
    for secret in _secret_values():
        text = text.replace(secret, "***")
    for pattern in _KEY_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    # A lone surrogate (JSON's "\ud800" in an error body) is written out: none can enter the
    # archive, and one stopped the run at the failed attempt's write (seventh red team).
    text = " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _header(headers: object, name: str) -> str | None:
    getter = getattr(headers, "get", None)
    value = getter(name) if callable(getter) else None
    return value if isinstance(value, str) else None


def parse_retry_after(headers: object) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_detail(exc: BaseException) -> str:
    """The server's own error message if it sent a JSON one, else the exception text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else None
        if isinstance(message, str) and message:
            return message
    return getattr(exc, "message", None) or str(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes: litellm wraps openai, which wraps httpx, which wraps OSError."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 16 and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# Texts that identify a failure when a library dropped the exception chain.
_REFUSED_TEXT = re.compile(r"connection refused|errno 111\b|errno 61\b", re.I)
_DNS_TEXT = re.compile(r"name or service not known|nodename nor servname|temporary failure in name "
                       r"resolution|getaddrinfo failed|no address associated", re.I)
_CREDENTIALS_TEXT = re.compile(r"missing credentials|api_key client option must be set|"
                               r"no api key|api key (?:is )?(?:not set|missing|required)", re.I)
_PROVIDER_TEXT = re.compile(r"LLM Provider NOT provided", re.I)

PERMANENT_HINTS = {
    "connection_refused": "nothing listens there: start the server or fix --api-base",
    "dns": "the host name does not resolve: check --api-base or the network",
    "credentials": "set the provider's API key in the environment",
    "provider": "prefix the model with a litellm provider, e.g. openai/, anthropic/, gemini/, "
                "ollama/, or give --api-base for an OpenAI-compatible server",
    "auth": "check the API key in the environment",
    "not_found": "check the model name (and --api-base)",
}


def _permanent_cause(exc: BaseException) -> tuple[str, str] | None:
    """(kind, summary) when the failure cannot go away by retrying, else None."""
    chain = _chain(exc)
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            return "connection_refused", "connection refused"
        if isinstance(link, socket.gaierror):
            return "dns", "DNS lookup failed (host name does not resolve)"
    text = " ".join(str(link) for link in chain)
    if _PROVIDER_TEXT.search(text):
        return "provider", "unknown provider (litellm cannot route this model name)"
    if _CREDENTIALS_TEXT.search(text):
        return "credentials", "missing credentials"
    if _REFUSED_TEXT.search(text):
        return "connection_refused", "connection refused"
    if _DNS_TEXT.search(text):
        return "dns", "DNS lookup failed (host name does not resolve)"
    return None


def classify(exc: BaseException, timeout_s: float) -> Failure:
    """Map an openai/litellm/httpx exception to retryable, final or permanent, with a safe summary.

    litellm's exceptions subclass openai's, so one mapping serves both backends;
    the plain client (``http_chat``) raises exceptions with the same attributes.
    Permanent causes are looked for first: litellm reports a refused connection
    or a missing key as an HTTP 500, which alone would look transient.
    """
    import openai  # cheap, and always present: litellm depends on it too

    if isinstance(exc, (openai.APITimeoutError, TimeoutError)):
        return Failure(True, f"timeout after {timeout_s:g}s", kind="timeout")
    permanent = _permanent_cause(exc)
    if permanent is not None:
        kind, summary = permanent
        return Failure(False, f"{summary} ({PERMANENT_HINTS[kind]})", permanent=True, kind=kind)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, (openai.APIConnectionError, EndpointConnectionError)) and not (
        isinstance(status, int) and status < 500
    ):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else type(exc).__name__
        return Failure(True, f"connection error ({cause})", kind="connection")
    if isinstance(status, int):
        response = getattr(exc, "response", None)
        headers = getattr(exc, "litellm_response_headers", None) or getattr(response, "headers", None)
        retryable = status in _RETRYABLE_STATUS or status >= 500
        text = _STATUS_TEXT.get(status, "server error" if status >= 500 else "client error")
        summary = f"HTTP {status} {text}"
        # Auth bodies are the ones that echo keys; say nothing more about them.
        if status not in (401, 403):
            detail = redact(_error_detail(exc), limit=160)
            if detail:
                summary += f": {detail}"
        retry_after = parse_retry_after(headers) if retryable else None
        kind = {401: "auth", 403: "auth", 404: "not_found"}.get(status, f"http_{status}")
        return Failure(retryable, summary, retry_after, status,
                       permanent=status in (401, 403, 404), kind=kind)
    return Failure(False, redact(f"{type(exc).__name__}: {exc}"))


def call_with_retries(
    attempt_fn: Callable[[], T],
    *,
    model: str,
    policy: RetryPolicy,
    timeout_s: float,
    rng: random.Random | str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt_fn`` until it succeeds, a failure is final, or retries run out.

    ``rng`` jitters the backoff: a generator, or the seed of one made at the first backoff
    (seeding one from a string costs ~10-25 us, and most calls never back off).

    ``attempt_fn`` raises ``LLMError`` itself for replies that arrived but are
    unusable (empty/malformed): those are not retried, since the same prompt at
    the same settings tends to fail the same way and every retry is paid for.
    """
    attempts = max(0, policy.max_retries) + 1
    last: Failure | None = None
    for attempt in range(attempts):
        try:
            return attempt_fn()
        except LLMError:
            raise
        except Exception as exc:  # any client error becomes one safe line
            last = classify(exc, timeout_s)
        if not last.retryable:
            # 400 is not permanent: e.g. one over-long prompt; later ones may fit.
            error = LLMConfigError if last.permanent else LLMError
            # ``from None``: the client exception carries request headers (the key).
            raise error(f"{model}: {last.summary}", kind=last.kind) from None
        if attempt + 1 < attempts:
            if last.retry_after_s is not None:
                delay = min(last.retry_after_s, policy.retry_after_cap_s)
            else:
                if isinstance(rng, str):
                    rng = random.Random(rng)
                delay = policy.backoff(attempt, rng)
            sleep(delay)
    assert last is not None
    plural = "s" if attempts != 1 else ""
    raise LLMError(f"{model}: failed after {attempts} attempt{plural}; last error: {last.summary}",
                   kind=last.kind)


def complete_with_retries(
    call: Callable[[], Any],
    *,
    model: str,
    policy: RetryPolicy,
    timeout_s: float,
    seed: int,
    iteration: int,
    cost: Callable[[Any, int, int], float],
    started: float | None = None,
) -> Completion:
    """One proposal: the call under our retry policy, parsed into a Completion.

    Backoff is seeded per (seed, iteration), so a resumed run backs off the
    same way; ``cost(response, prompt_tokens, completion_tokens)`` prices it.
    ``started`` (``time.monotonic()``): when the first try was sent, if before this call.
    """
    from evolve.llm.reply import extract_reply

    start = time.monotonic() if started is None else started
    response = call_with_retries(call, model=model, policy=policy, timeout_s=timeout_s,
                                 rng=f"backoff:{seed}:{iteration}")
    reply = extract_reply(response, model)
    return Completion(
        text=reply.text,
        model=model,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        cost_usd=cost(response, reply.prompt_tokens, reply.completion_tokens),
        seconds=time.monotonic() - start,
    )
