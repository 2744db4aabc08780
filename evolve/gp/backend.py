"""The offline search as an LLM backend: a GP step that answers like a model.

``GPBackend.complete`` reads the parent and the inspirations from the
request, picks one of the problem's rules, makes a child tree (a random one
when the loop asks for a fresh start) and answers with a SEARCH/REPLACE block
that rewrites that rule's body, or the whole program in rewrite mode.  The
loop applies it through ``evolve.edits`` like any model's answer, so the
sandbox, the verifier, the archive, review and replay see an ordinary run.

Deterministic: the answer depends only on (seed, request seed, iteration,
retry, fresh, parent code, inspiration codes), through a private RNG.
"""

from __future__ import annotations

import hashlib
import random

from evolve.config import GPSettings, RuleSpec
from evolve.edits import EditError, apply_edit
from evolve.gp.operators import Limits, vary
from evolve.gp.program import rule_tree, signature_of, with_rule
from evolve.gp.rules import find_rule
from evolve.llm.base import Completion, LLMError, ProposalRequest

__all__ = ["GPBackend"]


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


class GPBackend:
    """Typed expression-tree GP implementing :class:`evolve.llm.base.LLM`."""

    name = "gp"

    def __init__(self, rules: list[RuleSpec], seed: int = 0, settings: GPSettings | None = None) -> None:
        if not rules:
            raise ValueError("the GP needs at least one [rule]")
        settings = settings or GPSettings()
        self.rules = rules
        self.seed = seed
        self.limits = Limits(settings.max_depth, settings.max_size, settings.init_depth)

    def complete(self, request: ProposalRequest) -> Completion:
        parent = request.parent_code
        rng = _rng(self.seed, request.seed, request.iteration, request.retry, request.fresh,
                   parent, *request.inspiration_codes)
        rules = [r for r in self.rules if find_rule(parent, r.function) is not None]
        if not rules:
            raise LLMError("gp: the parent defines none of the problem's [rule] functions in its EVOLVE-BLOCK")
        rule = rng.choice(rules)
        sig = signature_of(rule)
        parent_tree = rule_tree(parent, rule)
        donors = [t for t in (rule_tree(code, rule) for code in request.inspiration_codes) if t is not None]
        child = vary(parent_tree, donors, sig, rng, self.limits, fresh=request.fresh)
        if child is None:
            raise LLMError(f"gp: no valid child of rule '{rule.function}' within the limits")
        code = with_rule(parent, rule, child.tree)
        origin = "" if parent_tree is not None or request.fresh else " (the parent's rule is not a single expression)"
        rationale = f"Rationale: {rule.function}: {child.description}{origin}."
        text = _rewrite(rationale, code) if request.mode == "rewrite" else _diff(rationale, parent, code, rule)
        try:  # the search must never be the source of an edit error
            if apply_edit(parent, text, request.mode) != code:
                raise EditError("the edit does not reproduce the child")
        except EditError as err:
            raise LLMError(f"gp: internal edit error: {err}") from None
        prompt_chars = sum(len(m.get("content", "")) for m in request.messages)
        return Completion(text=text, model="gp", prompt_tokens=prompt_chars // 4,
                          completion_tokens=len(text) // 4, cost_usd=0.0, seconds=0.0)


def _rewrite(rationale: str, code: str) -> str:
    body = code if code.endswith("\n") else code + "\n"
    return f"{rationale}\n\n```python\n{body}```\n"


def _diff(rationale: str, parent: str, child: str, rule: RuleSpec) -> str:
    """One SEARCH/REPLACE block: the rule function (and, when it is new, the helper before it)."""
    old_site = find_rule(parent, rule.function)
    new_site = find_rule(child, rule.function)
    assert old_site is not None and new_site is not None
    old_lines, new_lines = parent.split("\n"), child.split("\n")
    if new_site.first == old_site.first and old_site.body_first <= old_site.last:
        # Only the body changed: quote just the body when it occurs once in the parent.
        body = old_lines[old_site.body_first: old_site.last + 1]
        if "\n".join(body).strip() and parent.count("\n".join(body)) == 1:
            new_body = new_lines[new_site.body_first: new_site.last + 1]
            return "\n".join([rationale, "", "<<<<<<< SEARCH", *body, "=======", *new_body, ">>>>>>> REPLACE", ""])
    search = old_lines[old_site.first: old_site.last + 1]
    # Lines before the rule are unchanged, so whatever the child inserted there (the division
    # helper) starts where the rule started in the parent.
    replace = new_lines[old_site.first: new_site.last + 1]
    return "\n".join([rationale, "", "<<<<<<< SEARCH", *search, "=======", *replace, ">>>>>>> REPLACE", ""])
