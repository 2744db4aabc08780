"""Reading text and usage out of a chat-completion reply, defensively.

Both the openai client (``ChatCompletion``, built without validation) and litellm
(``ModelResponse``) hand back objects that may lack ``choices`` or ``content``
when a server misbehaves; those become one-line ``LLMError`` s, never
``AttributeError`` tracebacks in the evolution loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evolve.llm.base import LLMError


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int


def _get(obj: object, name: str) -> object:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


# A lone surrogate ("\ud800" in a server's JSON, as a JavaScript proxy writes half an emoji)
# cannot be encoded: compile() raised UnicodeEncodeError out of the edit and stopped the run, and
# --record's UTF-8 line lost the reply (seventh red team). Such a code point becomes U+FFFD.
_SURROGATE = re.compile("[\ud800-\udfff]")


def without_surrogates(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def extract_reply(response: object, model: str) -> Reply:
    """Text of the first choice plus token usage; raises LLMError if unusable."""
    if isinstance(response, (str, bytes)):
        # The openai client returns the raw body as text when it is not JSON.
        raise LLMError(f"{model}: empty completion (malformed reply: body is not a JSON object)")
    choices = _get(response, "choices")
    if not isinstance(choices, list) or not choices:
        raise LLMError(f"{model}: empty completion (malformed reply: no choices)")
    message = _get(choices[0], "message")
    content = _get(message, "content") if message is not None else None
    if not isinstance(content, str):
        raise LLMError(f"{model}: empty completion (malformed reply: no message content)")
    if not content.strip():
        raise LLMError(f"{model}: empty completion")
    usage = _get(response, "usage")
    return Reply(
        text=without_surrogates(content),
        prompt_tokens=_int(_get(usage, "prompt_tokens")) if usage is not None else 0,
        completion_tokens=_int(_get(usage, "completion_tokens")) if usage is not None else 0,
    )
