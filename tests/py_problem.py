"""A problem defined in Python (tests only): its verifier lives in this importable module,
so the sandbox's fresh interpreter can import it by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.verifier import Instance, InstanceResult, Reference, feasible, infeasible

SEED = '''import numpy as np


# EVOLVE-BLOCK-START
def key(w):
    """Jobs with a lower key go first."""
    return -w
# EVOLVE-BLOCK-END


def sequence(w):
    return [int(i) for i in np.argsort(key(np.asarray(w, dtype=float)), kind="stable")]
'''
SHORTEST = SEED.replace("return -w", "return w")


class CompletionVerifier:
    """Order weights w to minimise sum over positions k of k * w[order[k]]
    (optimal: heaviest first)."""

    direction = "minimize"

    def __init__(self, problem_dir: Path, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - {"jobs"})
        if unknown:
            raise UserError(f"problem.toml: verifier.options: unknown key {unknown[0]!r} (expected one of jobs)")
        self.jobs = int(options.get("jobs", 12))

    def instances(self, split: str) -> list[Instance]:
        count = {"quick": 2, "train": 4, "test": 3}[split]
        out = []
        for k in range(count):
            w = np.random.default_rng(100 * ("quick", "train", "test").index(split) + k).integers(1, 99, size=self.jobs)
            best = float(np.sum(np.arange(self.jobs) * np.sort(w)[::-1]))
            out.append(Instance(f"{split}-{k}", "all", {"w": w}, Reference(best, "optimal", "sorting")))
        return out

    def load_instances(self, path: Path) -> list[Instance]:
        raise UserError(f"{path}: no instance files")

    @staticmethod
    def solve(heuristic: Any, instance: Instance) -> Any:
        return list(heuristic(instance.data["w"].copy()))

    def score(self, instance: Instance, solution: Any) -> InstanceResult:
        w = instance.data["w"]
        if not isinstance(solution, list) or sorted(solution) != list(range(len(w))):
            return infeasible(instance, "not a permutation of the jobs")
        return feasible(instance, float(np.sum(np.arange(len(w)) * w[np.asarray(solution)])), "minimize")
