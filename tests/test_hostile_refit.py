"""What a model's rule can make the controller's trusted tree evaluation do (fifteenth red team).

The GP's screen and smtt_rule's refit (``refit_on = "fit"``, the default) evaluate a rule read out
of a program as a tree, in the controller, once per decision of every instance: the refit on the
1,150 instances of the fit split, with a coordinate search over the coefficients above the gate. A
model writes the program the run reports, so it chooses that tree's size, how many coefficients
the refit searches, and what else its module does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_refit import MDDC, PHI, _archive_with

from evolve.config import resolve_settings
from evolve.gp.backend import GPBackend
from evolve.gp.program import MAX_TREE_SIZE, rule_tree
from evolve.gp.screen import Screen, screen_for
from evolve.gp.semantics import BehaviourKeys
from evolve.gp.tree import size
from evolve.llm.base import ProposalRequest
from evolve.problem import load_problem
from evolve.refit import REFIT_CONSTANTS, refit


def _balanced(terms: list[str]) -> str:
    """A sum of the terms nested as a balanced tree (a chain would be too deep to parse)."""
    while len(terms) > 1:
        terms = [f"({terms[i]} + {terms[i + 1]})" if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def _program(body: str) -> str:
    return load_problem("smtt_rule").seed_code.replace("    return d\n", body)


@pytest.fixture
def screened(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every tree the trusted screen evaluates, in this process; a tree larger than any
    the GP builds, or more than 300 screens, stop the test there (what came next took hours)."""
    sizes: list[int] = []
    score = Screen._score

    def recorded(self: Screen, inner: object, trees: dict[str, tuple]) -> float | None:  # type: ignore[type-arg]
        sizes.extend(size(t) for t in trees.values())
        assert max(sizes) <= MAX_TREE_SIZE and len(sizes) <= 300, f"screened {len(sizes)} trees, the largest {max(sizes)}"
        return score(self, inner, trees)  # type: ignore[arg-type]

    monkeypatch.setattr(Screen, "_score", recorded)
    return sizes


HUNDREDS_OF_GATED_TERMS = _program(
    f"    return np.maximum(d, t + p) + 0.001 * "
    f"{_balanced([f'np.where(n - 75 > 0, {1 + k / 1000:.3f}, 0.0) * p' for k in range(200)])}\n")
TWENTY_GATED_TERMS = _program(
    f"    return np.maximum(d, t + p) + "
    f"{_balanced([f'np.where(n - 75 > 0, {0.001 * (k + 1):.3f}, 0.0) * p' for k in range(20)])}\n")


@pytest.mark.parametrize("code", [HUNDREDS_OF_GATED_TERMS, TWENTY_GATED_TERMS], ids=["1807-nodes", "20-coefficients"])
def test_a_rule_too_large_to_refit_is_left_as_it_is_without_a_screen(tmp_path: Path, code: str,
                                                                     screened: list[int]) -> None:
    """A 9 KB rule of 200 gated terms (1,807 nodes) took 2.7 s of the controller's CPU per screen of
    the fit split, and the refit would have screened up to 200 x 9 x 4 trials of it: hours at the
    run's end. Twenty gated terms (186 nodes) are 640 trials. Neither is refitted now, and nothing is
    screened for them."""
    problem = load_problem("smtt_rule")
    archive, chosen = _archive_with(tmp_path / "archive.sqlite", code)
    try:
        assert refit(problem, resolve_settings({}, None, {"refit_on": "fit"}), archive, chosen) is None
        assert screened == [] and archive.program_count() == 1
    finally:
        archive.close()
    tree = rule_tree(code, problem.spec.rule[0])
    assert tree is None if len(code) > 5000 else (tree is not None and size(tree) <= MAX_TREE_SIZE)
    assert REFIT_CONSTANTS < 20


def test_a_rule_its_module_rebinds_is_not_refitted(tmp_path: Path, screened: list[int]) -> None:
    """The refit fitted the tree of ``priority``'s return expression and reported the child with the
    fit split's figures of that tree, while the module rebound ``priority`` to another rule: the
    sandbox ran that one, which the figures did not describe. Only a program that is its rule's
    expression and nothing else is refitted (the control: the same rule alone is)."""
    problem = load_problem("smtt_rule")
    rule = f"    return np.where(n - 75 > 0, {MDDC} + 6.0 * ({PHI} * p), {MDDC})\n"
    rebound = _program(rule + "\n\ndef _edd(t, p, d, **_):\n    return d\n\n\npriority = _edd\n")
    settings = resolve_settings({}, None, {"refit_on": "fit", "refit_sweeps": 1})
    archive, chosen = _archive_with(tmp_path / "rebound.sqlite", rebound)
    try:
        assert rule_tree(rebound, problem.spec.rule[0]) is not None  # the tree is readable ...
        assert refit(problem, settings, archive, chosen) is None  # ... but not what the sandbox runs
        assert screened == [] and archive.program_count() == 1
    finally:
        archive.close()
    archive, chosen = _archive_with(tmp_path / "alone.sqlite", _program(rule))
    try:
        done = refit(problem, settings, archive, chosen)
        assert done is not None and done.after > done.before and screened
    finally:
        archive.close()


def test_a_models_huge_rule_is_read_as_code_by_the_gp(screened: list[int]) -> None:
    """A GP + model run's GP varied a model's parent of 48,007 nodes (233 KB): one proposal took 117 s of
    the controller's CPU against 10 s from a small parent (brood screening on smtt_rule's train, load
    9; the fifteenth red team's probe). A rule over MAX_TREE_SIZE nodes is now read as code, as a rule
    that is not one expression: the GP starts afresh from the rule's starts (its behaviour key is its
    code's), and no tree larger than the GP's own is screened."""
    problem = load_problem("smtt_rule")
    rule = problem.spec.rule[0]
    terms = [f"np.minimum(p, {1 + k / 1000:.3f} * d)" for k in range(300)]
    code = _program(f"    return np.maximum(d, t + p) + 0.001 * {_balanced(terms)}\n")
    assert rule_tree(code, rule) is None and BehaviourKeys([rule]).key(code) is not None
    settings = resolve_settings(problem.spec.run, None, {"gp": {"brood": 4, "climb": 0, "fit_constants": 0}})
    gp = GPBackend([rule], seed=1, settings=settings.gp, screen=screen_for(problem))
    answer = gp.complete(ProposalRequest([], 3, 0, "diff", code, [code]))
    assert "(the parent's rule is not a single expression)" in answer.text
    assert screened and max(screened) <= 2 * settings.gp.max_size + 8
