"""``Run``: a run folder seen from Python (what ``evolve.run``, ``resume`` and ``open_run`` return).

Everything is read from the folder on demand, read-only, so a ``Run`` can be
held while the search writes to the same archive (in this or another process).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evolve.archive import Archive, Program
from evolve.archive_schema import sqlite_uri
from evolve.compare import StepProgress
from evolve.errors import UserError
from evolve.runs import RunInfo, load_run
from evolve.scoring import headline_gap
from evolve.selection import reported_best
from evolve.stop import Stop, StopKind

if TYPE_CHECKING:
    import pandas as pd

    from evolve.progress import Progress
    from evolve.review import RunReview


@dataclass(frozen=True)
class ScoredProgram:
    """An evaluated program of a run: its code and what the verifier made of it (train split)."""

    id: int
    code: str
    score: float  # higher is better (``-gap_mean_pct`` for gap scores)
    gap_pct: float | None  # the headline gap to the references, in %, when the score is a gap
    metrics: dict[str, float]
    iteration: int
    island: int
    generation: int
    model: str | None  # None for the seed


class Run:
    """An evolve run folder: ``best``, ``review()``, ``report()``, ``programs()``.

    Open one with ``evolve.open_run(folder)``; ``evolve.run`` and
    ``evolve.resume`` return one when the search stops.
    """

    def __init__(self, folder: Path | str, progress: Progress | None = None) -> None:
        self.dir = Path(folder)
        self.info: RunInfo = load_run(self.dir)
        Archive(self.info.archive_path, readonly=True).close()  # a corrupt archive fails here, named
        self.last_progress = progress  # the final progress when this process drove the search

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, problem={self.problem!r})"

    @property
    def problem(self) -> str:
        return self.info.problem

    @property
    def settings(self) -> Any:
        """The run's resolved settings (``evolve.config.RunSettings``)."""
        return self.info.settings

    @cached_property
    def _score_kind(self) -> str:
        from evolve.review import problem_of

        try:
            return str(problem_of(self.info).spec.objective.score)
        except UserError:  # the problem is gone: the archive alone still reads
            return "gap_mean"

    @cached_property
    def gap_against(self) -> str:
        """What the run's gaps are measured against when it is a baseline (``[objective] reference``), else ""."""
        from evolve.review import problem_of

        try:
            return str(problem_of(self.info).spec.objective.reference)
        except UserError:
            return ""

    def _archive(self) -> Archive:
        return Archive(self.info.archive_path, readonly=True)

    def _scored(self, program: Program | None, what: str) -> ScoredProgram:
        if program is None or program.id is None or program.score is None:
            raise UserError(f"{self.dir}: the run has no evaluated {what} yet")
        return ScoredProgram(
            id=program.id, code=program.code, score=float(program.score),
            gap_pct=headline_gap(program.metrics, self._score_kind), metrics=dict(program.metrics),
            iteration=program.iteration, island=program.island, generation=program.generation, model=program.model,
        )

    @property
    def best(self) -> ScoredProgram:
        """The run's reported best: the highest-scoring program on train, or the one its
        validation split chose (``select_on``, evolve/selection.py)."""
        archive = self._archive()
        try:
            return self._scored(reported_best(archive), "program")
        finally:
            archive.close()

    @property
    def seed(self) -> ScoredProgram:
        archive = self._archive()
        try:
            return self._scored(archive.seed(), "seed")
        finally:
            archive.close()

    def program(self, program_id: int) -> Program:
        """Any archived program by id, with per-instance results and feedback."""
        archive = self._archive()
        try:
            return archive.program(program_id)
        finally:
            archive.close()

    @property
    def stop_reason(self) -> str | None:
        """Why the search last stopped (``iterations``, a budget, a model error), or
        None if it is still running or was killed."""
        archive = self._archive()
        try:
            return archive.get_meta("stop_reason")
        finally:
            archive.close()

    @property
    def stop(self) -> Stop | None:
        """Why the search last stopped, with its exit code (``evolve.stop``); None if it is
        still running or was killed."""
        if self.last_progress is not None and self.last_progress.stop is not None:
            return self.last_progress.stop
        archive = self._archive()
        try:
            kind, reason = archive.get_meta("stop_kind"), archive.get_meta("stop_reason")
        finally:
            archive.close()
        return Stop(StopKind(kind), reason or "") if kind in set(StopKind) else None

    def review(
        self, test: bool = False, top: int = 10, workers: int = 1, progress: StepProgress | None = None,
        repeats: int = 0,
    ) -> RunReview:
        """What ``evolve review [--test] [--repeats R] --json`` prints, as objects: ``to_json()``
        gives that JSON.

        With ``test=True`` the best, the seed and every baseline are evaluated on the
        held-out split (``.test``: per-instance comparisons and the overfitting verdict);
        results are cached in the run's archive.  With ``repeats=R`` the top three programs
        are re-evaluated R times on train (``.noise``: is the best within noise?).
        """
        from evolve.holdout import evaluate_holdout
        from evolve.review import review_run

        result = review_run(self.dir, top=top)
        if test:
            result.test = evaluate_holdout(self.dir, "test", workers, progress)
        if repeats:
            from evolve.noise import noise_check

            result.noise = noise_check(self.dir, repeats=repeats, workers=workers, progress=progress)
        return result

    def report(
        self, path: Path | str | None = None, split: str = "test", workers: int = 1,
        progress: StepProgress | None = None,
    ) -> Path:
        """Write the self-contained HTML report (default ``RUN/report.html``); returns its path."""
        from evolve.report import build_report

        target = Path(path) if path is not None else self.dir / "report.html"
        build_report(self.dir, target, split=split, workers=workers, progress=progress)
        return target

    def export(self, path: Path | str | None = None, program_id: int | None = None) -> str:
        """A program (default: the best) as a standalone module with a provenance header."""
        from evolve.export import export_program, write_export

        target = Path(path) if path is not None else None
        text = export_program(self.dir, program_id, target.name if target else "rule.py")
        if target is not None:
            write_export(text, target)
        return text

    def programs(self) -> pd.DataFrame:
        """Every evaluated program, one row each: id, parent, island, iteration, generation,
        origin, model, status, score, gap_pct, stage, metrics (a dict), eval_seconds, created_at."""
        import pandas as pd

        archive = self._archive()
        try:
            rows = list(archive.program_rows())
        finally:
            archive.close()
        frame = pd.DataFrame(rows, columns=list(PROGRAM_COLUMNS))
        frame["parent"] = frame["parent"].astype("Int64")  # the seed has none
        frame["gap_pct"] = [headline_gap(m, self._score_kind) for m in frame["metrics"]]
        return frame[list(PROGRAM_COLUMNS[:9]) + ["gap_pct", *PROGRAM_COLUMNS[9:]]]

    def attempts(self) -> pd.DataFrame:
        """Every proposal, one row each: iteration, island, parent, mode, model, outcome, error,
        program, tokens, cost, model seconds, created_at."""
        import pandas as pd

        db = sqlite3.connect(sqlite_uri(self.info.archive_path, readonly=True), uri=True)
        try:
            return pd.read_sql_query(
                "SELECT iteration, island, parent_id AS parent, mode, model, outcome, error, program_id AS program,"
                " prompt_tokens, completion_tokens, cost_usd, llm_seconds, created_at FROM attempts ORDER BY iteration",
                db,
            )
        finally:
            db.close()


PROGRAM_COLUMNS = ("id", "parent", "island", "iteration", "generation", "origin", "model", "status", "score",
                   "stage", "metrics", "eval_seconds", "created_at")
