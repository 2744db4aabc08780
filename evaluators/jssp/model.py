"""A job-shop instance as padded numpy arrays, and the payload ``solve`` receives.

Jobs may have different numbers of operations (file formats allow it); the
arrays are padded to the longest job with machine -1 and duration 0.  Machine
ids are 0-based.  Durations are non-negative integers; a zero-duration
operation occupies no machine time (see docs/jssp.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Scheme = Literal["non_delay", "active"]
SCHEMES: tuple[str, ...] = ("non_delay", "active")
# Keeps every start time an exact integer in float64 (2**53) with room to spare.
MAX_DURATION = 10**9
MAX_OPERATIONS = 200_000


@dataclass(frozen=True)
class JobShop:
    name: str
    machines: np.ndarray  # (n_jobs, max_ops) int64, -1 = padding
    durations: np.ndarray  # (n_jobs, max_ops) int64, 0 = padding
    lengths: np.ndarray  # (n_jobs,) int64: operations per job
    n_machines: int

    @staticmethod
    def from_jobs(name: str, jobs: list[list[tuple[int, int]]], n_machines: int | None = None) -> JobShop:
        """``jobs[j][k] = (machine, duration)``; callers validate the values first."""
        n = len(jobs)
        width = max((len(job) for job in jobs), default=0)
        machines = np.full((n, width), -1, dtype=np.int64)
        durations = np.zeros((n, width), dtype=np.int64)
        for j, job in enumerate(jobs):
            for k, (machine, duration) in enumerate(job):
                machines[j, k] = machine
                durations[j, k] = duration
        lengths = np.array([len(job) for job in jobs], dtype=np.int64)
        used = int(machines.max()) + 1 if machines.size else 0
        return JobShop(name, machines, durations, lengths, max(used, n_machines or 0))

    @staticmethod
    def from_matrices(name: str, machines: Any, durations: Any) -> JobShop:
        jobs = [list(zip(ms, ds, strict=True)) for ms, ds in zip(machines, durations, strict=True)]
        return JobShop.from_jobs(name, [[(int(m), int(d)) for m, d in job] for job in jobs])

    @property
    def n_jobs(self) -> int:
        return int(self.lengths.size)

    @property
    def n_operations(self) -> int:
        return int(self.lengths.sum())

    @property
    def size(self) -> str:
        """``jobs x machines``, the way benchmark tables name sizes."""
        return f"{self.n_jobs}x{self.n_machines}"

    def jobs(self) -> list[list[tuple[int, int]]]:
        return [
            [(int(self.machines[j, k]), int(self.durations[j, k])) for k in range(int(self.lengths[j]))]
            for j in range(self.n_jobs)
        ]

    def content_hash(self) -> str:
        """Identifies the instance by its data alone (not its name)."""
        h = hashlib.sha256(f"jssp-v1 {self.n_machines} ".encode())
        for job in self.jobs():
            h.update((" ".join(f"{m}:{d}" for m, d in job) + ";").encode())
        return h.hexdigest()[:24]

    def payload(self, scheme: str) -> dict[str, Any]:
        """``Instance.data``: everything the sandboxed builder needs, and nothing else."""
        return {
            "machines": self.machines,
            "durations": self.durations,
            "lengths": self.lengths,
            "n_machines": self.n_machines,
            "scheme": scheme,
        }

    def trivial_lower_bound(self) -> int:
        """max(longest job, busiest machine): no schedule can beat it."""
        job = int(self.durations.sum(axis=1).max()) if self.n_jobs else 0
        valid = self.machines >= 0
        load = np.bincount(self.machines[valid], weights=self.durations[valid], minlength=self.n_machines)
        return max(job, int(load.max()) if load.size else 0)


def shop_from_payload(name: str, data: dict[str, Any]) -> JobShop:
    return JobShop(name, data["machines"], data["durations"], data["lengths"], int(data["n_machines"]))
