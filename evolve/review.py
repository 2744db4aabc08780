"""What a run found: leaderboard, best-vs-seed diff, failure counts, usage."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.archive import Archive, Program
from evolve.runs import load_run
from evolve.scoring import headline_gap


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

    def diff(self) -> str:
        if self.seed is None or self.best is None:
            return ""
        return "".join(
            difflib.unified_diff(
                self.seed.code.splitlines(keepends=True),
                self.best.code.splitlines(keepends=True),
                fromfile=f"seed (#{self.seed.id})",
                tofile=f"best (#{self.best.id})",
            )
        )

    def gap(self, program: Program | None) -> float | None:
        return headline_gap(program.metrics, self.score_kind) if program else None

    def to_json(self) -> dict[str, Any]:
        """The stable ``evolve review --json`` contract (see README)."""

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
            "leaderboard": [
                {
                    "id": p.id, "score": p.score, "gap_pct": self.gap(p), "iteration": p.iteration,
                    "island": p.island, "parent_id": p.parent_id, "model": p.model,
                }
                for p in self.leaderboard
            ],
            "attempts": self.attempts,
            "statuses": self.statuses,
            "usage": self.usage,
        }


def review_run(folder: Path, top: int = 10) -> RunReview:
    info = load_run(folder)
    from evolve.problem import load_problem  # lazy: review works on archives alone when possible

    try:
        score_kind = load_problem(info.problem_dir).spec.objective.score
    except Exception:
        score_kind = "gap_mean"
    archive = Archive(info.archive_path, readonly=True)
    try:
        return RunReview(
            problem=info.problem,
            run_dir=folder,
            iterations=archive.attempt_count(),
            target=info.settings.iterations,
            programs=archive.program_count(),
            seed=archive.seed(),
            best=archive.best(),
            leaderboard=archive.top(top),
            attempts=archive.outcome_counts(),
            statuses=archive.status_counts(),
            usage=archive.usage(),
            score_kind=score_kind,
        )
    finally:
        archive.close()
