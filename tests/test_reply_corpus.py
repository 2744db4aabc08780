"""Model replies as they really come, for every shipped problem, through the edit parser.

Each reply in tests/replies/ says whether a careful human would accept it (and
what the child must then contain) or reject it (and why); bench/reply_corpus.py
prints the acceptance rate quoted in docs/edits.md.
"""

from __future__ import annotations

import pytest
from reply_corpus import Case, judge, load_corpus

from evolve.edits import code_hash, edit_child
from evolve.problem import discover

CASES = load_corpus()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.problem}/{c.name}" for c in CASES])
def test_reply_is_read_as_a_careful_human_would(case: Case) -> None:
    verdict = judge(case)
    assert verdict.as_expected, f"{case.why}: expected {case.expect}, got: {verdict.detail}"


def test_the_corpus_covers_every_shipped_problem_and_every_kind_of_reply() -> None:
    shipped = {name for name, p in discover().items() if p.origin == "builtin"}
    assert shipped <= {c.problem for c in CASES}
    whys = " ".join(c.why.lower() for c in CASES)
    for kind in ("fence", "prose", "crlf", "indent", "matches nowhere", "whole program",
                 "rewrite request", "<think>", "cut off"):
        assert kind in whys, kind


def test_thinking_is_kept_apart_from_the_answer() -> None:
    case = next(c for c in CASES if c.name == "14-think-with-draft")
    edit = edit_child(case.parent, case.reply, "diff")
    assert "No wait, d + p is just a shifted EDD" in edit.thinking
    assert "return d + p" not in edit.code and "No wait" not in edit.code


def test_accepted_replies_give_distinct_programs_where_they_differ() -> None:
    # Sanity: the parser does not collapse different replies onto the parent.
    children = [edit_child(c.parent, c.reply, c.mode).code for c in CASES if c.expect == "accept"]
    parents = {code_hash(c.parent) for c in CASES}
    assert not parents & {code_hash(child) for child in children}
