"""Chat messages from the jinja2 templates in ``prompts/`` (installed as ``evolve.prompts``).

The system message is the same for every request of a run (the problem, how a
program is judged, the fixed code every program shares, the background), so
providers can cache it; the user message carries the current program's
EVOLVE-BLOCK and results, why it was chosen, what was already tried on it, the
run's latest attempts elsewhere, the last edit failure of its island, a
direction for an island's first prompts, and inspirations. Its first line
states the answer format, its last the details.

Size, whatever the archive's: the user message holds at most ``TEXT_CHARS``
characters of text and ``CODE_CHARS`` of program code (the current program's
block is always shown whole). The system message is fixed for a run and is not
counted against them: counted, moe's 9,700 characters of system text left no
room, and jssp's and serving's little, so their prompts showed no other
program's code at all. The history lists are bounded and give way first;
inspirations get what is left, each as the shortest of its block and its diffs,
and code that does not fit is named, not shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from evolve import prompts as prompt_package
from evolve.archive import Archive, Program
from evolve.config import RunSettings
from evolve.evaluation import cascade_floor
from evolve.fences import fence
from evolve.population import ParentChoice
from evolve.problem import Problem
from evolve.prompt_facts import direction, evaluation_setup, fixed_code
from evolve.prompt_history import (
    IDEA_CHARS,
    InFlight,
    TriedMemo,
    far_behind,
    last_edit_error,
    latest_elsewhere,
    origin_of,
    tried_on,
    why_parent,
)
from evolve.prompt_programs import (
    ProgramView,
    Shown,
    TimeLimits,
    against_parent,
    defined_names,
    program_view,
    shortest_form,
    time_against_limits,
    time_limits,
)
from evolve.verifier import Instance

# The user message's size, whatever the archive's: TEXT_CHARS of text (all but program code) and
# CODE_CHARS of program code (the current block, always whole, and inspirations' code). The
# system message is the run's own and fixed, so it does not take from them.
TEXT_CHARS = 6_000
CODE_CHARS = 8_000
# Inspirations' code gets what the current block leaves of CODE_CHARS, and at least this.
INSPIRATION_CODE = 2_500
# Text the history lists leave for inspirations' headers, and how short the lists may get for it.
INSPIRATION_TEXT = 2_000
MIN_LISTED = 2
# What an inspiration's header takes beyond its own text (markdown, labels).
_HEADER_SLACK = 120
NAMES = 8  # functions named for an inspiration whose code is not shown
CACHED_VIEWS = 1024  # programs' views kept (parents and inspirations recur from prompt to prompt)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    folder = Path(prompt_package.__file__).resolve().parent
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # installed package files: no stat() of the template at every prompt
    )
    env.filters["fence"] = fence
    return env


@dataclass(frozen=True)
class Inspiration:
    view: ProgramView
    origin: str  # how it came about
    shown: Shown | None  # its code, or None when it did not fit
    note: str  # what stands for the code when it is not shown
    role: str = ""  # "the run's best", "island 0's best": what the current program competes with


class PromptBuilder:
    """Renders the messages of a request from the archive's state (and the iterations in flight)."""

    def __init__(self, problem: Problem, settings: RunSettings, archive: Archive) -> None:
        self.problem = problem
        self.settings = settings
        self.archive = archive
        self._system: str | None = None
        self._limits = TimeLimits("CPU", "budget", {})
        # Programs never change once archived: each one's view is worked out once per run, and
        # each attempt's line in the history lists once per way it is listed.
        self._views: dict[tuple[int, int], ProgramView] = {}
        self._tried = TriedMemo()
        # Whether the score is made of something else per instance than gaps (serving's
        # instance_score): asked once, not of the verifier at every prompt.
        self._own_instance_score = False

    def prepare(self, quick: list[Instance], train: list[Instance]) -> None:
        """Render the system message once the seed is archived (its figures are part of it)."""
        spec = self.problem.spec
        seed = self.archive.seed()
        setup = evaluation_setup(self.problem, self.settings, quick, train, seed)
        self._system = environment().get_template("system.jinja").render(
            problem=spec, function=spec.function, objective=spec.objective,
            context=self.problem.context, setup=setup,
            fixed=fixed_code(seed.code) if seed is not None else None,
        ).strip()
        self._limits = time_limits(self.problem, self.settings, [*quick, *train])
        self._views.clear()
        self._tried.clear()
        self._own_instance_score = callable(getattr(self.problem.verifier, "instance_score", None))

    def messages(self, mode: str, island: int, parent: Program, inspirations: list[Program], *,
                 choice: ParentChoice | None = None,
                 in_flight: Sequence[InFlight] = ()) -> list[dict[str, str]]:
        assert self._system is not None, "prepare() first"
        problem, archive = self.problem, self.archive
        view = self._view(parent)
        best = archive.best()
        others = [self._view(p) for p in inspirations]
        context = {
            "parent": view,
            "origin": origin_of(archive, parent),
            # In gaps: not where the score is made of something else per instance (serving's
            # instance_score; its goodput and starved shares per trace say where a change went).
            "versus_parent": "" if self._own_instance_score else
            against_parent(parent, archive.program(parent.parent_id) if parent.parent_id is not None else None),
            "tried": tried_on(archive, parent, problem, list(in_flight), island=island, memo=self._tried),
            "latest": latest_elsewhere(archive, parent, problem, list(in_flight), memo=self._tried),
            "edit_error": last_edit_error(archive, island),
            "direction": direction(problem, island) if parent.origin == "seed" else None,
            "idea_chars": IDEA_CHARS,
            "behind": far_behind(parent, best, problem),
            "screen": self._screen_line(parent),
            "island_start": parent.origin == "seed",
        }
        template = environment().get_template(f"{mode}.jinja")

        roles = {best.id: "the run's best"} if best is not None else {}
        if choice is not None and choice.island_best is not None:
            roles.setdefault(choice.island_best, f"island {island}'s best")
        island_best = (archive.program(choice.island_best, results=False)
                       if choice is not None and choice.island_best not in (None, parent.id) else None)

        def render(shown: list[Inspiration]) -> str:
            shown = [Inspiration(i.view, i.origin, i.shown, i.note, roles.get(i.view.id, "")) for i in shown]
            ids = {i.view.id for i in shown}
            why = why_parent(choice, parent, best, island, problem, ids, island_best)
            return template.render(**context, why=why, inspirations=shown).strip()

        def text_room() -> tuple[int, str]:
            """The text left for inspirations, and the prompt without them (kept: it is the
            prompt itself when none is shown, so it is not rendered twice)."""
            bare = render([])
            return TEXT_CHARS - (len(bare) - len(view.block)), bare

        # The history gives way (oldest first) until inspirations have room for their headers;
        # the prompt says how many it left out, so a model does not take the rest for all there was.
        context["tried_cut"] = context["latest_cut"] = 0
        room, bare = text_room()
        while room < INSPIRATION_TEXT and (len(context["latest"]) > MIN_LISTED
                                           or len(context["tried"]) > MIN_LISTED):
            longer = "latest" if len(context["latest"]) >= len(context["tried"]) else "tried"
            context[longer] = context[longer][:-1]
            context[f"{longer}_cut"] += 1
            room, bare = text_room()
        ideas_listed = frozenset(t.iteration for t in [*context["tried"], *context["latest"]])
        chosen = self._fit(others, view, room, max(INSPIRATION_CODE, CODE_CHARS - len(view.block)),
                           ideas_listed)
        user = render(chosen) if chosen else bare
        while chosen and len(user) > TEXT_CHARS + _code_chars(view, chosen):
            chosen = chosen[:-1]  # the estimate was short: the last inspiration goes
            user = render(chosen) if chosen else bare
        return [{"role": "system", "content": self._system}, {"role": "user", "content": user}]

    def _screen_line(self, parent: Program) -> str:
        """What a child of ``parent`` must score on the quick split to be run on train: the
        number the cascade compares it with (a clean-room agent asked for it: the parent's quick
        score is not the train score the prompt shows)."""
        cascade = self.settings.cascade
        quick = parent.metrics.get("quick_score") if parent.metrics else None
        if not cascade.enabled or not isinstance(quick, (int, float)):
            return ""
        floor = cascade_floor(float(quick), cascade.tolerance)
        return (f"Screening (the system message's rule): it scored {quick:.6g} on the quick instances, "
                f"so a child of it that scores below {floor:.6g} there is not run on the train split.")

    def time_line(self, program: Program) -> str:
        """The program's time per instance against its limits, as its prompts show it."""
        return time_against_limits(program, self._limits)

    def _view(self, program: Program) -> ProgramView:
        assert program.id is not None
        key = (program.id, len(program.instances))  # with its results or without
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= CACHED_VIEWS:
                self._views.clear()
            view = self._views[key] = program_view(program, self.problem, self._limits)
        return view

    def _fit(self, others: list[ProgramView], parent: ProgramView, text: int, code: int,
             ideas_listed: frozenset[int]) -> list[Inspiration]:
        """Inspirations in order while their text fits in ``text`` characters, each with its
        code in the shortest form if it fits in ``code`` characters, else named without it."""
        chosen: list[Inspiration] = []
        bases: list[tuple[str, ProgramView]] = [("the current program", parent)]
        for view in others:
            origin = origin_of(self.archive, self.archive.program(view.id, results=False),
                               ideas_listed)
            header = len(view.headline) + len(view.summary) + len(origin) + _HEADER_SLACK
            shown: Shown | None = shortest_form(view, bases)
            names = defined_names(view.block)
            listed = ", ".join(names[:NAMES]) + (f" and {len(names) - NAMES} more" if len(names) > NAMES else "")
            note = (f"Its code ({view.lines} lines) does not fit in this prompt"
                    + (f"; it defines {listed}" if names else "") + ".")
            if len(shown.code) > code:
                shown, header = None, header + len(note)
            if header + (len(shown.how) if shown else 0) > text:
                break
            chosen.append(Inspiration(view, origin, shown, note))
            bases.append((f"#{view.id}", view))
            text -= header + (len(shown.how) if shown else 0)
            code -= len(shown.code) if shown else 0
        return chosen


def _code_chars(parent: ProgramView, shown: list[Inspiration]) -> int:
    """The program code a prompt shows: the current block and the inspirations' code."""
    return len(parent.block) + sum(len(i.shown.code) for i in shown if i.shown)
