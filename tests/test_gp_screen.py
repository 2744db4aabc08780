"""Brood screening: the in-process screen of GP trees agrees with the sandboxed verifier."""

from __future__ import annotations

import inspect
import random

import numpy as np
import pytest

import evolve
from evolve.config import GPSettings
from evolve.errors import UserError
from evolve.evaluators.smtt.dispatch import dispatch
from evolve.evaluators.smtt.screen import dispatch_batch
from evolve.evaluators.smtt.screen import screen as smtt_screen
from evolve.gp import GPBackend, check_rules
from evolve.gp.codegen import emit, parse
from evolve.gp.constants import (
    constant_paths,
    fit_constants,
    gated_constant_paths,
    side_constant_paths,
)
from evolve.gp.operators import split_sides
from evolve.gp.program import rule_tree, signature_of, with_rule
from evolve.gp.screen import Screen
from evolve.gp.tree import (
    compile_tree,
    evaluate,
    get,
    random_tree,
    reads,
    simplify,
    size,
    well_typed,
)
from evolve.gp.tree import replace as _replace
from evolve.llm.base import ProposalRequest
from evolve.problem import load_problem

SMTT_INPUTS = {"t", "p", "d", "remaining_work", "jobs_left", "n", "p_max", "p_mean", "p_min", "d_min",
               "d_mean", "d_max"}


def _program(problem, trees: dict[str, str]) -> str:
    code = problem.seed_code
    for rule in problem.spec.rule:
        if rule.function in trees:
            code = with_rule(code, rule, parse(trees[rule.function], {i.name for i in rule.inputs}))
    return code


def _trees(problem, trees: dict[str, str]) -> dict:
    code = _program(problem, trees)
    return {r.function: rule_tree(code, r) for r in problem.spec.rule}


@pytest.mark.parametrize("expression", [
    "np.maximum(d, t + p)",
    "np.log1p(np.abs(p)) + np.maximum(d - p - t, 0) / (2 * p_mean)",
    "protected_div(d - t, p) + np.mean(p, axis=-1, keepdims=True) * jobs_left / n",
])
def test_batched_dispatch_builds_the_sequences_the_verifiers_dispatcher_builds(expression: str) -> None:
    tree = parse(expression, SMTT_INPUTS)
    rng = np.random.default_rng(5)
    p = rng.integers(1, 30, size=(6, 25))
    d = rng.integers(-20, 300, size=(6, 25))
    batch = dispatch_batch(lambda env: evaluate(tree, env), reads(tree), p, d)
    assert batch is not None

    def rule(**kw):  # the sandbox dispatcher calls the rule with 1-d arrays and floats
        return np.broadcast_to(np.asarray(evaluate(tree, kw), dtype=float), kw["p"].shape)
    rule.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in sorted(SMTT_INPUTS)])
    for row in range(6):
        assert batch[row].tolist() == dispatch(rule, p[row], d[row])



def test_the_screens_memos_are_bounded_by_the_nodes_of_their_trees() -> None:
    """Both memos keep trees for a whole run: the screen's score per brood member (bounded by
    nothing before) and smtt's outcome per size and folded tree (a copy, ~32 bytes a node; bounded by
    100,000 entries before). At [run.gp] max_size 400 the two held ~1 MiB more per proposal, GBs
    over a long run (sixteenth red team). Past their bound on nodes they start again, and every
    figure is the one a fresh screen gives."""
    problem = load_problem("smtt_rule")
    bounded, fresh = Screen(problem, "quick"), Screen(problem, "quick")
    bounded._memo.nodes = bounded.inner.cache.nodes = 2_000

    def rule(k: int) -> tuple:
        terms = " + ".join(f"np.minimum(p, {1 + (k * 50 + j) / 1000:.3f} * d)" for j in range(40))
        return parse(f"np.maximum(d, t + p) + 0.001 * ({terms})", SMTT_INPUTS)

    trees = [rule(k) for k in range(10)]
    assert all(size(tree) > 200 for tree in trees)
    for tree in trees:
        assert bounded({"priority": tree}) == Screen(problem, "quick")({"priority": tree})
        assert bounded._memo.held_nodes <= 2_000 and bounded.inner.cache.held_nodes <= 2_000
    assert bounded({"priority": trees[-1]}) == fresh({"priority": trees[-1]})  # kept: the last one
    assert len(bounded._memo) < 10 and bounded.calls == 10

def test_a_split_rule_dispatches_again_only_the_sizes_on_the_side_its_child_changed() -> None:
    instances = [i for i in load_problem("smtt_rule").instances("train") if len(i.data["p"]) in (20, 50, 100)]
    instances = [i for n in (20, 50, 100) for i in instances if len(i.data["p"]) == n][::20]
    whole = smtt_screen(instances)
    assert whole.pre is not None and whole.pre.cache is whole.cache

    def split(above: str, below: str) -> tuple:
        return parse(f"np.where(n - 75 > 0, {above}, {below})", SMTT_INPUTS)

    def compiled(screen, tree):  # every size dispatched, both sides of np.where computed
        return [r.to_json() for r in screen.results({"priority": (compile_tree(tree), reads(tree))})]

    mdd, mddc = "np.maximum(d, t + p)", "np.maximum(1.1 * p + t, d) + p / (t + p_mean)"
    first = split(mdd, mddc)
    assert [r.to_json() for r in whole.tree_results({"priority": first})] == compiled(whole, first)
    assert len(whole.cache) == 3  # one outcome per size
    # A child that changes the side below the gate: only n = 20 and 50 are dispatched again,
    # and the figures are those of every size dispatched anew.
    below = split(mdd, mddc.replace("1.1", "1.3"))
    assert [r.to_json() for r in whole.tree_results({"priority": below})] == compiled(whole, below)
    assert len(whole.cache) == 5
    # The cut on the small sizes reads the same outcomes: nothing new for either child.
    assert [r.to_json() for r in whole.pre.tree_results({"priority": below})] == compiled(whole.pre, below)
    assert len(whole.cache) == 5
    # Above the gate: only n = 100 again.
    above = split("np.maximum(d, t + 1.2 * p)", mddc)
    assert [r.to_json() for r in whole.tree_results({"priority": above})] == compiled(whole, above)
    assert len(whole.cache) == 6
    # A NaN on one side is undefined where that side acts, as np.where has it.
    nan = split(mdd, "p * 1e308 * 10.0 * 0.0")
    assert whole.tree_results({"priority": nan}) is None
    assert whole.results({"priority": (compile_tree(nan), reads(nan))}) is None


def test_a_rule_answering_nan_screens_as_undefined() -> None:
    p = np.array([[3, 4, 5]])
    assert dispatch_batch(lambda env: np.full(env["p"].shape, np.nan), set(), p, p) is None


@pytest.mark.parametrize("name, trees", [
    ("smtt_rule", {"priority": "np.maximum(d, t + 1.1 * p)"}),
    ("smtt", {"priority": "np.log1p(np.abs(p)) + np.maximum(d - p - t, 0) / (2 * p_mean)"}),
    ("moe", {"item_order": "item_load", "gpu_cost": "gpu_load + 0.5 * item_load"}),
    ("moe", {"item_order": "item_load", "gpu_cost": "gpu_load + 0.5 * group_load"}),
    ("moe", {"item_order": "item_load", "gpu_cost": "gpu_load + 3 * own_load"}),
    ("serving", {"rule": "prompt_len + generated - computed"}),
])
def test_the_screen_gives_the_score_the_sandboxed_verifier_gives(name: str, trees: dict[str, str]) -> None:
    problem = load_problem(name)
    screen = Screen(problem, split="quick")
    evaluation = evolve.evaluate(name, _program(problem, trees), split="quick")
    assert evaluation.ok
    screened = screen(_trees(problem, trees))
    if name == "moe":  # the screen times nothing: its figure is 100 x balancedness, less the LPT guard
        metrics = evaluation.metrics
        assert screened == pytest.approx(100 * (metrics["balancedness"] - 2 * metrics["lpt_shortfall"]), abs=1e-9)
    else:
        assert screened == pytest.approx(evaluation.score, abs=1e-9)


def _request(code: str, fresh: bool, retry: int = 0) -> ProposalRequest:
    return ProposalRequest(messages=[], iteration=3, seed=0, mode="diff", parent_code=code, retry=retry, fresh=fresh)


def test_a_screened_brood_answers_with_its_best_child_and_the_next_best_when_asked_again() -> None:
    problem = load_problem("smtt_rule")
    screen = Screen(problem, split="quick")
    (rule,) = problem.spec.rule
    gp = GPBackend(problem.spec.rule, seed=0, settings=GPSettings(brood=12), screen=screen)
    code = problem.seed_code
    answers = []
    for retry in range(3):
        child = evolve.edits.apply_edit(code, gp.complete(_request(code, fresh=True, retry=retry)).text, "diff")
        answers.append(screen({"priority": rule_tree(child, rule)}))
    assert answers == sorted(answers, reverse=True) and len(set(answers)) == 3
    # The starts are in a fresh brood: MDD, ATC or something better than both comes first.
    best_start = max(screen({"priority": parse(s, SMTT_INPUTS)}) for s in rule.starts)
    assert answers[0] >= best_start
    # Deterministic: the same request gives the same answer, from a new backend too.
    fresh_gp = GPBackend(problem.spec.rule, seed=0, settings=GPSettings(brood=12), screen=screen)
    assert fresh_gp.complete(_request(code, fresh=True)).text == gp.complete(_request(code, fresh=True)).text


def test_a_start_that_is_not_an_expression_over_the_inputs_is_a_one_line_error() -> None:
    problem = load_problem("smtt_rule")
    (rule,) = problem.spec.rule
    bad = rule.model_copy(update={"starts": ["np.maximum(d, due + p)"]})
    with pytest.raises(UserError, match=r"starts\[0\] = 'np.maximum\(d, due \+ p\)'.*'due' is not an input"):
        check_rules(problem.seed_code, [bad], "problem.toml")
    scalar = rule.model_copy(update={"starts": ["t + 1"]})
    with pytest.raises(UserError, match="one value per candidate"):
        check_rules(problem.seed_code, [scalar], "problem.toml")


def test_a_climb_answers_with_a_child_no_worse_than_the_best_of_its_first_brood() -> None:
    problem = load_problem("smtt_rule")
    screen = Screen(problem, split="quick")
    (rule,) = problem.spec.rule
    code = with_rule(problem.seed_code, rule, parse("np.maximum(d, t + p)", SMTT_INPUTS))
    plain = GPBackend(problem.spec.rule, seed=2, settings=GPSettings(brood=10), screen=screen)
    climbing = GPBackend(problem.spec.rule, seed=2, settings=GPSettings(brood=10, climb=3), screen=screen)
    for iteration in range(4):
        request = ProposalRequest(messages=[], iteration=iteration, seed=0, mode="diff", parent_code=code)
        first = evolve.edits.apply_edit(code, plain.complete(request).text, "diff")
        climbed = evolve.edits.apply_edit(code, climbing.complete(request).text, "diff")
        assert screen({"priority": rule_tree(climbed, rule)}) >= screen({"priority": rule_tree(first, rule)})


def test_without_a_screen_fresh_starts_are_sometimes_a_known_rule() -> None:
    problem = load_problem("serving")
    (rule,) = problem.spec.rule
    gp = GPBackend(problem.spec.rule, seed=0)
    names = {i.name for i in rule.inputs}
    starts = {parse(s, names) for s in rule.starts} - {parse("arrival", names)}  # the seed's own rule
    trees = [rule_tree(evolve.edits.apply_edit(problem.seed_code, gp.complete(
        ProposalRequest(messages=[], iteration=k, seed=0, mode="diff", parent_code=problem.seed_code, fresh=True)
    ).text, "diff"), rule) for k in range(12)]
    known = [t for t in trees if t in starts]
    assert 0 < len(known) < len(trees)


def test_a_fresh_start_changes_a_rule_whose_known_start_the_parent_lacks() -> None:
    # item_order (LPT) and gpu_cost (group anti-affinity) have starts the seed does not use;
    # replica_priority's only start (EPLB's load / count) is the seed's own rule.
    problem = load_problem("moe")
    gp = GPBackend(problem.spec.rule, seed=3)
    changed = set()
    for k in range(12):
        text = gp.complete(ProposalRequest(messages=[], iteration=k, seed=0, mode="diff",
                                           parent_code=problem.seed_code, fresh=True)).text
        changed.add(text.split(":")[1].strip())
    assert changed == {"item_order", "gpu_cost"}


def test_fitting_constants_moves_each_one_towards_the_best_value_and_keeps_the_structure() -> None:
    tree = parse("np.maximum(d, t + 2.4 * p) + 7.0", SMTT_INPUTS)
    calls = []

    def score(candidate):  # best at (1.1, 0.5): a smooth bowl over the two constants
        calls.append(candidate)
        a, b = (get(candidate, at)[1] for at in constant_paths(candidate))
        return -((a - 1.1) ** 2) - (b - 0.5) ** 2

    fitted, value, scored = fit_constants(tree, score, score(tree), sweeps=12)
    a, b = (get(fitted, at)[1] for at in constant_paths(fitted))
    assert abs(a - 1.1) < 0.06 and abs(b - 0.5) < 0.1 and value == score(fitted)
    assert scored == len(calls) - 2 and size(fitted) == size(tree)
    assert fitted == simplify(fitted)


def test_racing_scores_only_the_best_trials_of_the_cheaper_screen_and_fits_as_well_on_a_bowl() -> None:
    tree = parse("np.maximum(d, t + 2.4 * p) + 7.0", SMTT_INPUTS)
    calls: list = []

    def bowl(candidate):
        a, b = (get(candidate, at)[1] for at in constant_paths(candidate))
        return -((a - 1.1) ** 2) - (b - 0.5) ** 2

    def score(candidate):
        calls.append(candidate)
        return bowl(candidate)

    exhaustive, best, every = fit_constants(tree, bowl, bowl(tree), sweeps=12)
    raced, value, scored = fit_constants(tree, score, score(tree), sweeps=12, pre=bowl, race=2)
    assert raced == exhaustive and value == best  # a cheaper screen that ranks alike loses nothing
    assert scored == len(calls) - 1 and scored < every / 3
    # Per constant and sweep at most two trials reach the full score.
    assert scored <= 2 * 2 * 12
    # A misleading cheaper screen costs improvements, never the full score's word: the answer
    # is never worse than the start.
    start = score(tree)
    misled, misled_value, _ = fit_constants(tree, score, start, sweeps=3, pre=lambda t: -bowl(t), race=2)
    assert misled_value >= start and misled_value == bowl(misled)


def test_racing_with_ties_scores_every_trial_the_cheaper_screen_cannot_tell_apart() -> None:
    # c1 acts only above the gate (n > 75), which the cheaper screen (instances up to n = 50)
    # never sees: its trials all tie there. Racing takes the first two (x 0.5, x 0.8), so c1
    # can only shrink; with ties the tied trials all reach the full score.
    tree = parse("np.maximum(d, t + p) + np.where(n - 75 > 0, 0.4, 0.2) * p", SMTT_INPUTS)
    at_c1, at_c2 = gated_constant_paths(tree, (parse("n - 75", SMTT_INPUTS),))

    def score(candidate):
        return -((get(candidate, at_c1)[1] - 0.7) ** 2) - (get(candidate, at_c2)[1] - 0.3) ** 2

    def pre(candidate):
        return -((get(candidate, at_c2)[1] - 0.3) ** 2)

    fitted, value, _ = fit_constants(tree, score, score(tree), sweeps=6, pre=pre, race=2, ties=True)
    assert abs(get(fitted, at_c1)[1] - 0.7) < 0.1 and abs(get(fitted, at_c2)[1] - 0.3) < 0.05
    assert value == score(fitted) and size(fitted) == size(tree)
    shrunk, _, _ = fit_constants(tree, score, score(tree), sweeps=6, pre=pre, race=2)  # the default
    assert get(shrunk, at_c1)[1] == 0.4 and abs(get(shrunk, at_c2)[1] - 0.3) < 0.05


def test_a_gated_fit_tunes_the_gated_coefficients_and_leaves_the_rest_alone() -> None:
    gate_tree = parse("n - 75", SMTT_INPUTS)
    tree = parse("np.maximum(d, t + 1.1 * p) * 0.95 + np.where(n - 75 > 0, 0.4, 0.2) * p", SMTT_INPUTS)
    where = gated_constant_paths(tree, (gate_tree,))
    assert [get(tree, at)[1] for at in where] == [0.4, 0.2]
    assert gated_constant_paths(tree, (parse("n - 50", SMTT_INPUTS),)) == []  # not a declared gate

    def score(candidate):  # every constant wants to move: 1.1 -> 1.5, 0.95 -> 1.2, 75 -> 150, c1 -> 0.7, c2 -> 0.1
        want = {1.1: 1.5, 0.95: 1.2, 75.0: 150.0, 0.4: 0.7, 0.2: 0.1}
        return -sum((get(candidate, at)[1] - w) ** 2 for at, w in zip(constant_paths(tree), want.values(), strict=True)
                    if at in constant_paths(candidate))

    everything, _, _ = fit_constants(tree, score, score(tree), sweeps=6)
    gated, value, _ = fit_constants(tree, score, score(tree), sweeps=6,
                                    where=lambda t: gated_constant_paths(t, (gate_tree,)))
    assert value > score(tree) and value == score(gated)
    moved = [at for at in constant_paths(tree) if get(gated, at) != get(tree, at)]
    assert moved == where  # only c1 and c2 moved
    assert len([at for at in constant_paths(tree) if get(everything, at) != get(tree, at)]) > 2


def test_a_screened_answer_fitted_on_its_gated_coefficients_differs_from_the_unfitted_only_there() -> None:
    problem = load_problem("smtt_rule")
    screen = Screen(problem, split="quick")
    (rule,) = problem.spec.rule
    gates = signature_of(rule).gates
    code = with_rule(problem.seed_code, rule, parse("np.maximum(d, t + 1.3 * p)", SMTT_INPUTS))
    common = dict(brood=10, gate=1.0, max_size=64, max_depth=10)
    plain = GPBackend(problem.spec.rule, seed=1, settings=GPSettings(**common), screen=screen)
    fitting = GPBackend(problem.spec.rule, seed=1, settings=GPSettings(**common, fit_constants=2, fit_race=2,
                                                                       fit_scope="gated", fit_ties=True), screen=screen)

    def blank(tree):  # the tree with its gated coefficients replaced by one placeholder
        for at in gated_constant_paths(tree, gates):
            tree = _replace(tree, at, ("c", -1.0))
        return tree

    fitted_gated = 0
    for iteration in range(6):
        request = ProposalRequest(messages=[], iteration=iteration, seed=0, mode="diff", parent_code=code)
        first = rule_tree(evolve.edits.apply_edit(code, plain.complete(request).text, "diff"), rule)
        answer = fitting.complete(request).text
        fitted = rule_tree(evolve.edits.apply_edit(code, answer, "diff"), rule)
        assert blank(fitted) == blank(first)  # nothing outside the gated coefficients moved
        assert screen({"priority": fitted}) >= screen({"priority": first})
        if "constants fitted" in answer:
            assert gated_constant_paths(fitted, gates) and fitted != first
            fitted_gated += 1
    assert fitted_gated > 0


def test_a_fit_of_the_sides_tunes_c1_and_the_side_below_and_leaves_the_rule_above_alone() -> None:
    gate_tree = parse("n - 75", SMTT_INPUTS)
    tree = parse("np.where(n - 75 > 0, np.maximum(d, t + 1.1 * p) * 0.95 + 0.4 * (d * p), "
                 "np.maximum(d, t + 1.1 * p) * 0.95 + 0.2 * (d * p))", SMTT_INPUTS)
    where = side_constant_paths(tree, (gate_tree,))
    # c1 above, then the side below's three constants; never the gate's 75 nor 1.1 and 0.95 above.
    assert [get(tree, at)[1] for at in where] == [0.4, 1.1, 0.95, 0.2] and where[0] == (2, 2, 1)
    assert all(at[0] == 3 for at in where[1:])
    # A tree that is not split: its gated coefficients, as the "gated" scope.
    gated = parse("np.maximum(d, t + 1.1 * p) + np.where(n - 75 > 0, 0.4, 0.2) * p", SMTT_INPUTS)
    assert side_constant_paths(gated, (gate_tree,)) == gated_constant_paths(gated, (gate_tree,))

    def score(candidate):  # every constant wants to move
        return -sum((get(candidate, at)[1] * 1.3 - get(tree, at)[1]) ** 2 for at in constant_paths(tree))

    fitted, value, _ = fit_constants(tree, score, score(tree), sweeps=4,
                                     where=lambda t: side_constant_paths(t, (gate_tree,)))
    moved = [at for at in constant_paths(tree) if get(fitted, at) != get(tree, at)]
    assert value > score(tree) and moved == where


def test_a_screened_answer_to_a_split_rule_keeps_its_gate_and_the_rule_above() -> None:
    problem = load_problem("smtt_rule")
    screen = Screen(problem, split="quick")
    (rule,) = problem.spec.rule
    sig = signature_of(rule)
    parent = parse("np.where(n - 75 > 0, np.maximum(d, t + 1.1 * p) + 0.7 * (np.maximum((t + remaining_work - d_max)"
                   " / remaining_work, 0) * p), np.maximum(d, t + 1.3 * p) + 0.3 * (d * p))", SMTT_INPUTS)
    code = with_rule(problem.seed_code, rule, parent)
    backend = GPBackend(problem.spec.rule, seed=1, settings=GPSettings(
        brood=10, split=0.25, max_size=64, max_depth=10, fit_constants=2, fit_race=2, fit_scope="sides",
        fit_ties=True), screen=screen)
    fitted = 0
    for iteration in range(4):
        request = ProposalRequest(messages=[], iteration=iteration, seed=0, mode="diff", parent_code=code)
        answer = backend.complete(request).text
        child = rule_tree(evolve.edits.apply_edit(code, answer, "diff"), rule)
        gate_tree, above, below = split_sides(child, sig)
        # Above the gate: the parent's rule, but for c1, which only the fit may move.
        assert gate_tree == parent[1] and _replace(child, (2, 2, 1), ("c", 0.7))[2] == parent[2]
        assert below != parent[3] and screen({"priority": child}) >= screen({"priority": parent})
        fitted += "constants fitted" in answer
    assert fitted > 0


def test_a_fit_never_answers_a_worse_tree_nor_one_whose_constant_folded_away() -> None:
    tree = parse("np.maximum(d, t + 1.05 * p)", SMTT_INPUTS)
    # Every change scores worse: the tree comes back as it was.
    same, value, _ = fit_constants(tree, lambda t: -1.0 if t != tree else 0.0, 0.0, sweeps=3)
    assert same == tree and value == 0.0
    # A multiplier that rounds to 1 would fold away (t + p): refused even where it scores best.
    folded = parse("np.maximum(d, t + p)", SMTT_INPUTS)
    kept, _, _ = fit_constants(tree, lambda t: 1.0 if t == folded else 0.0, 0.0, sweeps=3)
    assert kept == tree


@pytest.mark.parametrize("race", [0, 2])
def test_a_screened_answer_with_fitted_constants_screens_no_worse_and_says_so(race: int) -> None:
    problem = load_problem("smtt_rule")
    screen = Screen(problem, split="quick")
    (rule,) = problem.spec.rule
    code = with_rule(problem.seed_code, rule, parse("np.maximum(d, t + 1.3 * p)", SMTT_INPUTS))
    plain = GPBackend(problem.spec.rule, seed=1, settings=GPSettings(brood=10), screen=screen)
    fitting = GPBackend(problem.spec.rule, seed=1, settings=GPSettings(brood=10, fit_constants=2, fit_race=race),
                        screen=screen)
    notes = 0
    for iteration in range(4):
        request = ProposalRequest(messages=[], iteration=iteration, seed=0, mode="diff", parent_code=code)
        first = evolve.edits.apply_edit(code, plain.complete(request).text, "diff")
        answer = fitting.complete(request).text
        fitted = evolve.edits.apply_edit(code, answer, "diff")
        assert screen({"priority": rule_tree(fitted, rule)}) >= screen({"priority": rule_tree(first, rule)})
        notes += "constants fitted" in answer
    assert notes > 0


def test_a_median_blend_in_the_objective_is_the_score_of_the_screen_and_of_the_sandbox(tmp_path) -> None:
    import shutil

    folder = tmp_path / "smtt_rule"
    shutil.copytree(load_problem("smtt_rule").dir, folder)
    toml = folder / "problem.toml"
    toml.write_text(toml.read_text().replace('score = "gap_group_mean"\n', 'score = "gap_group_mean"\nmedian_weight = 0.5\n'))
    problem = load_problem(str(folder))
    assert problem.spec.objective.median_weight == 0.5
    trees = {"priority": "np.maximum(d, t + 1.1 * p)"}
    evaluation = evolve.evaluate(str(folder), _program(problem, trees), split="quick")
    metrics = evaluation.metrics
    groups = ("[n=20]", "[n=50]")
    blend = sum(0.5 * metrics[f"gap_mean_pct{g}"] + 0.5 * metrics[f"gap_median_pct{g}"] for g in groups) / 2
    assert evaluation.score == pytest.approx(-blend, abs=1e-9)
    assert evaluation.score != pytest.approx(-metrics["gap_group_mean_pct"], abs=1e-6)  # the blend is not the mean
    assert Screen(problem, split="quick")(_trees(problem, trees)) == pytest.approx(evaluation.score, abs=1e-9)


def test_a_reference_floor_in_the_objective_is_the_score_of_the_screen_and_of_the_sandbox(tmp_path) -> None:
    """And a screen asked for no floor scores the gaps against the references."""
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "smtt_rule"
    shutil.copytree(load_problem("smtt_rule").dir, folder)
    toml = folder / "problem.toml"
    # The shipped floor (n >= 100) replaced by one at n = 20, which quick has.
    text = "\n".join(line for line in toml.read_text().splitlines() if not line.startswith("reference_floor")) + "\n"
    toml.write_text(text.replace('score = "gap_group_mean"\n', 'score = "gap_group_mean"\nreference_floor = { "n=20" = 1e6 }\n'))
    problem = load_problem(str(folder))
    trees = {"priority": "np.maximum(d, t + 1.1 * p)"}
    evaluation = evolve.evaluate(str(folder), _program(problem, trees), split="quick")
    # Quick's n = 20 references are far below the floor: each gap there is its difference over 1e6.
    n20 = [r for r in evaluation.instances if r.group == "n=20" and r.gap is not None]
    floored = sum((r.objective - r.reference) / 1e6 for r in n20) / len(n20)
    assert evaluation.score == pytest.approx(-(100 * floored + evaluation.metrics["gap_mean_pct[n=50]"]) / 2, abs=1e-9)
    assert evaluation.metrics["gap_mean_pct[n=20]"] > 100 * floored  # reported: the gap to the reference
    assert Screen(problem, split="quick")(_trees(problem, trees)) == pytest.approx(evaluation.score, abs=1e-9)
    # Without the floor (refit_on's screen, evolve/refit.py): the gaps a run reports.
    reported = -(evaluation.metrics["gap_mean_pct[n=20]"] + evaluation.metrics["gap_mean_pct[n=50]"]) / 2
    assert Screen(problem, "quick", floor=False)(_trees(problem, trees)) == pytest.approx(reported, abs=1e-9)
    # A floor for a group train does not have is a one-line error when a run starts.
    toml.write_text(text.replace('score = "gap_group_mean"\n', 'score = "gap_group_mean"\nreference_floor = { "n=1000" = 5 }\n'))
    done = subprocess.run([sys.executable, "-m", "evolve.cli", "run", str(folder), "--iterations", "1",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {toml}: objective.reference_floor names group 'n=1000', which no train instance has "
        "(its groups: n=20, n=50, n=100, n=200, n=500)")


def test_derived_terminals_are_checked_and_grow_into_random_trees() -> None:
    """[rule] terminals: each a one-line error unless it computes something over the inputs; a
    rule that declares some grows trees that hold them whole, written out as plain numpy."""
    problem = load_problem("smtt_rule")
    (rule,) = problem.spec.rule
    for bad, message in (("(d_max - due) / remaining_work", "'due' is not an input"),
                         ("remaining_work", "bare input or constant"),
                         ("np.maximum(d, t", "terminals\\[0\\]")):
        with pytest.raises(UserError, match=message):
            check_rules(problem.seed_code, [rule.model_copy(update={"terminals": [bad]})], "problem.toml")
    share = "(t + remaining_work - d_max) / remaining_work"
    with_terms = rule.model_copy(update={"terminals": [share]})
    check_rules(problem.seed_code, [with_terms], "problem.toml")
    sig = signature_of(with_terms)
    term = parse(share, SMTT_INPUTS)
    assert sig.derived == (term,) and signature_of(rule.model_copy(update={"terminals": []})).derived == ()
    rng = random.Random(3)
    trees = [random_tree(sig, rng, 3) for _ in range(200)]
    holding = [t for t in trees if emit(term) in emit(t)]
    assert 10 <= len(holding) < 200 and all(well_typed(t, sig) for t in trees)
