"""Programs as a prompt shows them: headline, results, time against the budget, and code.

The current program's EVOLVE-BLOCK is shown once, in full; an inspiration's
code is the shortest of its block and its diff against the current program or
an inspiration shown before it, so near-identical programs cost a few lines.
Programs never change once archived, so the text work here is cached.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from statistics import fmean

from evolve.archive import Program
from evolve.config import RunSettings
from evolve.edits import block_text, evolve_blocks
from evolve.edits.blocks import block_statements, statement_text
from evolve.formats import figure, pct
from evolve.instance_facets import FACET_PREFIX
from evolve.problem import Problem
from evolve.prompt_facts import gap_phrase
from evolve.scoring import natural_key
from evolve.text_cache import CACHED_TEXT_CHARS, text_cache
from evolve.verifier import BUDGET_ALLOWANCE, Instance

# Metrics shown next to a program's score when the problem has them (beyond the
# feedback's gap lines): what its score is made of, how robust it is, what it costs.
_KEY_METRICS = ("gap_median_pct", "optimal_hits", "ms_per_instance", "goodput_pct", "starved_pct",
                "e2e_gap_pct", "balancedness", "runtime_ms")
# An instance this close to its time budget is one a slower moment could push over it.
NEAR_BUDGET = 0.9
CHANGE_CHARS = 100  # a longer list of changed functions is given as counts
WORST = "worst instances"  # the feedback line an inspiration leaves out (the current program's says it)


@dataclass(frozen=True)
class TimeLimits:
    """Each instance's time limit, by instance name. ``clock`` is how an instance's time is
    measured: "CPU" (the kernel's count, read by trusted code: a session verifier's call, a
    batch run's line as it arrives, a driven split's share); ``kind`` is the limit's: "budget"
    (CPU, enforced per instance by the verifier) or "wall limit" (the instance's share of the
    sandbox's limit). ``scored``: the score itself counts the time (moe's runtime term), so
    less time is better, not only time within the limit."""

    clock: str
    kind: str
    seconds: dict[str, float]
    scored: bool = False


@dataclass(frozen=True)
class ProgramView:
    """A program as a prompt shows it."""

    id: int
    island: int
    score: float | None
    headline: str  # "score -1.93 (gap 1.93%); median gap 0.00%, 12 ms per instance"
    results: str  # per group, worst instances, time against the budget (no repeated headline)
    summary: str  # the results without the worst instances and facets: what an inspiration shows
    block: str  # its EVOLVE-BLOCK(s)
    lines: int  # of the block


def time_limits(problem: Problem, settings: RunSettings, instances: list[Instance]) -> TimeLimits:
    """Each instance's limit as the Time line states it: the verifier's CPU budget where it has
    one, else the instance's share of the sandbox's wall-time limit (its weight where it has one)."""
    verifier = problem.verifier
    budget = getattr(verifier, "time_budget_s", None)
    clock = "CPU"  # every path charges the kernel's count (evaluation.py, sandbox/outcome.py)
    if callable(budget):
        return TimeLimits(clock, "budget", {i.name: float(budget(i)) for i in instances})
    weight = getattr(verifier, "time_weight", None)
    per = settings.sandbox.instance_timeout_s
    return TimeLimits(clock, "wall limit",
                      {i.name: per * (float(weight(i)) if callable(weight) else 1.0) for i in instances},
                      scored=bool(getattr(verifier, "charges_cpu", False)))


def program_view(program: Program, problem: Problem, limits: TimeLimits) -> ProgramView:
    assert program.id is not None
    metrics = program.metrics
    extra = key_metrics(metrics, problem)
    score = f"score {program.score:.6g}" if program.score is not None else f"status {program.status}"
    headline = score + gap_phrase(metrics, problem) + ("; " + extra if extra else "")
    lines = [line for line in program.feedback.strip().splitlines()
             if not line.startswith("gap to reference:")]  # the headline says it
    # The verifier's own lines (feedback_lines) follow the worst instances: like them, they are
    # the current program's details, which an inspiration's summary leaves out for room.
    worst = next((k for k, line in enumerate(lines) if line.startswith(WORST)), len(lines))
    summary = [line for line in lines[:worst] if not line.startswith(FACET_PREFIX)]
    timing = time_against_limits(program, limits)
    if timing:
        lines.append(timing + near_limit_rule(timing, limits))
        summary.append(timing)
    block = block_text(program.code)
    return ProgramView(program.id, program.island, program.score, headline, "\n".join(lines),
                       "\n".join(summary), block, block.count("\n") + 1)


def key_metrics(metrics: dict[str, float], problem: Problem) -> str:
    """What a score is made of, how robust it is, what it costs: "goodput_pct 96.1, starved_pct 0"."""
    keys = (*_KEY_METRICS, *getattr(problem.verifier, "headline_metrics", ()))
    return ", ".join(dict.fromkeys(_metric(k, metrics) for k in keys if k in metrics))


def _metric(key: str, metrics: dict[str, float]) -> str:
    value = metrics[key]
    if key == "gap_median_pct":
        return f"median gap {pct(value)}"
    if key == "optimal_hits":
        return f"optimal on {value:.0f} of {metrics.get('instances', 0):.0f}"
    if key == "ms_per_instance":
        return f"{value:.3g} ms per instance"
    return f"{key} {value:.4g}"


def time_against_limits(program: Program, limits: TimeLimits) -> str:
    """Per group: mean and largest time per instance against its limit, in ms, and how many
    came within 10 % of it ("" when no instance has a time)."""
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in program.instances:
        seconds, limit = row.get("seconds"), limits.seconds.get(row.get("name", ""))
        if seconds is not None and limit:
            groups[row.get("group", "")].append((float(seconds), limit))
    if not groups:
        return ""
    every = [s for runs in groups.values() for s, _ in runs]
    if len(every) > 1 and len(set(every)) == 1:  # a driven split: its CPU shared out evenly
        bounds = [b for runs in groups.values() for _, b in runs]
        low, high = _ms(min(bounds)), _ms(max(bounds))
        return (f"{limits.clock} ms per instance: {_ms(every[0])} each, the split's {limits.clock} "
                f"shared evenly (its instances are built together, so no instance has a time of its "
                f"own; a program that is one numpy expression runs as a batch and is timed per "
                f"instance); {limits.kind} {low if low == high else f'{low}-{high}'} ms per instance")
    parts = []
    for group in sorted(groups, key=natural_key):
        runs = groups[group]
        near = sum(1 for s, b in runs if s >= NEAR_BUDGET * b)
        limit = max(b for _, b in runs)
        text = (f"{group} {_ms(fmean(s for s, _ in runs))}/{_ms(max(s for s, _ in runs))}/{_ms(limit)}"
                if all(b == limit for _, b in runs) else
                f"{group} {100 * fmean(s / b for s, b in runs):.0f}%/{100 * max(s / b for s, b in runs):.0f}%"
                f" of the {limits.kind}")
        parts.append(text + (f" ({near} of {len(runs)} over {NEAR_BUDGET:.0%})" if near else ""))
    return f"{limits.clock} ms per instance, mean/max/{limits.kind}: " + ", ".join(parts)


def near_limit_rule(timing: str, limits: TimeLimits) -> str:
    """What the "(k of m over 90%)" flags of the current program's time line mean, and the rule
    past 100 % ("" without a flag). An agent playing the model could not tell from "(21 of 25
    over 90%)" whether it was a warning, a penalty, or what happens past the limit."""
    if f" over {NEAR_BUDGET:.0%})" not in timing:
        return ""
    share = f"over {NEAR_BUDGET:.0%}"
    if limits.kind == "budget":
        rule = (f"{share}: a warning that these instances came close to the budget, which they kept; an "
                f"instance charged more than {BUDGET_ALLOWANCE * 100:g} % over its budget fails the whole program")
    else:
        rule = (f"{share}: a warning that these instances took most of their share of the split's wall-time "
                f"limit; the program fails only if the whole split runs past that limit")
    scored = ("the score counts the CPU time too (the Score line says how)" if limits.scored else
              "the CPU time itself is not scored: within the limit, faster scores the same")
    return f" ({rule}; {scored})"


def against_parent(program: Program, parent: Program | None) -> str:
    """Where the change that made ``program`` helped or hurt: how its mean gap per group moved
    from its parent's (its own gaps are on the line above), how many instances got better or
    worse, and the instance most helped and most hurt ("" without a parent evaluated on the
    same instances, or without gaps)."""
    if parent is None or parent.id is None or program.stage != parent.stage:
        return ""
    theirs = {r.get("name"): r for r in parent.instances if r.get("feasible") and r.get("gap") is not None}
    pairs = [(r, theirs[r.get("name")]) for r in program.instances
             if r.get("feasible") and r.get("gap") is not None and r.get("name") in theirs]
    if not pairs:
        return ""
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for mine, other in pairs:
        groups[mine.get("group", "")].append((100 * mine["gap"], 100 * other["gap"]))
    named = sorted((g for g in groups if g), key=natural_key)
    # jssp's ten groups all start "non_delay/": said once, the line was ~490 characters.
    shared = os.path.commonprefix(named) if len(named) > 1 else ""
    shared = shared[:shared.rfind("/") + 1]
    per_group = ", ".join(f"{g[len(shared):]} {_points(fmean(a - b for a, b in groups[g]))}" for g in named)
    moved = sorted(((100 * (m["gap"] - o["gap"]), m["name"], 100 * o["gap"], 100 * m["gap"]) for m, o in pairs),
                   key=lambda row: row[0])
    better, worse = sum(1 for d, *_ in moved if d < -1e-9), sum(1 for d, *_ in moved if d > 1e-9)
    lines = [f"Against its parent #{parent.id} (gap change in points; negative: better):"]
    if per_group:
        lines.append(f"- per group{f' ({shared}...)' if shared else ''}: {per_group}")
    lines.append(f"- instances: {better} better, {worse} worse, {len(moved) - better - worse} the same"
                 + (f" (sign test: {_p_value(sign_test(better, worse))})" if better + worse >= SIGN_TEST_MIN else ""))
    if better:
        lines.append(f"- most helped: {moved[0][1]} {pct(moved[0][2])} -> {pct(moved[0][3])}")
    if worse:
        lines.append(f"- most hurt: {moved[-1][1]} {pct(moved[-1][2])} -> {pct(moved[-1][3])}")
    return "\n".join(lines)


# Below this many instances that moved, a sign test says nothing worth a line (p >= 0.06 at 5 of 5).
SIGN_TEST_MIN = 6


def sign_test(better: int, worse: int) -> float:
    """Two-sided sign test: how often a split of the moved instances at least this uneven would
    come by chance if the change helped and hurt alike (an agent playing the model asked for
    enough to tell a change from noise; the instances' counts alone did not say it)."""
    moved, fewer = better + worse, min(better, worse)
    if moved == 0:
        return 1.0
    tail = sum(math.comb(moved, k) for k in range(fewer + 1)) / 2 ** moved
    return min(1.0, 2 * tail)


def _p_value(p: float) -> str:
    return f"p = {p:.2g}" if p >= 0.001 else "p < 0.001"


def _points(change: float) -> str:
    """A change of a gap in points: +0.75, -3.75, -0.0031, 0 (not +0.00 or -0.00)."""
    text = figure(change, signed=True)
    return "0" if text == "+0.00" else text


def _ms(seconds: float) -> str:
    """Milliseconds, to three digits at most: 0.84, 41.2, 1100."""
    ms = 1000 * seconds
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"


@dataclass(frozen=True)
class Shown:
    """An inspiration's code as shown: ``how`` says what ``code`` is."""

    how: str  # "Its EVOLVE-BLOCK" or "Its EVOLVE-BLOCK as a diff against ..."
    code: str
    language: str  # the code fence's


def shortest_form(view: ProgramView, bases: list[tuple[str, ProgramView]]) -> Shown:
    """The block without docstrings the first base shows already, or its diff against one of
    ``bases`` (label, program), whichever is shortest."""
    best = Shown("Its EVOLVE-BLOCK", without_repeated_docstrings(view.block, bases[0][1].block)
                 if bases else view.block, "python")
    for label, base in bases:
        diff = block_diff(base.block, view.block)
        if len(diff) < len(best.code):
            best = Shown(f"Its EVOLVE-BLOCK as a diff against {label} (- lines are {label}'s, + lines "
                         "its own)", diff, "diff")
    return best


@text_cache(maxsize=1024, max_chars=CACHED_TEXT_CHARS)
def block_diff(before: str, after: str) -> str:
    """A unified diff of two blocks with two lines of context, without the file header."""
    lines = difflib.unified_diff(before.split("\n"), after.split("\n"), lineterm="", n=2)
    return "\n".join(line for line in lines if not line.startswith(("---", "+++")))


@text_cache(maxsize=2048, max_chars=CACHED_TEXT_CHARS)
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


def defined_names(code: str) -> list[str]:
    """The functions and classes a block defines, in order."""
    return [name for name, _ in _units(block_text(code) if evolve_blocks(code) else code) if name]


@text_cache(maxsize=4096, max_chars=CACHED_TEXT_CHARS)
def _units(block: str) -> tuple[tuple[str, str], ...]:
    """(name, text) of every top-level definition of a block; other top-level statements
    together as one unit named "" (imports, constants). The text is ``ast.unparse``'s, as the
    program's hash has it: two units are the same code when their texts are."""
    try:
        tree = ast.parse(block)
        return _units_of([(ast.unparse(node), node) for node in tree.body])
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ()


def _units_of(statements: list[tuple[str, ast.stmt]]) -> tuple[tuple[str, str], ...]:
    units, other = [], []
    for text, node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            units.append((node.name, text))
        else:
            other.append(text)
    if other:  # unparsed code never holds a NUL (a string's is escaped): the texts stay apart
        units.append(("", "\0".join(other)))
    return tuple(units)


@text_cache(maxsize=4096, max_chars=CACHED_TEXT_CHARS)
def _block_units(code: str) -> tuple[tuple[str, str], ...]:
    """``_units(block_text(code))``, from the statements of the code's own parse where its
    blocks hold whole top-level statements, with the text its hash unparsed already (the edit's
    check parsed the child, its hash unparsed its new statements): nothing worked out again."""
    statements = block_statements(code)
    if statements is None:
        return _units(block_text(code))
    try:
        return _units_of([(statement_text(key, node), node) for key, node in statements])
    except (ValueError, RecursionError, MemoryError):
        return ()


@text_cache(maxsize=4096, max_chars=CACHED_TEXT_CHARS)
def changed_functions(before: str, after: str) -> str:
    """What an edit changed, by name: "changed improve; added _tt" ("" when unknown)."""
    old, new = dict(_block_units(before)), dict(_block_units(after))
    if not old or not new:
        return ""

    def names(keys: list[str]) -> str:
        return ", ".join(k or "module-level code" for k in keys)

    parts = (("changed", [k for k in new if k in old and new[k] != old[k]]),
             ("added", [k for k in new if k not in old]),
             ("removed", [k for k in old if k not in new]))
    text = "; ".join(f"{verb} {names(keys)}" for verb, keys in parts if keys)
    if len(text) > CHANGE_CHARS:  # a rewrite: counts say more than a long list
        text = "; ".join(f"{verb} {len(keys)} function{'s' if len(keys) > 1 else ''}"
                         for verb, keys in parts if keys)
    return text or "comments or layout only"
