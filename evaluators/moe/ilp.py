"""CP-SAT: the least possible max GPU load of one layer in one window.

Same constraints as a placement: G GPUs of S slots each; every expert with
load gets at least one replica and its load is split evenly over its
replicas.  Experts without load need no replica (free slots can hold them at
no cost); if every expert has load, all slots hold loaded experts.

With y[e,k] = 1 iff expert e has k replicas and z[e,k,g] the number of them
on GPU g, the load of GPU g is sum_{e,k} (l_e / k) z[e,k,g], linear in z.
Coefficients are made integers exactly by scaling with lcm(k), so "optimal"
is exact, not up to a tolerance.  A feasible greedy placement (LPT) gives an
upper bound U, hence every expert needs k >= l_e / U replicas, and a hint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evolve.evaluators.moe.bounds import GreedyPlacement, greedy_placement, trivial_lower_bound

MAX_SCALED = 2**60  # keeps every CP-SAT sum far from int64 overflow


@dataclass(frozen=True)
class LayerBound:
    """Best max GPU load found (``value``) and a proven lower bound (``bound``) for one layer."""

    value: float
    bound: float
    optimal: bool
    status: str
    seconds: float


def model_size(experts: int, replicas: int, gpus: int) -> int:
    """Upper bound on the number of z variables, to decide whether CP-SAT is worth trying."""
    return experts * (replicas - experts + 1) * gpus


def min_max_load(load: np.ndarray, gpus: int, slots_per_gpu: int, time_limit_s: float,
                 workers: int = 1, seed: int = 0) -> LayerBound:
    """Minimise the max GPU load of one layer (see the module docstring)."""
    from ortools.sat.python import cp_model  # trusted process only; the sandbox never needs it

    load = np.asarray(load, dtype=np.int64)
    replicas = gpus * slots_per_gpu
    loaded = [e for e in range(len(load)) if load[e] > 0]
    if not loaded:
        return LayerBound(0.0, 0.0, True, "no load", 0.0)
    greedy = greedy_placement(load, gpus, slots_per_gpu)
    trivial = trivial_lower_bound(load, gpus, replicas)
    if greedy.max_load <= trivial * (1 + 1e-12):
        return LayerBound(greedy.max_load, min(trivial, greedy.max_load), True, "greedy meets trivial bound", 0.0)
    kmax = replicas - len(loaded) + 1
    domains = {e: range(max(1, math.ceil(int(load[e]) / greedy.max_load - 1e-9)), kmax + 1) for e in loaded}
    scale = math.lcm(*{k for ks in domains.values() for k in ks})
    if scale * int(load.sum()) * 2 > MAX_SCALED:
        return LayerBound(greedy.max_load, trivial, False, "coefficients too large for CP-SAT", 0.0)

    model = cp_model.CpModel()
    y: dict[tuple[int, int], cp_model.IntVar] = {}
    z: dict[tuple[int, int, int], cp_model.IntVar] = {}
    for e, ks in domains.items():
        for k in ks:
            y[e, k] = model.NewBoolVar(f"y{e}_{k}")
            for g in range(gpus):
                z[e, k, g] = model.NewIntVar(0, min(slots_per_gpu, k), f"z{e}_{k}_{g}")
            model.Add(sum(z[e, k, g] for g in range(gpus)) == k * y[e, k])
        model.AddExactlyOne(y[e, k] for k in ks)
    top = scale * int(load.sum())
    # The trivial bound in exact integers: the mean, and the hottest expert over its most replicas.
    floor_peak = max(-(-top // gpus), -(-scale * int(load.max()) // kmax))
    peak = model.NewIntVar(floor_peak, top, "peak")
    gpu_load = []
    for g in range(gpus):
        terms = [(scale * int(load[e]) // k) * z[e, k, g] for e, ks in domains.items() for k in ks]
        slots = sum(z[e, k, g] for e, ks in domains.items() for k in ks)
        if len(loaded) == len(load):
            model.Add(slots == slots_per_gpu)
        else:
            model.Add(slots <= slots_per_gpu)
        var = model.NewIntVar(0, top, f"load{g}")
        model.Add(var == sum(terms))
        model.Add(var <= peak)
        gpu_load.append(var)
    for g in range(gpus - 1):  # GPUs are interchangeable: order them by load
        model.Add(gpu_load[g] >= gpu_load[g + 1])
    model.Minimize(peak)
    _hint(model, y, z, greedy, domains, gpus, scale, load)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    status = solver.Solve(model)
    name = solver.StatusName(status)
    seconds = solver.WallTime()
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return LayerBound(greedy.max_load, trivial, False, name.lower(), seconds)
    value = min(greedy.max_load, solver.ObjectiveValue() / scale)
    bound = max(trivial, solver.BestObjectiveBound() / scale)
    optimal = status == cp_model.OPTIMAL
    return LayerBound(value, value if optimal else min(bound, value), optimal, name.lower(), seconds)


def _hint(model: object, y: dict, z: dict, greedy: GreedyPlacement, domains: dict, gpus: int,
          scale: int, load: np.ndarray) -> None:
    """Start from the greedy placement, its GPUs renumbered by decreasing load (the symmetry order)."""
    if any(greedy.counts[e] not in domains[e] for e in domains):
        return  # cannot happen with domains from this placement's max load, but never hint outside them
    exact = [0] * gpus
    for e in domains:
        for g in greedy.gpu_of[e]:
            exact[g] += scale * int(load[e]) // greedy.counts[e]
    rename = {g: rank for rank, g in enumerate(sorted(range(gpus), key=lambda g: -exact[g]))}
    for e, ks in domains.items():
        on = [0] * gpus
        for g in greedy.gpu_of[e]:
            on[rename[g]] += 1
        for k in ks:
            chosen = k == greedy.counts[e]
            model.AddHint(y[e, k], int(chosen))  # type: ignore[attr-defined]
            for g in range(gpus):
                model.AddHint(z[e, k, g], on[g] if chosen else 0)  # type: ignore[attr-defined]
