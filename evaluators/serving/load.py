"""Offered load: how hard a trace pushes an engine, relative to what the engine sustains.

A saturated engine runs every step full: either the token budget is spent, or
``max_num_seqs`` requests decode, or the KV cache is full of running requests,
whichever binds first.  A request then pays its own token costs (``b1`` per
prefill token, ``b2`` per decode token, ``b3`` per KV token its decodes read)
plus its share of the per-step cost ``b0``: the largest of its share of the
budget, of the sequence slots, and of the KV cache over the steps it decodes
(a request with prompt P decoding O tokens holds about P + k tokens at its k-th
decode: O * (P + O / 2) token-steps).  Capacity is the inverse of that mean
cost; offered load is the trace's arrival rate over it.  Below ~0.5 queues
hardly form and every order serves requests alike; around 1 the order decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evolve.evaluators.serving.records import EngineConfig, Trace

TIE_LOAD = 0.5  # below this offered load, policies (nearly) tie: say so


@dataclass(frozen=True)
class LoadReport:
    requests: int
    span_s: float  # first to last arrival
    rate: float  # requests per second
    capacity: float  # requests per second the engine sustains for these lengths
    load: float  # rate / capacity

    def describe(self, whose: str = "engine") -> str:
        capacity = f"of the {whose}'s capacity ({self.capacity:.1f} req/s for these lengths)"
        if not self.span_s > 0:  # one request, or all at once: was "1 requests over 0 s (inf req/s); offered load inf"
            what = "1 request" if self.requests == 1 else f"{self.requests:,} requests, all arriving at once"
            return f"{what}: no arrival rate, so no offered load {capacity}"
        return (f"{self.requests:,} requests over {self.span_s:,.0f} s ({self.rate:.2f} req/s); offered load "
                f"{self.load:.2f} {capacity}")


def kv_token_steps(prompt: np.ndarray, output: np.ndarray) -> np.ndarray:
    """KV tokens read by a request's decodes: the decode sampling token k + 1 reads P + k - 1."""
    steps = output - 1
    return steps * prompt + steps * (steps - 1) / 2


def capacity(cfg: EngineConfig, prompt: np.ndarray, output: np.ndarray) -> float:
    """Requests per second a saturated engine sustains for requests with these lengths."""
    p, o = float(np.mean(prompt)), float(np.mean(output))
    held = float(np.mean(output * (prompt + output / 2.0)))
    share = max((p + o) / cfg.max_num_batched_tokens, o / cfg.max_num_seqs,
                held / (cfg.kv_blocks * cfg.block_size))
    per_request = share * cfg.b0 + cfg.b1 * p + cfg.b2 * o + cfg.b3 * float(np.mean(kv_token_steps(prompt, output)))
    return 1.0 / per_request


def offered_load(cfg: EngineConfig, trace: Trace) -> LoadReport:
    n = len(trace)
    span = float(trace.arrival[-1] - trace.arrival[0]) if n > 1 else 0.0
    rate = (n - 1) / span if span > 0 else float("inf")
    cap = capacity(cfg, trace.prompt, trace.output)
    return LoadReport(n, span, rate, cap, rate / cap)
