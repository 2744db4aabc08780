"""Generated Taillard-style instances for the ``quick`` and ``train`` splits.

As in Taillard (1993): processing times uniform on 1..99, every job visits
every machine once in a uniformly random order.  numpy's PCG64 replaces
Taillard's own LCG, so these are not Taillard's instances (those are the
``test`` split and never reach the search).

Seeded by a secret (``evolve.evaluators.secret_seeds``: HMAC-SHA-256 of the entropy in
problems/jssp/data/seeds.json and the label "instance <split> <n>x<m> <index>"): with public
seeds a rule carrying this generator's few lines recognised its instance from any decision's
features and replayed a plan made on the whole of it, and the audit's replay, which asks the
rule again in a fresh process, could not tell (tests/test_jssp_seeds.py).  Trusted side only.
"""

from __future__ import annotations

import numpy as np

from evolve.evaluators.jssp.model import JobShop
from evolve.evaluators.secret_seeds import streams

SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "quick": ((6, 6), (10, 10), (15, 15), (20, 15), (20, 20), (30, 20)),
    "train": ((6, 6), (10, 5), (10, 10), (15, 10), (15, 15), (20, 10), (20, 15), (20, 20), (30, 15), (30, 20)),
}
PER_SIZE = {"quick": 1, "train": 4}


def taillard_like(name: str, n_jobs: int, n_machines: int, seed: list[int] | int | np.random.Generator) -> JobShop:
    rng = np.random.default_rng(seed)
    durations = rng.integers(1, 100, size=(n_jobs, n_machines))
    machines = np.stack([rng.permutation(n_machines) for _ in range(n_jobs)])
    return JobShop.from_matrices(name, machines.tolist(), durations.tolist())


def instance_label(split: str, n_jobs: int, n_machines: int, index: int) -> str:
    """What a generated instance's key is made from, with the secret."""
    return f"instance {split} {n_jobs}x{n_machines} {index}"


def generated_split(split: str, secret: bytes) -> list[JobShop]:
    """The instances of a generated split, seeded by ``secret``, in a fixed order (by size, then index)."""
    if split not in SIZES:
        raise ValueError(f"no generated split {split!r}")
    out = []
    for n, m in SIZES[split]:
        for i in range(PER_SIZE[split]):
            (rng,) = streams(secret, instance_label(split, n, m, i), 1)
            out.append(taillard_like(f"{split}-{n}x{m}-{i}", n, m, rng))
    return out
