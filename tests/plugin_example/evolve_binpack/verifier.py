"""Online bin packing verifier: seeded instances, sandboxed solve, trusted scoring.

Instances follow the OR-Library "u" classes (Falkenauer 1996): capacity 150,
sizes uniform in [20, 100].  The reference is the L1 lower bound
ceil(sum / capacity), labelled ``bound``: a gap to it over-states the gap to
the (unknown) optimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.verifier import Direction, Instance, InstanceResult, Reference, feasible, infeasible

CAPACITY = 150
SPLITS = {"quick": (0, 2), "train": (100, 6), "test": (200, 10)}
SIZES = (60, 120)


class BinPackVerifier:
    direction: Direction = "minimize"

    def __init__(self, problem_dir: Path, options: dict[str, Any]) -> None:
        if options:
            raise UserError(f"{problem_dir}/problem.toml: verifier.options: unknown key '{next(iter(options))}'")

    def instances(self, split: str) -> list[Instance]:
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}' (expected one of: {', '.join(SPLITS)})")
        first, count = SPLITS[split]
        out = []
        for k in range(count):
            n = SIZES[k % len(SIZES)]
            items = np.random.default_rng(first + k).integers(20, 101, size=n)
            bound = math.ceil(int(items.sum()) / CAPACITY)
            reference = Reference(float(bound), "bound", "L1 = ceil(sum of sizes / capacity)")
            out.append(Instance(f"{split}-u{n}-{k}", f"n={n}", {"items": items, "capacity": CAPACITY}, reference))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        raise UserError(f"{path}: the binpack example reads no instance files")

    @staticmethod
    def solve(heuristic: Callable[..., Any], instance: Instance) -> Any:
        result = heuristic(instance.data["items"].copy(), int(instance.data["capacity"]))
        if isinstance(result, np.ndarray):
            return result.tolist()
        if isinstance(result, list | tuple):
            return [x.item() if isinstance(x, np.generic) else x for x in result]
        return result

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        items, capacity = instance.data["items"], int(instance.data["capacity"])
        if not isinstance(solution, list) or len(solution) != len(items):
            return infeasible(instance, f"expected a list of {len(items)} bin indices")
        load: dict[int, int] = {}
        for k, (size, b) in enumerate(zip(items, solution, strict=True)):
            if isinstance(b, bool) or not isinstance(b, int) or b < 0:
                return infeasible(instance, f"item {k}: {b!r} is not a bin index")
            load[b] = load.get(b, 0) + int(size)
            if load[b] > capacity:
                return infeasible(instance, f"bin {b} is over capacity ({load[b]} > {capacity}) at item {k}")
        return feasible(instance, float(len(load)), self.direction)
