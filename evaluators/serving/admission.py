"""Which waiting requests a step admits: vLLM's admission rule as arithmetic over the
sequence slots, token budget and free KV blocks left (trusted side only).

Requests are taken in the decider's order and admission stops at the first that
does not fit (no skipping, as in vLLM).  With chunked prefill the last one
admitted gets a chunk of whatever budget is left; prefill-first (vLLM V0) needs
the whole prompt to fit.  A waiting request holds no KV: what it needs is its
prompt plus the tokens it generated before a preemption (recomputed).
"""

from __future__ import annotations

import numpy as np

from evolve.evaluators.serving.records import EngineConfig

Room = tuple[int, int, int]  # (sequence slots, token budget, free blocks) left this step
NONE = np.empty(0, np.int64)  # no ids, tokens or blocks


def fit_prefix(cfg: EngineConfig, prompt: np.ndarray, generated: np.ndarray, order: np.ndarray,
               room: Room) -> tuple[int, np.ndarray, np.ndarray]:
    """How many of ``order`` (waiting ids) are admitted, in that order.

    Returns (k, tokens, blocks): the first k are admitted with those prefill
    tokens and blocks; admission stops at the first one that does not fit.
    """
    slots, budget, free = room
    m = min(order.size, max(slots, 0))
    bs = cfg.block_size
    if m == 1:  # the common case at low load, in plain integers
        need = int(prompt[order[0]] + generated[order[0]])
        tokens = min(need, budget) if cfg.chunked_prefill else need
        fits = (budget > 0 if cfg.chunked_prefill else need <= budget) and -(-tokens // bs) <= free
        one = np.array([tokens], np.int64)
        return (1, one, -(-one // bs)) if fits else (0, NONE, NONE)
    cand = order[:m]
    need = prompt[cand] + generated[cand]
    cum = np.cumsum(need)
    before = cum - need
    if cfg.chunked_prefill:
        tokens = np.minimum(need, budget - before)
        fits_budget = before < budget
    else:
        tokens = need
        fits_budget = cum <= budget
    blocks = -(-np.maximum(tokens, 0) // bs)
    fits = fits_budget & (np.cumsum(blocks) <= free)
    k = m if fits.all() else int(np.argmin(fits))
    return k, tokens[:k], blocks[:k]


def refused_for_kv(cfg: EngineConfig, prompt: np.ndarray, generated: np.ndarray, order: np.ndarray, k: int,
                   tokens: np.ndarray, blocks: np.ndarray, room: Room) -> bool:
    """Was ``order[k]``, the first request ``fit_prefix`` did not admit, refused for want of free KV
    blocks alone: with a sequence slot and enough token budget left for it (its first chunk)?"""
    slots, budget, free = room
    if k >= slots:
        return False
    budget_left, free_left = budget - int(tokens.sum()), free - int(blocks.sum())
    need = int(prompt[order[k]] + generated[order[k]])
    if cfg.chunked_prefill:
        if budget_left <= 0:
            return False
        need = min(need, budget_left)
    elif need > budget_left:
        return False
    return -(-need // cfg.block_size) > free_left


def fits_alone(cfg: EngineConfig, need: np.ndarray, budget: int, free: int) -> np.ndarray:
    """Which requests, needing ``need`` tokens each, could be admitted first with this budget and free KV."""
    if cfg.chunked_prefill:
        tokens, fits_budget = np.minimum(need, budget), budget > 0
    else:
        tokens, fits_budget = need, need <= budget
    return fits_budget & (-(-tokens // cfg.block_size) <= free)


def order_matters(cfg: EngineConfig, need: np.ndarray, room: Room) -> bool:
    """Would admitting the waiting requests (needing ``need`` tokens each) in another order
    admit other requests (or other chunks)?

    Not when they all fit together (slots, whole prompts in the budget, KV), nor when
    none fits alone.
    """
    slots, budget, free = room
    if (need.size <= slots and int(need.sum()) <= budget
            and int((-(-need // cfg.block_size)).sum()) <= free):
        return False
    return bool(fits_alone(cfg, need, budget, free).any())
