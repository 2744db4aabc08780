"""Verifier of the tiny benchmark problem: one instance, trivially scored."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tiny_side import solve

from evolve.errors import UserError
from evolve.verifier import Instance, InstanceResult, Reference, feasible, infeasible


class TinyVerifier:
    direction = "minimize"

    def __init__(self, problem_dir: Path, options: dict[str, Any]) -> None:
        unknown = set(options) - {"delay_s"}
        if unknown:
            raise UserError(f"{problem_dir}/problem.toml: verifier.options: unknown key '{unknown.pop()}'")
        # A simulated evaluation cost (seconds), for the executor throughput bench.
        self.delay_s = float(options.get("delay_s", 0.0))

    def instances(self, split: str) -> list[Instance]:
        return [Instance(f"{split}-0", "all", {"x": 1.0, "delay_s": self.delay_s}, Reference(0.0, "optimal", "exact"))]

    def load_instances(self, path: Path) -> list[Instance]:
        raise UserError(f"{path}: the tiny problem has no instance files")

    solve = staticmethod(solve)  # tiny_side.py: only that module enters the candidate's process

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        if not isinstance(solution, int | float) or isinstance(solution, bool) or not math.isfinite(solution):
            return infeasible(instance, f"expected a finite number, got {solution!r:.40}")
        return feasible(instance, abs(float(solution) - 7.0), "minimize")
