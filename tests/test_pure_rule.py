"""Which programs skip the audit: provably one pure expression, as every GP program is.

A program wrongly taken for pure would skip the replay that catches planners passed off as
rules (tests/test_smtt_rule_attacks.py, tests/test_jssp_attacks.py), so each way of keeping
state or reaching outside the function is checked to be refused, next to the pure forms
that pass (so the refusals are not for some trivial reason).
"""

from __future__ import annotations

import random

import pytest

from evolve.config import SandboxSettings
from evolve.evaluation import Evaluator
from evolve.gp.operators import Limits, ramped
from evolve.gp.program import signature_of, with_rule
from evolve.problem import load_problem
from evolve.pure_rule import is_pure_rule


@pytest.mark.parametrize("name", ["jssp", "smtt_rule"])
def test_every_program_the_gp_writes_is_pure(name: str) -> None:
    problem = load_problem(name)
    rule = problem.spec.rule[0]
    seed = problem.seed_code
    assert is_pure_rule(seed, rule.function)
    rng = random.Random(4)
    divided = 0
    for _ in range(300):
        program = with_rule(seed, rule, ramped(signature_of(rule), rng, Limits()))
        divided += "def protected_div" in program
        assert is_pure_rule(program, rule.function), program
    assert divided > 20  # the helper's form is covered


PURE = '''"""A rule."""

import numpy as np


def protected_div(a, b):
    """a / b, and a where b == 0 (keeps every priority finite)."""
    return np.where(b == 0, a, a / np.where(b == 0, 1.0, b))


def priority(t, p, d, **kwargs):
    """Lowest first."""
    return np.maximum(d, t + protected_div(p, np.max(p, axis=-1, keepdims=True)))
'''

BODY = "    return np.maximum(d, t + protected_div(p, np.max(p, axis=-1, keepdims=True)))\n"

NOT_PURE = {
    "module_code": PURE + "import sys\nsys.modules['x'] = 1\n",
    "module_assignment": PURE + "_plan = []\n",
    "two_statements": PURE.replace(BODY, "    _plan.append(t)\n" + BODY),
    "global": PURE.replace(BODY, "    global _plan\n" + BODY),
    "a_default": PURE.replace("(t, p, d, **kwargs)", "(t, p, d, cache=[])"),
    "an_annotation": PURE.replace("(t, p, d, **kwargs)", "(t: print(1), p, d)"),
    "a_decorator": PURE.replace("def priority", "@staticmethod\ndef priority"),
    "another_helper": PURE.replace("def protected_div(a, b)", "def other(a, b)"),
    "a_changed_helper": PURE.replace("a / np.where(b == 0, 1.0, b)", "a / np.where(b == 0, 2.0, b)"),
    "a_second_rule": PURE + "\n\ndef priority(t, p, d):\n    return d\n",
    "out_keyword": PURE.replace("np.maximum(d, ", "np.maximum(d, p, out=p) + ("),
    "a_method": PURE.replace("np.max(p, axis=-1, keepdims=True)", "p.sort()"),
    "random": PURE.replace("np.max(p, axis=-1, keepdims=True)", "np.random.random(3)"),
    "a_global_name": PURE.replace("np.max(p, axis=-1, keepdims=True)", "_plan"),
    "kwargs_read": PURE.replace("np.max(p, axis=-1, keepdims=True)", "kwargs"),
    "np_as_parameter": PURE.replace("(t, p, d, **kwargs)", "(t, p, d, np)"),
    "other_import": PURE.replace("import numpy as np", "import numpy as np\nimport os"),
    "numpy_renamed": PURE.replace("import numpy as np", "import os as np"),
    "a_lambda": PURE.replace("np.max(p, axis=-1, keepdims=True)", "(lambda: p)()"),
    "a_class": PURE + "\n\nclass Plan:\n    pass\n",
    "no_rule": PURE.replace("def priority", "def other_name"),
    "a_tuple": PURE.replace(BODY, "    return d, p\n"),
    # the sixth red team's
    "walrus": PURE.replace("np.max(p, axis=-1, keepdims=True)", "(p := d)"),
    "a_keyword_only_default": PURE.replace("(t, p, d, **kwargs)", "(t, p, d, *, k=[])"),
    "numpy_as_parameter": PURE.replace("(t, p, d, **kwargs)", "(t, p, d, numpy)"),
    "helper_as_parameter": PURE.replace("(t, p, d, **kwargs)", "(t, p, d, protected_div)"),
    "np_as_a_function": PURE + "\n\ndef np(x):\n    return x\n",
    "an_attribute_of_an_input": PURE.replace("np.max(p, axis=-1, keepdims=True)", "p.base"),
    "an_f_string_docstring": PURE.replace('"""A rule."""', 'f"""A rule {print(1)}."""'),
}


def test_the_pure_form_passes() -> None:
    assert is_pure_rule(PURE, "priority")


@pytest.mark.parametrize("case", sorted(NOT_PURE))
def test_anything_that_could_keep_state_or_reach_outside_is_audited(case: str) -> None:
    source = NOT_PURE[case]
    assert source != PURE
    compile(source, "candidate", "exec")  # refused for what it does, not for a syntax error
    assert not is_pure_rule(source, "priority")


def test_unparseable_and_huge_programs_are_simply_not_pure() -> None:
    assert not is_pure_rule("def priority(:\n", "priority")
    deep = "def priority(p):\n    return " + "(" * 5000 + "p" + ")" * 5000 + "\n"
    assert not is_pure_rule(deep, "priority")


# A helper named as the GP's whose body is a sum of 1,500 terms: Python parses and compiles it
# (up to ~2,900), but ast.dump, which compares it with the GP's helper, recursed past the limit,
# and the RecursionError left is_pure_rule (and Evaluator.run_split, `evolve eval`) on the trusted side.
DEEP_HELPER = PURE.replace("    return np.where(b == 0, a, a / np.where(b == 0, 1.0, b))",
                           "    return " + " + ".join(["a"] * 1500))


def test_a_helper_too_deep_to_compare_is_simply_not_pure() -> None:
    compile(DEEP_HELPER, "candidate", "exec")  # a program that runs
    assert not is_pure_rule(DEEP_HELPER, "priority")


def test_a_reduction_makes_an_expression_audited_where_the_audit_checks_for_index_rules() -> None:
    """np.max(p, ...) makes every job's priority depend on the others: in smtt_rule (whose audit
    asks with jobs removed, ``index_rules``) such an expression is audited, in jssp it stays exempt;
    without a reduction it is exempt in both."""
    assert "np.max(p, axis=-1, keepdims=True)" in PURE
    without = PURE.replace("np.max(p, axis=-1, keepdims=True)", "p_max").replace("**kwargs", "p_max")
    assert is_pure_rule(PURE, "priority") and not is_pure_rule(PURE, "priority", reductions=False)
    assert is_pure_rule(without, "priority", reductions=False)
    for name, exempt in (("smtt_rule", False), ("jssp", True)):
        problem = load_problem(name)
        with Evaluator(problem, SandboxSettings()) as evaluator:
            assert evaluator._exempt(PURE, "priority") is exempt, name
            assert evaluator._exempt(without, "priority"), name
