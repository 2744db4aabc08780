"""The GP's island schedule: a random start, several children per parent, restarts.

The loop keeps its MAP-Elites islands; this policy only decides, for each
attempt on an island, whether it starts from a random tree (the first
``init`` attempts of an island's epoch), whether it reuses the previous
attempt's parent (broods of ``children``), and whether the island has
stalled (``restart_after`` of its attempts without a better child) and must
start a new epoch.  Everything it needs is in the archive (epoch starts in
``meta``, parents in ``attempts``, scores in ``programs``), so a resumed run
plans exactly as the uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass

from evolve.archive import Archive, Program
from evolve.config import GPSettings

EPOCHS_META = "gp_island_epochs"


@dataclass(frozen=True)
class Plan:
    restart: bool  # start a new epoch on this island before this attempt
    fresh: bool  # ask for a random tree, not a child of the parent
    parent_id: int | None  # the brood's parent, or None to draw one


class IslandPolicy:
    def __init__(self, settings: GPSettings, islands: int) -> None:
        self.settings = settings
        self.islands = islands
        # First iteration of each island's current epoch (island k starts at iteration k + 1).
        self.epochs = [k + 1 for k in range(islands)]
        self.best: list[tuple[float, int] | None] = [None] * islands  # (score, iteration) this epoch
        self._parents: dict[int, int] = {}  # iteration -> parent id, for broods

    def restore(self, archive: Archive) -> None:
        saved = archive.get_meta(EPOCHS_META)
        if isinstance(saved, list) and len(saved) == self.islands:
            self.epochs = [int(x) for x in saved]
        for island, iteration, score in archive.scored_children():
            if island < self.islands and iteration >= self.epochs[island]:
                self._consider(island, score, iteration)

    def _consider(self, island: int, score: float, iteration: int) -> None:
        current = self.best[island]
        if current is None or score > current[0] or (score == current[0] and iteration < current[1]):
            self.best[island] = (score, iteration)

    def note(self, program: Program) -> None:
        """A child was archived with a score."""
        if program.score is not None and program.iteration >= self.epochs[program.island]:
            self._consider(program.island, program.score, program.iteration)

    def _attempts_since(self, island: int, iteration: int, since: int) -> int:
        return (iteration - since) // self.islands

    def plan(self, island: int, iteration: int, archive: Archive) -> Plan:
        s = self.settings
        start = self.epochs[island]
        best = self.best[island]
        last_gain = max(start, best[1]) if best is not None else start
        if s.restart_after and self._attempts_since(island, iteration, last_gain) >= s.restart_after + (
                s.init if best is None else 0):
            return Plan(True, s.init > 0, None)
        k = self._attempts_since(island, iteration, start)
        if k < s.init:
            return Plan(False, True, None)
        parent = None
        if (k - s.init) % s.children:
            earlier = iteration - self.islands
            parent = self._parents.get(earlier) or archive.attempt_parent(earlier)
        return Plan(False, False, parent)

    def launched(self, iteration: int, parent_id: int) -> None:
        self._parents[iteration] = parent_id
        self._parents.pop(iteration - 4 * self.islands, None)

    def restarted(self, island: int, iteration: int) -> list[int]:
        self.epochs[island] = iteration
        self.best[island] = None
        return list(self.epochs)

    def settling(self, iteration: int) -> set[int]:
        """Islands that restarted recently: migration leaves them alone for a while."""
        quiet = self.settings.restart_after // 2
        return {
            k for k, start in enumerate(self.epochs)
            if start > k + 1 and self._attempts_since(k, iteration, start) < quiet
        }
