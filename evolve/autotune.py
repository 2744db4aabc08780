"""Tuning each new best during a run (``tune_every``, ``tune_budget``).

Every ``tune_every`` iterations the loop asks whether the archive's best
program is new (neither tuned yet nor itself a tuned program) and has
constants in its EVOLVE-BLOCK; if so, its constants are fitted with
``evolve.tuning`` on the train split (``tune_budget`` programs, each through the
sandbox and the verifier), and a better result is archived as a child of the
best with origin ``tuned``, so the lineage shows what the structure gained and
what the constants gained.  Which programs were tuned is kept in the archive's
``meta``, so a run killed mid-tuning redoes exactly that tuning on resume.
"""

from __future__ import annotations

from dataclasses import dataclass

from evolve.archive import Archive, Program
from evolve.evaluation import Evaluation
from evolve.executors import Executor
from evolve.tuning import too_many_constants, tunable_constants, tune_code

TUNED_META = "tuned_program_ids"
TUNED = "tuned"


@dataclass
class Tuned:
    """What a tuning produced: the better program's code and evaluation, or nothing."""

    parent: Program
    code: str | None
    evaluation: Evaluation | None
    trials: int
    changes: list[tuple[float, float]]


class AutoTuner:
    def __init__(self, every: int, budget: int, seed: int, archive: Archive) -> None:
        self.every, self.budget, self.seed = every, budget, seed
        self._done: set[int] = set(archive.get_meta(TUNED_META, []) or [])
        self._slot = -1

    def due(self, next_iteration: int, archive: Archive) -> Program | None:
        """The program to tune before ``next_iteration`` is launched, if one is due."""
        if self.every <= 0 or next_iteration <= 1:
            return None
        slot = (next_iteration - 1) // self.every
        if slot == self._slot:
            return None
        self._slot = slot
        best = archive.best()
        if best is None or best.id is None or best.origin == TUNED or best.id in self._done:
            return None
        count = len(tunable_constants(best.code))
        if not count or too_many_constants(count):
            self._done.add(best.id)
            return None
        return best

    def tune(self, program: Program, executor: Executor) -> Tuned:
        """Runs in an evaluator thread: trials through ``executor`` on the train split."""
        evaluations: dict[str, Evaluation] = {}

        def score(code: str) -> float | None:
            evaluation = executor.run_split(code, "train")
            evaluations[code] = evaluation
            return evaluation.score if evaluation.ok else None

        result = tune_code(program.code, score, self.budget, seed=self.seed, start_score=program.score)
        changes = [(c.value, v) for c, v in zip(result.constants, result.values, strict=True) if v != c.value]
        if not result.improved:
            return Tuned(program, None, None, len(result.trials), changes)
        best = evaluations[result.code]
        quick = executor.run_split(result.code, "quick")
        if quick.ok and quick.score is not None:
            best.metrics["quick_score"] = quick.score
        return Tuned(program, result.code, best, len(result.trials), changes)

    def finished(self, program_id: int, archive: Archive) -> None:
        self._done.add(program_id)
        archive.set_meta(TUNED_META, sorted(self._done))
