"""The run's best program against the seed and every baseline on held-out instances.

Everything is evaluated now, through ``Evaluator.run_split`` (the path every
program takes), on a split the search never loaded (``test`` by default).

Overfitting rule.  The *improvement* of a program over the seed on a split is
(score_best - score_seed) / |score_seed| (for gap scores: the fraction of the
seed's gap that the program closes).  With I_train from the archive and
I_test measured now, the *retention* is I_test / I_train, and the verdict is:

* ``no improvement``: I_train <= 0 (the best is the seed): nothing to carry over;
* ``fails on test``: the best program fails on a held-out instance (flagged);
* ``overfit``: retention < 0.5, less than half of the train improvement carries
  over to test (flagged);
* ``inconclusive``: retention >= 0.5 but the paired test does not show the best
  better than the seed on test (p >= 0.05, e.g. too few instances);
* ``generalises``: retention >= 0.5 and significantly better than the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evolve.archive import Archive
from evolve.compare import Comparison, StepProgress, compare, evaluate_programs, instance_score_of
from evolve.errors import UserError
from evolve.evalcache import EvalCache
from evolve.evaluation import Evaluation
from evolve.review import problem_of
from evolve.runs import load_run
from evolve.selection import reported_best
from evolve.verifier import Instance

MIN_RETENTION = 0.5
GeneralisationVerdict = Literal["no improvement", "fails on test", "overfit", "inconclusive", "generalises"]


@dataclass(frozen=True)
class Generalisation:
    train_improvement: float | None
    test_improvement: float | None
    retention: float | None
    verdict: GeneralisationVerdict
    message: str

    @property
    def flagged(self) -> bool:
        return self.verdict in ("overfit", "fails on test")

    def to_json(self) -> dict[str, Any]:
        return {
            "train_improvement": self.train_improvement, "test_improvement": self.test_improvement,
            "retention": self.retention, "verdict": self.verdict, "flagged": self.flagged,
            "message": self.message,
        }


@dataclass
class Holdout:
    split: str
    instances: int
    best: str  # the name of the best program in ``evaluations``
    evaluations: dict[str, Evaluation]  # best, seed, then the baselines
    comparisons: list[Comparison]  # best against each of the others
    generalisation: Generalisation
    objective: str
    instance_list: list[Instance] = field(default_factory=list, repr=False)
    # Baselines of another class than the problem admits (problem.toml other_class_baselines).
    other_class: tuple[str, ...] = ()

    def strongest_baseline(self) -> str | None:
        """The baseline with the highest score on the split (not the seed, nor one of another
        class than the run's programs)."""
        return strongest_of(self.evaluations, (self.best, "seed", *self.other_class))

    def comparison(self, other: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.b == other), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "instances": self.instances,
            "best": self.best,
            "objective": self.objective,
            "programs": [
                {"name": name, "status": e.status, "score": e.score, "metrics": e.metrics}
                for name, e in self.evaluations.items()
            ],
            "comparisons": [c.to_json() for c in self.comparisons],
            "strongest_baseline": self.strongest_baseline(),
            "other_class_baselines": list(self.other_class),
            "generalisation": self.generalisation.to_json(),
        }


def strongest_of(evaluations: dict[str, Evaluation], excluded: tuple[str, ...]) -> str | None:
    """The name of the highest-scoring evaluation that succeeded, leaving out ``excluded``."""
    scored = [(e.score, name) for name, e in evaluations.items()
              if name not in excluded and e.ok and e.score is not None]
    return max(scored)[1] if scored else None


def improvement(best: float | None, seed: float | None) -> float | None:
    if best is None or seed is None:
        return None
    return (best - seed) / abs(seed) if abs(seed) > 1e-12 else best - seed


def judge_generalisation(
    train_best: float | None, train_seed: float | None, test_best: Evaluation, test_seed: Evaluation,
    versus_seed: Comparison, best_is_seed: bool,
) -> Generalisation:
    train = improvement(train_best, train_seed)
    test = improvement(test_best.score, test_seed.score) if test_best.ok and test_seed.ok else None
    retention = test / train if train and test is not None and train > 0 else None
    overall = versus_seed.overall
    if best_is_seed or train is None or train <= 0:
        return Generalisation(train, test, None, "no improvement", "the best program is no better than the seed on train")
    if not test_best.ok:
        return Generalisation(train, test, None, "fails on test",
                              f"the best program fails on the held-out split ({test_best.status}): "
                              f"{test_best.feedback.splitlines()[0] if test_best.feedback else ''}")
    facts = f"improvement over the seed {train:.1%} on train, {test:.1%} on test" if test is not None else ""
    if retention is None or retention < MIN_RETENTION:
        kept = f"{retention:.0%}" if retention is not None else "none"
        return Generalisation(train, test, retention, "overfit",
                              f"only {kept} of the train improvement carries over to test ({facts})")
    wins = f"{overall.wins} wins / {overall.ties} ties / {overall.losses} losses against the seed"
    if overall.verdict != "better":
        return Generalisation(train, test, retention, "inconclusive",
                              f"{facts}, but not significantly better than the seed on test "
                              f"({wins}, {_p(overall.test.p_value)})")
    return Generalisation(train, test, retention, "generalises",
                          f"keeps {retention:.0%} of its train improvement ({facts}); {wins}, "
                          f"{_p(overall.test.p_value)}")


def _p(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def evaluate_holdout(
    folder: Path, split: str = "test", workers: int = 1, progress: StepProgress | None = None, cache: bool = True,
) -> Holdout:
    """Evaluate the run's best, its seed and the problem's baselines on ``split``
    (results cached in the run's archive unless ``cache`` is false)."""
    info = load_run(folder)
    problem = problem_of(info)
    archive = Archive(info.archive_path, readonly=True)
    try:
        best, seed = reported_best(archive), archive.seed()
    finally:
        archive.close()
    if best is None or seed is None:
        raise UserError(f"{folder}: the run has no evaluated program yet")
    instances = problem.instances(split)
    best_name = f"best #{best.id}"
    programs = [(best_name, best.code), ("seed", seed.code)]
    for name, code in problem.baseline_programs():
        if name in (best_name, "seed"):  # a baseline file called seed.py must not replace the seed
            name = f"{name} (baseline)"
        programs.append((name, code))
    store = EvalCache(info.archive_path, problem, info.settings.sandbox, split, instances) if cache else None
    evaluations = evaluate_programs(problem, info.settings.sandbox, programs, instances, split, workers, store, progress)
    direction = problem.spec.objective.direction
    comparisons = [
        compare(best_name, evaluations[best_name], name, evaluation, instances, direction, instance_score_of(problem))
        for name, evaluation in evaluations.items()
        if name != best_name
    ]
    versus_seed = next(c for c in comparisons if c.b == "seed")
    generalisation = judge_generalisation(
        best.score, seed.score, evaluations[best_name], evaluations["seed"], versus_seed, best.id == seed.id
    )
    objective = f"{problem.spec.objective.name} ({direction})"
    other_class = tuple(n for n in problem.spec.other_class_baselines if n in evaluations)
    return Holdout(split, len(instances), best_name, evaluations, comparisons, generalisation, objective, instances,
                   other_class)
