from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from evolve.archive import DUPLICATE, EVALUATED, Archive, Attempt, Program
from evolve.errors import UserError


def _program(code: str, score: float | None, iteration: int, parent: int | None = None) -> Program:
    return Program(
        code=code, code_hash=f"h-{code}", parent_id=parent, island=0, iteration=iteration,
        generation=0 if parent is None else 1, origin="seed" if parent is None else "llm", model="stub",
        status="ok" if score is not None else "timeout", score=score, stage="train",
        metrics={"gap_mean_pct": -(score or 0)}, instances=[{"name": "a"}], feedback="fb",
        features=[1.0], eval_seconds=0.1,
    )


def test_program_and_attempt_are_committed_at_once_and_visible_to_a_new_connection(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite"
    archive = Archive(path, create=True)
    seed_id = archive.add_program(_program("seed", -10.0, 0))
    child = _program("child", -5.0, 1, parent=seed_id)
    archive.add_program(child, Attempt(1, 0, seed_id, "diff", "stub", EVALUATED, completion="text"))
    # A second, independent connection sees both without any close/flush: committed.
    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM programs").fetchone()[0] == 2
    assert other.execute("SELECT program_id FROM attempts WHERE iteration=1").fetchone()[0] == child.id
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    archive.close()


def test_best_lineage_counts_and_usage(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a.sqlite", create=True)
    s = archive.add_program(_program("seed", -10.0, 0))
    c1 = archive.add_program(_program("c1", -4.0, 1, s), Attempt(1, 0, s, "diff", "m", EVALUATED, cost_usd=0.5, prompt_tokens=10))
    c2 = archive.add_program(_program("c2", None, 2, c1), Attempt(2, 0, c1, "diff", "m", EVALUATED, cost_usd=0.25))
    archive.add_attempt(Attempt(3, 1, s, "diff", "m", DUPLICATE))
    assert archive.best().id == c1
    assert [p.id for p in archive.lineage(c2)] == [s, c1, c2]
    assert archive.attempt_count() == 3 and archive.max_iteration() == 3
    assert archive.outcome_counts() == {EVALUATED: 2, DUPLICATE: 1}
    assert archive.status_counts() == {"ok": 1, "timeout": 1}
    assert archive.usage()["cost_usd"] == pytest.approx(0.75)
    assert archive.id_for_hash("h-c1") == c1 and archive.id_for_hash("nope") is None


def test_same_code_hash_cannot_be_stored_twice(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a.sqlite", create=True)
    archive.add_program(_program("seed", -1.0, 0))
    with pytest.raises(sqlite3.IntegrityError):
        archive.add_program(_program("seed", -2.0, 1))
    # The failed transaction left nothing half-written.
    assert archive.program_count() == 1 and archive.attempt_count() == 0


def test_elites_upsert(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a.sqlite", create=True)
    s = archive.add_program(_program("seed", -3.0, 0))
    archive.set_elite(0, "1,2", s, -3.0)
    archive.set_elite(0, "1,2", s, -2.0)
    assert archive.elites() == [(0, "1,2", s, -2.0)]


def test_opening_a_missing_archive_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no archive here"):
        Archive(tmp_path / "none.sqlite")



def test_cached_reads_hand_back_copies_and_see_later_writes(tmp_path: Path) -> None:
    """Programs and attempts are cached decoded (they never change once written): a caller
    that changes what it got does not change the archive's answer, an attempt asked for
    before it exists is found once written, and the best follows new programs."""
    archive = Archive(tmp_path / "a.sqlite", create=True)
    s = archive.add_program(_program("seed", -10.0, 0))
    first = archive.program(s)
    first.score, first.feedback = 99.0, "changed by a caller"
    again = archive.program(s)
    assert (again.score, again.feedback) == (-10.0, "fb") and again is not first
    assert archive.program(s, results=False).instances == [] and archive.program(s).instances == [{"name": "a"}]
    assert archive.attempt(1) is None
    c1 = archive.add_program(_program("c1", -4.0, 1, s), Attempt(1, 0, s, "diff", "m", EVALUATED, completion="x"))
    assert archive.attempt(1).program_id == c1
    assert archive.best().id == c1
    c2 = archive.add_program(_program("c2", -1.0, 2, c1), Attempt(2, 0, c1, "diff", "m", EVALUATED))
    assert archive.best().id == c2
    assert [a.iteration for a, _ in archive.latest_attempts(5)] == [2, 1]
    assert [(a.iteration, p.id) for a, p in archive.attempts_on(s, 5)] == [(1, c1)]
    # A reader on its own connection (as `evolve watch` on a live run) sees the same.
    reader = Archive(tmp_path / "a.sqlite", readonly=True)
    assert reader.best().id == c2 and reader.program(c1).code == "c1"
    reader.close()
    archive.close()


def test_the_seed_is_found_once_written_and_a_caller_changing_it_changes_nothing(tmp_path: Path) -> None:
    """The seed is read once it exists (every prompt asks for it) and handed out as a copy."""
    archive = Archive(tmp_path / "a.sqlite", create=True)
    assert archive.seed() is None  # asked before it exists: found once written
    s = archive.add_program(_program("seed", -10.0, 0))
    archive.add_program(_program("c1", -4.0, 1, s), Attempt(1, 0, s, "diff", "m", EVALUATED))
    seed = archive.seed()
    assert seed is not None and (seed.id, seed.code, seed.instances) == (s, "seed", [{"name": "a"}])
    seed.score, seed.code = 0.0, "changed by a caller"
    assert (archive.seed().score, archive.seed().code) == (-10.0, "seed")
    reader = Archive(tmp_path / "a.sqlite", readonly=True)
    assert reader.seed().id == s
    reader.close()
    archive.close()


def test_the_writers_history_in_memory_answers_as_the_file_does(tmp_path: Path) -> None:
    """The writer keeps the best program and the attempts by parent and island in memory,
    read on first use and updated by its own commits (several workers commit out of
    iteration order; a NaN score is stored as NULL, so it is never the best); a read-only
    archive on the file, and the writer reopened (a resume), give the same answers."""
    path = tmp_path / "a.sqlite"
    archive = Archive(path, create=True)
    s = archive.add_program(_program("seed", -10.0, 0))
    assert archive.best().id == s and archive.latest_attempts(3) == [] and archive.last_attempt(0) is None
    c1 = archive.add_program(_program("c1", -4.0, 2, s), Attempt(2, 2, s, "diff", "m", EVALUATED))
    archive.add_attempt(Attempt(4, 0, c1, "diff", "m", DUPLICATE))
    nan = _program("nan", float("nan"), 1, s)
    archive.add_program(nan, Attempt(1, 1, s, "diff", "m", EVALUATED))  # committed after 2 and 4
    tie = archive.add_program(_program("tie", -4.0, 3, c1), Attempt(3, 3, c1, "diff", "m", EVALUATED))
    archive.add_program(_program("tuned", -6.0, 3, tie))  # a tuned program has no attempt of its own

    def answers(a: Archive) -> tuple[object, ...]:
        return (a.best().id, [x.iteration for x, _ in a.latest_attempts(3)],
                [(x.iteration, p.id if p else None) for x, p in a.attempts_on(s, 5)],
                [x.iteration for x, _ in a.attempts_on(c1, 1)], a.attempts_on(c1, 0),
                [(i, a.last_attempt(i).iteration if a.last_attempt(i) else None) for i in range(5)])

    expected = (c1, [4, 3, 2], [(2, c1), (1, nan.id)], [4], [], [(0, 4), (1, 1), (2, 2), (3, 3), (4, None)])
    assert answers(archive) == expected
    top = archive.add_program(_program("top", -1.0, 5, tie), Attempt(5, 0, tie, "diff", "m", EVALUATED))
    expected = (top, [5, 4, 3], *expected[2:5], [(0, 5), *expected[5][1:]])
    assert answers(archive) == expected
    reader = Archive(path, readonly=True)
    assert answers(reader) == expected
    reader.close()
    archive.close()
    resumed = Archive(path)
    assert answers(resumed) == expected
    resumed.close()
