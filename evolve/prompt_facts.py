"""What a prompt tells the model, gathered from the problem, the settings and the archive.

Everything here is derived from data that is persisted (the archive, the run's
settings, the problem), never from the loop's memory, so the prompt of the
next iteration can be rebuilt exactly by ``evolve prompt --run RUN``.
"""

from __future__ import annotations

import ast
import difflib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from evolve.archive import DUPLICATE, EDIT_ERROR, EVALUATED, LLM_ERROR, Archive, Attempt, Program
from evolve.config import RunSettings
from evolve.edits import EditError, block_text, edit_child
from evolve.edits.reply import idea_of, split_thinking
from evolve.problem import Problem
from evolve.scoring import headline_gap, natural_key
from evolve.verifier import Instance

# Metrics shown next to a program's score when the problem has them (beyond the
# feedback's gap lines): what its score is made of, how robust it is, what it costs.
_KEY_METRICS = ("gap_median_pct", "optimal_hits", "ms_per_instance", "goodput_pct", "starved_pct",
                "e2e_gap_pct", "balancedness", "runtime_ms")

# Used when a problem names no [prompt] directions: one per island for its first
# prompts, so the islands do not all start with the same request.
GENERIC_DIRECTIONS = (
    "refine the rule itself: use inputs it ignores, normalise their scales, fit its constants",
    "change the form of the rule: another family of formulas (ratios, exponentials, max/min of "
    "terms)",
    "switch between rules by situation (how loaded, how late, how far along), or break near-ties "
    "with a second criterion",
    "adapt the rule to the instance: derive its weights from statistics of the whole instance "
    "(how tight, how varied, how large)",
)

_SCORE_TEXT = {
    "gap_mean": "minus the mean, over the instances, of the relative gap (objective - reference) / "
                "reference in % (the reference is an instance's optimum, best known value or bound): "
                "0 means every instance matches its reference, higher is better. Each instance weighs "
                "the same, so on an instance with a small reference a small absolute difference is a "
                "large gap",
    "gap_ratio": "minus (sum of objectives - sum of references) / sum of references, in %: higher is "
                 "better, and large instances weigh the most",
}


def score_text(problem: Problem) -> str:
    spec = problem.spec
    own = spec.prompt.score.strip() if spec.prompt else ""
    if own:
        return own
    if spec.objective.score in _SCORE_TEXT:
        return _SCORE_TEXT[spec.objective.score]
    sign = "minus " if spec.objective.direction == "minimize" else ""
    return f"{sign}the sum of the {spec.objective.name} over the instances: higher is better"


def _groups(instances: list[Instance]) -> str:
    counts = Counter(i.group for i in instances)
    if len(counts) <= 1:
        return ""
    sizes = set(counts.values())
    names = ", ".join(sorted(counts, key=natural_key))
    if len(sizes) == 1:
        return f", {sizes.pop()} in each of {len(counts)} groups ({names})"
    return ", by group: " + ", ".join(f"{g} {counts[g]}" for g in sorted(counts, key=natural_key))


def evaluation_setup(problem: Problem, settings: RunSettings, quick: list[Instance],
                     train: list[Instance], seed: Program | None) -> list[str]:
    """The lines of the system prompt that say how a program is judged."""
    sandbox, cascade = settings.sandbox, settings.cascade
    smallest = min(Counter(i.group for i in train).values()) if train else 0
    lines = [
        f"Score: {score_text(problem)}.",
        f"Instances: programs are ranked by their score on the train split, {len(train)} "
        f"instances{_groups(train)}. "
        + (f"With as few as {smallest} instance{'s' if smallest > 1 else ''} in a group, a gain "
           "carried by one or two instances may not hold elsewhere. " if 0 < smallest <= 10 else "")
        + "A held-out test split, never shown to the search, decides the final comparison: prefer "
          "changes that help on any instance of this kind over ones that fit these instances.",
    ]
    if cascade.enabled and quick:
        lines.append(f"Screening: each new program first runs on {len(quick)} quick instances; one "
                     f"that scores more than {cascade.tolerance:g} x |parent score| below its parent "
                     "there is not run on the train split.")
    lines.append(f"Limits: the sandbox stops an instance after {sandbox.instance_timeout_s:g} s of wall "
                 f"time or {sandbox.memory_mb} MiB of memory, and the program fails (the contract "
                 "above may set a tighter budget). A program that searches must stop on its own well "
                 "before, on CPU time (time.process_time()), so that its result does not depend on how "
                 "busy the machine is.")
    if seed is not None and seed.score is not None:
        lines.append(f"The seed program, where the run started, scores {seed.score:.6g} on the train "
                     f"split{_gap_phrase(seed.metrics, problem)}.")
    return lines


def _gap_phrase(metrics: dict[str, float], problem: Problem) -> str:
    gap = headline_gap(metrics, problem.spec.objective.score)
    return f" (gap {gap:.2f}%)" if gap is not None else ""


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


@dataclass(frozen=True)
class ProgramView:
    """A program as a prompt shows it."""

    id: int
    code: str
    block: str
    score: float | None
    headline: str  # "score -1.93 (gap 1.93%); goodput_pct 97.1"
    results: str  # the verifier's feedback: gap lines, per group, worst instances


def program_view(program: Program, problem: Problem, parent: Program | None = None) -> ProgramView:
    """``parent`` given: the block without docstrings it repeats verbatim from the parent."""
    assert program.id is not None
    block = block_text(program.code)
    if parent is not None:
        block = without_repeated_docstrings(block, block_text(parent.code))
    metrics = program.metrics
    keys = (*_KEY_METRICS, *getattr(problem.verifier, "headline_metrics", ()))
    extra = [_metric(k, metrics) for k in keys if k in metrics]
    score = f"score {program.score:.6g}" if program.score is not None else f"status {program.status}"
    headline = score + _gap_phrase(program.metrics, problem) + (
        "; " + ", ".join(dict.fromkeys(extra)) if extra else "")
    return ProgramView(program.id, program.code, block, program.score, headline,
                       program.feedback.strip())


def _metric(key: str, metrics: dict[str, float]) -> str:
    value = metrics[key]
    if key == "gap_median_pct":
        return f"median gap {value:.2f}%"
    if key == "optimal_hits":
        return f"optimal on {value:.0f} of {metrics.get('instances', 0):.0f}"
    if key == "ms_per_instance":
        return f"{value:.3g} ms per instance"
    return f"{key} {value:.4g}"


@lru_cache(maxsize=2048)
def _docstrings(source: str) -> dict[str, tuple[int, int, str]]:
    """Function name -> (first line, last line, text) of its docstring (0-based lines), for the
    top-level functions and classes and their methods (cached: programs never change)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found = {}
    nodes = [*tree.body, *(n for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body)]
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str) and len(node.body) > 1:
                found[node.name] = (first.lineno - 1, (first.end_lineno or first.lineno) - 1,
                                    first.value.value)
    return found


def without_repeated_docstrings(block: str, parent_block: str) -> str:
    """Drop docstrings the parent shows already: the same text under the same function."""
    mine, theirs = _docstrings(block), _docstrings(parent_block)
    lines = block.split("\n")
    for name, (start, end, text) in sorted(mine.items(), key=lambda kv: -kv[1][0]):
        if name in theirs and theirs[name][2] == text:
            del lines[start: end + 1]
    return "\n".join(lines)


@dataclass(frozen=True)
class Tried:
    """One earlier attempt on the same parent, as the next prompt reports it."""

    iteration: int
    idea: str
    change: str
    result: str


def tried_on(archive: Archive, parent: Program, problem: Problem, limit: int = 6) -> list[Tried]:
    """What was already tried from ``parent`` and what came of it, newest first.

    The change is the edit's effect on the block (its new lines), never the
    model's text: thinking sections are never sent back.
    """
    assert parent.id is not None
    tried = []
    for attempt, child in archive.attempts_on(parent.id, limit):
        if attempt.outcome == LLM_ERROR:
            continue
        answer = split_thinking(attempt.completion or "").answer
        code = child.code if child is not None else _replay_edit(parent, attempt)
        tried.append(Tried(attempt.iteration, idea_of(answer), _change(parent.code, code),
                           _result(attempt, child, parent, problem)))
    return tried


def _replay_edit(parent: Program, attempt: Attempt) -> str | None:
    if attempt.outcome != DUPLICATE or not attempt.completion:
        return None
    return _edited(parent.code, attempt.completion, attempt.mode)


@lru_cache(maxsize=1024)
def _edited(parent: str, completion: str, mode: str) -> str | None:
    try:
        return edit_child(parent, completion, mode).code  # type: ignore[arg-type]
    except EditError:
        return None


def _change(before: str, after: str | None) -> str:
    return _change_text(before, after) if after is not None else ""


@lru_cache(maxsize=4096)
def _change_text(before: str, after: str, limit: int = 200) -> str:
    """The edit's new lines in the block (or what it removed), on one line."""
    diff = list(difflib.unified_diff(block_text(before).split("\n"), block_text(after).split("\n"),
                                     lineterm="", n=0))
    added = [d[1:].strip() for d in diff if d.startswith("+") and not d.startswith("+++")]
    removed = [d[1:].strip() for d in diff if d.startswith("-") and not d.startswith("---")]
    code = [a for a in added if a and not a.startswith(("#", '"""', "'''"))]
    shown = code or [f"removed: {r}" for r in removed if r]
    text = " / ".join(shown)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _result(attempt: Attempt, child: Program | None, parent: Program, problem: Problem) -> str:
    if attempt.outcome == EDIT_ERROR:
        return "not applied: " + (attempt.error or "").split(";")[0].split(". ")[0]
    if attempt.outcome == DUPLICATE:
        return "not evaluated: " + (attempt.error or "a program already in the archive")
    if attempt.outcome != EVALUATED or child is None:
        return attempt.outcome
    if child.score is None:
        first = next((line.strip() for line in child.feedback.splitlines() if line.strip()), "")
        first = first if len(first) <= 160 else first[:157] + "..."
        return f"failed ({child.status}): {first}"
    text = f"score {child.score:.6g}" + _gap_phrase(child.metrics, problem)
    if parent.score is not None:
        delta = child.score - parent.score
        text += (" (better" if delta > 0 else " (worse" if delta < 0 else " (the same") + (
            f" by {abs(delta):.4g})" if delta else ")")
    return text


def last_edit_error(archive: Archive, island: int) -> str | None:
    """The reason the island's latest answer could not be used, if it could not."""
    last = archive.last_attempt(island)
    return last.error if last is not None and last.outcome == EDIT_ERROR else None


def direction(problem: Problem, island: int) -> str:
    own = list(problem.spec.prompt.directions) if problem.spec.prompt else []
    choices = own or list(GENERIC_DIRECTIONS)
    return choices[island % len(choices)]
