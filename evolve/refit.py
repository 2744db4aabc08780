"""Refitting the reported best's coefficient above a gate on unfloored gaps (``refit_on``).

The search ranks rules by gaps measured against ``max(reference, floor)`` (``reference_floor``):
without the floor the few instances with small optima carry a size's mean and the search does not
find the structure (the late share's surcharge, docs/smtt.md). But the floor also hides what a
coefficient costs on those instances, so the search picks it too large where a reported gap
(against the reference itself) would not. With ``refit_on = "fit"``, once the reported best is
chosen (``select_on``), the coefficients that act only above the rule's gate (``c1`` of a rule
split at a gate, or of its gated terms; ``constants.above_gate_paths``) are fitted alone, by the
GP's coordinate search, on the gaps of the ``fit`` split against its references: instances drawn
like train at the sizes above the gate, disjoint from every other split and more of them than
train has there. The structure is left as the search found it.

The fit runs on the trusted screen (trees only: candidate code never runs here), so only a program
that is provably its rule's one expression and nothing else (``evolve/pure_rule.py``: every GP
program) is refitted: another program's module could rebind the rule or the numpy it calls, and
the sandbox would then run something else than the tree the fit chose a coefficient for. A rule of
more than ``REFIT_CONSTANTS`` coefficients above its gate, or of more than ``MAX_TREE_SIZE`` nodes
(not read as a tree), is not refitted either: the fit's CPU in the controller stays bounded. A refitted rule
that scores better there is then evaluated on train through the sandbox and the verifier like
every program, archived as the chosen one's child (origin ``refit``), and reported in its place.
Nothing is refitted on the test split, and the fit split is not a selection split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from evolve.archive import Archive, Program
from evolve.compare import evaluate_programs
from evolve.config import RunSettings
from evolve.edits import code_hash
from evolve.gp.constants import above_gate_paths, below_gate_paths, fit_constants
from evolve.gp.program import rule_tree, signature_of, with_rule
from evolve.gp.screen import Screen
from evolve.gp.tree import Tree, get, simplify
from evolve.problem import Problem
from evolve.pure_rule import is_pure_rule
from evolve.records import program_record

REFIT = "refit"
# The most coefficients above the gate a refit fits. Each costs up to 9 trials a sweep (FACTORS), each trial
# a screen of the fit split in the controller (~0.12 s of CPU for a GP rule of smtt_rule): a model's
# rule with 200 gated terms (9 KB) would have cost up to 7,200 screens of 2.7 s (fifteenth red team). The
# GP writes one (a split at the gate) or a few (gated insertion); more: not refitted.
REFIT_CONSTANTS = 8
# The most constants below the gate ``refit_below`` fits (the whole side below a split: a GP side
# has up to about a dozen; each trial screens only the sizes below the gate, those above are cached).
REFIT_BELOW_CONSTANTS = 16


@dataclass(frozen=True)
class Refit:
    """The refitted program and what the fit split said of it and of the program it refits."""

    program_id: int
    split: str
    before: float
    after: float
    changes: str

    def to_json(self) -> dict[str, Any]:
        return {"program_id": self.program_id, "split": self.split, "before": self.before,
                "after": self.after, "changes": self.changes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Refit:
        return cls(int(data["program_id"]), str(data["split"]), float(data["before"]), float(data["after"]),
                   str(data["changes"]))

    def describe(self) -> str:
        sides = "above and below the gate" if "below the gate:" in self.changes else "above the gate"
        return (f"refitted {sides} on the {self.split} split (gaps against the references): "
                f"#{self.program_id}, {self.changes}, {self.split} score {self.before:.4g} -> {self.after:.4g}")


def _mean_of(first: Screen, second: Screen) -> Callable[[Mapping[str, Tree]], float | None]:
    """The mean of two screens' scores; None where either is undefined."""
    def score(trees: Mapping[str, Tree]) -> float | None:
        a, b = first(trees), second(trees)
        return None if a is None or b is None else (a + b) / 2
    return score


def refit(problem: Problem, settings: RunSettings, archive: Archive, chosen: Program) -> Refit | None:
    """Fit ``chosen``'s coefficients above its gate on ``settings.refit_on``, unfloored; archive
    a better rule as its child. None where there is nothing to fit or the fit finds nothing better."""
    split = settings.refit_on
    if split is None or chosen.id is None:
        return None
    if len(problem.spec.rule) != 1 or not is_pure_rule(chosen.code, problem.spec.rule[0].function):
        return None  # the screen runs the rule's tree alone: only a program that is nothing else
    rules = [(r, rule_tree(chosen.code, r)) for r in problem.spec.rule]
    rules = [(r, t) for r, t in rules if t is not None]
    if not rules or len(rules) != len(problem.spec.rule):
        return None  # a rule that is not one expression: the screen cannot run the program
    trees = {r.function: t for r, t in rules}
    screen: Screen | None = None
    code, before, after, changes = chosen.code, None, None, []
    sides = [("above", above_gate_paths, REFIT_CONSTANTS)]
    if settings.refit_below is not None:
        sides.append(("below", below_gate_paths, REFIT_BELOW_CONSTANTS))
    train: Screen | None = None
    for rule, _ in rules:
        sig = signature_of(rule)
        gates = tuple({g for gate in sig.gates for g in (gate, simplify(gate))})
        for side, paths_of, most in sides:
            tree = trees[rule.function]
            where = paths_of(tree, gates)
            if not where or len(where) > most:
                continue
            if screen is None:
                if not callable(getattr(problem.verifier, "gp_screen", None)):
                    return None
                screen = Screen(problem, split, floor=False)
            value = screen(trees)
            if value is None:
                continue
            before = value if before is None else before
            score = screen
            if side == "below" and settings.refit_below == "fit+train":
                train = train or Screen(problem, "train", floor=False)
                score = _mean_of(screen, train)
                value = score(trees)
                if value is None:
                    continue
            tuned, tuned_value, _ = fit_constants(
                tree, lambda t, f=rule.function, s=score: s({**trees, f: t}), value,  # type: ignore[misc]
                settings.refit_sweeps, where=lambda t, gates=gates, paths_of=paths_of: paths_of(t, gates))
            if tuned_value > value:
                moved = [f"{get(tree, at)[1]:g} -> {get(tuned, at)[1]:g}" for at in where
                         if get(tree, at) != get(tuned, at)]
                changes += [f"{side} the gate: {', '.join(moved)}"] if settings.refit_below else moved
                trees[rule.function] = tuned
                code = with_rule(code, rule, tuned)
                after = screen(trees)  # the fit split's score, whichever the side was fitted on
    if after is None or before is None or archive.id_for_hash(code_hash(code)) is not None:
        return None
    evaluation = evaluate_programs(problem, settings.sandbox, [(REFIT, code)], problem.instances("train"),
                                   "train", workers=1)[REFIT]
    program = program_record(problem, code, code_hash(code), chosen.id, chosen.island, chosen.iteration,
                             chosen.generation + 1, REFIT, "gp", evaluation)
    program.feedback = (f"coefficient above the gate refitted on the {split} split against its references: "
                        f"{', '.join(changes)} ({split} score {before:.4g} -> {after:.4g})\n{program.feedback}")
    archive.add_program(program)
    if program.id is None or program.score is None:
        return None  # the sandbox or the verifier refused it: the chosen program stays the reported one
    return Refit(int(program.id), split, before, after, ", ".join(changes))
