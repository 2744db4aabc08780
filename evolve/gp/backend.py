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
from evolve.errors import UserError
from evolve.gp.codegen import parse
from evolve.gp.constants import (
    constant_paths,
    fit_constants,
    gated_constant_paths,
    side_constant_paths,
)
from evolve.gp.operators import WEIGHTS, Child, Limits, vary
from evolve.gp.program import rule_tree, signature_of, taken_by, with_rule
from evolve.gp.rules import find_rule
from evolve.gp.screen import Screen
from evolve.gp.tree import Tree, reduces, simplify, size, well_typed
from evolve.llm.base import Completion, LLMError, ProposalRequest

__all__ = ["GPBackend"]


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


class GPBackend:
    """Typed expression-tree GP implementing :class:`evolve.llm.base.LLM`.

    With a ``screen`` (the verifier's in-process scorer of trees, ``screen.py``), each
    proposal makes a brood of ``settings.brood`` children, scores them on train and
    answers with the best; asked again after a duplicate (``retry``), it answers with the
    next best of the same brood.  Fresh starts also try the rule's ``starts``.
    """

    name = "gp"

    def __init__(self, rules: list[RuleSpec], seed: int = 0, settings: GPSettings | None = None,
                 screen: Screen | None = None) -> None:
        if not rules:
            raise ValueError("the GP needs at least one [rule]")
        settings = settings or GPSettings()
        self.rules = rules
        self.seed = seed
        self.limits = Limits(settings.max_depth, settings.max_size, settings.init_depth)
        self.brood = settings.brood if screen is not None else 1
        self.climb = settings.climb if screen is not None else 0
        self.fit_sweeps = settings.fit_constants if screen is not None else 0
        self.fit_race = settings.fit_race
        self.fit_scope = settings.fit_scope
        self.fit_ties = settings.fit_ties
        self.reductions = settings.reductions
        extra = {name: w for name, w in (("insert", settings.insert), ("gate", settings.gate),
                                         ("split", settings.split)) if w > 0}
        self.weights = {**WEIGHTS, **extra} if extra else WEIGHTS
        self.screen = screen
        self.starts = {r.function: [parse(s, {i.name for i in r.inputs}) for s in r.starts] for r in rules}
        if not self.reductions:
            for r in rules:
                for field, exprs in (("starts", r.starts), ("terminals", r.terminals), ("gates", r.gates)):
                    for k, expr in enumerate(exprs):
                        if reduces(parse(expr, {i.name for i in r.inputs})):
                            raise UserError(f"[rule] '{r.function}' {field}[{k}] = {expr!r} reduces over the "
                                            "candidates (np.max, np.min or np.mean of an array), which "
                                            "[run.gp] reductions = false excludes")

    def complete(self, request: ProposalRequest) -> Completion:
        parent = request.parent_code
        # Without a screen each retry is a new draw; with one, the brood is the same and
        # the retry picks further down its ranking.
        retry = request.retry if self.screen is None else 0
        rng = _rng(self.seed, request.seed, request.iteration, retry, request.fresh,
                   parent, *request.inspiration_codes)
        rules = [r for r in self.rules if find_rule(parent, r.function) is not None]
        if not rules:
            raise LLMError("gp: the parent defines none of the problem's [rule] functions in its EVOLVE-BLOCK")
        if request.fresh:  # a fresh start tries a rule with a known start not yet in the parent first
            known = [r for r in rules if self._new_starts(parent, r)]
            rules = known or rules
        rule = rng.choice(rules)
        parent_tree = rule_tree(parent, rule)
        donors = [t for t in (rule_tree(code, rule) for code in request.inspiration_codes) if t is not None]
        children = self._brood(parent, rule, parent_tree, donors, rng, request.fresh)
        if not children:
            raise LLMError(f"gp: no valid child of rule '{rule.function}' within the limits")
        child = children[request.retry % len(children)] if self.screen is not None else children[0]
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

    def _new_starts(self, parent: str, rule: RuleSpec) -> bool:
        tree = rule_tree(parent, rule)
        own = simplify(tree) if tree is not None else None
        return any(simplify(t) != own for t in self.starts[rule.function])

    def _brood(self, parent: str, rule: RuleSpec, parent_tree: Tree | None, donors: list[Tree],
               rng: random.Random, fresh: bool) -> list[Child]:
        """Children to answer with, best first (one unscreened child without a screen)."""
        site = find_rule(parent, rule.function)
        sig = signature_of(rule, self.reductions)
        sig = taken_by(sig, site.params) if site is not None else sig
        made: dict[Tree, Child] = {}
        if fresh or parent_tree is None:
            starts = [simplify(t) for t in self.starts[rule.function]]
            starts = [t for t in starts if (parent_tree is None or t != simplify(parent_tree))
                      and well_typed(t, sig)]  # a start may read an input the parent's rule does not take
            if self.screen is None and starts and rng.random() < 0.5:
                # Unscreened: half the fresh starts are a known rule (a duplicate is asked again).
                return [Child(rng.choice(starts), "start", "a known rule from [rule] starts")]
            for start in starts if self.screen is not None else []:
                made.setdefault(start, Child(start, "start", "a known rule from [rule] starts"))
        for _ in range(self.brood):
            child = vary(parent_tree, donors, sig, rng, self.limits, fresh=fresh, weights=self.weights)
            if child is not None:
                made.setdefault(child.tree, child)
        if parent_tree is not None:  # a start may be the parent itself
            made.pop(simplify(parent_tree), None)
        children = list(made.values())
        if self.screen is None or len(children) <= 1:
            return children
        others = {r.function: rule_tree(parent, r) for r in self.rules if r is not rule
                  and find_rule(parent, r.function) is not None}
        if any(tree is None for tree in others.values()):
            return children  # another rule is not a tree: the screen cannot run this program
        ranked = self._ranked(children, others, rule)
        best, value = ranked[0]
        if value is None:
            return [c for c, _ in ranked]
        steps = 0
        for _ in range(self.climb):  # hill-climb: a brood of the best child, while it improves
            seen = {c.tree for c, _ in ranked} | ({simplify(parent_tree)} if parent_tree is not None else set())
            kids: dict[Tree, Child] = {}
            for _ in range(self.brood):
                child = vary(best.tree, donors, sig, rng, self.limits, fresh=False, weights=self.weights)
                if child is not None and child.tree not in seen:
                    kids.setdefault(child.tree, child)
            top = self._ranked(list(kids.values()), others, rule) if kids else []
            if not top or top[0][1] is None or top[0][1] <= value:
                break
            steps += 1
            best, value = Child(top[0][0].tree, best.operator, f"{best.description}, then {top[0][0].operator}"), top[0][1]
        note = f"; best of a brood of {len(children)} on train" + (f", improved {steps} more rounds" if steps else "")
        if self.fit_sweeps:
            screen = self.screen
            race = self.fit_race if screen.has_pre else 0
            gates = tuple({g for gate in sig.gates for g in (gate, simplify(gate))})
            tuned, tuned_value, _ = fit_constants(
                best.tree, lambda tree: screen({**others, rule.function: tree}),  # type: ignore[dict-item]
                value, self.fit_sweeps,
                pre=lambda tree: screen.pre_score({**others, rule.function: tree}),  # type: ignore[dict-item]
                race=race,
                where={"all": constant_paths, "gated": lambda tree: gated_constant_paths(tree, gates),
                       "sides": lambda tree: side_constant_paths(tree, gates)}[self.fit_scope],
                ties=self.fit_ties)
            if tuned_value > value:
                note += f", constants fitted ({value:.4g} -> {tuned_value:.4g})"
                best, value = Child(tuned, best.operator, best.description), tuned_value
        rest = [(c, v) for c, v in ranked if c.tree != best.tree]
        return [Child(c.tree, c.operator, c.description + note + (f" (train score {v:.4g})" if v is not None else ""))
                for c, v in [(best, value), *rest]]

    def _ranked(self, children: list[Child], others: dict[str, Tree | None],
                rule: RuleSpec) -> list[tuple[Child, float | None]]:
        """Children with their train scores, best first (unscreened or failing last)."""
        assert self.screen is not None
        values = self.screen.rank([{**others, rule.function: c.tree} for c in children])  # type: ignore[dict-item]
        scored = [(value is None, -(value or 0.0), pre is None, -(pre or 0.0), size(child.tree), order, child, value)
                  for order, (child, (value, pre)) in enumerate(zip(children, values, strict=True))]
        scored.sort(key=lambda row: row[:6])
        return [(c, v) for *_, c, v in scored]


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
