"""The loop keeps what exists before its first iteration out of the cyclic collector's way
(``gc.freeze``) while it runs, and hands the process back as it found it.

Real loop, real sandbox, the toy problem, the offline mutation model."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolve.archive import Archive
from evolve.config import resolve_settings
from evolve.llm import make_llm
from evolve.loop import Controller, Progress
from evolve.problem import load_problem


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()  # whatever an earlier test left
    yield
    gc.unfreeze()


def _collected(marker: object) -> bool:
    """Whether the cyclic collector would look at ``marker`` (frozen objects are in none of its
    generations)."""
    return any(o is marker for o in gc.get_objects())


def _run(toy_dir: Path, folder: Path, marker: object) -> tuple[list[bool], int]:
    """Whether ``marker`` (made before the run) was collectable at each progress report once the
    loop had started, and how many programs the run archived."""
    folder.mkdir()
    problem = load_problem(str(toy_dir))
    settings = resolve_settings(problem.spec.run, None, {"iterations": 6, "seed": 3})
    archive = Archive(folder / "archive.sqlite", create=True)
    seen: list[bool] = []

    def on_progress(progress: Progress) -> None:
        if progress.loop_started is not None:
            seen.append(_collected(marker))

    Controller(problem, settings, archive, make_llm("mutate"), folder, on_progress=on_progress).run()
    programs = archive.program_count()
    archive.close()
    return seen, programs


def test_the_loop_runs_with_its_start_up_frozen_and_unfreezes_at_the_end(
        toy_dir: Path, tmp_path: Path, unfrozen: None) -> None:
    marker: list[object] = []
    seen, programs = _run(toy_dir, tmp_path / "run", marker)
    assert programs > 1
    assert len(seen) >= 6 and not any(seen)  # out of the collector's way for the whole loop
    assert gc.get_freeze_count() == 0 and _collected(marker)


def test_a_process_that_froze_objects_itself_keeps_them_frozen_and_nothing_more(
        toy_dir: Path, tmp_path: Path, unfrozen: None) -> None:
    gc.freeze()
    marker: list[object] = []  # made after the process's own freeze
    seen, programs = _run(toy_dir, tmp_path / "run", marker)
    assert programs > 1
    assert len(seen) >= 6 and all(seen)  # the run froze nothing more
    assert gc.get_freeze_count() > 1000  # and did not unfreeze the process's own
