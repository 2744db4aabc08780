from __future__ import annotations

import random

from evolve.config import FeatureSpec
from evolve.population import Elite, Population, cell_key, feature_values

SPECS = [FeatureSpec(name="code_length", bins=4, min=0, max=400), FeatureSpec(name="ms", bins=2, min=0, max=10)]


def test_cells_bin_and_clip_feature_values() -> None:
    assert cell_key(SPECS, [0, 0]) == "0,0"
    assert cell_key(SPECS, [150, 7]) == "1,1"
    assert cell_key(SPECS, [10_000, -5]) == "3,0"
    assert feature_values(SPECS, 123, {"ms": 4.0}) == [123.0, 4.0]
    assert feature_values(SPECS, 1, {}) == [1.0, 0.0]  # a missing metric falls in the first bin


def test_an_elite_is_replaced_only_by_a_better_program_of_the_same_cell() -> None:
    population = Population(1)
    assert population.offer(0, Elite(1, -5.0, "0,0"))
    assert not population.offer(0, Elite(2, -6.0, "0,0"))
    assert population.offer(0, Elite(3, -4.0, "0,0"))
    assert population.offer(0, Elite(4, -9.0, "1,0"))  # new cell: kept for diversity
    assert {e.program_id for e in population.islands[0].cells.values()} == {3, 4}
    assert population.islands[0].best.program_id == 3


def test_ring_migration_moves_each_best_to_the_next_island() -> None:
    population = Population(3)
    population.offer(0, Elite(1, -1.0, "0,0"))
    population.offer(1, Elite(2, -2.0, "0,1"))
    accepted = population.migrate()
    assert (1, Elite(1, -1.0, "0,0")) in accepted and (2, Elite(2, -2.0, "0,1")) in accepted
    assert population.islands[2].best.program_id == 2


def test_sampling_mixes_exploitation_and_exploration_and_inspirations_exclude_parent() -> None:
    population = Population(1)
    for i in range(10):
        population.offer(0, Elite(i, float(i), f"{i},0"))
    rng = random.Random(0)
    exploit = [population.sample_parent(0, rng, 1.0, 0.0, 3) for _ in range(300)]
    explore = [population.sample_parent(0, rng, 0.0, 1.0, 3) for _ in range(300)]
    assert sum(exploit) / 300 > sum(explore) / 300 + 1.5  # tournaments favour strong elites
    assert len(set(explore)) == 10
    assert [population.sample_parent(0, rng, 0.0, 0.0, 3) for _ in range(5)] == [9] * 5
    for parent in range(10):
        chosen = population.inspirations(0, parent, rng, 3)
        assert parent not in chosen and len(chosen) == len(set(chosen)) <= 3
        assert parent == 9 or chosen[0] == 9  # the island's best leads the inspirations
