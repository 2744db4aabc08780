"""What a run found: leaderboard, best-vs-seed diff, lineage, failures, usage."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evolve.archive import Archive, Program
from evolve.errors import UserError
from evolve.formats import gap_words
from evolve.history import FailureKind, History, ModelUsage
from evolve.refit import Refit
from evolve.runs import ARCHIVE, CONFIG, RunInfo, find_runs, load_run
from evolve.sandbox.outcome import printable
from evolve.scoring import headline_gap
from evolve.selection import Selection, refit_of, reported_best, selection_of

if TYPE_CHECKING:  # holdout and noise import this module
    from evolve.holdout import Holdout
    from evolve.noise import NoiseCheck


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=old_name, tofile=new_name
        )
    )


def diff_summary(diff: str, width: int = 70) -> str:
    """One line for a lineage table: the edit itself when it is a line or two, else line counts."""
    removed = [line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    if not removed and not added:
        return "(no change)"
    if len(removed) <= 1 and len(added) <= 1:
        # The model's own line, shown as the step's summary in the report, the live view and the
        # lineage: written out as the diffs below it are (a bidi override or an escape showed raw
        # in the page's summary; fourteenth red team).
        text = printable(f"{removed[0] if removed else '∅'}  →  {added[0] if added else '∅'}")
        return text if len(text) <= width else text[: width - 1] + "…"
    return f"+{len(added)} / -{len(removed)} lines"


@dataclass(frozen=True)
class LineageStep:
    """One program on the chain from the seed to the best, and the edit that made it."""

    id: int
    iteration: int
    island: int
    generation: int
    origin: str
    model: str | None
    score: float | None
    delta: float | None  # score change from its parent
    gap_pct: float | None
    diff: str  # unified diff against its parent ("" for the seed)

    @property
    def summary(self) -> str:
        if self.origin == "seed":
            return "seed"
        # A tuned step changed constants only: say so, the numbers follow.
        return ("constants tuned: " if self.origin == "tuned" else "") + diff_summary(self.diff)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "iteration": self.iteration, "island": self.island,
            "generation": self.generation, "origin": self.origin, "model": self.model,
            "score": self.score, "delta": self.delta, "gap_pct": self.gap_pct, "edit": self.summary,
        }


@dataclass
class RunReview:
    problem: str
    run_dir: Path
    iterations: int
    target: int
    programs: int
    seed: Program | None
    best: Program | None
    leaderboard: list[Program]
    attempts: dict[str, int]
    statuses: dict[str, int]
    usage: dict[str, float]
    score_kind: str
    lineage: list[LineageStep] = field(default_factory=list)
    failures: list[FailureKind] = field(default_factory=list)
    usage_by_model: list[ModelUsage] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    # The held-out comparison (``review --test``), when it was asked for.
    test: Holdout | None = None
    # The top programs re-evaluated (``review --repeats R``): is the best within noise?
    noise: NoiseCheck | None = None
    # How the reported best was chosen, when a validation split chose it (``select_on``).
    selection: Selection | None = None
    # The chosen program refitted above its gate, reported in its place (``refit_on``).
    refit: Refit | None = None
    # Why the archive's scores are an older score than the problem's verifier gives now, or None.
    stale: str | None = None
    # What the gaps are against when it is a baseline's value (``[objective] reference``), else "".
    gap_against: str = ""

    @property
    def chosen_on(self) -> str:
        """The split that chose the reported best: train, or the run's validation split."""
        return self.selection.split if self.selection is not None else "train"

    def diff(self) -> str:
        if self.seed is None or self.best is None:
            return ""
        return unified_diff(self.seed.code, self.best.code, f"seed (#{self.seed.id})", f"best (#{self.best.id})")

    def gap(self, program: Program | None) -> float | None:
        return headline_gap(program.metrics, self.score_kind) if program else None

    def gap_words(self, program: Program | None) -> str:
        """``gap 1.17%``, or ``12.65% below FCFS's mean E2E latency`` (formats.gap_words)."""
        return gap_words(self.gap(program), self.gap_against)

    def key_metrics(self, program: Program) -> dict[str, float | None]:
        """Headline gap, gap ratio, speed and the MAP-Elites feature metrics."""
        names = ["gap_ratio_pct", "ms_per_instance", *[f for f in self.feature_names if f != "code_length"]]
        out: dict[str, float | None] = {"gap_pct": self.gap(program)}
        for name in dict.fromkeys(names):
            out[name] = program.metrics.get(name)
        return out

    def to_json(self) -> dict[str, Any]:
        """The stable ``evolve review --json`` contract (see docs/api.md and docs/review.md)."""

        def brief(p: Program | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {"id": p.id, "score": p.score, "gap_pct": self.gap(p), "metrics": p.metrics}

        return {
            "problem": self.problem,
            "run_dir": str(self.run_dir),
            "iterations": self.iterations,
            "target_iterations": self.target,
            "programs": self.programs,
            "seed": brief(self.seed),
            "best": brief(self.best),
            "best_chosen_on": self.chosen_on,
            "selection": self.selection.to_json() if self.selection is not None else None,
            "refit": self.refit.to_json() if self.refit is not None else None,
            "leaderboard": [
                {
                    "id": p.id, "score": p.score, "gap_pct": self.gap(p), "iteration": p.iteration,
                    "island": p.island, "parent_id": p.parent_id, "model": p.model,
                    "metrics": self.key_metrics(p),
                }
                for p in self.leaderboard
            ],
            "attempts": self.attempts,
            "statuses": self.statuses,
            "usage": self.usage,
            "lineage": [step.to_json() for step in self.lineage],
            "failures": {
                f.kind: {"count": f.count, "reasons": [{"reason": r, "count": c} for r, c in f.reasons]}
                for f in self.failures
            },
            "usage_by_model": [
                {
                    "model": u.model, "proposals": u.proposals, "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens, "cost_usd": u.cost_usd,
                }
                for u in self.usage_by_model
            ],
            "diff": self.diff(),
            "stale_scores": self.stale,
            **({"test": self.test.to_json()} if self.test is not None else {}),
            **({"noise": self.noise.to_json()} if self.noise is not None else {}),
        }


def lineage_steps(archive: Archive, best: Program | None, score_kind: str) -> list[LineageStep]:
    if best is None or best.id is None:
        return []
    chain = archive.lineage(best.id)
    steps = []
    for parent, program in zip([None, *chain[:-1]], chain, strict=True):
        assert program.id is not None
        delta = None
        if parent is not None and parent.score is not None and program.score is not None:
            delta = program.score - parent.score
        diff = "" if parent is None else unified_diff(
            parent.code, program.code, f"#{parent.id}", f"#{program.id}"
        )
        steps.append(
            LineageStep(
                id=program.id, iteration=program.iteration, island=program.island,
                generation=program.generation, origin=program.origin, model=program.model,
                score=program.score, delta=delta, gap_pct=headline_gap(program.metrics, score_kind), diff=diff,
            )
        )
    return steps


def problem_source(info: RunInfo) -> str:
    """Where the run's problem loads from: its folder if it still exists, else its name."""
    return info.problem_dir if (Path(info.problem_dir) / "problem.toml").is_file() else info.problem


def problem_of(info: RunInfo) -> Any:
    """The run's problem with the run's verifier options (folder first, then name)."""
    return run_problem(info).with_options(info.settings.verifier_options)


def run_problem(info: RunInfo) -> Any:
    """The run's problem (folder first, then name); a plug-in folder that moved away is named,
    with the way back (it was "unknown problem 'night-shift' (known: jssp, ...)")."""
    from evolve.problem import load_problem

    source = problem_source(info)
    try:
        return load_problem(source)
    except UserError:
        if source != info.problem or not info.problem_dir:
            raise
        raise UserError(f"{info.dir / CONFIG}: the run's problem folder {info.problem_dir} holds no problem.toml any "
                        f"more and '{info.problem}' is not an installed problem; move the folder back, or set "
                        "problem_dir in that file to where it is now") from None


def stale_reason(problem: Any, program: Program | None) -> str | None:
    """The verifier's own words (``stale_scores``) when ``program``'s score is older than it computes now."""
    check = getattr(getattr(problem, "verifier", None), "stale_scores", None)
    return check(program.metrics) if program is not None and callable(check) else None


def stale_scores(problem: Any, program: Program | None) -> str | None:
    """A note when ``program``'s archived score is an older score than the problem's verifier
    computes now (its ``stale_scores``, ``ScoreEras``): re-evaluations do not compare with it."""
    why = stale_reason(problem, program)
    if why is None:
        return None
    return (f"this run's archived scores were made {why}; re-evaluations (review --test, --repeats, "
            f"report) use the current score, so do not compare the two (`evolve eval {problem.name} "
            f"PROGRAM.py --split train` re-scores a program)")


def review_run(folder: Path, top: int = 10) -> RunReview:
    info = load_run(folder)
    problem = None
    try:
        problem = problem_of(info)
        spec = problem.spec
        score_kind, features = spec.objective.score, [f.name for f in spec.features]
        against = spec.objective.reference
    except Exception:  # review works on archives alone when the problem is gone
        score_kind, features, against = "gap_mean", [], ""
    archive = Archive(info.archive_path, readonly=True)
    try:
        best = reported_best(archive)
        review = RunReview(
            problem=info.problem,
            run_dir=folder,
            iterations=archive.attempt_count(),
            target=info.settings.iterations,
            programs=archive.program_count(),
            seed=archive.seed(),
            best=best,
            leaderboard=archive.top(top),
            attempts=archive.outcome_counts(),
            statuses=archive.status_counts(),
            usage=archive.usage(),
            score_kind=score_kind,
            lineage=lineage_steps(archive, best, score_kind),
            feature_names=features,
            selection=selection_of(archive),
            refit=refit_of(archive),
            stale=stale_scores(problem, best),
            gap_against=against,
        )
    finally:
        archive.close()
    with History(info.archive_path) as history:
        review.failures = history.failures()
        review.usage_by_model = history.usage_by_model()
    return review


@dataclass(frozen=True)
class BestAcross:
    """``best_across_runs``: the best (run folder, program), and the runs left out because their
    scores are older than the problem's verifier computes now (folder, why)."""

    found: tuple[Path, Program] | None
    stale: tuple[tuple[Path, str], ...]


def best_across_runs(root: Path, problem: str) -> BestAcross:
    """The best program archived for ``problem`` in any run under ``root`` (each run's reported
    best: the one its validation split chose, where it has one).  A run whose scores the verifier
    calls older (its ``stale_scores``: smtt_rule's before its audit admitted only index rules,
    when a look-ahead kept its score) is left out: its score does not compare with the others'."""
    best: tuple[Path, Program] | None = None
    stale: list[tuple[Path, str]] = []
    for folder in find_runs(root, problem):
        program, why = reported_best_staleness(folder)
        if program is None or program.score is None:
            continue
        if why is not None:
            stale.append((folder, why))
        elif best is None or program.score > (best[1].score or float("-inf")):
            best = (folder, program)
    return BestAcross(best, tuple(stale))


def reported_best_staleness(folder: Path) -> tuple[Program | None, str | None]:
    """A run's reported best, and the verifier's words when its score is older than the verifier
    computes now (``stale_scores``), else None; None too when the run's problem is gone."""
    archive = Archive(folder / ARCHIVE, readonly=True)
    try:
        program = reported_best(archive)
    finally:
        archive.close()
    if program is None:
        return None, None
    try:
        return program, stale_reason(problem_of(load_run(folder)), program)
    except UserError:  # its problem or config is gone: the score is all there is to go by
        return program, None
