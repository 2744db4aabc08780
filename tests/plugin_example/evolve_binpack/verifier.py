"""Online bin packing verifier, the trusted side: seeded instances and scoring.

``solve`` (the sandbox side) is in candidate_side.py; this module never enters
a candidate's process.  The direction is problem.toml's.

Instances follow the OR-Library "u" classes (Falkenauer 1996): capacity 150,
sizes uniform in [20, 100].  The reference is the L1 lower bound
ceil(sum / capacity), labelled ``bound``: a gap to it over-states the gap to
the (unknown) optimum.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.verifier import Direction, Instance, InstanceResult, Reference, feasible, infeasible
from evolve_binpack.candidate_side import solve

CAPACITY = 150
SPLITS = {"quick": (0, 2), "train": (100, 6), "test": (200, 10)}
SIZES = (60, 120)


class BinPackVerifier:
    direction: Direction  # from problem.toml

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

    solve = staticmethod(solve)

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
