"""Screening the GP's priority trees in-process: the trusted engine asks a tree.

Only for trees the engine built itself (``evolve/gp/screen.py``), never candidate
code.  The verifier's own ``simulate`` runs each train trace with a ``decide``
that evaluates the tree on exactly the observation a sandboxed policy gets (the
predicted lengths, never the true ones), and its ``score`` judges the record, so
a screen's figure is the train score the same rule gets in the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from evolve.evaluators.serving.candidate_side import respond_priority
from evolve.evaluators.serving.session import local_decide
from evolve.verifier import Instance, InstanceResult


class ServingScreen:
    """Results of a priority tree on fixed traces, simulated and scored by the verifier."""

    pre = None

    def __init__(self, verifier: Any, instances: list[Instance]) -> None:
        self.verifier = verifier
        self.instances = instances

    def results(self, rules: Mapping[str, tuple[Callable[[Mapping[str, Any]], Any], set[str]]]) -> list[InstanceResult]:
        rule = rules["rule"][0]

        def priority(**features: Any) -> np.ndarray:
            with np.errstate(all="ignore"):
                values = np.asarray(rule(features), dtype=float)
            return np.broadcast_to(values, features["arrival"].shape)

        decide = local_decide(respond_priority, priority)
        return [self.verifier.score(inst, self.verifier.simulate(inst, decide)) for inst in self.instances]
