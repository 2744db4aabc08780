"""The timing harness: runs the candidate in the sandbox, and checks its report in the trusted process.

Inside the sandbox (``run_workload``), for a workload of W windows:

1. ``warmup`` untimed calls on perturbed copies of the windows;
2. one timed call per window 0..W-2: its placement is scored on the next window;
3. ``repeats`` more timed calls on fresh perturbed copies (outputs discarded).

Every timed call gets its own copy of its input, and the perturbations come
from ``os.urandom``, so caching results across calls does not pay.  The timed
region covers the call *and* the conversion of its outputs to arrays, so lazy
results are timed too.  The clocks are bound when this module is imported,
before any candidate code exists, so patching ``time`` does not fool them.
Three clocks are read: wall time, the process's CPU time (all its threads)
and the calling thread's CPU time, nested so that the thread's CPU interval
lies inside the wall interval: thread CPU time above wall time can only mean
tampering.  The score uses CPU time by default: on a shared machine it
excludes the time the OS gives to other processes (see docs/moe.md).  What this does not stop is a candidate that deliberately
rebinds this module's objects; docs/moe.md says what to do about that.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_WALL_NS = time.perf_counter_ns
_CPU_NS = time.process_time_ns  # all threads of the process
_THREAD_NS = time.thread_time_ns
_URANDOM = os.urandom
_MEDIAN = np.median

PERTURBATION_SIGMA = 0.05  # log-normal noise on each expert's load in timing-only calls
CPU_SLACK_NS = 100_000  # clock-read granularity when comparing CPU with wall time
MAX_CALL_NS = 10**12  # 1000 s: beyond any sandbox limit


def _outputs(result: Any) -> Any:
    """The triple as numpy arrays (inside the timed region), or a note of what came back."""
    if not isinstance(result, tuple | list) or len(result) != 3:
        return {"returned": type(result).__name__[:40]}
    return [np.asarray(part) for part in result]


def _plain(converted: Any) -> Any:
    """JSON-able: each array as its shape and flat row-major values (a flat list converts back
    to an array ten times faster than a nested one); other dtypes as a note for score()."""
    if isinstance(converted, dict):
        return converted
    names = ("phy2log", "log2phy", "logcnt")
    out: dict[str, Any] = {}
    for name, arr in zip(names, converted, strict=True):
        if arr.dtype.kind in "iub":
            out[name] = {"shape": list(arr.shape), "values": arr.ravel().tolist()}
        else:
            out[name] = {"dtype": arr.dtype.name if arr.dtype.kind in "fc" else "object"}
    return out


def run_workload(heuristic: Callable[..., Any], windows: np.ndarray, args: tuple[int, int, int, int],
                 warmup: int, repeats: int) -> dict[str, Any]:
    """Placements for windows 0..W-2 and per-call timings (see the module docstring)."""
    rng = np.random.default_rng(int.from_bytes(_URANDOM(8), "little"))
    transitions = windows.shape[0] - 1

    def variant(k: int) -> np.ndarray:
        base = windows[k % transitions].astype(np.float64)
        noisy = base * np.exp(rng.normal(0.0, PERTURBATION_SIGMA, size=base.shape))
        return np.rint(noisy).astype(np.int64)

    for k in range(warmup):
        heuristic(variant(k), *args)
    inputs = [windows[k].copy() for k in range(transitions)] + [variant(k) for k in range(repeats)]
    placements: list[Any] = []
    wall: list[int] = []
    cpu: list[int] = []
    thread: list[int] = []
    for k, weight in enumerate(inputs):
        w0 = _WALL_NS()
        c0 = _CPU_NS()
        t0 = _THREAD_NS()
        converted = _outputs(heuristic(weight, *args))
        t1 = _THREAD_NS()
        c1 = _CPU_NS()
        w1 = _WALL_NS()
        wall.append(w1 - w0)
        cpu.append(c1 - c0)
        thread.append(t1 - t0)
        if k < transitions:
            placements.append(_plain(converted))
    return {"placements": placements, "wall_ns": wall, "cpu_ns": cpu, "thread_ns": thread}


# -- trusted side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    wall_ms: float  # median wall time per call
    cpu_ms: float  # median process CPU time per call
    calls: int


def read_timing(solution: dict[str, Any], expected_calls: int) -> tuple[Timing | None, str | None]:
    """The harness's timings, checked for shape and plausibility."""
    series = {}
    for key in ("wall_ns", "cpu_ns", "thread_ns"):
        values = solution.get(key)
        if not isinstance(values, list) or len(values) != expected_calls:
            return None, f"timing: {key} should list {expected_calls} calls"
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_CALL_NS for v in values):
            return None, f"timing: {key} holds a value that is not a plausible number of nanoseconds"
        series[key] = np.asarray(values, dtype=np.int64)
    wall, cpu, thread = series["wall_ns"], series["cpu_ns"], series["thread_ns"]
    if (wall <= 0).any():
        return None, "timing: a call took 0 ns of wall time (the harness clock was tampered with)"
    over = np.flatnonzero((thread > wall + CPU_SLACK_NS) | (thread > cpu + CPU_SLACK_NS))
    if over.size:
        k = int(over[0])
        return None, (f"timing: call {k} used {thread[k]} ns of thread CPU time in {wall[k]} ns of wall "
                      f"time and {cpu[k]} ns of process CPU time (the harness clocks were tampered with)")
    return Timing(float(_MEDIAN(wall)) / 1e6, float(_MEDIAN(cpu)) / 1e6, expected_calls), None
