"""Chat messages from the jinja2 templates in ``prompts/`` (installed as ``evolve.prompts``).

The system message is the same for every request of a run (the problem, how a
program is judged, the background), so providers can cache it; the user
message carries the current program, what was already tried on it, the last
edit failure of its island, a direction for an island's first prompts, and
inspirations. Its first line states the answer format, its last the details.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from evolve import prompts as prompt_package
from evolve.archive import Archive, Program
from evolve.config import RunSettings
from evolve.problem import Problem
from evolve.prompt_facts import (
    direction,
    evaluation_setup,
    last_edit_error,
    program_view,
    tried_on,
)
from evolve.verifier import Instance


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    folder = Path(prompt_package.__file__).resolve().parent
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class PromptBuilder:
    """Renders the messages of a request from the archive's state (nothing kept in memory)."""

    def __init__(self, problem: Problem, settings: RunSettings, archive: Archive) -> None:
        self.problem = problem
        self.settings = settings
        self.archive = archive
        self._system: str | None = None

    def prepare(self, quick: list[Instance], train: list[Instance]) -> None:
        """Render the system message once the seed is archived (its figures are part of it)."""
        spec = self.problem.spec
        setup = evaluation_setup(self.problem, self.settings, quick, train, self.archive.seed())
        self._system = environment().get_template("system.jinja").render(
            problem=spec, function=spec.function, objective=spec.objective,
            context=self.problem.context, setup=setup,
        ).strip()

    def messages(self, mode: str, island: int, parent: Program,
                 inspirations: list[Program]) -> list[dict[str, str]]:
        assert self._system is not None, "prepare() first"
        user = environment().get_template(f"{mode}.jinja").render(
            parent=program_view(parent, self.problem),
            tried=tried_on(self.archive, parent, self.problem),
            edit_error=last_edit_error(self.archive, island),
            direction=direction(self.problem, island) if parent.origin == "seed" else None,
            inspirations=[program_view(p, self.problem, parent) for p in inspirations],
        )
        return [{"role": "system", "content": self._system}, {"role": "user", "content": user.strip()}]
