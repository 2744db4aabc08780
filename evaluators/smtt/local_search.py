"""Warm starts for the reference solver: the shipped baselines plus insertion descent.

The descent uses the insertion neighbourhood (take one job out, put it at any
other position).  For a fixed job all n - 1 moves are evaluated in O(n): the
jobs it jumps over all shift by the same p_i, so each move's delta is a
prefix sum of per-job changes.  This is a cheap polish, not a metaheuristic;
its purpose is to hand CP-SAT a good first solution.  Deadlines are on the
process's CPU clock (time.process_time), so a busy machine does not shorten
the search that produces a reference.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from evolve import problems as builtin_problems
from evolve.evaluators.smtt.objective import total_tardiness

# The smtt problem's shipped schedules, whichever problem asks (smtt_rule's own baselines are
# priority rules): named through the installed package, not this file's place in the checkout.
BASELINES_DIR = Path(builtin_problems.__file__).resolve().parent / "smtt" / "baselines"
BASELINE_NAMES = ("edd", "edd_spt_ties", "spt", "mdd", "eddc", "mddc", "mddc_augmented")

Schedule = Callable[[np.ndarray, np.ndarray], list[int]]


@functools.cache
def load_baseline(name: str, directory: Path = BASELINES_DIR) -> Schedule:
    """``schedule`` of problems/smtt/baselines/<name>.py, loaded by path.

    Loaded by path rather than imported so the baselines stay standalone
    files, exactly like evolved programs.
    """
    path = directory / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"smtt_baseline_{name}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.schedule


def _insertion_deltas(c: np.ndarray, ps: np.ndarray, ds: np.ndarray, tard: np.ndarray, i: int) -> np.ndarray:
    """Change in total tardiness for moving position i to each position k."""
    n = len(c)
    pi, di = ps[i], ds[i]
    delta = np.zeros(n, dtype=np.int64)
    if i + 1 < n:  # forward: jobs i+1..k finish p_i earlier, job i at c[k]
        gain = np.maximum(c[i + 1 :] - pi - ds[i + 1 :], 0) - tard[i + 1 :]
        delta[i + 1 :] = np.cumsum(gain) + np.maximum(c[i + 1 :] - di, 0) - tard[i]
    if i > 0:  # backward: jobs k..i-1 finish p_i later, job i at start_k + p_i
        loss = np.maximum(c[:i] + pi - ds[:i], 0) - tard[:i]
        start = c[:i] - ps[:i]
        delta[:i] = np.cumsum(loss[::-1])[::-1] + np.maximum(start + pi - di, 0) - tard[i]
    return delta


def insertion_descent(
    p: np.ndarray, d: np.ndarray, seq: list[int], deadline: float | None = None
) -> list[int]:
    """First-improvement descent in the insertion neighbourhood (best move per job)."""
    order = np.asarray(seq, dtype=np.int64)
    n = len(order)
    improved = True
    while improved and n > 1:
        improved = False
        for job in order.copy():
            if deadline is not None and time.process_time() > deadline:
                return [int(j) for j in order]
            ps, ds = p[order], d[order]
            c = np.cumsum(ps)
            tard = np.maximum(c - ds, 0)
            i = int(np.flatnonzero(order == job)[0])
            delta = _insertion_deltas(c, ps, ds, tard, i)
            k = int(np.argmin(delta))
            if delta[k] < 0:
                order = np.insert(np.delete(order, i), k, job)
                improved = True
    return [int(j) for j in order]


def iterated_descent(
    p: np.ndarray, d: np.ndarray, seq: list[int], budget_s: float, seed: int = 0,
    max_rounds: int = 10_000,
) -> list[int]:
    """Iterated local search: perturb (a few random insertions), descend, keep if not worse."""
    rng = np.random.default_rng(seed)
    deadline = time.process_time() + budget_s
    current = insertion_descent(p, d, seq, deadline)
    current_value = total_tardiness(p, d, current)
    best, best_value = current, current_value
    n = len(seq)
    for _ in range(max_rounds):
        if n < 3 or best_value == 0 or time.process_time() > deadline:
            break
        trial = list(current)
        for _ in range(int(rng.integers(2, 5))):
            job = trial.pop(int(rng.integers(n)))
            trial.insert(int(rng.integers(n)), job)
        trial = insertion_descent(p, d, trial, deadline)
        value = total_tardiness(p, d, trial)
        if value <= current_value:
            current, current_value = trial, value
            if value < best_value:
                best, best_value = trial, value
    return best


def warm_start(p: np.ndarray, d: np.ndarray, budget_s: float = 5.0) -> tuple[int, list[int], str]:
    """Best baseline after insertion descent: (objective, sequence, description)."""
    deadline = time.process_time() + budget_s
    starts = []
    for name in BASELINE_NAMES:
        seq = [int(j) for j in load_baseline(name)(p.copy(), d.copy())]
        starts.append((total_tardiness(p, d, seq), name, seq))
    starts.sort(key=lambda s: s[0])
    best_value, best_name, best_seq = starts[0]
    best_desc = best_name
    for value, name, seq in starts:
        if value == 0 or time.process_time() > deadline:
            break
        polished = insertion_descent(p, d, seq, deadline)
        polished_value = total_tardiness(p, d, polished)
        if polished_value < best_value:
            best_value, best_seq, best_desc = polished_value, polished, f"{name} + insertion descent"
    return best_value, best_seq, best_desc
