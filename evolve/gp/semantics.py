"""Behaviour keys: two programs whose rules order every candidate alike are one program.

A rule's frame only uses the *order* of its values (argmin, argmax, argsort),
so ``d``, ``2 * d + 5`` and ``d + 0 * p`` dispatch identically.  The key of a
program is its code outside the rule functions (normalised) plus, for each rule
whose body is a tree, the ranks its values take on a fixed sample of decisions.
Programs with equal keys are duplicates; the loop skips them before
evaluation.  A rule that is not a single ``return`` expression keys by its
normalised source, so that case falls back to exact-duplicate detection.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np

from evolve.config import RuleSpec
from evolve.edits import EditError, normalize_code, parse_module
from evolve.gp.codegen import DIV_HELPER
from evolve.gp.program import site_tree
from evolve.gp.rules import find_rule
from evolve.gp.tree import Tree, evaluate, simplify

_ROWS, _CANDIDATES = 24, 12


def sample_inputs(rule: RuleSpec, seed: int = 20250611) -> dict[str, np.ndarray]:
    """Fixed random decisions: arrays [rows, candidates], scalars [rows, 1].

    Each input gets its own magnitude (1 to 1000), half of them integer-valued with
    a few zeros, so ties and protected divisions are exercised too.
    """
    rng = np.random.default_rng([seed, len(rule.inputs)])
    env: dict[str, np.ndarray] = {}
    for spec in rule.inputs:
        shape = (_ROWS, _CANDIDATES) if spec.kind == "array" else (_ROWS, 1)
        scale = 10.0 ** rng.uniform(0.0, 3.0)
        values = rng.random(shape) * scale
        if rng.random() < 0.5:
            values = np.floor(values)
        env[spec.name] = values
    return env


def tree_signature(tree: Tree, env: dict[str, Any], returns: str) -> bytes:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        values = np.asarray(evaluate(simplify(tree), env), dtype=np.float64)
    values = np.broadcast_to(values, (_ROWS, _CANDIDATES if returns == "array" else 1))
    # float32 absorbs rounding differences between algebraically equal forms.
    rounded = values.astype(np.float32)
    if returns != "array":
        return rounded.tobytes()
    return np.argsort(np.argsort(rounded, axis=-1, kind="stable"), axis=-1, kind="stable").astype(np.int8).tobytes()


class BehaviourKeys:
    """Computes program keys for a problem's rules (samples drawn once)."""

    def __init__(self, rules: list[RuleSpec]) -> None:
        self.rules = rules
        self._envs = [sample_inputs(r) for r in rules]

    def key(self, code: str) -> str | None:
        """The behaviour key, or None when the code does not parse."""
        try:
            module = parse_module(code)  # the child's parse, already made for its edit and hash
        except SyntaxError:
            return None
        digest = hashlib.sha256()
        lines = code.split("\n")
        drop: list[tuple[int, int]] = []
        for rule, env in zip(self.rules, self._envs, strict=True):
            site = find_rule(code, rule.function, module)
            if site is None:
                continue
            drop.append((site.first, site.last))
            tree = site_tree(site, rule)
            if tree is None:
                body = "\n".join(lines[site.body_first: site.last + 1])
                digest.update(b"src:" + _normal(body).encode())
            else:
                digest.update(b"tree:" + tree_signature(tree, env, rule.returns))
        helper = find_rule(code, DIV_HELPER, module)
        if helper is not None:
            drop.append((helper.first, helper.last))
        dropped = {i for a, b in drop for i in range(a, b + 1)}
        kept = [line for i, line in enumerate(lines) if i not in dropped]
        digest.update(b"rest:" + _normal("\n".join(kept)).encode())
        return digest.hexdigest()


def _normal(code: str) -> str:
    try:
        return normalize_code(code)
    except (EditError, SyntaxError):
        return code
