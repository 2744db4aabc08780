"""Event-driven time advance: a stretch of decode-only steps in one computation.

Most steps of a lightly loaded engine are alike: every running request decodes
one token, nobody can be admitted, nobody needs preempting.  Such a stretch is
fully determined by its start, so it runs here in one pass of numpy over its
steps instead of one Python iteration each.  It ends just before the first step
that is not alike:

* a request finishes (the membership of the batch changes);
* a request arrives (the next step could admit it);
* the decodes would need more new KV blocks than are free (a preemption);
* the step limit.

Every quantity is computed with the same floating-point operations, in the same
order, as ``Engine.step`` would: step times elementwise, then ``now``, busy time
and the KV integral as sequential sums (``np.cumsum`` accumulates left to
right).  ``tests/test_serving_stretch.py`` checks that the results match the
step-by-step simulation exactly, bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from evolve.evaluators.serving.engine import Engine


def decode_stretch(eng: Engine, next_arrival: float, max_steps: int) -> int:
    """Run the decode-only steps that start now (at most until ``next_arrival``); how many ran.

    Returns 0, with the engine untouched, when the next step is not a plain
    decode step (prefill chunks, an admission or a preemption to decide).  With
    nobody waiting, the stretch runs on through finishes (the batch only shrinks);
    with requests waiting, it stops at the first finish, which may let one in.
    """
    cfg = eng.cfg
    n = eng.running.size
    if n == 0 or n > cfg.max_num_batched_tokens or not eng.decoding_only:
        return 0
    generated, computed = eng.r_generated, eng.r_computed
    bs = cfg.block_size
    waiting = eng.waiting.size > 0
    if waiting and _admission_possible(eng, n, int(np.count_nonzero(computed % bs == 0))):
        return 0
    # Requests wait while a slot and budget are left: KV memory holds them back at every step (as
    # Engine.step counts it: the first in arrival order is refused for want of blocks).
    kv_bound = waiting and eng.cfg.max_num_seqs > n and _admission_budget(eng, n) > 0
    left = eng.r_output - generated  # decode steps until each request finishes (>= 1)
    horizon = min(int(left.min() if waiting else left.max()), max_steps - eng.steps)
    shortest = cfg.b0 + cfg.b2  # no step of the stretch is shorter (one decode at least)
    if next_arrival - eng.now < horizon * shortest:
        horizon = min(horizon, int((next_arrival - eng.now) / shortest) + 2)
    if horizon <= 0:
        return 0
    j = np.arange(horizon)
    # Sorted by steps left, the requests still decoding at step j are a suffix: their
    # count and KV come from searches and prefix sums, with no request x step table.
    by_left = np.argsort(left, kind="stable")
    left_sorted = left[by_left]
    gone = np.searchsorted(left_sorted, j, side="right")  # requests finished before step j
    n_j = n - gone
    # A running request holds ceil(computed / block) blocks, so it needs a new one in the
    # steps j with (computed + j) % block == 0, i.e. j = phase (mod block) while it decodes.
    phase = (-computed) % bs
    keys = np.sort(phase * (horizon + 1) + np.minimum(left, horizon))
    g = j % bs
    new = (np.searchsorted(keys, (g + 1) * (horizon + 1), side="left")
           - np.searchsorted(keys, g * (horizon + 1) + j, side="right"))
    ends = left <= horizon
    freed = np.bincount(left[ends] - 1, weights=-(-(computed[ends] + left[ends]) // bs),
                        minlength=horizon).astype(np.int64)
    free_start = eng.free - np.concatenate(([0], np.cumsum(new - freed)[:-1]))
    short = np.flatnonzero(new > free_start)
    k = int(short[0]) if short.size else horizon
    if k == 0:
        return 0  # this very step needs a preemption
    # As Engine._execute: dt = b0 + b1 * prefill + b2 * decode (+ b3 * KV tokens read)
    dts = cfg.b0 + cfg.b1 * 0 + cfg.b2 * n_j[:k]
    if cfg.b3:  # KV tokens read at step j: computed of those still decoding, plus j each
        cum = np.concatenate(([0], np.cumsum(computed[by_left])))
        kv_read = (cum[-1] - cum[gone[:k]]) + j[:k] * n_j[:k]
        dts = dts + cfg.b3 * kv_read.astype(float)
    starts = np.cumsum(np.concatenate(([eng.now], dts)))  # starts[s]: start of step s; starts[k]: end
    if next_arrival < starts[k]:
        # the first step that starts at or after the arrival sees it in the waiting queue
        k = int(np.searchsorted(starts[1:k], next_arrival, side="left")) + 1
        dts = dts[:k]
    held = cfg.kv_blocks - (free_start[:k] - new[:k])  # blocks in use during each step
    eng.now = float(starts[k])
    eng.busy_s = float(np.cumsum(np.concatenate(([eng.busy_s], dts)))[-1])
    eng.kv_block_s = float(np.cumsum(np.concatenate(([eng.kv_block_s], held * dts)))[-1])
    steps = np.minimum(left, k)  # decode steps each request ran
    eng.decode_tokens += int(steps.sum())
    if eng.client_tokens.size > 1:  # integers in float64: order of additions cannot matter
        eng.client_tokens += np.bincount(eng.r_client, weights=2.0 * steps, minlength=eng.client_tokens.size)
    else:
        eng.client_tokens[0] += 2 * int(steps.sum())
    eng.steps += k
    if kv_bound:
        eng.kv_bound_steps += k
    eng.free = int(free_start[k - 1] - new[k - 1] + freed[k - 1])
    eng.r_computed = computed + steps
    eng.r_generated = generated + steps
    eng.r_blocks = -(-eng.r_computed // bs)
    done = left <= k
    if done.any():
        ids = eng.running[done]
        eng.finish[ids] = starts[left[done]]
        eng.retire(done)
    return k


def _admission_budget(eng: Engine, n: int) -> int:
    """The token budget admissions have in a step where ``n`` requests decode."""
    return eng.cfg.max_num_batched_tokens - n if eng.cfg.chunked_prefill else eng.cfg.max_num_batched_tokens


def _admission_possible(eng: Engine, n: int, first_new_blocks: int) -> bool:
    """Could any waiting request be admitted (alone) in the stretch's first step?

    Free KV for admissions only shrinks along a stretch (decodes allocate, nobody
    frees) and slots and budget stay put, so "no" at the first step holds for all.
    """
    cfg = eng.cfg
    slots, budget = cfg.max_num_seqs - n, _admission_budget(eng, n)
    # prefill-first: admission is tried before the decodes are planned
    free = eng.free - first_new_blocks if cfg.chunked_prefill else eng.free
    if slots <= 0 or budget <= 0:
        return False
    return bool(eng.fits_alone(eng.waiting, budget, free).any())
