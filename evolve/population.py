"""Selection: a MAP-Elites grid per island, ring migration, parent sampling.

Each island keeps the best program of every feature cell it has seen.  Every
operation touches a bounded number of cells (tournaments of a few elites,
one elite per island for migration), so per-iteration cost does not depend on
how many programs the archive holds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from evolve.config import FeatureSpec


@dataclass(frozen=True)
class Elite:
    program_id: int
    score: float
    cell: str


@dataclass(frozen=True)
class ParentChoice:
    """A sampled parent and how it was chosen: ``how`` is "tournament" (the best of
    ``tournament`` draws from the island's ``elites``), "random" (one draw: exploration),
    "best" (the run's best program) or "empty" (the island had none: the run's best)."""

    program_id: int
    how: str
    elites: int
    tournament: int
    # The island's best when the tournament or a random draw chose: the tournament's draws are with
    # replacement, so the winner may be a worse program (3 draws from 2 programs miss the better
    # one 1 time in 8); a prompt shows the island's best beside such a parent.
    island_best: int | None = None


class Island:
    def __init__(self) -> None:
        self.cells: dict[str, Elite] = {}
        self._keys: list[str] = []  # append-only: O(1) random choice
        self.best: Elite | None = None

    def offer(self, elite: Elite) -> bool:
        current = self.cells.get(elite.cell)
        if current is not None and current.score >= elite.score:
            return False
        if current is None:
            self._keys.append(elite.cell)
        self.cells[elite.cell] = elite
        if self.best is None or elite.score > self.best.score:
            self.best = elite
        return True

    def random_elite(self, rng: random.Random) -> Elite:
        return self.cells[rng.choice(self._keys)]

    def __len__(self) -> int:
        return len(self.cells)


def feature_values(specs: list[FeatureSpec], code_length: int, metrics: dict[str, float]) -> list[float]:
    values = []
    for spec in specs:
        raw = float(code_length) if spec.name == "code_length" else metrics.get(spec.name, spec.min)
        values.append(raw if math.isfinite(raw) else spec.max)
    return values


def cell_key(specs: list[FeatureSpec], values: list[float]) -> str:
    bins = []
    for spec, value in zip(specs, values, strict=True):
        width = (spec.max - spec.min) / spec.bins
        index = int((value - spec.min) // width) if width > 0 else 0
        bins.append(str(min(max(index, 0), spec.bins - 1)))
    return ",".join(bins)


class Population:
    def __init__(self, islands: int) -> None:
        self.islands = [Island() for _ in range(islands)]

    def offer(self, island: int, elite: Elite) -> bool:
        return self.islands[island].offer(elite)

    def reset(self, island: int) -> None:
        """Forget an island's grid (an island restart)."""
        self.islands[island] = Island()

    def global_best(self) -> Elite | None:
        bests = [i.best for i in self.islands if i.best is not None]
        return max(bests, key=lambda e: e.score) if bests else None

    def sample_parent(
        self, island: int, rng: random.Random, exploitation: float, exploration: float, tournament: int
    ) -> int:
        """Exploit (tournament among the island's elites), explore (any elite of
        the island) or, for the remaining probability, take the best overall."""
        return self.choose_parent(island, rng, exploitation, exploration, tournament).program_id

    def choose_parent(
        self, island: int, rng: random.Random, exploitation: float, exploration: float, tournament: int
    ) -> ParentChoice:
        """``sample_parent`` with how the parent was chosen (a prompt says why)."""
        grid = self.islands[island]
        if not len(grid):
            best = self.global_best()
            if best is None:
                raise RuntimeError("population is empty: the seed must be added first")
            return ParentChoice(best.program_id, "empty", 0, tournament)
        roll = rng.random()
        if roll < exploitation:
            contenders = [grid.random_elite(rng) for _ in range(tournament)]
            winner = max(contenders, key=lambda e: e.score).program_id
            return ParentChoice(winner, "tournament", len(grid), tournament,
                                grid.best.program_id if grid.best is not None else None)
        if roll < exploitation + exploration:
            return ParentChoice(grid.random_elite(rng).program_id, "random", len(grid), tournament,
                                grid.best.program_id if grid.best is not None else None)
        best = self.global_best()
        assert best is not None
        return ParentChoice(best.program_id, "best", len(grid), tournament)

    def inspirations(self, island: int, parent_id: int, rng: random.Random, count: int) -> list[int]:
        """The island's best plus elites of other cells (diversity), never the parent."""
        grid = self.islands[island]
        chosen: list[int] = []
        if grid.best is not None and grid.best.program_id != parent_id:
            chosen.append(grid.best.program_id)
        tries = 0
        while len(chosen) < count and tries < 4 * count and len(grid):
            tries += 1
            pick = grid.random_elite(rng).program_id
            if pick != parent_id and pick not in chosen:
                chosen.append(pick)
        return chosen[:count]

    def prompt_inspirations(
        self, island: int, parent_id: int, rng: random.Random, count: int, avoid: set[int]
    ) -> list[int]:
        """Inspirations worth a model's reading: the best program of the whole run, the
        island's best, then other cells of the island, then other islands' bests -- never
        the parent, never a program in ``avoid`` (the seed, whose results the system message
        states) unless it is the island's best: what the parent competes with is shown."""
        chosen: list[int] = []

        def take(elite: Elite | None, avoided: bool = False) -> None:
            if elite is not None and elite.program_id != parent_id and (avoided or elite.program_id not in avoid) \
                    and elite.program_id not in chosen and len(chosen) < count:
                chosen.append(elite.program_id)

        grid = self.islands[island]
        best = self.global_best()
        take(best, avoided=best is grid.best)
        take(grid.best, avoided=True)
        for _ in range(4 * count):
            if len(chosen) >= count or not len(grid):
                break
            take(grid.random_elite(rng))
        others = sorted((i.best for k, i in enumerate(self.islands) if k != island and i.best),
                        key=lambda e: -e.score)
        for elite in others:
            take(elite)
        return chosen

    def migrate(self, skip: set[int] | None = None) -> list[tuple[int, Elite]]:
        """Ring migration: each island's best is offered to the next island (except to ``skip``).

        Returns the (island, elite) pairs that were accepted, for persisting."""
        accepted = []
        bests = [island.best for island in self.islands]
        for index, best in enumerate(bests):
            if best is None or len(self.islands) == 1:
                continue
            target = (index + 1) % len(self.islands)
            if skip and target in skip:
                continue
            if self.islands[target].offer(best):
                accepted.append((target, best))
        return accepted
