"""The timing harness, on the trusted side: send windows, time each call from outside.

For a workload of W windows, ``run_workload`` makes:

1. ``warmup`` untimed calls on made-up windows of window 0's shape and per-layer token totals,
   loads drawn afresh (``warm_window``): a copy of any later window would show the candidate,
   ahead of time, a window one of its placements is judged on, and a copy of window 0 let it
   compute, untimed, the placement it returns at the first judged call;
2. one timed call per window 0..W-2: its placement is scored on the next window;
3. ``repeats`` more timed calls on fresh perturbed copies (outputs discarded).

Every call sends its own input, and the perturbations come from ``os.urandom``
in this process, so caching results across calls does not pay.  The candidate
runs in the sandbox behind ``candidate_side.respond``; the time of a call is
what the session measures outside the candidate: the CPU time the kernel
counts for the child's process (read here from its per-process CPU clock) and
the wall time of the round trip.  Nothing the candidate does to the clocks in
its own process (``time``, ``os.times``, ``resource``, this package's modules)
can change either figure.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evolve.evaluators.moe.candidate_side import NAMES
from evolve.verifier import REPLY_NOTE_BYTES

PERTURBATION_SIGMA = 0.05  # log-normal noise on each expert's load in timing-only calls
NDIMS = (2, 3, 2)
MAX_VALUES = 10**9


class CallFailed(Exception):
    """The candidate raised in a call (the message is the sandbox's one-line description)."""


@dataclass(frozen=True)
class Answer:
    value: Any  # what respond() returned: the packed int64 array, or a JSON note
    cpu_seconds: float
    wall_seconds: float


Call = Callable[[np.ndarray, tuple[int, int, int, int]], Answer]


def unpack(value: Any) -> dict[str, Any]:
    """A reply as a placement record for ``score``; the reply is hostile input.

    Returns ``{name: {"shape": [...], "values": [...]}}`` for the three arrays,
    ``{"returned": type}`` when the result was not a triple, or ``{"error": why}``.
    """
    if isinstance(value, dict):
        if "returned" in value:
            return {"returned": str(value["returned"])[:40]}
        for name, ndim in zip(NAMES, NDIMS, strict=True):
            note = value.get(name)
            if isinstance(note, dict):
                dtype = str(note.get("dtype"))[:20]
                if dtype == "object":
                    return {"error": f"shapes: {name}: not a rectangular {ndim}-d array of integers "
                                     "(ragged or mixed values)"}
                return {"error": f"shapes: {name}: expected integers, got {dtype} values"}
        return {"returned": "malformed reply"}
    if not isinstance(value, np.ndarray) or value.dtype != np.int64 or value.ndim != 1 or not value.size:
        return {"returned": "malformed reply"}
    head = value[:16].tolist()
    if head[0] != 3:
        return {"returned": "malformed reply"}
    at, shapes = 1, []
    for name, ndim in zip(NAMES, NDIMS, strict=True):
        given = head[at] if at < len(head) else -1
        shape = head[at + 1:at + 1 + given] if 0 <= given <= 4 else []
        if len(shape) != given or any(not 0 <= n <= MAX_VALUES for n in shape):
            return {"returned": "malformed reply"}
        if given != ndim:
            return {"error": f"shapes: {name}: expected {ndim} dimensions, got {given} (shape {shape})"}
        shapes.append(shape)
        at += 1 + ndim
    sizes = [math.prod(shape) for shape in shapes]
    if at + sum(sizes) != value.size:
        return {"returned": "malformed reply"}
    out = {}
    for name, shape, size in zip(NAMES, shapes, sizes, strict=True):
        out[name] = {"shape": shape, "values": value[at:at + size]}  # flat int64 (JSON: a list)
        at += size
    return out


def run_workload(call: Call, windows: np.ndarray, args: tuple[int, int, int, int], warmup: int,
                 repeats: int) -> dict[str, Any]:
    """Placements for windows 0..W-2 and the outside timing of each timed call (seconds)."""
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    transitions = windows.shape[0] - 1

    def variant(k: int) -> np.ndarray:
        base = windows[k % transitions].astype(np.float64)
        noisy = base * np.exp(rng.normal(0.0, PERTURBATION_SIGMA, size=base.shape))
        return np.rint(noisy).astype(np.int64)

    for _ in range(warmup):
        call(warm_window(windows[0], rng), args)
    inputs = [windows[k].copy() for k in range(transitions)] + [variant(k) for k in range(repeats)]
    placements: list[dict[str, Any]] = []
    cpu: list[float] = []
    wall: list[float] = []
    for k, weight in enumerate(inputs):
        answer = call(weight, args)
        cpu.append(answer.cpu_seconds)
        wall.append(answer.wall_seconds)
        if k < transitions:
            placements.append(unpack(answer.value))
    return {"placements": placements, "cpu_s": cpu, "wall_s": wall}


def warm_window(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A warm-up input: ``window``'s shape and per-layer token totals, every layer's loads drawn
    afresh (multinomial over a skewed Dirichlet), so it exercises the same code on arrays of the
    same size and scale and tells nothing of which experts are hot in any judged window.

    Until 2026-12-06 warm-ups were noisy copies of window 0 (the first judged call's input): a
    balancer could spend as long as it liked there, untimed, and return that placement at the
    first judged call, charged as a cache look-up (``tests/test_moe_attacks.py``).  A permuted
    copy would not do: the loads' values give the permutation back.
    """
    totals = np.asarray(window, dtype=np.int64).sum(axis=-1)
    experts = window.shape[-1]
    return np.stack([rng.multinomial(max(int(t), 0), rng.dirichlet(np.full(experts, 0.3))) for t in totals])


def reply_bytes(weight: np.ndarray, replicas: int) -> int:
    """The most a reply to ``weight`` ([layers, experts]) can hold: the packed placement with
    log2phy as wide as there are replicas, and a short note.  Every byte is read and parsed on
    the trusted side (a JSON reply padded to the sandbox's 64 MiB costs ~0.24 s of its CPU;
    docs/sandbox.md, sixth red team); V3's bound is still 34 MiB."""
    layers, experts = weight.shape[0], weight.shape[-1]
    return REPLY_NOTE_BYTES + 8 * (16 + layers * (replicas + experts * replicas + experts))


def session_call(session: Any) -> Call:
    """A ``Call`` answered by the candidate in a sandbox session."""

    def call(weight: np.ndarray, args: tuple[int, int, int, int]) -> Answer:
        reply = session.call((weight, args), reply_limit=reply_bytes(weight, args[0]))
        if reply.error:
            raise CallFailed(reply.error)
        return Answer(reply.value, reply.cpu_seconds, reply.wall_seconds)

    return call


def local_call(heuristic: Callable[..., Any]) -> Call:
    """A ``Call`` answered in this process (tests and benchmarks of the verifier itself).

    Its timing is this process's own CPU clock, which the heuristic could rebind:
    never use it for a candidate (candidates go through ``session_call``).
    """
    from evolve.evaluators.moe.candidate_side import respond

    def call(weight: np.ndarray, args: tuple[int, int, int, int]) -> Answer:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        value = respond(heuristic, (weight, args))
        return Answer(value, time.process_time() - cpu0, time.perf_counter() - wall0)

    return call


@dataclass(frozen=True)
class Timing:
    wall_ms: float  # median wall time per call (the round trip), never below cpu_ms
    cpu_ms: float  # CPU time per call of the candidate's process (``charged_s``)
    calls: int


def typical_s(seconds: list[float], judged: int) -> float:
    """Seconds per call: the median over the timed calls, but never below the median over the
    first ``judged`` (the calls whose placements are scored).

    The repeats are noisy copies of windows the candidate has just seen, so it can tell them
    apart: a balancer that spent 100 ms on each judged call and answered the repeats from a
    cache had a median of 0.7 ms (LPT's: 8.4 ms).
    """
    typical = float(np.median(seconds))
    return max(typical, float(np.median(seconds[:judged]))) if 0 < judged <= len(seconds) else typical


def charged_s(cpu: list[float], judged: int) -> float:
    """CPU seconds per call: ``typical_s``, but never below the judged calls' mean.

    A median of the judged calls hides the costliest of them: a balancer that paid for one
    costly placement among three or more judged calls (and cached or cheaply adjusted it for
    the others) was charged one of its cheap calls.  The mean charges every judged call.  CPU
    time, not wall: a slow moment of the machine (another process on the core) stretches a
    call's wall time but hardly its CPU time, so no outlier the candidate did not cause counts.
    """
    typical = typical_s(cpu, judged)
    return max(typical, float(np.mean(cpu[:judged]))) if 0 < judged <= len(cpu) else typical


def judged_calls_s(record: dict[str, Any], clock: str) -> list[float]:
    """Seconds of each judged call (those whose placements are scored) on the runtime clock:
    its CPU time, or with ``clock = "wall"`` its round trip, never below its CPU time."""
    judged = len(record["placements"])
    cpu = [float(c) for c in record["cpu_s"][:judged]]
    if clock == "cpu":
        return cpu
    return [max(float(w), c) for w, c in zip(record["wall_s"][:judged], cpu, strict=True)]


def read_timing(record: dict[str, Any]) -> Timing:
    cpu, wall = record["cpu_s"], record["wall_s"]
    judged = len(record["placements"])
    cpu_s = charged_s(cpu, judged)
    # A call's round trip is never shorter than the CPU the candidate spent in it: the wall
    # figure (runtime_clock = "wall") keeps its median, robust to a slow moment, with the
    # judged calls' CPU mean as its floor.
    return Timing(1e3 * max(typical_s(wall, judged), cpu_s), 1e3 * cpu_s, len(cpu))
