"""A weighted mix of backends, e.g. a cheap model most of the time, a strong one sometimes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from evolve.llm.base import LLM, Completion, ProposalRequest


@dataclass
class EnsembleLLM:
    members: list[LLM]
    weights: list[float]
    seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.members) != len(self.weights) or not self.members:
            raise ValueError("ensemble needs one positive weight per member")
        self.name = self.name or ",".join(
            f"{m.name}:{w:g}" for m, w in zip(self.members, self.weights, strict=True)
        )

    def pick(self, iteration: int) -> LLM:
        # A fresh RNG keyed by (seed, iteration) rather than one shared stream:
        # the choice for iteration N does not depend on how many calls came
        # before, so a resumed run (or a retried iteration) picks the same model.
        rng = random.Random(f"ensemble:{self.seed}:{iteration}")
        return rng.choices(self.members, weights=self.weights, k=1)[0]

    def complete(self, request: ProposalRequest) -> Completion:
        return self.pick(request.iteration).complete(request)
