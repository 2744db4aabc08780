"""Is the best really the best? Re-evaluate the top programs and compare their spread.

A score that depends on the machine (a rule that times itself, a search that
stops on the clock, a verifier that charges runtime) moves between
evaluations.  ``evolve review RUN --repeats R`` evaluates the run's top
programs R more times on the split they were ranked on, through the usual
sandbox and verifier, and flags a best whose range overlaps the runner-up's:
their order is within noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.archive import Archive
from evolve.compare import evaluate_programs
from evolve.errors import UserError
from evolve.review import problem_of, stale_scores
from evolve.runs import load_run


@dataclass(frozen=True)
class Repeated:
    program_id: int
    archived: float | None  # the score the archive ranked it by
    scores: list[float | None]  # the re-evaluations
    archived_stale: bool = False  # the archived score is an older score's: not in the spread

    @property
    def kept(self) -> list[float]:
        return [s for s in [None if self.archived_stale else self.archived, *self.scores] if s is not None]

    @property
    def low(self) -> float | None:
        return min(self.kept) if self.kept else None

    @property
    def high(self) -> float | None:
        return max(self.kept) if self.kept else None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.program_id, "archived": self.archived, "archived_stale": self.archived_stale,
                "scores": self.scores, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class NoiseCheck:
    split: str
    repeats: int
    programs: list[Repeated]  # best first

    @property
    def within_noise(self) -> bool:
        """The best's lowest score does not clear the runner-up's highest."""
        if len(self.programs) < 2:
            return False
        best, second = self.programs[0], self.programs[1]
        if best.low is None or second.high is None:
            return False
        return best.low <= second.high

    @property
    def message(self) -> str:
        if len(self.programs) < 2:
            return "only one program: nothing to compare"
        best, second = self.programs[0], self.programs[1]
        if self.within_noise:
            return (f"best #{best.program_id} is within noise of #{second.program_id}: its scores "
                    f"{best.low:.6g}..{best.high:.6g} overlap {second.low:.6g}..{second.high:.6g}")
        return f"best #{best.program_id} stays ahead of #{second.program_id} in every re-evaluation"

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "repeats": self.repeats, "within_noise": self.within_noise,
                "message": self.message, "programs": [p.to_json() for p in self.programs]}


def noise_check(folder: Path, repeats: int = 3, top: int = 3, workers: int = 1,
                progress: Any = None) -> NoiseCheck:
    if repeats < 1 or top < 1:
        raise UserError(f"--repeats {repeats}: expected at least 1 re-evaluation of at least one program")
    info = load_run(folder)
    problem = problem_of(info)
    archive = Archive(info.archive_path, readonly=True)
    try:
        leaders = [p for p in archive.top(top) if p.id is not None]
    finally:
        archive.close()
    if not leaders:
        raise UserError(f"{folder}: the run has no evaluated program yet")
    split = "train"
    instances = problem.instances(split)
    programs = [(f"#{p.id} run {k}", p.code) for p in leaders for k in range(repeats)]
    results = evaluate_programs(problem, info.settings.sandbox, programs, instances, split, workers,
                                progress=progress)
    rows = []
    for p in leaders:
        scores = [results[f"#{p.id} run {k}"] for k in range(repeats)]
        rows.append(Repeated(int(p.id or 0), p.score, [e.score if e.ok else None for e in scores],
                             stale_scores(problem, p) is not None))
    return NoiseCheck(split, repeats, rows)
