"""Brood screening: score the GP's own trees in-process before one goes to the sandbox.

Tackett's brood selection: a parent makes a brood of children, a cheap fitness
culls them, and only the best is evaluated for real.  Here the cheap fitness is
the problem's own frame re-implemented on the trusted side for trees (the
verifier's ``gp_screen(instances, score)`` builds it, e.g.
``evaluators/smtt/screen.py``), run on the train split and scored by the
verifier's ``score`` and the run's aggregate, so a screen figure is the train
score the verifier would give the same rule.

Only trees run here: nested tuples of the operators in ``tree.py``, built by the
engine or parsed from a program by ``codegen.parse`` (which accepts nothing
else), evaluated by ``tree.evaluate`` (numpy only).  Candidate code never runs
in this process; the chosen child still goes through edit -> sandbox ->
verifier -> archive, and only that evaluation is its score.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Protocol

from evolve.gp.memo import MISSING, TreeMemo
from evolve.gp.tree import Tree, compile_tree, reads, size
from evolve.scoring import aggregate
from evolve.verifier import Instance, InstanceResult


class ProblemScreen(Protocol):
    """A verifier's screen: results on its instances for rules given as (callable, inputs read).

    ``pre``, when not None, is a cheaper screen on part of the instances: a brood is
    ranked on it first and only its best ``FINALISTS`` are screened on all of them.
    """

    pre: ProblemScreen | None

    def results(self, rules: Mapping[str, tuple[Any, set[str]]]) -> list[InstanceResult] | None: ...


FINALISTS = 4
# Screens kept (a score each, keyed by the trees screened; evolve/gp/memo.py bounds their nodes too).
MEMO_ENTRIES = 100_000


class Screen:
    """Train score (higher is better) of a set of rule trees, memoised; None if undefined."""

    def __init__(self, problem: Any, split: str = "train", floor: bool = True) -> None:
        """``floor``: rank by the objective's ``reference_floor`` as the search does; False: by
        the gaps against the references themselves, as a reported gap reads (evolve/refit.py)."""
        verifier = problem.verifier
        instances: list[Instance] = problem.instances(split)
        self.inner: ProblemScreen = verifier.gp_screen(instances, verifier.score)
        custom = getattr(verifier, "aggregate", None)
        objective = problem.spec.objective
        floors = objective.reference_floor if floor else {}
        self._aggregate = custom if callable(custom) else (
            lambda results: aggregate(results, objective.direction, objective.score, objective.median_weight,
                                      floors))
        self._memo: TreeMemo[float | None] = TreeMemo(MEMO_ENTRIES)
        self.calls = 0

    def __call__(self, trees: Mapping[str, Tree]) -> float | None:
        return self._cached(self.inner, trees)

    @property
    def has_pre(self) -> bool:
        return getattr(self.inner, "pre", None) is not None

    def pre_score(self, trees: Mapping[str, Tree]) -> float | None:
        """The cheaper screen's score (``pre``); the whole screen's where there is none."""
        pre = getattr(self.inner, "pre", None)
        return self(trees) if pre is None else self._cached(pre, trees)

    def rank(self, broods: list[Mapping[str, Tree]]) -> list[tuple[float | None, float | None]]:
        """(train score, cheaper screen's score) of every member, None where it fails or is not
        run: only the best ``FINALISTS`` on the cheaper screen (``pre``) run on all of train."""
        pre = getattr(self.inner, "pre", None)
        if pre is None or len(broods) <= FINALISTS:
            return [(self(trees), None) for trees in broods]
        first = [self._cached(pre, trees) for trees in broods]
        order = sorted((i for i, v in enumerate(first) if v is not None), key=lambda i: -first[i])  # type: ignore[operator]
        kept = set(order[:FINALISTS])
        return [(self(trees) if i in kept else None, first[i]) for i, trees in enumerate(broods)]

    def _cached(self, inner: ProblemScreen, trees: Mapping[str, Tree]) -> float | None:
        key = (id(inner), *sorted(trees.items()))
        found = self._memo.get(key, MISSING)
        if found is not MISSING:
            return found  # type: ignore[return-value]
        self.calls += 1
        return self._memo.put(key, self._score(inner, trees), sum(size(tree) for tree in trees.values()))

    def _score(self, inner: ProblemScreen, trees: Mapping[str, Tree]) -> float | None:
        # A screen that takes the trees themselves (``tree_results``) may keep what parts of
        # its instances gave for a tree's part that acts there (smtt's sizes on either side of
        # a gate); the others get the trees compiled.
        by_tree = getattr(inner, "tree_results", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if callable(by_tree):
                results = by_tree(trees)
            else:
                results = inner.results({name: (compile_tree(tree), reads(tree)) for name, tree in trees.items()})
        if results is None or not all(r.feasible for r in results):
            return None
        score, _ = self._aggregate(results)
        return None if score is None else float(score)


def screen_for(problem: Any) -> Screen | None:
    """The problem's screen, when its verifier defines ``gp_screen``."""
    if not callable(getattr(problem.verifier, "gp_screen", None)):
        return None
    return Screen(problem)
