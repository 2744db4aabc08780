"""Chat messages from the jinja2 templates in ``prompts/`` (installed as ``evolve.prompts``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from evolve import prompts as prompt_package
from evolve.problem import Problem

# Metrics worth showing a model: the headline figures and per-group gaps.
_SHOWN_PREFIXES = ("gap_", "optimal_hits", "ms_per_instance", "instances")


@dataclass(frozen=True)
class PromptProgram:
    id: int
    code: str
    block: str
    score: float | None
    feedback: str
    metrics: dict[str, float]


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


def render_messages(
    problem: Problem,
    mode: str,
    parent: PromptProgram,
    inspirations: list[PromptProgram],
    edit_error: str | None,
) -> list[dict[str, str]]:
    env = environment()
    spec = problem.spec
    system = env.get_template("system.jinja").render(
        problem=spec, function=spec.function, objective=spec.objective, context=problem.context
    )
    metrics = [(k, v) for k, v in sorted(parent.metrics.items()) if k.startswith(_SHOWN_PREFIXES)]
    user = env.get_template(f"{mode}.jinja").render(
        parent=parent, metrics=metrics, inspirations=inspirations, edit_error=edit_error
    )
    return [{"role": "system", "content": system.strip()}, {"role": "user", "content": user.strip()}]
