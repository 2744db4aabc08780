"""The ``[verifier.options]`` of the moe problem, checked strictly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from evolve.errors import UserError

WHERE = "problem.toml: verifier.options"


@dataclass(frozen=True)
class MoeOptions:
    # score = balance_weight * balancedness - runtime_weight * mean_i log2(1 + runtime_ms_i / runtime_scale_ms)
    balance_weight: float = 100.0
    runtime_weight: float = 1.0
    runtime_scale_ms: float = 10.0
    # Which clock runtime_ms (and the score) uses: process CPU time or wall time per call.
    runtime_clock: str = "cpu"
    # The harness: untimed warm-up calls, then one timed call per window and this many more.
    warmup_calls: int = 1
    timing_repeats: int = 5
    # --instances files: entries of a load_history summed per window, windows per instance.
    history_interval: int = 100
    windows_per_instance: int = 8
    # Deployment for --instances files (0 = from the trace: V3 for 256 experts, else 8 GPUs).
    num_replicas: int = 0
    num_groups: int = 0
    num_nodes: int = 0
    num_gpus: int = 0
    # Reference for --instances files: "trivial" bound, or the CP-SAT oracle ("ilp") when small.
    trace_bound: str = "trivial"
    ilp_time_limit_s: float = 5.0


_RANGES: dict[str, tuple[float, float]] = {
    "balance_weight": (0.0, 1e6), "runtime_weight": (0.0, 1e6), "runtime_scale_ms": (1e-6, 1e9),
    "warmup_calls": (0, 100), "timing_repeats": (0, 1000), "history_interval": (1, 10**9),
    "windows_per_instance": (2, 10**6), "num_replicas": (0, 10**6), "num_groups": (0, 10**6),
    "num_nodes": (0, 10**6), "num_gpus": (0, 10**6), "ilp_time_limit_s": (0.01, 1e6),
}
CHOICES = {"trace_bound": ("trivial", "ilp"), "runtime_clock": ("cpu", "wall")}


def parse_options(options: Mapping[str, Any] | None) -> MoeOptions:
    """MoeOptions from the table; UserError naming the first bad key."""
    options = dict(options or {})
    known = {f.name: f for f in fields(MoeOptions)}
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            raise UserError(f"{WHERE}: unknown key {key!r} (expected one of {', '.join(known)})")
        default = getattr(MoeOptions, key)
        if isinstance(default, str):
            if value not in CHOICES[key]:
                raise UserError(f"{WHERE}.{key}: expected one of {', '.join(CHOICES[key])}, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{WHERE}.{key}: expected an integer, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{WHERE}.{key}: expected a number, got {value!r}")
        if key in _RANGES:
            low, high = _RANGES[key]
            if not low <= value <= high:
                raise UserError(f"{WHERE}.{key}: expected a value from {low:g} to {high:g}, got {value!r}")
            if not isinstance(default, int):
                value = float(value)
        values[key] = value
    return MoeOptions(**values)
