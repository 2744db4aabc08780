"""The sandbox side: drive the engine with the candidate's priority function.

``simulate`` runs inside the sandbox.  Once per step in which the engine has a
choice to make (admit waiting requests, or pick preemption victims), the
candidate gets numpy arrays describing every waiting and running request and
returns one priority per request: waiting requests are admitted in ascending
priority (ties: earlier arrival), and victims are taken in descending priority
(ties: most recently admitted).  The decisions are recorded compactly as flat
``[step, request, step, request, ...]`` lists for the trusted replay.
"""

from __future__ import annotations

import hashlib
import linecache
from collections.abc import Callable
from typing import Any

import numpy as np

from evolve.evaluators.serving.engine import Engine, EngineConfig, Trace, run_engine
from evolve.evaluators.serving.metrics import engine_table

FEATURES = ("now", "arrival", "waited", "prompt_len", "computed", "generated", "predicted_len",
            "blocks_held", "blocks_needed", "running", "preemptions", "client_tokens",
            "free_blocks", "total_blocks", "queue_len", "num_running", "ttft_slo", "tpot_slo")


class PolicyDecider:
    """Asks the policy for priorities (at most once per step) and records the choices."""

    def __init__(self, fn: Callable[..., Any], predicted: np.ndarray,
                 slo: tuple[float, float] = (2.0, 0.2)) -> None:
        self.fn = fn
        self.predicted = predicted
        self.slo = slo
        self.admit_log: list[int] = []
        self.blocked_log: list[int] = []
        self.victim_log: list[int] = []
        self.calls = 0
        self._step = -1
        self._prio = np.empty(0)

    def priorities(self, eng: Engine) -> np.ndarray:
        """Priorities of ``concat(waiting, running)`` as they are at the call."""
        if self._step == eng.steps:
            return self._prio
        waiting, running = eng.waiting, eng.running
        ids, computed, generated, held = eng.active_state()
        known = eng.prompt[ids] + generated
        flag = np.zeros(ids.size)
        flag[waiting.size:] = 1.0
        arrival = eng.arrival[ids]
        out = self.fn(
            now=eng.now,
            arrival=arrival,
            waited=eng.now - arrival,
            prompt_len=eng.prompt[ids].astype(float),
            computed=computed.astype(float),
            generated=generated.astype(float),
            predicted_len=self.predicted[ids],
            blocks_held=held.astype(float),
            blocks_needed=(-(-known // eng.cfg.block_size) - held).astype(float),
            running=flag,
            preemptions=eng.preemptions[ids].astype(float),
            client_tokens=eng.client_tokens[eng.trace.client[ids]],
            free_blocks=float(eng.free),
            total_blocks=float(eng.cfg.kv_blocks),
            queue_len=float(waiting.size),
            num_running=float(running.size),
            ttft_slo=self.slo[0],
            tpot_slo=self.slo[1],
        )
        self.calls += 1
        prio = np.asarray(out, dtype=float)
        if prio.ndim == 0:
            prio = np.full(ids.size, float(prio))
        if prio.shape != (ids.size,):
            raise ValueError(f"step {eng.steps}: the policy returned shape {prio.shape}; expected "
                             f"({ids.size},), one priority per waiting and running request")
        if not np.isfinite(prio).all():
            raise ValueError(f"step {eng.steps}: the policy returned NaN or infinity")
        self._step, self._prio = eng.steps, prio
        return prio

    def preempt(self, eng: Engine) -> None:
        prio = self.priorities(eng)
        running = eng.running
        mine = prio[eng.waiting.size:]
        order = running[np.lexsort((-eng.admit_seq[running], -mine))]
        for victim in order.tolist():
            if eng.shortage() <= 0:
                break
            eng.preempt(victim)
            self.victim_log += (eng.steps, victim)

    def admit(self, eng: Engine) -> None:
        prio = self.priorities(eng)
        waiting = eng.waiting
        order = waiting[np.argsort(prio[:waiting.size], kind="stable")]
        k, tokens, blocks, reason = eng.fit_prefix(order)
        step = eng.steps
        for rid in order[:k].tolist():
            self.admit_log += (step, rid)
        if reason in ("kv", "unchunked"):
            self.blocked_log += (step, int(order[k]))
        eng.admit(order[:k], tokens, blocks)


def fcfs_priority(arrival: np.ndarray, **_: Any) -> np.ndarray:
    """vLLM's default order, used for the trusted FCFS reference."""
    return arrival


def is_oracle(fn: Callable[..., Any], digests: tuple[str, ...]) -> bool:
    """True for a shipped oracle baseline (exact source match): only those see true lengths."""
    if not digests:
        return False
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    source = "".join(linecache.getlines(code.co_filename))
    return bool(source) and hashlib.sha256(source.encode()).hexdigest() in digests


def simulate(fn: Callable[..., Any], data: dict[str, Any]) -> dict[str, Any]:
    """Run a whole trace with policy ``fn``; the solution the sandbox returns."""
    trace = Trace.from_data(data["trace"])
    cfg = EngineConfig.from_data(data["engine"])
    oracle = is_oracle(fn, tuple(data.get("oracle_digests", ())))
    predicted = trace.output.astype(float) if oracle else trace.predicted
    decider = PolicyDecider(fn, predicted, tuple(data["slo"]))
    engine = run_engine(cfg, trace, decider, int(data["max_steps"]))
    table = engine_table(engine)
    return {
        "admit": decider.admit_log,
        "blocked": decider.blocked_log,
        "victims": decider.victim_log,
        "steps": engine.steps,
        "policy_calls": decider.calls,
        "oracle": oracle,
        "ttft": np.round(table.ttft, 6).tolist(),
        "e2e": np.round(table.e2e, 6).tolist(),
    }
