"""The trusted side of a scheduling policy: what it is shown, and what is done with its answer.

The engine runs in the trusted process.  At a step where the order changes the
outcome (waiting requests that do not all fit together while one does, or two or
more running requests of which some must be preempted), ``observe`` builds what a real
scheduler knows at that moment, nothing more: arrivals, prompt lengths,
predicted output lengths, tokens computed and generated so far, KV blocks,
preemptions, the clients' service counters and the engine's totals.  The
policy (in the sandbox) answers one priority per waiting and running request;
waiting requests are admitted in ascending priority (ties: earlier arrival) and
victims are taken in descending priority (ties: most recently admitted).  The
answer is hostile input: ``checked_priorities`` validates it here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evolve.evaluators.serving.candidate_side import ARRAY_FEATURES, SCALAR_FEATURES, Payload
from evolve.evaluators.serving.engine import Engine

FEATURES = SCALAR_FEATURES + ARRAY_FEATURES  # the policy's keyword arguments
_ROW = {name: k for k, name in enumerate(ARRAY_FEATURES)}

Observation = Payload  # (matrix of array features, tuple of scalars): candidate_side.features
Ask = Callable[[Engine], np.ndarray]  # priorities of concat(waiting, running) at this step


class PolicyError(Exception):
    """The policy raised, or answered something that is not one finite priority per request."""


def observe(eng: Engine, predicted: np.ndarray, slo: tuple[float, float]) -> Observation:
    """What the policy sees: one column per waiting, then running, request, and the totals."""
    waiting, running = eng.waiting, eng.running
    ids, computed, generated, held = eng.active_state()
    arrival = eng.arrival[ids]
    rows = np.empty((len(ARRAY_FEATURES), ids.size))
    row = _ROW
    rows[row["arrival"]] = arrival
    rows[row["waited"]] = eng.now - arrival
    rows[row["prompt_len"]] = eng.prompt[ids]
    rows[row["computed"]] = computed
    rows[row["generated"]] = generated
    rows[row["predicted_len"]] = predicted[ids]
    rows[row["blocks_held"]] = held
    rows[row["blocks_needed"]] = -(-(eng.prompt[ids] + generated) // eng.cfg.block_size) - held
    rows[row["running"]] = 1.0
    rows[row["running"], :waiting.size] = 0.0
    rows[row["preemptions"]] = eng.preemptions[ids]
    rows[row["client_tokens"]] = eng.client_tokens[eng.trace.client[ids]]
    scalars = (eng.now, float(eng.free), float(eng.cfg.kv_blocks), float(waiting.size), float(running.size),
               slo[0], slo[1])
    return rows, scalars


def checked_priorities(value: Any, size: int, step: int) -> np.ndarray:
    """The policy's answer as ``size`` finite floats, or PolicyError naming the step."""
    try:
        prio = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise PolicyError(f"step {step}: the policy returned {type(value).__name__}, not numbers") from None
    if prio.ndim == 0:
        prio = np.full(size, float(prio))
    if prio.shape != (size,):
        raise PolicyError(f"step {step}: the policy returned shape {prio.shape}; expected ({size},), one "
                          "priority per waiting and running request")
    if not np.isfinite(prio).all():
        raise PolicyError(f"step {step}: the policy returned NaN or infinity")
    return prio


def policy_ask(decide: Callable[[Observation], Any], predicted: np.ndarray,
               slo: tuple[float, float]) -> Ask:
    """Ask ``decide`` (the sandboxed policy, or a trusted one in tests) for priorities."""

    def ask(eng: Engine) -> np.ndarray:
        observation = observe(eng, predicted, slo)
        try:
            value = decide(observation)
        except PolicyError as err:
            raise PolicyError(f"{err}, at step {eng.steps}") from None
        return checked_priorities(value, observation[0].shape[1], eng.steps)

    return ask


def fcfs_ask(eng: Engine) -> np.ndarray:
    """vLLM's default order (priority = arrival), computed directly: the trusted reference."""
    ids, _, _, _ = eng.active_state()
    return eng.arrival[ids]


def fcfs_priority(arrival: np.ndarray, **_: Any) -> np.ndarray:
    """FCFS as a policy function (the seed's rule)."""
    return arrival


class PolicyDecider:
    """Makes the engine's two choices with the policy's priorities, asking at most once a step.

    The policy decides who is admitted and who is preempted; a choice whose outcome no
    order can change (one waiting request, all of them fitting together, none fitting
    alone, one running request to preempt) is taken without asking, in arrival order.
    """

    def __init__(self, ask: Ask) -> None:
        self.ask = ask
        self.calls = 0
        self._step = -1
        self._prio = np.empty(0)

    def priorities(self, eng: Engine) -> np.ndarray:
        if self._step != eng.steps:
            self._prio = self.ask(eng)
            self._step = eng.steps
            self.calls += 1
        return self._prio

    def preempt(self, eng: Engine) -> None:
        running = eng.running
        if running.size == 1:
            order = running
        else:
            mine = self.priorities(eng)[eng.waiting.size:]
            order = running[np.lexsort((-eng.admit_seq[running], -mine))]
        for victim in order.tolist():
            if eng.shortage() <= 0:
                break
            eng.preempt(victim)

    def admit(self, eng: Engine) -> None:
        waiting = eng.waiting
        if waiting.size > 1 and eng.order_matters(waiting):
            order = waiting[np.argsort(self.priorities(eng)[:waiting.size], kind="stable")]
        else:  # every order admits the same requests with the same chunks: arrival order
            order = waiting
        k, tokens, blocks = eng.fit_prefix(order)
        eng.admit(order[:k], tokens, blocks)
