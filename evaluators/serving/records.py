"""What a simulation is given: a replica's configuration and the requests it serves.

Trusted side only: a ``Trace`` holds every request's true output length, which
no policy may see (``policy.py`` builds what the policy is shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EngineConfig:
    max_num_batched_tokens: int
    max_num_seqs: int
    kv_blocks: int
    block_size: int
    chunked_prefill: bool
    b0: float  # seconds per step
    b1: float  # seconds per prefill token
    b2: float  # seconds per decode token
    b3: float  # seconds per KV token read by a decode

    def to_data(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @staticmethod
    def from_data(data: dict[str, Any]) -> EngineConfig:
        return EngineConfig(**data)


@dataclass
class Trace:
    """Requests sorted by arrival (request id = position)."""

    arrival: np.ndarray  # seconds, float64, non-decreasing
    prompt: np.ndarray  # prompt tokens, int64 >= 1
    output: np.ndarray  # true output tokens, int64 >= 1 (hidden from the policy)
    predicted: np.ndarray  # predicted output tokens, float64 > 0
    client: np.ndarray  # client id, int64 >= 0

    def __len__(self) -> int:
        return int(self.arrival.size)

    def to_data(self) -> dict[str, np.ndarray]:
        return {"arrival": self.arrival, "prompt": self.prompt, "output": self.output,
                "predicted": self.predicted, "client": self.client}

    @staticmethod
    def from_data(data: dict[str, Any]) -> Trace:
        return Trace(data["arrival"], data["prompt"], data["output"], data["predicted"], data["client"])
