"""How fast the trusted SMTT score is: `PYTHONPATH=. python bench/smtt_scoring.py`.

Scores 100 random permutations per size through SmttVerifier.score (validation
plus objective), for the common case (a list of Python ints, as solve()
returns) and for the slow path (a list of integral floats, checked one by
one), and prints a table with the machine and library versions.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
from machine import cpu_model  # bench/machine.py (the script folder is on sys.path)

from evolve.evaluators.smtt import SmttVerifier
from evolve.evaluators.smtt.generator import generate
from evolve.verifier import Instance, Reference

SIZES = (20, 100, 500, 2000)
COUNT = 100
REPEATS = 5


def bench(verifier: SmttVerifier, instances: list[Instance], solutions: list[list]) -> float:
    """Best-of-REPEATS wall time to score all instances once."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for inst, sol in zip(instances, solutions, strict=True):
            result = verifier.score(inst, sol)
            assert result.feasible, result.error
        best = min(best, time.perf_counter() - started)
    return best



def main() -> None:
    verifier = SmttVerifier(Path(__file__).resolve().parents[1] / "problems" / "smtt", {})
    rng = np.random.default_rng(0)
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.system()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} cpus")
    print(f"{'n':>6} {'instances':>9} {'ints: total ms':>15} {'us/instance':>12} "
          f"{'floats: total ms':>17} {'us/instance':>12}")
    for n in SIZES:
        instances, ints, floats = [], [], []
        for k in range(COUNT):
            p, d = generate(n, 6, 4, rng)
            instances.append(Instance(f"b{k}", f"n={n}", {"p": p, "d": d}, Reference(1.0, "optimal")))
            perm = rng.permutation(n).tolist()
            ints.append(perm)
            floats.append([float(j) for j in perm])
        t_int = bench(verifier, instances, ints)
        t_float = bench(verifier, instances, floats)
        print(f"{n:>6} {COUNT:>9} {t_int * 1e3:>15.1f} {t_int / COUNT * 1e6:>12.0f} "
              f"{t_float * 1e3:>17.1f} {t_float / COUNT * 1e6:>12.0f}")


if __name__ == "__main__":
    main()
