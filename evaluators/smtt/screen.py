"""Screening the GP's rule trees in-process: many instances dispatched at once.

Trusted side, and only for trees the engine built itself (``evolve/gp/screen.py``):
never candidate code.  The GP makes a brood of children per iteration and sends
only the one that screens best to the sandbox and the verifier, which score it
as every program is scored.

``dispatch_batch`` builds the same sequences as ``dispatch.py`` (and the
``smtt`` seed's dispatcher) for a one-array rule: at each step every unscheduled
job gets the rule's value, the lowest goes next, ties to the job first in input
order.  Instances of one size run as one [instances, jobs] matrix, so a step
costs a few numpy calls whatever the number of instances.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from evolve.gp.memo import MISSING, TreeMemo
from evolve.gp.tree import Tree, compile_tree, fold_known, reads, size
from evolve.verifier import Instance, InstanceResult, feasible

Rule = Callable[[Mapping[str, Any]], Any]
Batch = tuple[list[Instance], np.ndarray, np.ndarray]  # instances of one size, their p and d

_AGGREGATES: dict[str, tuple[str, Callable[..., np.ndarray]]] = {
    "p_max": ("p", np.max), "p_min": ("p", np.min), "p_mean": ("p", np.mean),
    "d_min": ("d", np.min), "d_max": ("d", np.max), "d_mean": ("d", np.mean),
}


def dispatch_batch(rule: Rule, reads: set[str], p: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """Sequences [instances, n] the rule builds on instances p, d [instances, n]; None on NaN."""
    count, n = p.shape
    rows = np.arange(count)
    # p, d and the job index of the unscheduled jobs (input order) as one [3, instances, jobs]
    # table, compacted by one boolean selection per step rather than three (half the time at
    # n = 500; the index is exact as a float).  The mask is reused: cleared at the chosen
    # jobs, then set again.
    table = np.stack([p.astype(np.float64), d.astype(np.float64),
                      np.broadcast_to(np.arange(n, dtype=np.float64), (count, n))])
    keep = np.ones((3, count, n), dtype=bool)
    t = np.zeros((count, 1))
    remaining = table[0].sum(axis=1, keepdims=True)
    sequence = np.empty((count, n), dtype=np.int64)
    with np.errstate(all="ignore"):
        for step in range(n):
            m = n - step
            pf = table[0]
            env: dict[str, Any] = {"p": pf, "d": table[1], "t": t, "remaining_work": remaining,
                                   "jobs_left": float(m), "n": float(n)}
            for name in reads & _AGGREGATES.keys():
                source, reduce = _AGGREGATES[name]
                env[name] = reduce(env[source], axis=1, keepdims=True)
            values = np.broadcast_to(np.asarray(rule(env), dtype=np.float64), (count, m))
            k = values.argmin(axis=1)
            if np.isnan(values[rows, k]).any():
                return None
            sequence[:, step] = table[2, rows, k]
            work = pf[rows, k][:, None]
            t = t + work
            remaining = remaining - work
            mask = keep[:, :, :m]
            mask[:, rows, k] = False
            table = table[mask].reshape(3, count, m - 1)
            mask[:, rows, k] = True
    return sequence


# The brood's first cut runs on the train instances up to this size (70 of the 870 dispatching
# steps a whole-train screen takes); the few best children are then screened on all of train.
PRE_MAX_N = 50


def screen(instances: list[Instance]) -> SmttScreen:
    """The screen on ``instances``, with a first cut on the small ones."""
    whole = SmttScreen(instances)
    small = [batch for batch in whole.batches if batch[1].shape[1] <= PRE_MAX_N]
    if small and len(small) < len(whole.batches):
        whole.pre = SmttScreen([], batches=small, cache=whole.cache)
    return whole


# Sizes' results kept per screen (one entry per size and folded tree, two small arrays each), and
# the folded trees' nodes (evolve/gp/memo.py's bound: each is a copy); past either the cache starts again.
CACHE_ENTRIES = 100_000

Outcome = tuple[np.ndarray, np.ndarray] | None  # total tardiness and tardy jobs per instance; None: NaN


class SmttScreen:
    """Scores a priority tree on a fixed set of instances as the verifier scores a sequence.

    Instances of one size form a batch; a batch's outcome is kept per tree folded at its size
    (``fold_known``: a rule split at the gate ``n - 75`` is, at each size, the side it takes
    there). A child that changes only the side below the gate, or only c1 above it, therefore
    dispatches again only the sizes on that side, with the same figures (``tree_results``).
    ``pre``, the cut on the small sizes, shares the batches and the cache."""

    def __init__(self, instances: list[Instance], batches: list[Batch] | None = None,
                 cache: TreeMemo[Outcome] | None = None) -> None:
        self.pre: SmttScreen | None = None
        if batches is None:
            by_size: dict[int, list[Instance]] = {}
            for inst in instances:
                by_size.setdefault(len(inst.data["p"]), []).append(inst)
            batches = [(group, np.stack([i.data["p"] for i in group]), np.stack([i.data["d"] for i in group]))
                       for _, group in sorted(by_size.items())]
        self.batches = batches
        self.cache: TreeMemo[Outcome] = TreeMemo(CACHE_ENTRIES) if cache is None else cache

    def results(self, rules: Mapping[str, tuple[Rule, set[str]]]) -> list[InstanceResult] | None:
        rule, reads_ = rules["priority"]
        outcomes = []
        for _, p, d in self.batches:
            outcome = _outcome(rule, reads_, p, d)
            if outcome is None:
                return None
            outcomes.append(outcome)
        return self._results(outcomes)

    def tree_results(self, trees: Mapping[str, Tree]) -> list[InstanceResult] | None:
        """``results`` of a tree, each size's outcome computed once per tree folded at it."""
        tree = trees["priority"]
        outcomes = []
        for _, p, d in self.batches:
            n = p.shape[1]
            key = (n, fold_known(tree, {"n": float(n)}))
            outcome = self.cache.get(key, MISSING)
            if outcome is MISSING:  # None is kept too: a NaN at that size
                outcome = self.cache.put(key, _outcome(compile_tree(key[1]), reads(key[1]), p, d), size(key[1]))
            if outcome is None:
                return None
            outcomes.append(outcome)
        return self._results(outcomes)

    def _results(self, outcomes: list[tuple[np.ndarray, np.ndarray]]) -> list[InstanceResult]:
        out: list[InstanceResult] = []
        for (group, _, _), (totals, tardy) in zip(self.batches, outcomes, strict=True):
            out += [feasible(inst, float(total), "minimize", tardy_jobs=float(late))
                    for inst, total, late in zip(group, totals, tardy, strict=True)]
        return out


def _outcome(rule: Rule, reads_: set[str], p: np.ndarray, d: np.ndarray) -> Outcome:
    sequences = dispatch_batch(rule, reads_, p, d)
    if sequences is None:
        return None
    # The verifier's score, vectorised over the batch: the sequences are permutations by
    # construction (a test checks the figures against the sandboxed verifier's).
    completion = np.cumsum(np.take_along_axis(p, sequences, axis=1), axis=1)
    tardiness = np.maximum(completion - np.take_along_axis(d, sequences, axis=1), 0)
    return tardiness.sum(axis=1), np.count_nonzero(tardiness, axis=1)
