"""Verifier of the toy problem (tests only): exact optimum by sorting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from toy_side import solve

from evolve.errors import UserError
from evolve.verifier import Instance, InstanceResult, Reference, feasible, infeasible

# valid: a validation split (evolve/selection.py), drawn like train from a stream of its own.
SIZES = {"quick": [5, 8], "train": [6, 10, 12, 20], "test": [7, 9, 30], "valid": [9, 15, 25]}


class ToyVerifier:
    direction = "minimize"

    def __init__(self, problem_dir: Path, options: dict[str, Any]) -> None:
        unknown = set(options) - {"delay_s"}
        if unknown:
            raise UserError(f"{problem_dir}/problem.toml: verifier.options: unknown key '{unknown.pop()}'")
        self.delay_s = float(options.get("delay_s", 0.0))

    def instances(self, split: str) -> list[Instance]:
        offset = {"quick": 0, "train": 100, "test": 200, "valid": 300}[split]
        out = []
        for k, n in enumerate(SIZES[split]):
            x = np.random.default_rng(offset + k).integers(1, 50, size=n)
            best = float(np.sum(np.arange(n) * np.sort(x)[::-1]))
            ref = Reference(best, "optimal", "sorting")
            out.append(Instance(f"{split}-{k}", f"n={n}", {"x": x, "delay_s": self.delay_s}, ref))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        raise UserError(f"{path}: the toy problem has no instance files")

    solve = staticmethod(solve)  # toy_side.py

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        x = instance.data["x"]
        if not isinstance(solution, list) or sorted(solution) != list(range(len(x))):
            return infeasible(instance, "not a permutation of the indices")
        value = float(np.sum(np.arange(len(x)) * x[np.asarray(solution)]))
        return feasible(instance, value, "minimize")
