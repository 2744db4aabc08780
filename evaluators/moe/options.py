"""The ``[verifier.options]`` of the moe problem, declared once (trusted side)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from evolve.options import VerifierOptions


class MoeOptions(VerifierOptions):
    # score = balance_weight * balancedness - runtime_weight * mean_i P_i (evaluators/moe/scoring.py)
    balance_weight: float = Field(100.0, ge=0, le=1e6)
    runtime_weight: float = Field(1.0, ge=0, le=1e6)
    # The CPU budget of one call: budget_i = max(runtime_budget_ms, runtime_budget_us_per_slot x
    # layers x num_replicas / 1000) ms; P_i = max(0, log2(runtime_ms_i / budget_i)), so runtime
    # within the budget costs nothing and each doubling over it costs runtime_weight points.
    # Both 0 (the options' own default; the problem sets them): no budget, and
    # P_i = log2(1 + runtime_ms_i / runtime_scale_ms), the score before 2026-12-07.
    runtime_budget_ms: float = Field(0.0, ge=0, le=1e9)
    runtime_budget_us_per_slot: float = Field(0.0, ge=0, le=1e9)
    runtime_scale_ms: float = Field(10.0, ge=1e-6, le=1e9)
    # The guard: balancedness counts minus lpt_guard x the shortfall to LPT (LPT's balancedness
    # minus the program's, where positive), summed over deployments (0: off; docs/moe.md, "Score").
    lpt_guard: float = Field(0.0, ge=0, le=1e6)
    # Which clock runtime_ms (and the score) uses: process CPU time or wall time per call.
    runtime_clock: Literal["cpu", "wall"] = "cpu"
    # The harness: untimed warm-up calls, then one timed call per window and this many more.
    warmup_calls: int = Field(1, ge=0, le=100)
    timing_repeats: int = Field(5, ge=0, le=1000)
    # --instances files: entries of a load_history summed per window, windows per instance.
    history_interval: int = Field(100, ge=1, le=10**9)
    windows_per_instance: int = Field(8, ge=2, le=10**6)
    # Deployment for --instances files (0 = from the trace: V3 for 256 experts, else 8 GPUs).
    num_replicas: int = Field(0, ge=0, le=10**6)
    num_groups: int = Field(0, ge=0, le=10**6)
    num_nodes: int = Field(0, ge=0, le=10**6)
    num_gpus: int = Field(0, ge=0, le=10**6)
    # Reference for --instances files: "trivial" bound, or the CP-SAT oracle ("ilp") when small;
    # also the default --time-limit of `evolve references moe` (seconds per window and layer).
    trace_bound: Literal["trivial", "ilp"] = "trivial"
    ilp_time_limit_s: float = Field(5.0, ge=0.01, le=1e6)

