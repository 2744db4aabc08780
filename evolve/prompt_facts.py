"""What the system message tells the model: how a program is judged, and the fixed code.

Everything here is derived from data that is persisted or configured (the
problem, the run's settings, the instances, the archived seed), never from the
loop's memory, so ``evolve prompt --run RUN`` rebuilds it exactly. What the user
message says about programs and attempts lives in ``prompt_programs`` and
``prompt_history``.
"""

from __future__ import annotations

import ast
from collections import Counter, defaultdict

from evolve.archive import Program
from evolve.config import RunSettings
from evolve.edits import evolve_blocks
from evolve.evaluation import SPLIT_GRACE_S
from evolve.formats import pct
from evolve.problem import Problem
from evolve.scoring import headline_gap, natural_key
from evolve.verifier import BUDGET_ALLOWANCE, CLOCK_ADVICE, Instance

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
                "reference in %: 0 means every instance matches its reference, higher is better. Each "
                "instance weighs the same, so on an instance with a small reference a small absolute "
                "difference is a large gap",
    "gap_group_mean": "minus the mean, over the instance groups, of each group's mean relative gap "
                      "(objective - reference) / reference in %: every group weighs the same, and "
                      "within a group every instance; 0 means every instance matches its reference, "
                      "higher is better",
    "gap_ratio": "minus (sum of objectives - sum of references) / sum of references, in %: higher is "
                 "better, and large instances weigh the most",
}
_KIND_WORDS = {"optimal": "optimal", "best_known": "best known", "bound": "bound only"}


def score_text(problem: Problem) -> str:
    spec = problem.spec
    own = spec.prompt.score.strip() if spec.prompt else ""
    if own:
        return own
    if spec.objective.score in _SCORE_TEXT:
        text = _SCORE_TEXT[spec.objective.score]
        weight = spec.objective.median_weight
        if weight and spec.objective.score in ("gap_mean", "gap_group_mean"):
            text += (f"; each mean gap in this score is blended with the median gap, {1 - weight:g} x mean + "
                     f"{weight:g} x median, so a few instances with tiny references weigh less (the gaps "
                     "reported stay the plain means)")
        floors = spec.objective.reference_floor
        if floors and spec.objective.score in ("gap_mean", "gap_group_mean"):
            named = ", ".join(f"{g}: {f:g}" for g, f in floors.items())
            text += (f"; in this score an instance's gap is measured against max(reference, a floor) in the groups "
                     f"{named}, so instances with tiny references weigh less (the gaps reported are to the "
                     "references)")
        return text
    sign = "minus " if spec.objective.direction == "minimize" else ""
    return f"{sign}the sum of the {spec.objective.name} over the instances: higher is better"


def gap_phrase(metrics: dict[str, float], problem: Problem) -> str:
    gap = headline_gap(metrics, problem.spec.objective.score)
    return f" (gap {pct(gap)})" if gap is not None else ""


def _groups(instances: list[Instance]) -> str:
    counts = Counter(i.group for i in instances)
    if len(counts) <= 1:
        return ""
    sizes = set(counts.values())
    names = ", ".join(sorted(counts, key=natural_key))
    if len(sizes) == 1:
        return f", {sizes.pop()} in each of {len(counts)} groups ({names})"
    return ", by group: " + ", ".join(f"{g} {counts[g]}" for g in sorted(counts, key=natural_key))


def references_line(instances: list[Instance]) -> str | None:
    """What each group's gaps are measured against: how many references are optimal, best known
    or a bound only. None when no instance has a reference kind. (How far a best-known value may
    lie from the optimum is left out: the shipped bounds are often too weak to say anything.)"""
    if all(i.reference.kind not in _KIND_WORDS for i in instances):
        return None
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    for instance in instances:
        by_group[instance.group][instance.reference.kind] += 1
    kinds = [k for k in _KIND_WORDS if any(i.reference.kind == k for i in instances)]
    groups = sorted(by_group, key=natural_key)
    parts = [(f"{g} " if len(groups) > 1 else "") + "/".join(str(by_group[g][k]) for k in kinds) for g in groups]
    notes = {"best_known": " A best-known value is the best solution found so far, not a proven optimum: "
                           "it can be beaten (a negative gap).",
             "bound": " Against a bound only, a gap overstates the distance to the optimum."}
    return (f"References (what the gaps are measured against), by group as "
            f"{' / '.join(_KIND_WORDS[k] for k in kinds)} counts: " + "; ".join(parts) + "."
            + "".join(notes[k] for k in kinds if k in notes))


SEARCH_ADVICE = (f"A search should stop on {CLOCK_ADVICE}, measured from the function's entry, with a "
                 "margin, never on the wall clock, so that its result does not depend on how busy the "
                 "machine is.")


def time_line(problem: Problem, settings: RunSettings, instances: list[Instance]) -> str:
    """How a program's time is measured and limited: once, exactly as the sandbox and the
    verifier do it (one process per split; a session verifier's calls are timed by the kernel)."""
    verifier = problem.verifier
    sandbox = settings.sandbox
    session = callable(getattr(verifier, "interact", None))
    driven = callable(getattr(verifier, "drive", None))
    budget = getattr(verifier, "time_budget_s", None)
    weight = getattr(verifier, "time_weight", None)
    weighted = callable(weight) and any(weight(i) > 1 for i in instances)
    text = ("Time: each split runs in one sandboxed process, "
            + ("forked from a worker that has already imported numpy (not counted); it loads the "
               "program once, then the verifier sends it the instances one after another, so "
               "module-level state persists from one call to the next."
               if session else "which has already imported numpy; it loads the program once and "
               "the verifier's builder asks it one decision at a time, the split's instances "
               "interleaved." if driven else "which has already imported numpy; it loads the "
               "program once and solves the instances one after another, so module-level state "
               "persists from one call to the next."))
    if sandbox.max_processes == 1:
        text += " It may not start threads or other processes: one core is all a program has."
    if session and callable(budget) and instances:
        per_group: dict[str, float] = {}
        for instance in instances:
            per_group[instance.group] = max(per_group.get(instance.group, 0.0), float(budget(instance)))
        figures = ", ".join(f"{g} {per_group[g]:.3g} s" for g in sorted(per_group, key=natural_key))
        rule = getattr(verifier, "time_budget_text", "")
        text += (" Budget per instance: " + (f"{rule} of CPU time ({figures})" if rule else
                                             f"{figures} of CPU time")
                 + ", counted by the kernel from when the instance is sent until the next one is, or the "
                 "split ends (the first instance also pays for loading the program, and whatever the "
                 "process does after answering counts to the instance it answered); an instance charged "
                 f"more than {BUDGET_ALLOWANCE * 100:g} % over it fails the program (that {BUDGET_ALLOWANCE * 100:g} % "
                 "is an allowance for a busy machine, whose interrupts and cache refills the kernel "
                 "counts to the running program, not more time: aim at the budget). " + getattr(verifier, "time_budget_note", SEARCH_ADVICE))
    per = f"{sandbox.instance_timeout_s:g} s per instance" + (
        " (long instances count as several)" if weighted else "")
    text += (f" The sandbox's safety net: the split may take at most {SPLIT_GRACE_S:g} s + {per} of "
             f"wall time and {sandbox.memory_mb} MiB of memory, or the program fails.")
    return text


def evaluation_setup(problem: Problem, settings: RunSettings, quick: list[Instance],
                     train: list[Instance], seed: Program | None) -> list[str]:
    """The lines of the system prompt that say how a program is judged."""
    cascade = settings.cascade
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
    references = references_line(train)
    if references:
        lines.append(references)
    facts = getattr(problem.verifier, "prompt_facts", None)
    if callable(facts):
        lines.extend(facts())
    after = getattr(problem.verifier, "train_facts", None)
    if callable(after) and train:
        lines.extend(after(train))
    if cascade.enabled and quick:
        # The floor is cascade_floor's: max(1, ...), so near a score of 0 a child within the tolerance
        # itself passes; "0.5 x |parent score|" read as rejecting any child a little worse than a
        # parent at -0.07, and the parent's score there (quick) is not the one prompts show (train).
        lines.append(f"Screening: each new program first runs on {len(quick)} quick instances{_groups(quick)}; one "
                     f"that scores there more than {cascade.tolerance:g} x max(1, |its parent's score there|) "
                     "below its parent's score there is not run on the train split (a filter for broken "
                     f"programs: with a parent near 0, a child within {cascade.tolerance:g} of it passes); the request "
                     "gives the current program's score there and the bar its child must reach.")
    lines.append(time_line(problem, settings, [*quick, *train]))
    if seed is not None and seed.score is not None:
        lines.append(f"The seed program, where the run started, scores {seed.score:.6g} on the train "
                     f"split{gap_phrase(seed.metrics, problem)}.")
    return lines


FIXED_PLACEHOLDER = "# (the evolving code: the current program's is shown in the request)"


def fixed_code(code: str) -> str | None:
    """The program without its EVOLVE-BLOCK's contents: the code every program of the run
    shares (edits may not change it), shown once. None for a program with no block."""
    blocks = evolve_blocks(code)
    if not blocks:
        return None
    lines = code.split("\n")
    out, last = [], _after_module_docstring(code)
    for start, end in blocks:
        out += [*lines[last:start], FIXED_PLACEHOLDER]
        last = end
    out += lines[last:]
    return "\n".join(out).strip()


def _after_module_docstring(code: str) -> int:
    """The first line after the module's docstring (0 without one): the seed's docstring
    describes the seed, not the programs the model will read, so it is left out."""
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return 0
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno or 0
    return 0


def direction(problem: Problem, island: int) -> str:
    own = list(problem.spec.prompt.directions) if problem.spec.prompt else []
    choices = own or list(GENERIC_DIRECTIONS)
    return choices[island % len(choices)]
