"""Per-request latencies and their summaries (trusted: computed from the trusted engine run).

* TTFT: first token time - arrival;
* TPOT: (finish - first token) / (output tokens - 1), 0 for one-token outputs;
* E2E: finish - arrival;
* slowdown: E2E / the request's latency alone on an empty engine (same cost
  model: its prefill in budget-sized chunks, then one decode step per token);
  the worst slowdown is the fairness figure (1 = nobody waited);
* goodput: share of requests meeting both the TTFT and the TPOT SLO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from evolve.evaluators.serving.engine import Engine
    from evolve.evaluators.serving.records import EngineConfig, Trace


@dataclass(frozen=True)
class Slo:
    ttft_s: float
    tpot_s: float


@dataclass
class RequestTable:
    ttft: np.ndarray
    tpot: np.ndarray
    e2e: np.ndarray
    slowdown: np.ndarray


def isolated_latency(cfg: EngineConfig, prompt: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Latency of each request served alone (the best any scheduler can do for it)."""
    chunks = -(-prompt // cfg.max_num_batched_tokens) if cfg.chunked_prefill else np.ones_like(prompt)
    prefill = chunks * cfg.b0 + cfg.b1 * prompt
    # the decode that samples token k + 1 (k = 1..output-1) reads prompt + k - 1 KV tokens
    steps = output - 1
    kv = cfg.b3 * (steps * prompt + steps * (steps - 1) / 2)
    return prefill + steps * (cfg.b0 + cfg.b2) + kv


def request_table(cfg: EngineConfig, trace: Trace, first_token: np.ndarray, finish: np.ndarray) -> RequestTable:
    arrival = trace.arrival
    out = trace.output
    ttft = first_token - arrival
    e2e = finish - arrival
    tpot = np.where(out > 1, (finish - first_token) / np.maximum(out - 1, 1), 0.0)
    return RequestTable(ttft, tpot, e2e, e2e / isolated_latency(cfg, trace.prompt, out))


def engine_table(engine: Engine) -> RequestTable:
    return request_table(engine.cfg, engine.trace, engine.first_token, engine.finish)


def engine_stats(engines: list[Engine]) -> dict[str, float]:
    """Engine-level figures of one or more replicas."""
    busy = sum(e.busy_s for e in engines)
    capacity = sum(e.busy_s * e.cfg.kv_blocks for e in engines)
    return {
        "preemptions": float(sum(e.preempted_total for e in engines)),
        "kv_util_pct": 100.0 * sum(e.kv_block_s for e in engines) / capacity if capacity else 0.0,
        "steps": float(sum(e.steps for e in engines)),
        "busy_s": busy,
    }


def kv_bound_pct(engines: list[Engine]) -> float:
    """% of engine steps at which KV memory bound (``Engine.kv_bound_steps``).  Not one of
    ``engine_stats``: those are part of each instance's reference figures, which pin a run's
    instances (a resumed run of older code must find them unchanged)."""
    return 100.0 * sum(e.kv_bound_steps for e in engines) / max(1, sum(e.steps for e in engines))


def summary(table: RequestTable, arrival: np.ndarray, output: np.ndarray, slo: Slo) -> dict[str, float]:
    """Figures of one simulated trace (seconds unless named otherwise)."""
    good = (table.ttft <= slo.ttft_s) & (table.tpot <= slo.tpot_s)
    makespan = float(np.max(arrival + table.e2e) - arrival[0])
    figures = {
        "goodput_pct": 100.0 * float(good.mean()),
        "e2e_mean_s": float(table.e2e.mean()),
        "ttft_mean_s": float(table.ttft.mean()),
        "tpot_mean_s": float(table.tpot.mean()),
        "slowdown_max": float(table.slowdown.max()),
        "slowdown_p99": float(np.percentile(table.slowdown, 99)),
        "throughput_tok_s": float(output.sum()) / makespan,
        "throughput_req_s": len(table.e2e) / makespan,
    }
    for name, values in (("e2e", table.e2e), ("ttft", table.ttft), ("tpot", table.tpot)):
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        figures[f"{name}_p50_s"], figures[f"{name}_p90_s"], figures[f"{name}_p99_s"] = (
            float(p50), float(p90), float(p99))
    return figures
