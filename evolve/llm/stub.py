"""The offline backend: a seeded AST mutation engine that answers like a model.

``StubLLM`` reads the structured fields of a :class:`ProposalRequest` (the
parent and the inspirations), applies one to three mutations from
:mod:`evolve.llm.mutations` to the parent's EVOLVE-BLOCK, and writes the
result as a real completion: a rationale line plus SEARCH/REPLACE blocks, or
for ``mode == "rewrite"`` the full program in a ```python fence.  The loop
then runs that text through :func:`evolve.edits.apply_edit` like any model's,
so the stub exercises the whole pipeline without a network.

Deterministic: the text depends only on (stub seed, request seed, iteration,
parent code, inspiration codes), through a private ``random.Random``.
"""

from __future__ import annotations

import hashlib
import random

from evolve.edits import EditError, apply_edit, evolve_blocks
from evolve.llm.base import Completion, LLMError, ProposalRequest
from evolve.llm.mutations import Donor, Mutation, collect_donors, mutate_once
from evolve.llm.stub_splice import Splice

__all__ = ["StubLLM"]

# How many mutations one completion carries: mostly one, so that a single
# good idea is not diluted, sometimes two or three to jump further.
_N_MUTATIONS = ((1, 0.7), (2, 0.25), (3, 0.05))
_ATTEMPTS = 20


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _diff_block(old_code: str, sp: Splice) -> tuple[str, str] | None:
    """(SEARCH, REPLACE) for a splice, with enough context to be unique.

    apply_diff takes the first exact match, so the quoted lines are widened
    (upwards, then downwards, never past the block) until they occur once.
    """
    lines = old_code.split("\n")
    block = next(((s, e) for s, e in evolve_blocks(old_code) if s <= sp.first < e), None)
    if block is None:
        return None
    lo, hi = sp.first, sp.last + 1
    while True:
        search = lines[lo:hi]
        hits = sum(
            lines[i : i + len(search)] == search for i in range(len(lines) - len(search) + 1)
        )
        if hits == 1 and any(line.strip() for line in search):
            replace = lines[lo : sp.first] + sp.new_lines + lines[sp.last + 1 : hi]
            return "\n".join(search), "\n".join(replace)
        if lo > block[0]:
            lo -= 1
        elif hi < block[1]:
            hi += 1
        else:
            return None


def _format_diff(rationale: str, edits: list[tuple[str, str]]) -> str:
    parts = [rationale, ""]
    for search, replace in edits:
        parts += ["<<<<<<< SEARCH", search, "=======", replace, ">>>>>>> REPLACE", ""]
    return "\n".join(parts)


def _format_rewrite(rationale: str, code: str) -> str:
    body = code if code.endswith("\n") else code + "\n"
    return f"{rationale}\n\n```python\n{body}```\n"


class StubLLM:
    """Seeded offline mutator implementing the :class:`evolve.llm.base.LLM` protocol."""

    name = "stub"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def complete(self, request: ProposalRequest) -> Completion:
        parent = request.parent_code
        rng = _rng(self.seed, request.seed, request.iteration, parent, *request.inspiration_codes)
        try:
            donors = collect_donors(list(request.inspiration_codes))
            for _ in range(_ATTEMPTS):
                text = self._attempt(parent, request.mode, rng, donors)
                if text is not None:
                    break
            else:
                raise LLMError(
                    "stub: no valid mutation found in the EVOLVE-BLOCK (nothing numeric to change?)"
                )
        except (SyntaxError, EditError) as e:
            # A parent that does not parse or has broken markers cannot be mutated.
            raise LLMError(f"stub: cannot mutate the parent: {e}") from None
        prompt_chars = sum(len(m.get("content", "")) for m in request.messages)
        return Completion(
            text=text,
            model="stub",
            prompt_tokens=prompt_chars // 4,
            completion_tokens=len(text) // 4,
            cost_usd=0.0,
            seconds=0.0,
        )

    def _attempt(
        self, parent: str, mode: str, rng: random.Random, donors: list[Donor]
    ) -> str | None:
        count = rng.choices([n for n, _ in _N_MUTATIONS], [w for _, w in _N_MUTATIONS])[0]
        code = parent
        done: list[Mutation] = []
        edits: list[tuple[str, str]] = []
        for _ in range(count):
            # Each mutation is computed on the text left by the previous one, so
            # each SEARCH matches what apply_diff will see at that point.
            m = mutate_once(code, rng, donors)
            if m is None:
                break
            block = _diff_block(code, m.splice)
            if block is None:
                continue
            edits.append(block)
            done.append(m)
            code = m.splice.code
        if not done:
            return None
        rationale = "Rationale: " + "; ".join(m.description for m in done) + "."
        if mode == "rewrite":
            text = _format_rewrite(rationale, code)
        else:
            text = _format_diff(rationale, edits)
        # Self-check through the same path as a model's answer: the stub must
        # never be the source of an edit error.
        try:
            if apply_edit(parent, text, "rewrite" if mode == "rewrite" else "diff") != code:
                return None
        except EditError:
            return None
        return text
