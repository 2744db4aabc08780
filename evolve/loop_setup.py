"""What a run does before its first iteration: pin the search's instances to the run, evaluate
the seed of a new run, restore the population of a resumed one, and count what its archive
already holds.  ``RunSetup`` is mixed into ``Controller`` (``loop.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from evolve.archive import DUPLICATE, EDIT_ERROR, LLM_ERROR, Archive, Program
from evolve.config import RunSettings
from evolve.edits import code_hash
from evolve.errors import UserError
from evolve.evalcache import instances_digest
from evolve.evaluation import FAILURE_KINDS
from evolve.executors import Executor
from evolve.gp.islands import IslandPolicy
from evolve.population import Elite, Population
from evolve.problem import Problem
from evolve.progress import EDIT, EVALUATION, MODEL, Progress
from evolve.records import program_record
from evolve.scoring import natural_key
from evolve.verifier import Instance

INSTANCES_META = "search_instances"  # digest of the quick and train instances a run is scored on


def _first_reason(feedback: str) -> str:
    """The feedback's first line, on one line: "3 of 3 instances failed:" is followed by the
    reasons on the next lines, so the first of them comes with it (it ended at the colon)."""
    lines = [line for line in (feedback or "").splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0][:-1]}, the first: {lines[1].lstrip('- ')}"
    return lines[0]


def resumed_progress(archive: Archive, settings: RunSettings) -> Progress:
    """The run's progress as its archive left it (nothing done, for a new run)."""
    usage = archive.usage()
    counts = archive.outcome_counts()
    statuses = archive.status_counts()
    by_kind = {
        MODEL: counts.get(LLM_ERROR, 0),
        EDIT: counts.get(EDIT_ERROR, 0),
        EVALUATION: sum(statuses.get(k, 0) for k in FAILURE_KINDS),
    }
    return Progress(
        done=archive.attempt_count(),
        target=settings.iterations,
        best_score=None,
        best_gap=None,
        failures=sum(by_kind.values()),
        evaluations=0,
        prompt_tokens=int(usage["prompt_tokens"]),
        completion_tokens=int(usage["completion_tokens"]),
        cost_usd=usage["cost_usd"],
        started=time.time(),
        failures_by_kind=by_kind,
        duplicates=counts.get(DUPLICATE, 0),
    )


class RunSetup:
    """The controller's set-up (mixed into ``Controller``, which sets the state it reads)."""

    # Set by Controller.__init__:
    problem: Problem
    settings: RunSettings
    archive: Archive
    run_dir: Path
    population: Population
    _policy: IslandPolicy | None
    # Defined by LoopOutcomes (loop_outcomes.py):
    _offer: Callable[[int, Program], None]
    _note_best: Callable[[Program], None]
    _remember_key: Callable[[str, int | None], None]

    def _load_instances(self) -> tuple[list[Instance], list[Instance]]:
        # The test split is never loaded here: held-out instances stay unseen.
        return self.problem.instances("quick"), self.problem.instances("train")

    def _check_instances(self, quick: list[Instance], train: list[Instance]) -> None:
        """Pin the search's instances to the run: a resumed run whose quick or train
        instances changed (new data, a new generator, new seeds) would rank programs scored
        on different instances against each other, so it is refused."""
        groups = sorted({i.group for i in train}, key=natural_key)
        unknown = [g for g in self.problem.spec.objective.reference_floor if g not in groups]
        if unknown:
            raise UserError(f"{self.problem.toml_path}: objective.reference_floor names group '{unknown[0]}', which no "
                            f"train instance has (its groups: {', '.join(groups)})")
        digest = f"{instances_digest(quick)}:{instances_digest(train)}"
        pinned = self.archive.get_meta(INSTANCES_META)
        if pinned is None:  # a new run, or one archived before runs were pinned
            self.archive.set_meta(INSTANCES_META, digest)
        elif pinned != digest:
            raise UserError(
                f"{self.run_dir}: problem '{self.problem.name}' has different quick/train instances "
                "from those this run was scored on (its data, generator or seeds changed); "
                "its scores would not compare: start a new run")

    def _ensure_seed(self, executor: Executor) -> None:
        if self.archive.seed() is not None:
            return
        code = self.problem.seed_code
        first = executor.run_split(code, "quick")
        full = executor.run_split(code, "train") if first.ok else first
        if not full.ok:
            raise UserError(
                f"{self.problem.dir / self.problem.spec.seed}: the seed program fails on the "
                f"{full.stage} split ({full.status}): {_first_reason(full.feedback)}"
            )
        self._check_features(full.metrics)
        full.metrics["quick_score"] = first.score if first.score is not None else 0.0
        program = program_record(self.problem, code, code_hash(code), None, 0, 0, 0, "seed", None, full)
        self.archive.add_program(program)
        assert program.id is not None
        for island in range(self.settings.islands):
            self._offer(island, program)
        self._remember_key(code, program.id)

    def _check_features(self, metrics: dict[str, float]) -> None:
        """A MAP-Elites dimension the seed's evaluation does not measure would put every program in
        one cell, silently (feature_values falls back to the range's minimum): a mistake in problem.toml."""
        for k, feature in enumerate(self.problem.spec.features):
            if feature.name != "code_length" and feature.name not in metrics:
                known = ", ".join(sorted(m for m in metrics if "[" not in m)[:20])
                raise UserError(f"{self.problem.toml_path}: features[{k}].name = '{feature.name}': the evaluation "
                                f"measures no such metric (expected code_length or one of: {known})")

    def _restore_population(self) -> None:
        for island, cell, program_id, score in self.archive.elites():
            if island < len(self.population.islands):
                self.population.offer(island, Elite(program_id, score, cell))
        best = self.archive.best()
        if best is not None:
            self._note_best(best)
        if self._policy is not None:
            self._policy.restore(self.archive)
        for program_id, code in self.archive.codes():
            self._remember_key(code, program_id)

