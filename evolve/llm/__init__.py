"""LLM backends and the ``make_llm`` factory that turns a spec string into one.

Spec forms (see docs/llm.md):

* ``gp`` -- the offline search: typed expression-tree GP over the problem's
  ``[rule]`` inputs (``evolve.gp``; needs ``rules``);
* ``mutate`` (alias ``stub``) -- the blind offline AST mutator;
* ``replay:FILE`` -- serve completions recorded earlier with ``record=FILE``;
* ``files:DIR`` -- a person or an agent is the model: prompts to ``DIR/prompt_NNN.md``,
  replies from ``DIR/reply_NNN.md``;
* a litellm model string -- ``openai/gpt-4.1-mini``, ``anthropic/claude-...``,
  ``ollama/qwen2.5-coder:7b``, ``hosted_vllm/...``;
* a weighted ensemble -- ``openai/gpt-4.1-mini:0.8,openai/o4-mini:0.2``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evolve.config import GPSettings, RuleSpec
from evolve.errors import UserError
from evolve.llm.base import LLM, Completion, LLMError, ProposalRequest
from evolve.llm.ensemble import EnsembleLLM
from evolve.llm.record import RecordingLLM, ReplayLLM
from evolve.llm.retry import LLMConfigError, RetryPolicy

__all__ = [
    "LLM",
    "Completion",
    "LLMConfigError",
    "LLMError",
    "ProposalRequest",
    "Backend",
    "Member",
    "OFFLINE",
    "make_llm",
    "parse_spec",
]

Backend = Literal["auto", "openai", "litellm"]

_SPEC_HELP = ("expected 'gp', 'mutate' (or 'stub'), 'replay:FILE', 'files:DIR', a model like "
              "'openai/gpt-4.1-mini', or a "
              "weighted ensemble like 'openai/gpt-4.1-mini:0.8,openai/o4-mini:0.2'")
# A weight is a plain decimal number. Anything else after the last colon is part
# of the model name, so "ollama/qwen2.5-coder:7b" keeps its tag.
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Member:
    model: str
    weight: float = 1.0


def _split_weight(part: str) -> tuple[str, str | None]:
    """``(name, weight text)``: the weight is the text after the last colon if it is a number."""
    name, sep, tail = part.rpartition(":")
    if sep and _NUMBER.match(tail):
        return name, tail
    return part, None


def _parse_member(part: str, spec: str) -> Member:
    name, tail = _split_weight(part)
    weight = 1.0
    if tail is not None:
        weight = float(tail)
        if not (weight > 0 and math.isfinite(weight)):
            raise UserError(f"LLM spec {spec!r}: weight {tail!r} of {name!r} must be a positive "
                            f"number; {_SPEC_HELP}")
        if not name:
            raise UserError(f"LLM spec {spec!r}: weight {tail!r} has no model name; {_SPEC_HELP}")
    if any(ch.isspace() for ch in name):
        raise UserError(f"LLM spec {spec!r}: model name {name!r} contains whitespace; "
                        f"{_SPEC_HELP}")
    if name.lower() in ("gp", "mutate", "stub", "auto") and name != name.lower():
        raise UserError(f"LLM spec {spec!r}: {name!r} is not a model; the offline backends are "
                        f"lower case: {name.lower()!r}")
    if name.endswith("/"):
        raise UserError(f"LLM spec {spec!r}: {name!r} names a provider but no model; expected "
                        f"e.g. '{name}gpt-4.1-mini'")
    return Member(name, weight)


def _check_ensemble(parts: list[str], spec: str) -> None:
    """Members that cannot mix, and a weight that is not a number where others have one."""
    for part in parts:
        if part.startswith("replay:"):
            raise UserError(f"LLM spec {spec!r}: 'replay:...' cannot be part of an ensemble (it "
                            "answers every iteration as recorded); use it alone")
    if not any(_split_weight(part)[1] is not None for part in parts):
        return  # no weights at all: 'a,b' is an even split, and a tag is a tag
    for part in parts:
        name, tail = _split_weight(part)
        body = name.removeprefix("files:")  # files:DIR's colon is its prefix, not a tag
        if tail is None and ":" in body:
            model, _, text = body.rpartition(":")
            raise UserError(
                f"LLM spec {spec!r}: {text!r} after the last colon of {part!r} is not a weight; "
                f"expected a positive number ({model}:0.5), or, if {text!r} is a model tag, an "
                f"explicit weight after it ({body}:1), since other members of this ensemble "
                "have weights")


def parse_spec(spec: str) -> list[Member]:
    """Model members of a (possibly weighted) spec; ``stub``/``replay:`` are handled by make_llm.

    Weights default to 1.0 and need not sum to 1 (they are relative).
    """
    text = spec.strip()
    if not text:
        raise UserError(f"LLM spec {spec!r} is empty; {_SPEC_HELP}")
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise UserError(f"LLM spec {spec!r} has an empty entry between commas; {_SPEC_HELP}")
    if len(parts) > 1:
        _check_ensemble(parts, spec)
    return [_parse_member(p, spec) for p in parts]


def _check_settings(api_base: str | None, temperature: float, max_tokens: int,
                    timeout_s: float, max_retries: int, retry_base_delay_s: float,
                    backend: str) -> None:
    if api_base is not None and not re.match(r"^https?://\S+$", api_base):
        raise UserError(f"api base {api_base!r} is not a URL; expected e.g. "
                        "'http://localhost:8000/v1'")
    if not (0.0 <= temperature <= 2.0):
        raise UserError(f"temperature {temperature!r} is out of range; expected 0.0 to 2.0")
    if max_tokens < 1:
        raise UserError(f"max_tokens {max_tokens!r} must be a positive integer")
    if not (timeout_s > 0):
        raise UserError(f"timeout {timeout_s!r} must be positive seconds")
    if max_retries < 0:
        raise UserError(f"max_retries {max_retries!r} must be 0 or more")
    if retry_base_delay_s < 0:
        raise UserError(f"retry base delay {retry_base_delay_s!r} must be 0 or more seconds")
    if backend not in ("auto", "openai", "litellm"):
        raise UserError(f"backend {backend!r} is unknown; expected 'auto', 'openai' or 'litellm'")


OFFLINE = ("gp", "mutate", "stub")  # backends that cost nothing per proposal


def _make_gp(seed: int, rules: list[RuleSpec] | None, gp: GPSettings | None,
             screen: Callable[[], Any] | None = None) -> LLM:
    if not rules:
        raise UserError("--llm gp needs the problem's [rule] table (the function the search writes "
                        "and its inputs; docs/add-a-problem.md); use --llm mutate for a problem without one")
    from evolve.gp import GPBackend

    brood = (gp or GPSettings()).brood
    return GPBackend(rules, seed=seed, settings=gp, screen=screen() if screen is not None and brood > 1 else None)


def _make_stub(seed: int) -> LLM:
    # Lazy: the stub lives in its own module and must not be a hard dependency here.
    from evolve.llm.stub import StubLLM

    return StubLLM(seed=seed)


def _make_files(folder: str, spec: str, settle_s: float) -> LLM:
    if not folder:
        raise UserError(f"LLM spec {spec!r} names no folder; expected 'files:DIR'")
    from evolve.llm.files import FilesLLM

    return FilesLLM(Path(folder), settle_s=settle_s)


def make_llm(
    spec: str,
    *,
    api_base: str | None = None,
    seed: int = 0,
    temperature: float = 0.8,
    max_tokens: int = 4096,
    timeout_s: float = 120.0,
    max_retries: int = 4,
    record: Path | None = None,
    backend: Backend = "auto",
    retry_base_delay_s: float = 1.0,
    rules: list[RuleSpec] | None = None,
    gp: GPSettings | None = None,
    screen: Callable[[], Any] | None = None,
    files_settle_s: float = 1.0,
) -> LLM:
    """Build the backend for ``spec``; bad input raises a one-line ``UserError``.

    ``backend="auto"`` uses the OpenAI-compatible client when ``api_base`` is
    given and litellm otherwise; ``"openai"``/``"litellm"`` force one.
    ``record`` appends every completion to a JSONL file (see ``record.py``).
    ``rules`` (the problem's ``[rule]`` tables) and ``gp`` configure ``gp``; ``screen`` builds
    its brood screen (``evolve/gp/screen.py``), called only when ``gp`` is used.
    ``files_settle_s``: how long a ``files:DIR`` reply must hold still before it is read.
    """
    _check_settings(api_base, temperature, max_tokens, timeout_s, max_retries,
                    retry_base_delay_s, backend)
    text = spec.strip()
    if text == "auto":  # the run settings' default: the GP when the problem declares rules
        text = "gp" if rules else "mutate"
    policy = RetryPolicy(max_retries=max_retries, base_delay_s=retry_base_delay_s)

    def one(model: str) -> LLM:
        if model.startswith("files:"):  # a person answers this member's share of the prompts
            return _make_files(model[len("files:"):].strip(), spec, files_settle_s)
        if model in ("stub", "mutate"):
            return _make_stub(seed)
        if model == "gp":
            return _make_gp(seed, rules, gp, screen)
        use_openai = backend == "openai" or (backend == "auto" and api_base is not None)
        if use_openai:
            from evolve.llm.openai_compat import OpenAICompatLLM

            return OpenAICompatLLM(model, api_base=api_base, seed=seed, temperature=temperature,
                                   max_tokens=max_tokens, timeout_s=timeout_s, retry=policy)
        from evolve.llm.litellm_backend import LiteLLMBackend

        return LiteLLMBackend(model, api_base=api_base, seed=seed, temperature=temperature,
                              max_tokens=max_tokens, timeout_s=timeout_s, retry=policy)

    llm: LLM
    rest = text.partition(":")[2].strip()
    if text.startswith("replay:") and ("," not in text or Path(rest).exists()):
        if not rest:
            raise UserError(f"LLM spec {spec!r} names no file; expected 'replay:FILE'")
        path = Path(rest)
        if record is not None and record.resolve() == path.resolve():
            raise UserError(f"record file {record} is the replay file; expected a different path")
        llm = ReplayLLM(path)
    elif text.startswith("files:") and ("," not in text or Path(rest).is_dir()):  # a folder named a,b
        llm = _make_files(rest, spec, files_settle_s)
    else:
        members = parse_spec(text)
        if len(members) == 1:
            llm = one(members[0].model)
        else:
            llm = EnsembleLLM([one(m.model) for m in members], [m.weight for m in members],
                              seed=seed)
    return RecordingLLM(llm, record) if record is not None else llm
