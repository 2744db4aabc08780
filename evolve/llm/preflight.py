"""Check every model of a run before its first iteration, and say at once what is wrong.

For each member of the spec (an ensemble has several): the provider is one
litellm knows, its credentials are in the environment (litellm knows which
variables each provider reads), and -- unless skipped -- the endpoint answers
one minimal request within a short timeout. A failure is a ``PreflightError``:
one line naming the model, what is missing and how to fix it (the CLI prints it
and exits 2 before a run folder exists). Backends without a network (stub,
replay, files, search backends) have nothing to check.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from evolve.errors import UserError
from evolve.llm.base import LLM
from evolve.llm.retry import Failure, classify

# Providers whose credentials need not be environment variables (AWS profiles,
# Google ADC, a local Ollama): litellm's variable check would cry wolf; the
# request decides for them.
_KEYS_ELSEWHERE = frozenset({
    "bedrock", "bedrock_converse", "sagemaker", "sagemaker_chat", "vertex_ai", "vertex_ai_beta",
    "ollama", "ollama_chat", "hosted_vllm", "vllm", "lm_studio", "llamafile", "openai_like",
    "custom_openai",
})
_SKIP_HINT = "or skip this check with --no-preflight"
# The key variables of the most used providers, checked before litellm is imported (seconds of
# CPU): a missing key, the most common mistake, is then reported at once. Any other provider,
# or a key that is present, goes through litellm's own check.
_WELL_KNOWN_KEYS = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}


class PreflightError(UserError):
    """A model that cannot work as configured; the message is one line."""


@dataclass(frozen=True)
class Checked:
    model: str
    seconds: float | None  # the probe's round trip; None when no request was made
    note: str = ""  # what a backend without a network wants the user to know (files:DIR)


def members(llm: LLM) -> Iterator[LLM]:
    """The backends behind wrappers (record) and ensembles, each once."""
    seen: set[int] = set()
    stack = [llm]
    while stack:
        current = stack.pop(0)
        inner = getattr(current, "inner", None)
        if inner is not None:
            stack.insert(0, inner)
            continue
        nested = getattr(current, "members", None)
        if isinstance(nested, list):
            stack[:0] = nested
            continue
        if id(current) not in seen:
            seen.add(id(current))
            yield current


def preflight(llm: LLM, *, timeout_s: float = 15.0, request: bool = True) -> list[Checked]:
    """Check every member; raise ``PreflightError`` at the first that cannot work.

    Static checks (provider, credentials) come first for all members, so a
    missing key is reported before any request is paid for.
    """
    from evolve.llm.litellm_backend import LiteLLMBackend
    from evolve.llm.openai_compat import OpenAICompatLLM

    backends = list(members(llm))
    checked = []
    for backend in backends:
        if isinstance(backend, LiteLLMBackend):
            _check_litellm_static(backend)
        elif isinstance(backend, OpenAICompatLLM):
            _check_openai_static(backend)
        else:
            check = getattr(backend, "preflight", None)  # e.g. files:DIR checks its folder
            note = check() if callable(check) else None
            if isinstance(note, str) and note:
                checked.append(Checked(backend.name, None, note))
    for backend in backends:
        if not isinstance(backend, (LiteLLMBackend, OpenAICompatLLM)):
            continue
        seconds = _probe(backend, timeout_s) if request else None
        checked.append(Checked(backend.name, seconds))
    return checked


# --- static checks ------------------------------------------------------------------------------

def _check_openai_static(backend: Any) -> None:
    if backend.api_base is None and not os.environ.get("OPENAI_API_KEY"):
        raise PreflightError(f"{backend.name}: OPENAI_API_KEY is not set; export it (keys are read "
                             "from the environment only), or give --api-base for a local server")


def _check_litellm_static(backend: Any) -> None:
    model = backend.model
    prefix = model.split("/", 1)[0] if "/" in model else ""
    needed = _WELL_KNOWN_KEYS.get(prefix, ())
    if needed and backend.api_base is None and not any(os.environ.get(v) for v in needed):
        raise PreflightError(
            f"{model}: no credentials in the environment (litellm needs {' or '.join(needed)}); "
            f"export {needed[0]}=... and run again (keys are read from the environment only)")
    litellm = backend.litellm()
    try:
        _, provider, _, _ = litellm.get_llm_provider(model, api_base=backend.api_base)
    except Exception:
        prefix = model.split("/", 1)[0] if "/" in model else model
        raise PreflightError(
            f"{model}: litellm does not know the provider {prefix!r}; name the model as "
            "PROVIDER/MODEL with a litellm provider (openai/, anthropic/, gemini/, ollama/, ... "
            "https://docs.litellm.ai/docs/providers), or give --api-base for an "
            "OpenAI-compatible server") from None
    if backend.api_base is not None or provider in _KEYS_ELSEWHERE:
        return
    try:
        env = litellm.validate_environment(model=model)
    except Exception:  # litellm could not tell: the request will
        return
    if env.get("keys_in_environment", True):
        return
    missing = [str(k) for k in env.get("missing_keys") or []]
    if not missing:
        return
    looks_for = " or ".join(missing) if provider == "gemini" else ", ".join(missing)
    raise PreflightError(
        f"{model}: no credentials in the environment (litellm needs {looks_for}); "
        f"export {missing[0]}=... and run again (keys are read from the environment only)")


# --- the request --------------------------------------------------------------------------------

def _probe(backend: Any, timeout_s: float) -> float:
    """One minimal request; a second after a transient server error. Returns the round trip."""
    for attempt in range(2):
        start = time.monotonic()
        try:
            backend.probe(timeout_s)
            return time.monotonic() - start
        except Exception as exc:  # classified below into one line
            failure = classify(exc, timeout_s)
        if failure.status == 429:
            return time.monotonic() - start  # the key works; the run backs off on rate limits
        transient = failure.retryable and failure.kind not in ("timeout",)
        if not (transient and attempt == 0):
            raise PreflightError(_explain(backend, failure, timeout_s, twice=attempt > 0)) from None
        time.sleep(1.0)
    raise AssertionError("unreachable")


def _where(backend: Any) -> str:
    if backend.api_base:
        return backend.api_base
    provider = backend.model.split("/", 1)[0] if "/" in backend.model else "the provider"
    return f"{provider}'s API"


def _explain(backend: Any, failure: Failure, timeout_s: float, twice: bool) -> str:
    name, where = backend.name, _where(backend)
    kind = failure.kind
    if kind == "timeout":
        return (f"{name}: no answer from {where} within {timeout_s:g} s (a one-line request); "
                "check that the server is up and not overloaded, raise llm_preflight_timeout_s, "
                f"{_SKIP_HINT}")
    if kind == "connection_refused":
        return (f"{name}: nothing listens at {where} (connection refused); start the server or "
                "fix --api-base")
    if kind == "dns":
        fix = "fix --api-base" if backend.api_base else "check this machine's network (offline?)"
        return f"{name}: cannot reach {where}: its host name does not resolve (DNS); {fix}"
    if kind == "connection":
        return f"{name}: cannot connect to {where} ({failure.summary}); check --api-base and the network"
    if kind == "credentials":
        return (f"{name}: no API key for {where}; export the provider's key (e.g. "
                "OPENAI_API_KEY=...) and run again")
    if kind == "provider":
        return (f"{name}: litellm does not know this provider; name the model as PROVIDER/MODEL "
                "(openai/, anthropic/, gemini/, ...) or give --api-base")
    if kind == "auth":
        variable = _key_variable(backend)
        return (f"{name}: {where} refused the key ({failure.summary.split(' (')[0]}); check "
                f"{variable} in the environment")
    if kind == "not_found":
        return _not_found(backend, failure, timeout_s)
    again = " twice" if twice else ""
    if failure.retryable:
        return (f"{name}: {where} answered{again}: {failure.summary}; the service has a problem "
                f"now: try again later, {_SKIP_HINT}")
    return f"{name}: the check request failed: {failure.summary}; fix the setting it names, {_SKIP_HINT}"


def _key_variable(backend: Any) -> str:
    if backend.api_base or backend.model.startswith("openai/"):
        state = "set" if os.environ.get("OPENAI_API_KEY") else "not set"
        return f"OPENAI_API_KEY ({state})"
    return "the provider's API key"


def _not_found(backend: Any, failure: Failure, timeout_s: float) -> str:
    name = backend.name
    list_models = getattr(backend, "list_models", None)
    served = list_models(timeout_s) if callable(list_models) else []
    model = getattr(backend, "served_model", "") or backend.model
    if served:
        shown = ", ".join(served[:8]) + (f" (+{len(served) - 8} more)" if len(served) > 8 else "")
        return (f"{name}: {backend.api_base} does not serve model {model!r} (HTTP 404); it serves: "
                f"{shown}")
    if backend.api_base:
        return (f"{name}: {backend.api_base} answers HTTP 404 for model {model!r}; check the model "
                "name, and that --api-base is the server's OpenAI URL (usually ending in /v1)")
    return f"{name}: unknown model ({failure.summary}); check the model name"
