"""Several seeds as one study: run them into one folder, and review them together.

A researcher should never report one lucky seed.  ``evolve run P --seeds 0-4``
runs one ordinary run per seed into ``STUDY/seed-<s>/`` (each resumable and
reviewable on its own), ``workers`` of them at a time, each in an OS process of its own
(``evolve/study_processes.py``; one at a time runs in this process), and ``evolve review
STUDY`` reports the median and the spread of the seeds' train gaps and, with
``--test``, of their held-out gaps, per group, with each seed's
wins/ties/losses against the strongest baseline.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.runs import STUDY_FILE, refuse_foreign_contents

STUDY = STUDY_FILE
_SEEDS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")  # seeds are >= 0, as --seed


def parse_seeds(text: str) -> list[int]:
    """``"0-4"``, ``"1,3,7"`` or ``"0-2,9"``: distinct seeds in the order given."""
    seeds: list[int] = []
    for part in text.split(","):
        m = _SEEDS.match(part)
        if not m:
            raise UserError(f"--seeds {text!r}: expected seeds >= 0 like '0-4' or '1,3,7'")
        low, high = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if high < low or high - low >= 1000:
            raise UserError(f"--seeds {text!r}: '{part.strip()}' is not an increasing range of at most 1000 seeds")
        seeds += [s for s in range(low, high + 1) if s not in seeds]
    return seeds


def is_study(folder: Path) -> bool:
    return (folder / STUDY).is_file()


def seed_dir(folder: Path, seed: int) -> Path:
    return folder / f"seed-{seed}"


def seed_settings(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """One seed's run settings: a ``record`` file becomes one file per seed
    (``completions.jsonl`` -> ``completions.seed-3.jsonl``), because a replay file holds
    one run's completions and parallel seeds would interleave their lines in one."""
    record = settings.get("record")
    if record is None:
        return settings
    path = Path(record)
    return {**settings, "record": str(path.with_name(f"{path.stem}.seed-{seed}{path.suffix}"))}


def read_study(folder: Path) -> dict[str, Any]:
    try:
        document = json.loads((folder / STUDY).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{folder / STUDY}: cannot read the study ({err})") from None
    if not isinstance(document, dict) or not isinstance(document.get("seeds"), list):
        raise UserError(f"{folder / STUDY}: expected an object with a list of 'seeds'")
    return document


@dataclass
class SeedOutcome:
    """How one seed's run ended: ``error`` is None, or one line saying why it failed
    (``detail``: the traceback of a crash, when there is one)."""

    seed: int
    error: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class SeedsFailed(RuntimeError):
    """Some seeds of a study failed; the others ran to their end (``outcomes`` has them all)."""

    def __init__(self, folder: Path, outcomes: list[SeedOutcome]) -> None:
        self.folder, self.outcomes = folder, outcomes
        self.failed = [o for o in outcomes if not o.ok]
        lines = "; ".join(f"seed {o.seed}: {o.error}" for o in self.failed)
        super().__init__(f"{len(self.failed)} of {len(outcomes)} seeds failed ({lines})")


def open_study(problem: Any, seeds: list[int], folder: Path) -> None:
    """Create the study folder and its ``study.json`` (the seeds' runs go in ``seed-<s>/``)."""
    if (folder / STUDY).exists():
        raise UserError(f"{folder}: already holds a study (review it with 'evolve review {folder}')")
    if (folder / "archive.sqlite").exists():  # a study's seeds would nest inside a run's folder
        raise UserError(f"{folder}: already holds a run, not a study (choose another --out)")
    refuse_foreign_contents(folder, {p.name for p in folder.glob("seed-*")}, "study")  # its seeds' own names
    folder.mkdir(parents=True, exist_ok=True)
    name = getattr(problem, "name", str(problem))
    document = {"problem": name, "seeds": seeds, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "runs": [seed_dir(folder, s).name for s in seeds]}
    (folder / STUDY).write_text(json.dumps(document, indent=2) + "\n")


def run_in_turn(seeds: list[int], folder: Path, run_one: Callable[[int, Path], Any],
                on_done: Callable[[SeedOutcome], None] | None = None) -> list[SeedOutcome]:
    """Run ``run_one(seed, seed_folder)`` for every seed in this process, one after the other;
    a seed that fails is recorded and the next one runs (Ctrl-C stops them all)."""
    outcomes = []
    for seed in seeds:
        try:
            run_one(seed, seed_dir(folder, seed))
            outcome = SeedOutcome(seed)
        except Exception as err:  # a seed's crash is its own: the others still run
            outcome = failure(seed, err)
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes


def failure(seed: int, err: Exception) -> SeedOutcome:
    """A seed's failure: a user mistake is its message; a crash, its type and message and traceback."""
    if isinstance(err, UserError):
        return SeedOutcome(seed, str(err))
    import traceback

    return SeedOutcome(seed, f"{type(err).__name__}: {err}", "".join(traceback.format_exception(err)))


# --- review -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """Median and spread of one figure over the seeds."""

    values: list[float]

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    def to_json(self) -> dict[str, Any]:
        v = np.asarray(self.values)
        return {"median": self.median, "mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
                "q25": float(np.percentile(v, 25)), "q75": float(np.percentile(v, 75)), "n": len(self.values)}


def spread(values: list[float | None]) -> Spread | None:
    kept = [float(v) for v in values if v is not None]
    return Spread(kept) if kept else None


@dataclass
class SeedRun:
    seed: int
    run_dir: Path
    iterations: int
    best_id: int | None
    train: dict[str, float]  # the best program's train metrics
    test: dict[str, float] | None = None  # its test metrics (with --test)
    test_ok: bool = True
    versus: dict[str, Any] | None = None  # wins/ties/losses against the strongest baseline
    chosen_on: str = "train"  # the split that chose the best: train, or the validation split
    # Why its archived scores are an older score than the problem's verifier gives now, or None.
    stale: str | None = None


@dataclass
class StudyReview:
    problem: str
    dir: Path
    runs: list[SeedRun]
    groups: list[str] = field(default_factory=list)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # test metrics by name
    strongest: str | None = None
    # The metric the problem's score reads its gap from (smtt: the mean over sizes), which the
    # table's "mean" columns show, as each run's review does.
    gap_key: str = "gap_mean_pct"

    @property
    def stale(self) -> list[str]:
        """One line per distinct stale-score note (review.stale_scores), naming its seeds."""
        seeds: dict[str, list[int]] = {}
        for run in self.runs:
            if run.stale:
                seeds.setdefault(run.stale, []).append(run.seed)
        whole = len(self.runs)
        return [("every seed" if len(s) == whole else ("seed " if len(s) == 1 else "seeds ")
                 + ", ".join(map(str, s))) + ": " + note for note, s in seeds.items()]

    def figure(self, split: str, key: str) -> Spread | None:
        rows = [r.train if split == "train" else r.test for r in self.runs]
        return spread([row.get(key) if row else None for row in rows])

    def to_json(self) -> dict[str, Any]:
        keys = list(dict.fromkeys([self.gap_key, "gap_mean_pct", "gap_median_pct",
                                   *[f"gap_mean_pct[{g}]" for g in self.groups]]))

        def figures(split: str) -> dict[str, Any]:
            out = {}
            for key in keys:
                found = self.figure(split, key)
                if found is not None:
                    out[key] = found.to_json()
            return out

        return {
            "problem": self.problem, "study_dir": str(self.dir), "seeds": [r.seed for r in self.runs],
            "gap_key": self.gap_key,
            "runs": [
                {"seed": r.seed, "run_dir": str(r.run_dir), "iterations": r.iterations, "best_id": r.best_id,
                 "best_chosen_on": r.chosen_on, "train": r.train, "test": r.test, "test_ok": r.test_ok,
                 "versus_strongest": r.versus, "stale_scores": r.stale}
                for r in self.runs
            ],
            "train": figures("train"),
            "test": figures("test") if any(r.test for r in self.runs) else None,
            "baselines": self.baselines, "strongest_baseline": self.strongest,
            "stale_scores": self.stale,
        }


def review_study(folder: Path, test: bool = False, workers: int = 1, progress: Any = None) -> StudyReview:
    """Each seed's best (from its archive) and, with ``test``, all of them and the baselines
    evaluated on the held-out split through the usual sandbox and verifier."""
    from evolve.archive import Archive
    from evolve.compare import compare, evaluate_programs, instance_score_of
    from evolve.holdout import strongest_of
    from evolve.review import problem_of, stale_scores
    from evolve.runs import load_run
    from evolve.scoring import headline_gap_keys, natural_key
    from evolve.selection import reported_best, selection_of

    document = read_study(folder)
    runs: list[SeedRun] = []
    codes: dict[int, str] = {}
    bests = {}
    info = None
    for seed in document["seeds"]:
        sub = seed_dir(folder, int(seed))
        if not (sub / "archive.sqlite").is_file():
            continue  # not started yet
        info = load_run(sub)
        archive = Archive(info.archive_path, readonly=True)
        try:
            best = reported_best(archive)
            selection = selection_of(archive)
            runs.append(SeedRun(int(seed), sub, archive.attempt_count(), best.id if best else None,
                                dict(best.metrics) if best else {},
                                chosen_on=selection.split if selection is not None else "train"))
            if best is not None:
                codes[int(seed)] = best.code
                bests[int(seed)] = best
        finally:
            archive.close()
    if info is None:
        raise UserError(f"{folder}: no seed of the study has started (run it with evolve run --seeds)")
    groups = sorted({k[len("gap_mean_pct["):-1] for r in runs for k in r.train if k.startswith("gap_mean_pct[")},
                    key=natural_key)
    problem = None
    try:
        problem = problem_of(info)
    except Exception:  # as a run's review: the seeds' archives alone when the problem is gone
        if test:
            raise
    score_kind = problem.spec.objective.score if problem is not None else "gap_mean"
    if problem is not None:  # as a run's review says when its archived scores are an older score's
        for run in runs:
            run.stale = stale_scores(problem, bests.get(run.seed))
    present = [k for k in headline_gap_keys(score_kind) if any(k in r.train for r in runs)]
    review = StudyReview(str(document.get("problem", info.problem)), folder, runs, groups,
                         gap_key=present[0] if present else "gap_mean_pct")
    if not test or problem is None:
        return review
    instances = problem.instances("test")
    programs = [(f"seed-{s}", code) for s, code in codes.items()]
    programs += [("seed program", problem.seed_code), *problem.baseline_programs()]
    evaluations = evaluate_programs(problem, info.settings.sandbox, programs, instances, "test", workers,
                                    progress=progress)
    baselines = {n: e for n, e in evaluations.items() if not n.startswith("seed-")}
    review.baselines = {n: _with_score(e) for n, e in baselines.items() if e.ok}
    # never the seed, nor a baseline of another class (problem.toml other_class_baselines)
    review.strongest = strongest_of(baselines, ("seed program", *problem.spec.other_class_baselines))
    review.groups = sorted({k[len("gap_mean_pct["):-1] for e in evaluations.values() for k in e.metrics
                            if k.startswith("gap_mean_pct[")}, key=natural_key)
    direction = problem.spec.objective.direction
    for run in runs:
        evaluation = evaluations.get(f"seed-{run.seed}")
        if evaluation is None:
            continue
        run.test, run.test_ok = _with_score(evaluation), evaluation.ok
        if review.strongest is not None:
            versus = compare(f"seed-{run.seed}", evaluation, review.strongest, baselines[review.strongest],
                             instances, direction, instance_score_of(problem))
            o = versus.overall
            run.versus = {"baseline": review.strongest, "wins": o.wins, "ties": o.ties, "losses": o.losses,
                          "p_value": o.test.p_value, "verdict": o.verdict,
                          "groups": {g.group: {"wins": g.wins, "ties": g.ties, "losses": g.losses}
                                     for g in versus.groups}}
    return review


def _with_score(evaluation: Any) -> dict[str, float]:
    """The test metrics and, as ``score``, the run's score on test (what serving's target reads)."""
    metrics = dict(evaluation.metrics)
    if evaluation.score is not None:
        metrics["score"] = float(evaluation.score)
    return metrics
