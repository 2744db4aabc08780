"""Trusted checks of a placement and the loads it produces (vectorised numpy).

A placement is the triple returned by ``rebalance_experts``:

* ``phy2log`` [layers, replicas]: the logical expert in each physical slot;
  slots are GPU-major (``replicas // gpus`` consecutive slots per GPU);
* ``log2phy`` [layers, experts, M]: each expert's slots, padded with -1;
* ``logcnt`` [layers, experts]: each expert's replica count.

``check_placement`` returns the first violated check as one line, in the
order the docs list them; ``loads`` then splits each expert's load evenly over
its replicas and sums slots per GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from evolve.evaluators.moe.configs import EpConfig

INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Placement:
    phy2log: np.ndarray  # int64 [L, R]
    log2phy: np.ndarray  # int64 [L, E, M]
    logcnt: np.ndarray  # int64 [L, E]


@dataclass(frozen=True)
class Balance:
    """Balance of one placement on one window of load."""

    mean_sum: float  # sum over layers of the mean GPU load
    max_sum: float  # sum over layers of the max GPU load
    layer: np.ndarray  # per layer mean/max GPU load (1.0 for a layer without load)
    slot_mean_sum: float  # the same at slot level
    slot_max_sum: float
    gpu_load: np.ndarray  # [L, G]

    @property
    def balancedness(self) -> float:
        return 1.0 if self.max_sum <= 0 else self.mean_sum / self.max_sum


def int_array(value: Any, name: str, ndim: int) -> tuple[np.ndarray | None, str | None]:
    """``value`` as an int64 array of ``ndim`` dimensions, or why it is not one."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, dict) and "dtype" in value:  # the harness's note for non-integer arrays
        return None, f"{name}: expected integers, got {str(value['dtype'])[:20]} values"
    elif isinstance(value, dict):  # the harness's {"shape", "values"} (flat, row-major)
        return _flat_array(value, name, ndim)
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError, OverflowError, RecursionError, MemoryError):
            return None, f"{name}: not a rectangular {ndim}-d array of integers"
    if arr.dtype.kind not in "iu":
        if arr.dtype == object:
            return None, f"{name}: not a rectangular {ndim}-d array of integers (ragged or mixed values)"
        return None, f"{name}: expected integers, got {arr.dtype.name} values"
    if arr.ndim != ndim:
        return None, f"{name}: expected {ndim} dimensions, got {arr.ndim} (shape {list(arr.shape)})"
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > INT64_MAX:
        return None, f"{name}: values exceed int64"
    return arr.astype(np.int64, copy=False), None


def _flat_array(value: dict[str, Any], name: str, ndim: int) -> tuple[np.ndarray | None, str | None]:
    shape, values = value.get("shape"), value.get("values")
    if isinstance(values, np.ndarray) and values.ndim == 1:  # the trusted harness's record
        values = values if values.dtype.kind in "iu" else values.tolist()
    elif isinstance(values, list):
        pass
    else:
        values = None
    if not (isinstance(shape, list) and len(shape) == ndim and values is not None
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 10**7 for n in shape)):
        return None, f"{name}: expected a {ndim}-d array as {{'shape': [...], 'values': [...]}}"
    if math.prod(shape) != len(values):
        return None, f"{name}: shape {shape} needs {math.prod(shape)} values, got {len(values)}"
    arr, why = int_array(values, f"{name}.values", 1)
    if arr is None or why is not None:
        return None, why
    return arr.reshape(shape), None


def parse_placement(value: Any, config: EpConfig, layers: int) -> tuple[Placement | None, str | None]:
    """Check 1 (shapes): the triple as arrays of the right shapes."""
    if isinstance(value, dict):
        missing = [k for k in ("phy2log", "log2phy", "logcnt") if k not in value]
        if missing:
            return None, f"shapes: placement has no {missing[0]!r}"
        parts = [value["phy2log"], value["log2phy"], value["logcnt"]]
    elif isinstance(value, list | tuple) and len(value) == 3:
        parts = list(value)
    else:
        return None, "shapes: a placement is (phy2log, log2phy, logcnt)"
    arrays = []
    for name, part, ndim in zip(("phy2log", "log2phy", "logcnt"), parts, (2, 3, 2), strict=True):
        arr, why = int_array(part, name, ndim)
        if why is not None or arr is None:
            return None, f"shapes: {why}"
        arrays.append(arr)
    phy2log, log2phy, logcnt = arrays
    L, E, R = layers, config.experts, config.replicas
    if phy2log.shape != (L, R):
        return None, f"shapes: phy2log has shape {list(phy2log.shape)}, expected [{L}, {R}] (layers, replicas)"
    if logcnt.shape != (L, E):
        return None, f"shapes: logcnt has shape {list(logcnt.shape)}, expected [{L}, {E}] (layers, experts)"
    if log2phy.shape[:2] != (L, E) or not 1 <= log2phy.shape[2] <= R:
        return None, (f"shapes: log2phy has shape {list(log2phy.shape)}, expected [{L}, {E}, M] "
                      f"with 1 <= M <= {R}")
    return Placement(phy2log, log2phy, logcnt), None


def check_placement(p: Placement, config: EpConfig, next_load: np.ndarray) -> str | None:
    """Checks 2-5 on a well-shaped placement; ``next_load`` is [L, E] of the window it serves."""
    L, E, R = p.phy2log.shape[0], config.experts, config.replicas
    bad = np.argwhere((p.phy2log < 0) | (p.phy2log >= E))
    if bad.size:
        layer, slot = bad[0]
        return (f"slot validity: layer {layer} slot {slot} holds expert {p.phy2log[layer, slot]}, "
                f"expected 0..{E - 1}")
    sums = p.logcnt.sum(axis=1)
    wrong = np.flatnonzero(sums != R)
    if wrong.size:
        layer = wrong[0]
        return f"logcnt: layer {layer} counts sum to {sums[layer]}, expected {R} (replicas)"
    counted = np.zeros((L, E), dtype=np.int64)
    np.add.at(counted, (np.arange(L)[:, None], p.phy2log), 1)
    bad = np.argwhere(counted != p.logcnt)
    if bad.size:
        layer, expert = bad[0]
        return (f"logcnt: layer {layer} expert {expert} has logcnt {p.logcnt[layer, expert]} but "
                f"{counted[layer, expert]} slots in phy2log")
    why = _check_log2phy(p, R)
    if why is not None:
        return why
    # Every expert, as the contract says: until 2026-12-06 only those with load in the next
    # window, so dropping an expert idle in the last window for another replica of a hot one
    # was a gamble that paid whenever it stayed idle (the router may send it tokens any time).
    bad = np.argwhere(p.logcnt < 1)
    if bad.size:
        layer, expert = bad[0]
        return (f"coverage: layer {layer} expert {expert} has no replica "
                f"(every expert keeps at least one; load {next_load[layer, expert]} in the next window)")
    return None


def _check_log2phy(p: Placement, replicas: int) -> str | None:
    """Each expert's first logcnt entries are its slots (any order), the rest -1."""
    L, E, M = p.log2phy.shape
    wide = np.argwhere(p.logcnt > M)
    if wide.size:
        layer, expert = wide[0]
        return (f"log2phy: has room for {M} replicas but layer {layer} expert {expert} "
                f"has {p.logcnt[layer, expert]}")
    used = np.arange(M)[None, None, :] < p.logcnt[:, :, None]
    pad = ~used & (p.log2phy != -1)
    if pad.any():
        layer, expert, k = np.argwhere(pad)[0]
        return (f"log2phy: layer {layer} expert {expert} entry {k} is {p.log2phy[layer, expert, k]}, "
                f"expected -1 beyond its {p.logcnt[layer, expert]} replicas")
    slots = np.where(used, p.log2phy, 0)
    out_of_range = used & ((slots < 0) | (slots >= replicas))
    if out_of_range.any():
        layer, expert, k = np.argwhere(out_of_range)[0]
        return (f"log2phy: layer {layer} expert {expert} entry {k} is slot {p.log2phy[layer, expert, k]}, "
                f"expected 0..{replicas - 1}")
    holder = np.take_along_axis(p.phy2log, slots.reshape(L, E * M), axis=1).reshape(L, E, M)
    mismatch = used & (holder != np.arange(E)[None, :, None])
    if mismatch.any():
        layer, expert, k = np.argwhere(mismatch)[0]
        slot = p.log2phy[layer, expert, k]
        return (f"log2phy: layer {layer} lists slot {slot} for expert {expert}, but phy2log "
                f"puts expert {p.phy2log[layer, slot]} there")
    # Counts match phy2log, so listing every slot of an expert exactly once is
    # the same as no slot appearing twice in a layer.
    flat = (np.arange(L)[:, None, None] * replicas + slots)[used]
    seen = np.bincount(flat, minlength=L * replicas).reshape(L, replicas)
    twice = np.argwhere(seen > 1)
    if twice.size:
        layer, slot = twice[0]
        return f"log2phy: layer {layer} lists slot {slot} {seen[layer, slot]} times"
    return None


def loads(p: Placement, config: EpConfig, load: np.ndarray) -> Balance:
    """Per-GPU load of a valid placement on ``load`` [L, E]."""
    load = np.asarray(load, dtype=np.float64)
    per_replica = np.divide(load, p.logcnt, out=np.zeros_like(load), where=p.logcnt > 0)
    slot_load = np.take_along_axis(per_replica, p.phy2log, axis=1)  # [L, R]
    gpu = slot_load.reshape(slot_load.shape[0], config.gpus, config.slots_per_gpu).sum(axis=2)
    mean, peak = gpu.mean(axis=1), gpu.max(axis=1)
    layer = np.divide(mean, peak, out=np.ones_like(mean), where=peak > 0)
    return Balance(
        mean_sum=float(mean.sum()), max_sum=float(peak.sum()), layer=layer,
        slot_mean_sum=float(slot_load.mean(axis=1).sum()), slot_max_sum=float(slot_load.max(axis=1).sum()),
        gpu_load=gpu,
    )


def shape(p: Placement, config: EpConfig, seen: np.ndarray) -> dict[str, float]:
    """Deterministic measures of a valid placement, means over layers; never a time, so the
    search's MAP-Elites cell (``colocated_share``) repeats run to run.

    colocated_share: of the redundant slots (replicas - experts), the share that hold a second
    (third, ...) replica of an expert on a GPU it is already on: 0 spreads every expert's
    replicas (the hedge against drift), LPT stacks 7 % here.  fit_balancedness: balancedness
    on ``seen``, the window the placement was made from (how hard it fits the past).
    """
    R, E = config.replicas, config.experts
    gpu_of_slot = np.arange(R) // config.slots_per_gpu
    pairs = np.sort(p.phy2log * config.gpus + gpu_of_slot[None, :], axis=1)
    distinct = 1 + (np.diff(pairs, axis=1) != 0).sum(axis=1)
    colocated = (R - distinct) / max(R - E, 1)
    return {
        "colocated_share": float(colocated.mean()),
        "fit_balancedness": loads(p, config, seen).balancedness,
    }
