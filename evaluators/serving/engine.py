"""A step-level simulator of a vLLM-like continuous-batching engine (trusted side only).

It runs in the trusted process; its two open choices (who is admitted, who is
preempted) are made by a ``Decider``: ``policy.PolicyDecider`` asks the
sandboxed policy for priorities, or computes FCFS directly for the reference.
Decode-only stretches run in one computation (``stretch.py``); who fits into a
step is ``admission.py``'s arithmetic; the configuration and the trace are
``records.py``.

One step (``Engine.step``), in vLLM V1's order:

1. running requests, in admission order, get their next tokens: one for a
   decode, ``min(remaining prefill, budget left)`` for an unfinished chunked
   prefill, until the token budget is spent;
2. if those tokens need more KV blocks than are free, running requests are
   preempted by recompute, one at a time in the decider's order, until the
   rest fit (a victim frees its blocks and goes back to waiting with zero
   computed tokens; it keeps the tokens it generated and recomputes them);
3. if nobody was preempted, waiting requests are admitted in the decider's
   order while sequence slots, token budget and free KV blocks last; the last
   one admitted gets a prefill chunk of the remaining budget; admission stops at
   the first request that does not fit (no skipping, as in vLLM);
4. the step takes ``b0 + b1*prefill + b2*decode + b3*kv_read`` seconds; a
   request whose known tokens are all computed samples one token, and finishes
   when it has generated its (hidden) output length.

With ``chunked_prefill = False`` the engine is prefill-first, like vLLM V0: a
step either prefills whole prompts of newly admitted requests or, when none
can be admitted, decodes every running request.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from evolve.evaluators.serving import admission
from evolve.evaluators.serving.admission import NONE, Room
from evolve.evaluators.serving.records import EngineConfig, Trace
from evolve.evaluators.serving.stretch import decode_stretch

__all__ = ["DONE", "RUNNING", "WAITING", "Decider", "Engine", "EngineConfig", "EngineError", "Trace", "run_engine"]

WAITING, RUNNING, DONE = 1, 2, 3


class EngineError(Exception):
    """The engine cannot go on: a request never finishes, or a decider broke a rule.

    ``located`` errors already name their step; others get the current one.
    """

    def __init__(self, message: str, located: bool = False) -> None:
        super().__init__(message)
        self.located = located


class Decider(Protocol):
    """Makes the two choices the engine leaves open."""

    def preempt(self, engine: Engine) -> None:
        """Called when running requests are short of blocks: call ``engine.preempt`` until
        ``engine.shortage() <= 0``."""

    def admit(self, engine: Engine) -> None:
        """Called when admission is possible: call ``engine.admit`` once."""


class Engine:
    """State of one replica.  Request ids index the trace arrays.

    Running requests live in arrays aligned with ``running`` (admission order),
    so that a decode step touches no global array; global per-request arrays are
    synced when a request leaves the running set.
    """

    def __init__(self, cfg: EngineConfig, trace: Trace) -> None:
        self.cfg = cfg
        self.trace = trace
        n = len(trace)
        self.arrival = trace.arrival
        self.prompt = trace.prompt
        self.output = trace.output
        self.generated = np.zeros(n, np.int64)  # valid for requests that are not running
        self.preemptions = np.zeros(n, np.int64)
        self.admit_seq = np.zeros(n, np.int64)  # order of the latest admission
        self.state = np.zeros(n, np.int8)
        self.first_token = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.client_tokens = np.zeros(int(trace.client.max(initial=0)) + 1)
        self.waiting = np.empty(0, np.int64)  # sorted by id (= arrival order)
        empty = np.empty(0, np.int64)
        # running set, aligned arrays
        self.running = empty
        self.r_prompt = self.r_output = self.r_computed = self.r_generated = self.r_blocks = empty
        self.r_client = empty
        self.free = cfg.kv_blocks
        self.now = 0.0
        self.steps = 0
        self.finished = 0
        self._seq = 0
        self.decoding_only = True  # no running request has prefill left (stretch.py relies on it)
        # statistics
        self.busy_s = 0.0
        self.kv_block_s = 0.0  # integral of used blocks over busy time
        self.prefill_tokens = 0
        self.decode_tokens = 0
        self.preempted_total = 0
        # steps at which KV memory bound: a preemption, or an admission refused for want of free
        # blocks while a sequence slot and token budget were left (the memory, not the batch, was full)
        self.kv_bound_steps = 0
        # the current step's plan
        self._budget = 0
        self._plan_tokens = self._plan_blocks = empty
        self._plan_token_sum = self._plan_block_sum = 0
        self._preempted_now = False
        self._kv_refused = False
        self._admitted = self._admit_tokens = self._admit_blocks = empty

    # -- arrivals ----------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.waiting.size == 0 and self.running.size == 0

    def receive(self, ids: np.ndarray) -> None:
        """Requests that arrived by ``now`` (or were preempted) join the waiting queue."""
        self.state[ids] = WAITING
        self.waiting = ids.copy() if self.waiting.size == 0 else np.sort(np.concatenate((self.waiting, ids)))

    # -- the running phase ---------------------------------------------------------

    def _plan(self) -> None:
        need = self.r_prompt + self.r_generated - self.r_computed
        total_need = int(need.sum())
        if total_need <= self._budget or not self.cfg.chunked_prefill:
            tokens = need  # prefill-first: running requests only decode (need == 1)
        else:
            before = np.cumsum(need) - need
            tokens = np.minimum(need, np.maximum(self._budget - before, 0))
            total_need = int(tokens.sum())
        total = self.r_computed + tokens
        blocks = np.maximum(-(-total // self.cfg.block_size) - self.r_blocks, 0)
        self._plan_tokens, self._plan_blocks = tokens, blocks
        self._plan_token_sum, self._plan_block_sum = total_need, int(blocks.sum())

    def shortage(self) -> int:
        """Blocks the running requests need this step beyond the free ones (> 0: preempt)."""
        return self._plan_block_sum - self.free

    def preempt(self, victim: int) -> None:
        """Preempt a running request by recompute (rules checked: it must be running)."""
        if not 0 <= victim < self.state.size or self.state[victim] != RUNNING:
            raise EngineError(f"request {victim} cannot be preempted: it is not running")
        if self.shortage() <= 0:
            raise EngineError(f"request {victim} was preempted, but the running requests' new "
                              "blocks already fit in the free ones")
        at = int(np.flatnonzero(self.running == victim)[0])
        self.generated[victim] = self.r_generated[at]
        self.free += int(self.r_blocks[at])
        keep = np.ones(self.running.size, bool)
        keep[at] = False
        self._keep_running(keep)
        self.preemptions[victim] += 1
        self.preempted_total += 1
        self._preempted_now = True
        self.receive(np.array([victim], np.int64))
        self._plan()

    def _keep_running(self, keep: np.ndarray) -> None:
        self.running = self.running[keep]
        self.r_prompt, self.r_output = self.r_prompt[keep], self.r_output[keep]
        self.r_computed, self.r_generated = self.r_computed[keep], self.r_generated[keep]
        self.r_blocks, self.r_client = self.r_blocks[keep], self.r_client[keep]

    # -- the admission phase ---------------------------------------------------------

    def admission_room(self) -> Room:
        """(sequence slots, token budget, free blocks) left for admissions this step."""
        return (self.cfg.max_num_seqs - self.running.size, self._budget - self._plan_token_sum,
                self.free - self._plan_block_sum)

    def fit_prefix(self, order: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """How many of ``order`` (waiting ids) the engine admits, with which chunks (``admission.py``)."""
        room = self.admission_room()
        k, tokens, blocks = admission.fit_prefix(self.cfg, self.prompt, self.generated, order, room)
        if k < order.size:
            self._kv_refused = admission.refused_for_kv(self.cfg, self.prompt, self.generated, order, k, tokens,
                                                        blocks, room)
        return k, tokens, blocks

    def order_matters(self, waiting: np.ndarray) -> bool:
        """Would admitting ``waiting`` in another order admit other requests (or other chunks)?"""
        need = self.prompt[waiting] + self.generated[waiting]
        return admission.order_matters(self.cfg, need, self.admission_room())

    def fits_alone(self, ids: np.ndarray, budget: int, free: int) -> np.ndarray:
        """Which of the waiting ``ids`` could be admitted first, with this budget and free KV."""
        return admission.fits_alone(self.cfg, self.prompt[ids] + self.generated[ids], budget, free)

    def admit(self, ids: np.ndarray, tokens: np.ndarray, blocks: np.ndarray) -> None:
        """Admit ``ids`` (validated by ``fit_prefix``) with their first prefill chunks."""
        self._admitted, self._admit_tokens, self._admit_blocks = ids, tokens, blocks

    def can_admit(self) -> bool:
        return (self.waiting.size > 0 and not self._preempted_now
                and self.running.size < self.cfg.max_num_seqs
                and self._plan_token_sum < self._budget)

    # -- one step -------------------------------------------------------------------

    def step(self, decider: Decider) -> None:
        """Run one engine iteration; ``now`` advances by its duration."""
        self._preempted_now = self._kv_refused = False
        self._admitted = self._admit_tokens = self._admit_blocks = NONE
        self._budget = self.cfg.max_num_batched_tokens
        if self.cfg.chunked_prefill:
            self._plan()
            if self.shortage() > 0:
                decider.preempt(self)
            if self.can_admit():
                decider.admit(self)
        else:
            # Prefill-first: try admissions first (running requests wait); decode
            # everyone only when no waiting request can be admitted.
            self._plan_tokens = self._plan_blocks = np.zeros(self.running.size, np.int64)
            self._plan_token_sum = self._plan_block_sum = 0
            if self.can_admit():
                decider.admit(self)
            if self._admitted.size == 0:
                self._plan()
                if self.shortage() > 0:
                    decider.preempt(self)
        if self._preempted_now or self._kv_refused:
            self.kv_bound_steps += 1
        self._execute()

    def _join(self, ids: np.ndarray) -> None:
        self.state[ids] = RUNNING
        self.admit_seq[ids] = np.arange(self._seq, self._seq + ids.size)
        self._seq += ids.size
        self.waiting = self.waiting[self.state[self.waiting] == WAITING]
        zeros = np.zeros(ids.size, np.int64)
        self.running = np.concatenate((self.running, ids))
        self.r_prompt = np.concatenate((self.r_prompt, self.prompt[ids]))
        self.r_output = np.concatenate((self.r_output, self.output[ids]))
        self.r_computed = np.concatenate((self.r_computed, zeros))
        self.r_generated = np.concatenate((self.r_generated, self.generated[ids]))
        self.r_blocks = np.concatenate((self.r_blocks, zeros))
        self.r_client = np.concatenate((self.r_client, self.trace.client[ids]))

    def _execute(self) -> None:
        cfg = self.cfg
        tokens, new_blocks = self._plan_tokens, self._plan_blocks
        token_sum = self._plan_token_sum
        block_sum = self._plan_block_sum
        if self._admitted.size:
            self._join(self._admitted)
            tokens = np.concatenate((tokens, self._admit_tokens))
            new_blocks = np.concatenate((new_blocks, self._admit_blocks))
            token_sum += int(self._admit_tokens.sum())
            block_sum += int(self._admit_blocks.sum())
        if token_sum == 0:
            raise EngineError("nothing was scheduled although requests were waiting")
        known = self.r_prompt + self.r_generated
        computed = self.r_computed
        decode = (known - computed == 1) & (self.r_generated > 0) & (tokens > 0)
        n_decode = int(np.count_nonzero(decode))
        n_prefill = token_sum - n_decode
        dt = cfg.b0 + cfg.b1 * n_prefill + cfg.b2 * n_decode
        if cfg.b3:
            dt += cfg.b3 * float(computed[decode].sum())
        self.r_blocks = self.r_blocks + new_blocks
        self.free -= block_sum
        self.busy_s += dt
        self.kv_block_s += (cfg.kv_blocks - self.free) * dt
        self.prefill_tokens += n_prefill
        self.decode_tokens += n_decode
        if self.client_tokens.size > 1:  # fair-share counters: a decode token weighs 2 (VTC)
            self.client_tokens += np.bincount(self.r_client, weights=tokens + decode,
                                              minlength=self.client_tokens.size)
        else:
            self.client_tokens[0] += n_prefill + 2 * n_decode
        self.now += dt
        self.steps += 1
        computed = computed + tokens
        self.r_computed = computed
        sampled = computed == known
        self.decoding_only = bool(sampled.all())  # every running request now decodes one token a step
        generated = self.r_generated + sampled
        self.r_generated = generated
        first = sampled & (generated == 1)
        if first.any():
            self.first_token[self.running[first]] = self.now
        self.finish_done()

    def finish_done(self) -> None:
        """Running requests that have generated their whole output finish now."""
        done = self.r_generated >= self.r_output
        if done.any():
            self.finish[self.running[done]] = self.now
            self.free += int(self.r_blocks[done].sum())
            self.retire(done)

    def retire(self, done: np.ndarray) -> None:
        """Finished running requests (a mask of the running set) leave it; their blocks are already free."""
        ids = self.running[done]
        self.state[ids] = DONE
        self.generated[ids] = self.r_generated[done]
        self.finished += ids.size
        self._keep_running(~done)

    # -- views for policies ---------------------------------------------------------

    def active_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ids, computed, generated, blocks held) of waiting then running requests."""
        w = self.waiting
        zeros = np.zeros(w.size, np.int64)
        return (np.concatenate((w, self.running)), np.concatenate((zeros, self.r_computed)),
                np.concatenate((self.generated[w], self.r_generated)),
                np.concatenate((zeros, self.r_blocks)))



def run_engine(cfg: EngineConfig, trace: Trace, decider: Decider, max_steps: int,
               event_driven: bool = True) -> Engine:
    """Simulate a whole trace on one replica; EngineError if a request never finishes.

    ``event_driven`` runs stretches of decode-only steps in one computation
    (``stretch.py``); the result is the same, bit for bit, as step by step.
    """
    engine = Engine(cfg, trace)
    arrival = trace.arrival
    times = arrival.tolist()
    n = len(trace)
    pointer = 0
    while engine.finished < n:
        if engine.steps >= max_steps:
            stuck = int(np.flatnonzero(engine.state != DONE)[0])
            raise EngineError(f"request {stuck} never finished: still "
                              f"{'waiting' if engine.state[stuck] == WAITING else 'running'} "
                              f"after the step limit of {max_steps} steps", located=True)
        arrived = pointer < n and times[pointer] <= engine.now
        if arrived:
            upto = int(np.searchsorted(arrival, engine.now, side="right"))
            engine.receive(np.arange(pointer, upto, dtype=np.int64))
            pointer = upto
        if engine.idle:
            engine.now = times[pointer]
            continue
        # Right after arrivals the next step is usually an admission: no stretch to look for.
        if event_driven and not arrived and decode_stretch(engine, times[pointer] if pointer < n else math.inf,
                                                           max_steps):
            continue
        try:
            engine.step(decider)
        except EngineError as err:
            if err.located:
                raise
            raise EngineError(f"step {engine.steps}: {err}", located=True) from None
    return engine
