"""What a model's rule costs the controller's trusted tree evaluation (fifteenth red team).

``gp``: one GP proposal (brood screening on smtt_rule's train, its default [run.gp]) from a parent
whose rule a model wrote as a balanced sum of N terms ``np.minimum(p, c * d)``: the controller's CPU.
``refit``: one screen of smtt_rule's fit split (as ``refit_on = "fit"`` runs it) of a rule of N gated
terms ``np.where(n - 75 > 0, c, 0.0) * p``, and how many trials the refit would make of it. A rule
over ``MAX_TREE_SIZE`` nodes is not read as a tree (the GP starts from the rule's starts; the refit
leaves it), nor is a refit made of more than ``REFIT_CONSTANTS`` coefficients.

Usage: python bench/tree_screen.py gp|refit N [N ...]
"""

from __future__ import annotations

import argparse
import time

from evolve.config import resolve_settings
from evolve.gp.backend import GPBackend
from evolve.gp.codegen import parse
from evolve.gp.constants import FACTORS, above_gate_paths
from evolve.gp.program import MAX_TREE_SIZE, rule_tree, signature_of
from evolve.gp.screen import Screen, screen_for
from evolve.gp.tree import simplify, size
from evolve.llm.base import ProposalRequest
from evolve.problem import load_problem
from evolve.refit import REFIT_CONSTANTS


def balanced(terms: list[str]) -> str:
    while len(terms) > 1:
        terms = [f"({terms[i]} + {terms[i + 1]})" if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("probe", choices=["gp", "refit"])
    parser.add_argument("terms", type=int, nargs="+")
    args = parser.parse_args()
    problem = load_problem("smtt_rule")
    rule = problem.spec.rule[0]
    names = {i.name for i in rule.inputs}
    settings = resolve_settings(problem.spec.run, None, {})
    for k in args.terms:
        if args.probe == "gp":
            expr = f"np.maximum(d, t + p) + 0.001 * {balanced([f'np.minimum(p, {1 + j / 1000:.3f} * d)' for j in range(k)])}"
        else:
            expr = f"np.maximum(d, t + p) + 0.001 * {balanced([f'np.where(n - 75 > 0, {1 + j / 1000:.3f}, 0.0) * p' for j in range(k)])}"
        code = problem.seed_code.replace("    return d\n", f"    return {expr}\n")
        nodes = size(parse(expr, names))
        read = rule_tree(code, rule) is not None
        started = time.process_time()
        if args.probe == "gp":
            gp = GPBackend(problem.spec.rule, seed=1, settings=settings.gp, screen=screen_for(problem))
            answer = gp.complete(ProposalRequest([], 3, 0, "diff", code, []))
            print(f"{k} terms, {len(code):,} chars, {nodes:,} nodes (read as a tree: {read}): one proposal "
                  f"{time.process_time() - started:.1f} s of CPU; {answer.text.splitlines()[0][:90]}")
            continue
        tree = parse(expr, names)
        gates = tuple({g for gate in signature_of(rule).gates for g in (gate, simplify(gate))})
        coefficients = len(above_gate_paths(tree, gates))
        value = Screen(problem, "fit", floor=False)({rule.function: tree})
        print(f"{k} terms, {len(code):,} chars, {nodes:,} nodes (read as a tree: {read}, bound {MAX_TREE_SIZE}): "
              f"one screen of the fit split {time.process_time() - started:.2f} s of CPU (score {value:.4g}); "
              f"{coefficients} coefficients above the gate (refitted: at most {REFIT_CONSTANTS}), up to "
              f"{coefficients * len(FACTORS) * settings.refit_sweeps:,} trials unbounded")


if __name__ == "__main__":
    main()
