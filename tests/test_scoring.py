from __future__ import annotations

from evolve.scoring import gap_metrics
from evolve.verifier import InstanceResult


def test_ratio_gap_counts_falling_short_of_a_maximisation_reference_as_positive() -> None:
    result = InstanceResult("a", "g", True, 80.0, 100.0, "bound", 0.2)
    assert gap_metrics([result], "maximize")["gap_ratio_pct"] == 20.0
    assert gap_metrics([result], "minimize")["gap_ratio_pct"] == -20.0
