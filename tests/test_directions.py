"""Each shipped problem's island directions point the way its rule is read: an expression a
direction gives, evaluated on two candidates, picks the one the direction's words mean (the rule's
order: the lowest or the highest wins), and names only the rule's inputs."""

from __future__ import annotations

import ast
import re

import numpy as np
import pytest

from evolve.problem import load_problem

# (problem, words of the direction, inputs for two candidates, the candidate meant, the order)
CASES = [
    ("serving_router", "KV memory pressure", {"free_blocks": [10.0, 900.0], "total_blocks": [1000.0, 1000.0]},
     1, "lowest"),
    ("serving_router", "least pending prefill work", {"queued_tokens": [5000.0, 100.0], "prefill_time": [1e-4, 1e-4]},
     1, "lowest"),
    ("serving", "shortest predicted remaining work", {"predicted_len": [500.0, 50.0], "generated": [0.0, 0.0]},
     1, "lowest"),
    ("serving", "deadlines", {"arrival": [5.0, 1.0], "ttft_slo": 2.0}, 1, "lowest"),
    ("smtt_rule", "in the spirit of MDD", {"d": [10.0, 3.0], "t": 0.0, "p": [5.0, 1.0]}, 1, "lowest"),
]


def expression(text: str, names: set[str]) -> str:
    """The longest expression over ``names`` alone that a direction gives: a part of its
    parentheses, or a max(...)/min(...) call."""
    found = []
    parts = [part for group in re.findall(r"\(([^()]*)\)", text) for part in group.split(", ")]
    for part in parts + re.findall(r"\b(?:max|min)\([^()]*\)", text):
        candidate = part.replace(" x ", " * ").strip()
        try:
            tree = ast.parse(candidate, mode="eval")
        except SyntaxError:
            continue
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - {"max", "min"}
        if used and used <= names:
            found.append(candidate)
    assert found, f"no expression over {sorted(names)} in '{text}'"
    return max(found, key=len)


@pytest.mark.parametrize(("name", "words", "inputs", "meant", "order"), CASES)
def test_a_directions_expression_picks_what_its_words_mean(
        name: str, words: str, inputs: dict, meant: int, order: str) -> None:
    problem = load_problem(name)
    (direction,) = [d for d in problem.spec.prompt.directions if words in d]
    given = expression(direction, set(inputs))
    values = {k: np.asarray(v) for k, v in inputs.items()}
    score = eval(given, {"max": np.maximum, "min": np.minimum}, values)  # noqa: S307 - our own text
    picked = int(np.argmin(score) if order == "lowest" else np.argmax(score))
    assert picked == meant, f"{name}: '{given}' picks candidate {picked}: {direction}"


@pytest.mark.parametrize("name", ["smtt", "smtt_rule", "jssp", "moe", "serving", "serving_router"])
def test_directions_name_only_what_the_program_has(name: str) -> None:
    problem = load_problem(name)
    assert len(problem.spec.prompt.directions) >= problem.spec.run.get("islands", 4)
    for direction in problem.spec.prompt.directions:
        for identifier in re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", direction):
            assert re.search(rf"\b{identifier}\b", problem.seed_code), f"{name}: {identifier} in '{direction}'"
