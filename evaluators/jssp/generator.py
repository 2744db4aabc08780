"""Generated Taillard-style instances for the ``quick`` and ``train`` splits.

As in Taillard (1993): processing times uniform on 1..99, every job visits
every machine once in a uniformly random order.  numpy's PCG64 replaces
Taillard's own LCG, so these are not Taillard's instances (those are the
``test`` split and never reach the search).  Seeded: the same on every machine.
"""

from __future__ import annotations

import numpy as np

from evolve.evaluators.jssp.model import JobShop

SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "quick": ((6, 6), (10, 10), (15, 15), (20, 15), (20, 20), (30, 20)),
    "train": ((6, 6), (10, 5), (10, 10), (15, 10), (15, 15), (20, 10), (20, 15), (20, 20), (30, 15), (30, 20)),
}
PER_SIZE = {"quick": 1, "train": 4}
SPLIT_SEED = {"quick": 11, "train": 23}
ROOT_SEED = 20240613


def taillard_like(name: str, n_jobs: int, n_machines: int, seed: list[int] | int) -> JobShop:
    rng = np.random.default_rng(seed)
    durations = rng.integers(1, 100, size=(n_jobs, n_machines))
    machines = np.stack([rng.permutation(n_machines) for _ in range(n_jobs)])
    return JobShop.from_matrices(name, machines.tolist(), durations.tolist())


def generated_split(split: str) -> list[JobShop]:
    """The instances of a generated split, in a fixed order (by size, then index)."""
    if split not in SIZES:
        raise ValueError(f"no generated split {split!r}")
    out = []
    for n, m in SIZES[split]:
        for i in range(PER_SIZE[split]):
            name = f"{split}-{n}x{m}-{i}"
            out.append(taillard_like(name, n, m, [ROOT_SEED, SPLIT_SEED[split], n, m, i]))
    return out
