"""Choosing the reported best on a validation split the search never scores (``select_on``).

The search ranks programs by their train score, and a search that screens thousands of rules on
train finds some that win there by fitting its instances (docs/smtt.md, "Insertion"). With
``select_on = "valid"`` the program a run reports (``best.py``, ``review``, a study's table,
``Run.best``) is chosen at the end of the run among the ``select_among`` best programs on train,
by their score on the problem's validation split: instances drawn like train, disjoint from train
and test, which neither the search nor the GP's screen ever sees. Train still ranks everything
inside the search (parents, elites, restarts); test is never a selection split.

The candidates are evaluated through ``Evaluator.run_split`` (the path every program takes) and
cached in the archive (``evalcache``), so a resumed run re-chooses at its end without
re-evaluating. The choice is kept in the archive's meta, cleared when the loop starts again,
and made only when a run ends by its iterations or its budget: an interrupted run reports its
train best until it is resumed to its end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evolve.archive import Archive, Program
from evolve.compare import evaluate_programs
from evolve.config import RunSettings
from evolve.errors import UserError
from evolve.evalcache import EvalCache
from evolve.problem import Problem
from evolve.refit import Refit, refit

SELECTION_META = "best_selection"
REFIT_META = "best_refit"  # the chosen program refitted above its gate (``refit_on``, evolve/refit.py)


@dataclass(frozen=True)
class Candidate:
    program_id: int
    train_score: float
    score: float | None  # on the selection split; None where the program fails there


@dataclass(frozen=True)
class Selection:
    """Which split chose the reported best, among which programs, and their scores."""

    split: str
    among: int
    program_id: int
    candidates: tuple[Candidate, ...]

    @property
    def train_best_id(self) -> int:
        return self.candidates[0].program_id

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "among": self.among, "program_id": self.program_id,
                "train_best_id": self.train_best_id,
                "candidates": [{"id": c.program_id, "train_score": c.train_score, "score": c.score}
                               for c in self.candidates]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        return cls(str(data["split"]), int(data["among"]), int(data["program_id"]),
                   tuple(Candidate(int(c["id"]), float(c["train_score"]),
                                   None if c["score"] is None else float(c["score"])) for c in data["candidates"]))

    def describe(self) -> str:
        chosen = next(c for c in self.candidates if c.program_id == self.program_id)
        where = ("the best on train too" if self.program_id == self.train_best_id
                 else f"train's best #{self.train_best_id} scores {_fmt(self.candidates[0].score)} there")
        return (f"#{self.program_id}, chosen on the {self.split} split among the {len(self.candidates)} best on "
                f"train: {self.split} score {_fmt(chosen.score)} ({where})")


def _fmt(value: float | None) -> str:
    return "failed" if value is None else f"{value:.4g}"


def choose(candidates: list[Candidate]) -> int:
    """The candidate best on the selection split; ties (and every one failing) go to train's order."""
    scored = [c for c in candidates if c.score is not None]
    if not scored:
        return candidates[0].program_id
    return max(scored, key=lambda c: (c.score, c.train_score, -c.program_id)).program_id


def select_best(problem: Problem, settings: RunSettings, archive: Archive,
                progress: Callable[[int, int, str], None] | None = None) -> Selection | None:
    """Choose among the top ``settings.select_among`` on train by ``settings.select_on``; the
    choice is stored in the archive's meta. None without a split or a scored program."""
    split = settings.select_on
    top = archive.top(settings.select_among)
    if split is None or not top:
        return None
    instances = problem.instances(split)
    cache = EvalCache(archive.path, problem, settings.sandbox, split, instances)
    named = [(f"#{p.id}", p.code) for p in top]
    results = evaluate_programs(problem, settings.sandbox, named, instances, split,
                                workers=settings.workers, cache=cache, progress=progress)
    candidates = [Candidate(int(p.id), float(p.score), results[f"#{p.id}"].score)  # type: ignore[arg-type]
                  for p in top]
    selection = Selection(split, settings.select_among, choose(candidates), tuple(candidates))
    archive.set_meta(SELECTION_META, selection.to_json())
    return selection


def selection_of(archive: Archive) -> Selection | None:
    saved = archive.get_meta(SELECTION_META)
    return Selection.from_json(saved) if isinstance(saved, dict) else None


def refit_reported(problem: Problem, settings: RunSettings, archive: Archive) -> Refit | None:
    """Refit the program the run reports so far (``refit_on``, evolve/refit.py); the refit is
    stored in the archive's meta and reported from then on. None where nothing was refitted."""
    chosen = reported_best(archive)
    refitted = refit(problem, settings, archive, chosen) if chosen is not None else None
    if refitted is not None:
        archive.set_meta(REFIT_META, refitted.to_json())
    return refitted


def refit_of(archive: Archive) -> Refit | None:
    saved = archive.get_meta(REFIT_META)
    return Refit.from_json(saved) if isinstance(saved, dict) else None


def clear_selection(archive: Archive) -> None:
    """The loop runs again: a choice made among the old top programs no longer holds."""
    for key in (SELECTION_META, REFIT_META):
        if archive.get_meta(key) is not None:
            archive.set_meta(key, None)


def reported_best(archive: Archive) -> Program | None:
    """The program a run reports: its refit (``refit_on``), else the one its selection chose,
    else the best on train."""
    refitted = refit_of(archive)
    if refitted is not None:
        with contextlib.suppress(UserError):
            return archive.program(refitted.program_id)
    selection = selection_of(archive)
    if selection is not None:
        with contextlib.suppress(UserError):  # an archive edited by hand: the search's own ranking
            return archive.program(selection.program_id)
    return archive.best()
