"""The offline search: typed trees, the code they become, behaviour keys, the backend."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from evolve.config import GPSettings, RuleSpec, load_problem_spec, resolve_settings
from evolve.edits import apply_edit
from evolve.errors import UserError
from evolve.gp import BehaviourKeys, GPBackend, check_rules
from evolve.gp.codegen import HELPER_SOURCE, emit, parse
from evolve.gp.operators import WEIGHTS, Limits, gate, insert, split, split_sides, vary
from evolve.gp.program import rule_tree, signature_of, with_rule
from evolve.gp.semantics import sample_inputs
from evolve.gp.tree import (
    _NUMPY,
    Signature,
    compile_tree,
    depth,
    evaluate,
    kind,
    random_tree,
    simplify,
    size,
    well_typed,
)
from evolve.llm import make_llm
from evolve.llm.base import ProposalRequest
from evolve.problem import load_problem

SIG = Signature((("t", "scalar"), ("p", "array"), ("d", "array")), "array")
RULES_PROBLEMS = [name for name in ("smtt", "smtt_rule", "jssp", "moe", "serving", "serving_router")
                  if load_problem(name).spec.rule]


def _exec_emitted(tree, env):
    """Run the emitted expression as Python, independently of tree.evaluate."""
    namespace: dict = {"np": np}
    exec(HELPER_SOURCE, namespace)
    return eval(emit(tree), namespace, dict(env))


def _env(rows=5, cands=7, seed=1):
    rng = np.random.default_rng(seed)
    env = {"t": rng.random((rows, 1)) * 100, "p": np.floor(rng.random((rows, cands)) * 10),
           "d": rng.random((rows, cands)) * 300}
    return env


def _trees(seed: int, count: int = 300, max_depth: int = 4):
    rng = random.Random(seed)
    for _ in range(count):
        yield random_tree(SIG, rng, rng.randint(0, max_depth), full=rng.random() < 0.5)


def test_random_trees_are_well_typed_within_the_depth_limit() -> None:
    for tree in _trees(0, max_depth=5):
        assert well_typed(tree, SIG) and kind(tree, SIG) == "array"
        assert depth(tree) <= 5


def test_emitted_code_computes_exactly_what_the_tree_evaluates_to() -> None:
    env = _env()
    with np.errstate(all="ignore"):
        for tree in _trees(1):
            expected = np.broadcast_to(evaluate(tree, env), (5, 7))
            got = np.broadcast_to(_exec_emitted(tree, env), (5, 7))
            np.testing.assert_array_equal(np.isnan(expected), np.isnan(got))
            np.testing.assert_allclose(got, expected, rtol=1e-3, equal_nan=True)  # constants print to 4 digits


def test_a_compiled_tree_gives_bit_identical_values_to_evaluate() -> None:
    # The GP's screen runs compiled trees; a run's archive must not depend on which form ran.
    env = _env()
    env["p"][0, :3] = 0.0  # zero divisors: the protected division's masked branch
    with np.errstate(all="ignore"):
        for tree in _trees(2, max_depth=5):
            expected = np.broadcast_to(evaluate(tree, env), (5, 7))
            got = np.broadcast_to(compile_tree(tree)(env), (5, 7))
            assert expected.tobytes() == got.tobytes(), tree


def test_a_subtree_that_occurs_twice_is_computed_once_with_the_same_values() -> None:
    # MDDC as the [rule] starts write it: np.minimum(p / (t + p_max), 1) twice.
    mddc = parse("np.maximum(1.1 * p + t, d) * (1 + np.minimum(p / (t + p_max), 1) ** 2 / (1 + np.minimum("
                 "p / (t + p_max), 1) ** 2)) + p / (t + p_mean)", {"p", "d", "t", "p_max", "p_mean"})
    env = _env()
    env["p"][0, :3] = 0.0
    env["p_max"], env["p_mean"] = env["p"].max(axis=1, keepdims=True), env["p"].mean(axis=1, keepdims=True)
    calls: list[str] = []

    def counted(name: str, f):
        def call(*args):
            calls.append(name)
            return f(*args)
        return call

    counting = {name: counted(name, f) for name, f in _NUMPY.items()}
    with np.errstate(all="ignore"):
        expected = evaluate(mddc, env)
        rule = compile_tree(mddc)
        assert rule(env).tobytes() == expected.tobytes()
        old = dict(_NUMPY)
        _NUMPY.update(counting)
        try:
            rule(env)
        finally:
            _NUMPY.update(old)
    # 18 operator nodes, of which np.minimum(p / (t + p_max), 1) ** 2 (4 nodes) twice.
    assert len(calls) == 18 - 4


def test_a_tree_deeper_than_the_parser_nests_still_compiles_to_the_same_values() -> None:
    # A program a model wrote can parse into a chain of 300 additions: its compiled form would
    # nest 300 calls, past CPython's parser limit, and must not fail in the trusted screen.
    tree = parse("+".join(["p"] * 300), {"p"})
    env = {"p": np.arange(4.0)}
    assert compile_tree(tree)(env).tobytes() == evaluate(tree, env).tobytes()


def test_a_compiled_tree_quotes_names_and_never_runs_them() -> None:
    # Names reach the compiled source only through repr, as a key of env.
    name = "p'] or __import__('os').getpid() or env['p"
    assert compile_tree(("x", name))({"p": 1.0, name: 5.0}) == 5.0


def test_protected_division_without_zero_divisors_equals_its_masked_form() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 9)) * 1e3, rng.normal(size=(4, 9))
    masked = np.where(b == 0.0, a, a / np.where(b == 0.0, 1.0, b))
    assert evaluate(("div", ("x", "a"), ("x", "b")), {"a": a, "b": b}).tobytes() == masked.tobytes()
    b[1, 2] = 0.0
    got = evaluate(("div", ("x", "a"), ("x", "b")), {"a": a, "b": b})
    assert got[1, 2] == a[1, 2] and got.tobytes() == np.where(b == 0.0, a, a / np.where(b == 0.0, 1.0, b)).tobytes()


def test_parse_reads_back_what_emit_writes() -> None:
    names = {"t", "p", "d"}
    for tree in _trees(2):
        again = parse(emit(tree), names)
        assert emit(again) == emit(tree)


def test_parse_accepts_what_people_write_and_refuses_the_rest() -> None:
    names = {"t", "p", "d"}
    assert parse("np.maximum(d, t + p)", names) == ("max", ("x", "d"), ("add", ("x", "t"), ("x", "p")))
    assert parse("d / p - p ** 2", names) == ("sub", ("div", ("x", "d"), ("x", "p")), ("square", ("x", "p")))
    for bad in ("sorted(p)", "p[0]", "q + 1", "np.exp(p)", "p if t else d", "np.max(p)"):
        with pytest.raises(ValueError):
            parse(bad, names)


def test_simplify_keeps_the_values_and_removes_identities() -> None:
    env = _env()
    with np.errstate(all="ignore"):
        for tree in _trees(3):
            a = np.broadcast_to(evaluate(tree, env), (5, 7))
            b = np.broadcast_to(evaluate(simplify(tree), env), (5, 7))
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True)
    p, d = ("x", "p"), ("x", "d")
    assert simplify(("add", ("mul", p, ("c", 1.0)), ("c", 0.0))) == p
    assert simplify(("sub", d, d)) == ("c", 0.0)
    assert simplify(("add", ("c", 2.0), ("c", 3.0))) == ("c", 5.0)
    assert simplify(("ifpos", ("c", 2.0), p, d)) == p
    assert size(simplify(("max", ("neg", ("neg", p)), p))) == 1


def _rule(name: str, inputs: list[tuple[str, str]]) -> RuleSpec:
    return RuleSpec(function=name, inputs=[{"name": n, "kind": k, "doc": n} for n, k in inputs])


SMTT_LIKE = _rule("priority", [("t", "scalar"), ("p", "array"), ("d", "array")])
PROGRAM = '''import numpy as np


# EVOLVE-BLOCK-START
def priority(t, p, d):
    """Lowest goes next."""
    return d


def improve(sequence, p, d):
    return sequence
# EVOLVE-BLOCK-END


def schedule(p, d):
    return list(np.argsort(priority(0.0, np.asarray(p, float), np.asarray(d, float))))
'''


def test_behaviour_keys_equal_for_rules_that_order_alike() -> None:
    keys = BehaviourKeys([SMTT_LIKE])

    def program(expr: str) -> str:
        return PROGRAM.replace("    return d\n", f"    return {expr}\n")

    same = ["d", "2 * d + 5", "d + 0 * p", "(d - 3) / 0.5", "np.sqrt(np.abs(d))"]
    assert len({keys.key(program(e)) for e in same}) == 1
    different = ["d", "p", "np.maximum(d, t + p)", "d - p", "-d"]
    assert len({keys.key(program(e)) for e in different}) == len(different)
    assert keys.key(program("np.maximum(d, t + p)")) == keys.key(program("np.maximum(p + t, d)"))
    # The rest of the block counts: another improve() is another program.
    other = program("d").replace("return sequence", "return sequence[::-1]")
    assert keys.key(other) != keys.key(program("d"))


def test_with_rule_rewrites_only_the_body_and_adds_the_helper_once() -> None:
    tree = ("div", ("x", "d"), ("x", "p"))
    child = with_rule(PROGRAM, SMTT_LIKE, tree)
    assert child.count("def protected_div") == 1 and "return protected_div(d, p)" in child
    assert '"""Lowest goes next."""' in child and "def improve" in child
    again = with_rule(child, SMTT_LIKE, ("div", ("x", "p"), ("x", "d")))
    assert again.count("def protected_div") == 1
    assert rule_tree(again, SMTT_LIKE) == ("div", ("x", "p"), ("x", "d"))
    namespace: dict = {}
    exec(again, namespace)
    assert namespace["schedule"]([3, 1], [1, 5]) in ([1, 0], [0, 1])


@pytest.mark.parametrize("name", RULES_PROBLEMS)
def test_shipped_rule_tables_match_their_seeds_and_the_seeds_parse(name: str) -> None:
    problem = load_problem(name)
    check_rules(problem.seed_code, problem.spec.rule, str(problem.toml_path))
    for rule in problem.spec.rule:
        assert rule_tree(problem.seed_code, rule) is not None


@pytest.mark.parametrize("name", RULES_PROBLEMS)
@pytest.mark.parametrize("mode", ["diff", "rewrite"])
def test_backend_answers_apply_cleanly_and_chain(name: str, mode: str) -> None:
    problem = load_problem(name)
    # The problem's own limits: smtt_rule raises them, its MDDC start is deeper than the defaults.
    limits = resolve_settings(problem.spec.run, None, {}).gp
    gp = GPBackend(problem.spec.rule, seed=1, settings=limits)
    code = problem.seed_code
    archive = [code]
    for iteration in range(1, 41):
        request = ProposalRequest([], iteration, 0, mode, code, archive[-3:], fresh=iteration <= 8)  # type: ignore[arg-type]
        completion = gp.complete(request)
        child = apply_edit(code, completion.text, mode)  # type: ignore[arg-type]
        assert child != code and completion.model == "gp"
        for rule in problem.spec.rule:
            tree = rule_tree(child, rule)
            assert tree is not None
            # A rule split at a gate (smtt_rule's split) has the limits on each side.
            sides = split_sides(tree, signature_of(rule, limits.reductions))
            for part in (sides[1], sides[2]) if sides is not None else (tree,):
                assert depth(part) <= limits.max_depth and size(part) <= limits.max_size
        archive.append(child)
        code = child
    compile(code, "child.py", "exec")


def test_backend_is_deterministic_and_retries_differ() -> None:
    gp = GPBackend([SMTT_LIKE], seed=4)
    request = ProposalRequest([], 7, 0, "diff", PROGRAM, [])
    assert gp.complete(request).text == gp.complete(request).text
    texts = {gp.complete(ProposalRequest([], 7, 0, "diff", PROGRAM, [], retry=r)).text for r in range(6)}
    assert len(texts) > 3


def test_crossover_takes_material_from_inspirations() -> None:
    parent = ("add", ("x", "d"), ("x", "p"))
    donor = ("max", ("x", "d"), ("add", ("x", "t"), ("mul", ("c", 3.5), ("x", "p"))))
    rng = random.Random(0)
    borrowed = 0
    for _ in range(200):
        child = vary(parent, [donor], SIG, rng, Limits(), fresh=False)
        assert child is not None
        borrowed += child.operator == "crossover" and "3.5" in emit(child.tree)
    assert borrowed > 10


def test_insertion_keeps_the_parent_whole_inside_a_small_scaled_term() -> None:
    parent = ("max", ("x", "d"), ("add", ("x", "t"), ("x", "p")))
    rng = random.Random(3)
    forms = set()
    for _ in range(300):
        child = insert(parent, SIG, rng)
        assert child.operator == "insert" and well_typed(child.tree, SIG)
        # Somewhere in the child a subtree T of the parent became T * (1 + c g) or T + c g.
        found = False
        for path_tree in _subtrees(child.tree):
            if path_tree[0] == "mul" and path_tree[2][:2] == ("add", ("c", 1.0)) and path_tree[2][2][0] == "mul":
                scale, t_tree = path_tree[2][2][1], path_tree[1]
                form = "mul"
            elif path_tree[0] == "add" and path_tree[2][0] == "mul" and path_tree[2][1][0] == "c":
                scale, t_tree = path_tree[2][1], path_tree[1]
                form = "add"
            else:
                continue
            if t_tree in set(_subtrees(parent)) and 0.03 <= abs(scale[1]) <= 1.0:
                found = True
                forms.add((form, t_tree == parent))
        assert found, child.tree
    assert forms == {("mul", True), ("add", True), ("mul", False), ("add", False)}


def _subtrees(tree):
    yield tree
    if tree[0] not in ("x", "c"):
        for kid in tree[1:]:
            yield from _subtrees(kid)


def test_insertion_is_drawn_only_when_the_run_weighs_it() -> None:
    parent = ("max", ("x", "d"), ("add", ("x", "t"), ("x", "p")))
    plain = [vary(parent, [], SIG, random.Random(s), Limits(), fresh=False) for s in range(200)]
    assert all(c is not None and c.operator != "insert" for c in plain)
    same = [vary(parent, [], SIG, random.Random(s), Limits(), fresh=False, weights=dict(WEIGHTS)) for s in range(200)]
    assert same == plain  # the default weights draw exactly as before
    weighted = {**WEIGHTS, "insert": 0.5}
    made = [vary(parent, [], SIG, random.Random(s), Limits(), fresh=False, weights=weighted) for s in range(200)]
    share = sum(c is not None and c.operator == "insert" for c in made) / len(made)
    assert 0.3 < share < 0.6  # without inspirations (no crossover) 0.5 / 1.08 of the draws


def _reduces(tree) -> bool:
    return tree[0] not in ("x", "c") and (tree[0] in ("rmax", "rmin", "rmean") or any(_reduces(c) for c in tree[1:]))


def test_without_reductions_no_tree_or_child_reduces_over_the_candidates() -> None:
    # smtt_rule's audit asks a rule again with a subset of the jobs: np.mean(p) is p_mean in a
    # real call and not in the subset's, so its GP must not write reductions.
    index_only = Signature(SIG.inputs, "array", reductions=False)
    rng_on, rng_off = random.Random(5), random.Random(5)
    with_them = [random_tree(SIG, rng_on, rng_on.randint(0, 4)) for _ in range(300)]
    without = [random_tree(index_only, rng_off, rng_off.randint(0, 4)) for _ in range(300)]
    assert any(_reduces(t) for t in with_them)  # the default still draws them
    assert not any(_reduces(t) for t in without) and all(well_typed(t, index_only) for t in without)
    mean_of_p = ("sub", ("x", "d"), ("rmean", ("x", "p")))
    assert well_typed(mean_of_p, SIG) and not well_typed(mean_of_p, index_only)
    # nor do children: mutation, and crossover from an inspiration that holds a reduction
    parent = ("max", ("x", "d"), ("add", ("x", "t"), ("x", "p")))
    donor = ("add", ("x", "d"), ("mul", ("rmax", ("x", "p")), ("x", "p")))
    children = [vary(parent, [donor], index_only, random.Random(s), Limits(), fresh=False) for s in range(300)]
    assert all(c is not None and not _reduces(c.tree) for c in children)
    assert any(c.operator == "crossover" for c in children if c is not None)
    assert any(_reduces(c.tree) for s in range(300)
               if (c := vary(parent, [donor], SIG, random.Random(s), Limits(), fresh=False)) is not None)


def test_gp_settings_reductions_is_a_strict_boolean_and_smtt_rule_turns_it_off(tmp_path: Path) -> None:
    assert resolve_settings({}, None, {}).gp.reductions is True
    good = tmp_path / "good.toml"
    good.write_text("[gp]\nreductions = false\n")
    assert resolve_settings({}, good, {}).gp.reductions is False
    for text, key in (('[gp]\nreductions = "no"\n', "reductions"), ("[gp]\nreduction = false\n", "reduction")):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(UserError, match=key):
            resolve_settings({}, bad, {})
    off = {name for name in RULES_PROBLEMS if not resolve_settings(load_problem(name).spec.run, None, {}).gp.reductions}
    assert off == {"smtt_rule"}  # every other problem's search draws as before


def test_backend_refuses_a_rule_table_that_reduces_when_reductions_are_off() -> None:
    rule = SMTT_LIKE.model_copy(update={"starts": ["d", "d - np.max(p, axis=-1, keepdims=True)"]})
    GPBackend([rule], settings=GPSettings(reductions=True))
    with pytest.raises(UserError, match=r"starts\[1\] = 'd - np.max\(p, .*reductions = false"):
        GPBackend([rule], settings=GPSettings(reductions=False))
    terminal = SMTT_LIKE.model_copy(update={"terminals": ["t / np.mean(d, axis=-1, keepdims=True)"]})
    with pytest.raises(UserError, match=r"terminals\[0\]"):
        GPBackend([terminal], settings=GPSettings(reductions=False))


def test_gated_insertion_gives_a_new_term_a_coefficient_on_each_side_of_a_declared_gate() -> None:
    parent = ("max", ("x", "d"), ("add", ("x", "t"), ("x", "p")))
    share = ("div", ("x", "t"), ("add", ("x", "t"), ("c", 7.0)))  # a derived scalar terminal
    gate_tree = ("sub", ("x", "t"), ("c", 75.0))
    sig = Signature(SIG.inputs, "array", (share,), (gate_tree,))
    assert gate(parent, SIG, random.Random(0)) is None  # no gate declared: nothing to gate
    rng = random.Random(5)
    roots = products = with_share = 0
    for _ in range(300):
        child = gate(parent, sig, rng)
        assert child is not None and child.operator == "gate" and well_typed(child.tree, sig)
        # Somewhere a subtree T of the parent became T + where(gate > 0, c1, c2) * g.
        (site,) = [t for t in _subtrees(child.tree) if t[0] == "add" and t[2][0] == "mul" and t[2][1][0] == "ifpos"]
        t_tree, (_, (_, condition, (_, c1), (_, c2)), term) = site[1], site[2]
        assert t_tree in set(_subtrees(parent)) and condition == gate_tree
        assert 0.03 <= abs(c1) <= 1.0
        assert c2 == pytest.approx(c1 / 2, rel=0.01) or c2 == pytest.approx(2 * c1, rel=0.01)
        roots += t_tree == parent
        products += term[0] == "mul" and kind(term[1], sig) == "scalar" and term[2][0] == "x"
        with_share += term in (("mul", share, ("x", "p")), ("mul", share, ("x", "d")))
    # The whole rule half of the time and again when the drawn node is the root (this parent has
    # two internal nodes); a feature times a job attribute about half the time, half of those the
    # derived terminal.
    assert 150 < roots < 250 and products > 120 and 40 < with_share < 110
    # Above the gate the child computes T + c1 * g, below it T + c2 * g.
    child = gate(parent, sig, random.Random(1))
    assert child is not None
    (site,) = [t for t in _subtrees(child.tree) if t[0] == "add" and t[2][0] == "mul" and t[2][1][0] == "ifpos"]
    c1, c2, term = site[2][1][2][1], site[2][1][3][1], site[2][2]
    env = {**_env(), "t": np.array([[10.0], [10.0], [100.0], [100.0], [300.0]])}
    value, plain = evaluate(site, env), evaluate(site[1], env)
    g = np.broadcast_to(evaluate(term, env), np.shape(value))
    high = env["t"].reshape(-1) > 75.0
    assert np.allclose(value[high], (plain + c1 * g)[high]) and np.allclose(value[~high], (plain + c2 * g)[~high])


def test_gated_insertion_is_drawn_only_when_the_run_weighs_it_and_the_rule_has_gates(tmp_path: Path) -> None:
    parent = ("max", ("x", "d"), ("add", ("x", "t"), ("x", "p")))
    sig = Signature(SIG.inputs, "array", (), (("sub", ("x", "t"), ("c", 75.0)),))
    plain = [vary(parent, [], sig, random.Random(s), Limits(), fresh=False) for s in range(200)]
    assert all(c is not None and c.operator != "gate" for c in plain)
    weighted = {**WEIGHTS, "gate": 0.5}
    made = [vary(parent, [], sig, random.Random(s), Limits(), fresh=False, weights=weighted) for s in range(200)]
    assert 0.3 < sum(c is not None and c.operator == "gate" for c in made) / len(made) < 0.6
    ungated = [vary(parent, [], SIG, random.Random(s), Limits(), fresh=False, weights=weighted) for s in range(200)]
    assert all(c is not None and c.operator != "gate" for c in ungated)
    good = tmp_path / "good.toml"
    good.write_text("[gp]\ngate = 0.25\n")
    assert resolve_settings({}, good, {}).gp.gate == 0.25
    bad = tmp_path / "bad.toml"
    bad.write_text("[gp]\ngate = -1\n")
    with pytest.raises(UserError, match="gate"):
        resolve_settings({}, bad, {})


def test_a_split_at_a_gate_makes_two_sides_and_later_children_vary_only_the_side_below() -> None:
    parent = ("max", ("x", "d"), ("add", ("x", "t"), ("x", "p")))
    gate_tree = ("sub", ("x", "t"), ("c", 75.0))
    sig = Signature(SIG.inputs, "array", (), (gate_tree,))
    assert split(parent, SIG, random.Random(0)) is None  # no gate declared
    child = split(parent, sig, random.Random(3))
    assert child is not None and child.operator == "split" and well_typed(child.tree, sig)
    g_tree, above, below = split_sides(child.tree, sig)
    # where(G > 0, T + c1 * g, T + c2 * g): the whole parent on both sides, the same new term.
    assert g_tree == gate_tree and above[1] == below[1] == parent and above[2][2] == below[2][2]
    c1, c2 = above[2][1][1], below[2][1][1]
    assert c2 == pytest.approx(c1 / 2, rel=0.01) or c2 == pytest.approx(2 * c1, rel=0.01)
    assert split(child.tree, sig, random.Random(0)) is None  # a split rule is not split again
    env = {**_env(), "t": np.array([[10.0], [10.0], [100.0], [100.0], [300.0]])}
    value, high = evaluate(child.tree, env), env["t"].reshape(-1) > 75.0
    assert np.allclose(value[high], np.broadcast_to(evaluate(above, env), value.shape)[high])
    assert np.allclose(value[~high], np.broadcast_to(evaluate(below, env), value.shape)[~high])
    # Where the run splits, every child of a split rule keeps the gate and the side above it,
    # whatever the operator (crossover with a split donor takes from the donor's side below).
    weights = {**WEIGHTS, "split": 0.5, "gate": 0.5}
    donor = split(("sub", ("x", "d"), ("x", "p")), sig, random.Random(4)).tree
    kids = [vary(child.tree, [donor, parent], sig, random.Random(s), Limits(), fresh=False, weights=weights)
            for s in range(300)]
    kept = [split_sides(k.tree, sig) for k in kids if k is not None]
    assert len(kept) > 250 and all(k is not None and k[:2] == (gate_tree, above) for k in kept)
    assert len({k[2] for k in kept}) > 100  # the side below does vary
    assert {k.operator for k in kids if k is not None} >= {"crossover", "point", "constant", "subtree"}
    # Without split in the weights (every shipped run), the same tree is varied anywhere.
    plain = [vary(child.tree, [], sig, random.Random(s), Limits(20, 80), fresh=False) for s in range(300)]
    assert any(c is not None and (split_sides(c.tree, sig) or (None, None))[1] != above for c in plain)


def test_a_split_rule_is_within_the_limits_side_by_side() -> None:
    # Each side may be as large as a rule; the split rule as a whole may be larger.
    parent = random_tree(SIG, random.Random(2), 4, full=True)
    sig = Signature(SIG.inputs, "array", (), (("sub", ("x", "t"), ("c", 75.0)),))
    limits = Limits(max_depth=depth(parent) + 3, max_size=size(parent) + 8)
    made = [vary(parent, [], sig, random.Random(s), limits, fresh=False, weights={"split": 1.0}) for s in range(50)]
    splits = [c for c in made if c is not None and c.operator == "split"]
    assert splits and all(size(c.tree) > limits.max_size for c in splits)
    assert all(size(side) <= limits.max_size and depth(side) <= limits.max_depth
               for c in splits for side in split_sides(c.tree, sig)[1:])


def test_gp_settings_take_a_split_weight_and_the_sides_scope(tmp_path: Path) -> None:
    assert resolve_settings({}, None, {}).gp.split == 0.0
    good = tmp_path / "good.toml"
    good.write_text('[gp]\nsplit = 0.25\nfit_scope = "sides"\n')
    assert (resolve_settings({}, good, {}).gp.split, resolve_settings({}, good, {}).gp.fit_scope) == (0.25, "sides")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gp]\nsplit = -1\n")
    with pytest.raises(UserError, match="split"):
        resolve_settings({}, bad, {})


@pytest.mark.parametrize(("gate_expr", "message"), [
    ("p - 75", "a gate must be a scalar expression"),
    ("75 - 1", "a gate must be a scalar expression"),
    ("t - ", r"gates\[0\]"),
])
def test_check_rules_refuses_a_gate_that_is_not_a_scalar_of_the_inputs(gate_expr: str, message: str) -> None:
    rule = SMTT_LIKE.model_copy(update={"gates": [gate_expr]})
    with pytest.raises(UserError, match=message):
        check_rules(PROGRAM, [rule], "x.toml")
    check_rules(PROGRAM, [rule.model_copy(update={"gates": ["t - 75"]})], "x.toml")


def test_gp_settings_take_racing_and_insertion_and_refuse_bad_values(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[gp]\nfit_race = 2\ninsert = 0.2\n")
    settings = resolve_settings({}, good, {})
    assert (settings.gp.fit_race, settings.gp.insert) == (2, 0.2)
    bad = tmp_path / "bad.toml"
    bad.write_text("[gp]\ninsert = -1\n")
    with pytest.raises(UserError, match="insert"):
        resolve_settings({}, bad, {})


def test_gp_settings_take_a_fit_scope_and_ties_and_refuse_an_unknown_scope(tmp_path: Path) -> None:
    assert (resolve_settings({}, None, {}).gp.fit_scope, resolve_settings({}, None, {}).gp.fit_ties) == ("all", False)
    good = tmp_path / "good.toml"
    good.write_text('[gp]\nfit_scope = "gated"\nfit_ties = true\n')
    assert (resolve_settings({}, good, {}).gp.fit_scope, resolve_settings({}, good, {}).gp.fit_ties) == ("gated", True)
    bad = tmp_path / "bad.toml"
    bad.write_text('[gp]\nfit_scope = "new"\n')
    with pytest.raises(UserError, match="fit_scope"):
        resolve_settings({}, bad, {})


def test_gp_spec_needs_rules_and_auto_picks_gp_only_with_rules() -> None:
    with pytest.raises(UserError, match=r"\[rule\]"):
        make_llm("gp")
    assert make_llm("auto", rules=[SMTT_LIKE]).name == "gp"
    assert make_llm("auto").name == "stub"
    assert make_llm("mutate").name == "stub"


def test_sample_inputs_are_fixed_and_shaped_by_kind() -> None:
    first, second = sample_inputs(SMTT_LIKE), sample_inputs(SMTT_LIKE)
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert first["t"].shape[1] == 1 and first["p"].shape[1] > 1


def test_check_rules_names_the_mismatch(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"parameters \['d'\] are not declared"):
        check_rules(PROGRAM, [_rule("priority", [("t", "scalar"), ("p", "array"), ("q", "array")])], "x.toml")
    with pytest.raises(UserError, match="not a top-level function"):
        check_rules(PROGRAM, [_rule("schedule", [("p", "array"), ("d", "array")])], "x.toml")


@pytest.mark.parametrize(("inputs", "message"), [
    ('[{ name = "p", kind = "array", doc = "a" }, { name = "p", kind = "array", doc = "b" }]', "declared twice"),
    ('[{ name = "p", kind = "vector", doc = "a" }]', "kind"),
    ('[{ name = "t", kind = "scalar", doc = "a" }]', "no input of kind 'array'"),
    ('[{ name = "p", kind = "array" }]', "missing key 'rule.0.inputs.0.doc'"),
    ('[{ name = "p", kind = "array", doc = "a", unit = "s" }]', "unknown key 'rule.0.inputs.0.unit'"),
])
def test_rule_tables_are_validated_strictly(toy_dir: Path, inputs: str, message: str) -> None:
    toml = toy_dir / "problem.toml"
    toml.write_text(toml.read_text() + f'\n[rule]\nfunction = "priority"\ninputs = {inputs}\n')
    with pytest.raises(UserError, match=message) as info:
        load_problem_spec(toml)
    assert "\n" not in str(info.value) and str(toml) in str(info.value)
