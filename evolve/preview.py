"""The prompt a model would be sent next (``evolve prompt``), without running anything.

For a run: its archive is read (never written) and the next iteration's
request is built exactly as the loop would build it. For a problem: the seed
is evaluated in a temporary archive (as a new run would first do) and the
first request is built.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from evolve.archive import Archive, check_archive
from evolve.config import RunSettings, resolve_settings
from evolve.errors import UserError
from evolve.llm.base import Completion, ProposalRequest
from evolve.problem import Problem


class _NoModel:
    """Stands in for the run's model: a preview never calls one."""

    name = "preview"

    def complete(self, request: ProposalRequest) -> Completion:
        raise AssertionError("a preview calls no model")


def next_prompt(problem: str | Path | Problem | None = None, run: Path | None = None,
                overrides: dict[str, Any] | None = None) -> ProposalRequest:
    """The next request of ``run``, or the first of a new run of ``problem``."""
    from evolve.loop import Controller

    if (problem is None) == (run is None):
        raise UserError("give a problem or --run RUN_DIR (one of them)")
    with tempfile.TemporaryDirectory(prefix="evolve-prompt-") as scratch:
        if run is not None:
            problem_, settings = _run_problem(run)
            archive = Archive(run / "archive.sqlite", readonly=True)
            try:
                return Controller(problem_, settings, archive, _NoModel(), Path(scratch)).preview()
            finally:
                archive.close()
        from evolve.executors import LocalExecutor
        from evolve.runner import as_problem

        base = as_problem(problem)  # type: ignore[arg-type]
        settings = resolve_settings(base.spec.run, None, overrides or {})
        configured = base.configured(settings.verifier_options)
        archive = Archive(Path(scratch) / "archive.sqlite", create=True)
        controller = Controller(configured, settings, archive, _NoModel(), Path(scratch))
        quick, train = controller._load_instances()
        executor = LocalExecutor(configured, settings.sandbox, 1, {"quick": quick, "train": train})
        try:
            return controller.preview(executor)
        finally:
            executor.close()
            archive.close()


def _run_problem(run: Path) -> tuple[Problem, RunSettings]:
    from evolve.problem import load_problem
    from evolve.review import problem_source
    from evolve.runs import CONFIG, load_run

    info = load_run(run)
    check_archive(info.archive_path)
    problem = load_problem(problem_source(info)).configured(
        info.settings.verifier_options, source=f"{run / CONFIG}: settings.verifier_options")
    return problem, info.settings


def as_text(request: ProposalRequest) -> str:
    """The messages as ``evolve prompt`` prints them (the same layout as files:DIR)."""
    from evolve.llm.files import prompt_text

    return prompt_text(request, f"<!-- the request of iteration {request.iteration}, asking for a "
                                f"{request.mode} -->")
