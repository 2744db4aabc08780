"""Applying model completions to a parent program: formats, tolerance, errors."""

from __future__ import annotations

import pytest

from evolve.edits import (
    EditError,
    apply_diff,
    apply_edit,
    apply_rewrite,
    block_text,
    code_hash,
    edit_child,
    evolve_blocks,
    normalize_code,
    parse_diff,
)

PARENT = '''"""Module docstring."""

import numpy as np

SCALE = 2.0


# EVOLVE-BLOCK-START
def priority(t, p, d):
    """Lowest value goes next."""
    slack = d - t
    return slack  # EDD-like


def improve(sequence, p, d):
    return sequence
# EVOLVE-BLOCK-END


def schedule(p, d):
    return sorted(range(len(p)), key=lambda j: d[j] * SCALE)
'''
# 1-based line numbers in PARENT: markers at 8 and 17, editable lines 9-16.


def diff(*pairs: tuple[str, str]) -> str:
    return "\n".join(f"<<<<<<< SEARCH\n{s}\n=======\n{r}\n>>>>>>> REPLACE\n" for s, r in pairs)


def test_evolve_blocks_are_the_lines_between_markers() -> None:
    [(start, end)] = evolve_blocks(PARENT)
    lines = PARENT.split("\n")
    assert lines[start - 1] == "# EVOLVE-BLOCK-START"
    assert lines[end] == "# EVOLVE-BLOCK-END"
    assert block_text(PARENT).startswith("def priority(t, p, d):")
    assert "def schedule" not in block_text(PARENT)
    assert evolve_blocks("x = 1\n") == []


@pytest.mark.parametrize(
    "code, fragment",
    [
        ("# EVOLVE-BLOCK-START\nx = 1\n", "never closed"),
        ("x = 1\n# EVOLVE-BLOCK-END\n", "without a matching"),
        ("# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n", "cannot nest"),
    ],
)
def test_unbalanced_or_nested_markers_are_rejected(code: str, fragment: str) -> None:
    with pytest.raises(EditError, match=fragment):
        evolve_blocks(code)


def test_exact_search_replace_applies() -> None:
    child = apply_diff(PARENT, diff(("    return slack  # EDD-like", "    return slack + p")))
    assert "    return slack + p\n" in child
    assert child.replace("    return slack + p\n", "    return slack  # EDD-like\n") == PARENT


def test_parse_diff_accepts_fences_and_marker_variants() -> None:
    text = (
        "Here is my idea.\n```python\n<<<<<<<< SEARCH\na = 1\n ======= \nb = 2\n"
        ">>>>>>>REPLACE\n```\nand\n<<<<<<< SEARCH\nc\n=======\n>>>>>>> REPLACE\n"
    )
    assert parse_diff(text) == [("a = 1", "b = 2"), ("c", "")]


def test_truncated_diff_block_is_reported() -> None:
    with pytest.raises(EditError, match="edit 1 is not closed"):
        parse_diff("<<<<<<< SEARCH\nx\n=======\ny\n")


def test_search_with_trailing_whitespace_and_blank_line_drift_applies() -> None:
    search = "    slack = d - t   \n\n\n    return slack  # EDD-like"
    child = apply_diff(PARENT, diff((search, "    slack = d - t\n    return slack * p")))
    block = block_text(child)
    assert "    slack = d - t\n    return slack * p\n" in block
    assert "EDD-like" not in block


def test_indentation_offset_reindents_the_replacement() -> None:
    # The model dropped the function-body indentation in both parts.
    child = apply_diff(
        PARENT,
        diff(
            (
                "slack = d - t\nreturn slack  # EDD-like",
                "slack = d - t\nif t > 0:\n    slack = slack / t\nreturn slack",
            )
        ),
    )
    assert "    if t > 0:\n        slack = slack / t\n    return slack\n" in child


def test_edit_outside_the_block_is_rejected_with_line_numbers() -> None:
    completion = diff(("SCALE = 2.0", "SCALE = 3.0"))
    with pytest.raises(EditError) as err:
        apply_diff(PARENT, completion)
    msg = str(err.value)
    assert "edit 1 changes line 5" in msg
    assert "outside the EVOLVE-BLOCK (lines 9-16)" in msg
    assert "only code between the markers may change" in msg


def test_second_edit_outside_the_block_is_named() -> None:
    completion = diff(
        ("    return sequence", "    return list(sequence)"),
        (
            "def schedule(p, d):\n    return sorted(range(len(p)), key=lambda j: d[j] * SCALE)",
            "def schedule(p, d):\n    return list(range(len(p)))",
        ),
    )
    with pytest.raises(EditError, match=r"edit 2 changes line 21, outside"):
        apply_diff(PARENT, completion)


def test_search_that_diverges_midway_says_where() -> None:
    completion = diff(("    slack = d - t\n    return slack", "    return d"))
    with pytest.raises(EditError) as err:
        apply_diff(PARENT, completion)
    assert "Its first 1 line(s) match from line 11, but its next line 'return slack' differs " in (
        str(err.value)
    )
    assert "from line 12: 'return slack  # EDD-like'" in str(err.value)


def test_marker_quoted_as_unchanged_context_is_allowed() -> None:
    search = "# EVOLVE-BLOCK-START\ndef priority(t, p, d):"
    replace = "# EVOLVE-BLOCK-START\ndef priority(t, p, d):\n    t = t + 1.0"
    child = apply_diff(PARENT, diff((search, replace)))
    assert "def priority(t, p, d):\n    t = t + 1.0\n" in child


def test_removing_a_marker_is_rejected() -> None:
    search = "    return sequence\n# EVOLVE-BLOCK-END"
    with pytest.raises(EditError, match="outside the EVOLVE-BLOCK"):
        apply_diff(PARENT, diff((search, "    return sequence")))


def test_adding_a_marker_is_rejected() -> None:
    with pytest.raises(EditError, match="marker"):
        apply_diff(PARENT, diff(("    return sequence", "    return sequence\n# EVOLVE-BLOCK-END")))


def test_missing_search_names_the_edit_and_the_closest_line() -> None:
    completion = diff(
        ("    slak = d - t", "    slack = d - 2 * t"),
        ("    return slak  # EDD-like", "    return slack"),
    )
    with pytest.raises(EditError) as err:
        apply_diff(PARENT, completion)
    msg = str(err.value)
    assert msg.startswith("edit 1: its SEARCH text was not found")
    assert "'slak = d - t'" in msg
    assert "closest line in the program is line 11: 'slack = d - t'" in msg


def test_an_answer_whose_only_search_matches_nowhere_says_so_even_if_its_replace_is_there() -> None:
    """SEARCH 'return slak' (a typo) with REPLACE 'return slack' (already the program's line):
    the reason is the SEARCH, not only "the edit does not change the program"."""
    with pytest.raises(EditError) as err:
        apply_diff(PARENT, diff(("    return slak  # EDD-like", "    return slack  # EDD-like")))
    msg = str(err.value)
    assert msg.startswith("edit 1: its SEARCH text was not found in the program (its first line is "
                          "'return slak  # EDD-like')")
    assert msg.endswith("Its REPLACE lines are already in the program, so the answer changes nothing.")


def test_a_block_that_matches_nowhere_is_skipped_when_the_others_stand_alone() -> None:
    completion = diff(
        ("    slack = d - t", "    slack = d - 2 * t"),
        ("    return slak  # EDD-like", "    return slack"),  # a typo: matches nowhere
    )
    edit = edit_child(PARENT, completion, "diff")
    assert "    slack = d - 2 * t\n" in edit.code
    assert edit.notes == ["edit 2: its SEARCH text was not found in the program (its first line "
                          "is 'return slak  # EDD-like'); skipped, the other edits were applied"]


def test_a_block_that_matches_nowhere_rejects_the_answer_when_another_needs_it() -> None:
    completion = diff(
        ("    slack = d - t", "    slack = urgency(d, t)"),
        ("def improve(sequence, p, d):\n    return sequence",  # not the parent's text
         "def urgency(d, t):\n    return d - t\n\n\ndef improve(sequence, p, d):\n    return sequence"),
    )
    completion = completion.replace("def improve(sequence, p, d):\n    return sequence\n=======",
                                    "def improve(seq, p, d):\n    return seq\n=======")
    with pytest.raises(EditError, match="The other edits use 'urgency', which this one defines"):
        apply_diff(PARENT, completion)


def test_a_block_repeated_in_the_same_answer_is_skipped() -> None:
    edit = edit_child(PARENT, diff(("    return sequence", "    return sequence[::-1]"),
                                   ("    return sequence", "    return sequence[::-1]")), "diff")
    assert edit.code.count("sequence[::-1]") == 1
    assert edit.notes == ["edit 2 repeats a change already made; skipped"]


def test_completion_without_diff_blocks_is_rejected() -> None:
    with pytest.raises(EditError, match="no SEARCH/REPLACE block found"):
        apply_diff(PARENT, "I would use the MDD rule instead.")
    with pytest.raises(EditError, match="no SEARCH/REPLACE block and no ```python code block"):
        apply_edit(PARENT, "I would use the MDD rule instead.", "diff")


def test_edit_that_changes_nothing_is_rejected() -> None:
    with pytest.raises(EditError, match="does not change the program"):
        apply_diff(PARENT, diff(("    return sequence", "    return sequence")))
    # Repeating a line outside the block unchanged is a no-op, not a violation.
    with pytest.raises(EditError, match="does not change the program"):
        apply_diff(PARENT, diff(("SCALE = 2.0", "SCALE = 2.0")))


def test_edit_that_breaks_syntax_reports_line_and_message() -> None:
    with pytest.raises(EditError, match=r"does not parse: .* at line 12: 'return slack \+'"):
        apply_diff(PARENT, diff(("    return slack  # EDD-like", "    return slack +")))


@pytest.mark.parametrize("mode", ["rewrite", "diff"])
def test_an_answer_with_a_null_byte_is_named_without_a_line_it_does_not_have(mode: str) -> None:
    """Python's SyntaxError for a null byte has no line: the model read "at its line None"."""
    reply = "```python\ndef priority(p, d, t):\n    return d\x00\n```"
    with pytest.raises(EditError) as failed:
        apply_edit(PARENT, reply, mode)
    assert str(failed.value).startswith("the code in the answer does not parse: source code string cannot contain "
                                        "null bytes; check brackets"), failed.value


def test_multiple_edits_apply_in_order_on_the_updated_text() -> None:
    completion = diff(
        ("    slack = d - t", "    slack = d - t - p"),
        ("    slack = d - t - p", "    slack = np.maximum(d - t - p, 0.0)"),
        ("    return sequence", "    return sequence[::-1]"),
    )
    child = apply_diff(PARENT, completion)
    assert "    slack = np.maximum(d - t - p, 0.0)\n" in child
    assert "    return sequence[::-1]\n" in child


def test_ambiguous_search_uses_the_first_match_inside_a_block() -> None:
    parent = "# EVOLVE-BLOCK-START\nx = 1\nx = 1\n# EVOLVE-BLOCK-END\nx = 1\n"
    assert apply_diff(parent, diff(("x = 1", "x = 2"))) == parent.replace("x = 1", "x = 2", 1)
    outside_first = "x = 1\n# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n"
    assert apply_diff(outside_first, diff(("x = 1", "x = 3"))) == (
        "x = 1\n# EVOLVE-BLOCK-START\nx = 3\n# EVOLVE-BLOCK-END\n"
    )


def rewrite_of(block: str, frame_change: str = "") -> str:
    program = PARENT.replace("    slack = d - t\n    return slack  # EDD-like\n", block).replace(
        "SCALE = 2.0", frame_change or "SCALE = 2.0"
    )
    return f"New rule below.\n\n```python\n{program}```\n"


def test_rewrite_splices_block_and_keeps_the_frame_verbatim() -> None:
    completion = rewrite_of("    return np.maximum(d, t + p)\n", frame_change="SCALE = 99.0")
    child = apply_rewrite(PARENT, completion)
    assert "    return np.maximum(d, t + p)\n" in child
    assert "SCALE = 2.0" in child and "SCALE = 99.0" not in child
    assert (
        child.replace(
            "    return np.maximum(d, t + p)\n", "    slack = d - t\n    return slack  # EDD-like\n"
        )
        == PARENT
    )


def test_rewrite_uses_the_last_fenced_program() -> None:
    first = rewrite_of("    return d\n")
    last = rewrite_of("    return d + 0.5 * p\n")
    child = apply_edit(PARENT, first + "\nOn second thought:\n" + last, "rewrite")
    assert "    return d + 0.5 * p\n" in child


def test_rewrite_requires_markers_and_matching_block_count() -> None:
    no_markers = "```python\ndef priority(t, p, d):\n    return d\n```"
    with pytest.raises(EditError, match="contains no '# EVOLVE-BLOCK-START'"):
        apply_rewrite(PARENT, no_markers)
    two_blocks = (
        rewrite_of("    return d\n")
        + "\n```python\n# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n```"
    )
    with pytest.raises(EditError, match="has 2 EVOLVE-BLOCKs but the program has 1"):
        apply_rewrite(PARENT, two_blocks)


def test_rewrite_that_changes_only_the_frame_is_a_no_op() -> None:
    with pytest.raises(EditError, match="does not change the program"):
        apply_rewrite(
            PARENT, rewrite_of("    slack = d - t\n    return slack  # EDD-like\n", "SCALE = 5.0")
        )


def test_apply_edit_dispatches_on_mode() -> None:
    assert "t + p" in apply_edit(
        PARENT, diff(("    slack = d - t", "    slack = d - (t + p)")), "diff"
    )
    with pytest.raises(EditError, match="no SEARCH/REPLACE block"):
        apply_edit(PARENT, "I would lower the slack.", "diff")


def test_a_whole_program_answered_to_a_diff_prompt_is_taken_as_a_rewrite() -> None:
    assert apply_edit(PARENT, rewrite_of("    return d\n"), "diff") == apply_rewrite(
        PARENT, rewrite_of("    return d\n")
    )


def test_normalize_and_hash_ignore_layout_and_comments() -> None:
    a = "def f(x):\n    # a comment\n    return x+1\n"
    b = "def f( x ):\n\n    return (x + 1)  # another\n"
    c = "def f(x):\n    return x + 2\n"
    assert normalize_code(a) == normalize_code(b)
    assert code_hash(a) == code_hash(b)
    assert code_hash(a) != code_hash(c)
    assert len(code_hash(a)) == 64


def test_normalize_falls_back_to_stripped_lines_for_unparsable_code() -> None:
    assert normalize_code("def f(:\n    # c\n    return 1\n") == normalize_code(
        "def f(:\n  return 1"
    )


@pytest.mark.parametrize("terms, refused", [(60, False), (300, True)])
def test_a_child_nesting_too_deep_is_refused_before_any_reader_recurses(terms: int, refused: bool) -> None:
    """A sum of n terms nests n levels; past MAX_NESTING the edit is refused with its reason."""
    from evolve.edits.blocks import MAX_NESTING, TOO_DEEP

    deep = "    return " + " + ".join(["slack"] * terms) + "\n"
    reply = ("<<<<<<< SEARCH\n    return slack  # EDD-like\n=======\n" + deep + ">>>>>>> REPLACE\n")
    assert (terms > MAX_NESTING) is refused
    if refused:
        with pytest.raises(EditError, match="levels deep") as caught:
            apply_edit(PARENT, reply, "diff")
        assert str(caught.value) == TOO_DEEP
    else:
        assert deep in apply_edit(PARENT, reply, "diff")


def test_nesting_counts_the_levels_of_the_tree() -> None:
    import ast

    from evolve.edits.blocks import nesting

    assert nesting(ast.parse("pass")) == 2  # Module, Pass
    assert nesting(ast.parse("x = 1")) == 4  # Module, Assign, Name, Store
    # Module, If, If, the inner test's Name, its Load
    assert nesting(ast.parse("if a:\n    if b:\n        pass\n")) == 5
    assert nesting(ast.parse("y = " + "-" * 40 + "x")) == 44  # Module, Assign, 40 UnaryOps, Name, Load


# Programs whose top-level statements the hash and the nesting check work out one by one.
STATEMENT_CASES = [
    '"""A module docstring (written apart by ast.unparse)."""\nimport math\n\n\ndef f(x):\n    return x\n',
    "import numpy as np\nA = 1; B = (2 +\n     3)  # a comment\n@staticmethod\n@ dec(1)\ndef f(x):\n    'doc'\n"
    "    return x\nclass C(object):\n    x: int = 1\n\n    async def g(self):\n        await h()\n"
    "async def k():\n    pass\nif A:\n    pass\nelif B:\n    x = f'{A!r:>{B}}'\nelse:\n    pass\n",
    "x = 1\r\ndef f():\r\n    return x\r\n",  # lines counted otherwise: worked out whole
    "def f(x):\n    return x\n\n\ndef f(x):\n    return x\n",  # the same statement twice
    "",
]


@pytest.mark.parametrize("code", STATEMENT_CASES)
def test_the_hash_and_the_nesting_are_those_of_the_whole_module(code: str) -> None:
    """normalize_code is ast.unparse of the module and the nesting check nesting() of it,
    though both are worked out statement by statement (each kept by its exact source)."""
    import ast

    from evolve.edits.blocks import _module_nesting, nesting

    tree = ast.parse(code)
    for _ in range(2):  # worked out, then kept
        assert normalize_code(code) == ast.unparse(tree)
        assert _module_nesting(code, tree) == nesting(tree)


def test_a_statement_kept_from_one_program_is_the_same_in_another_wherever_it_stands() -> None:
    """A child moves its parent's statements to other lines (and may repeat a line's text with
    other statements on it): each is found by its own source, never by another's."""
    import ast

    from evolve.edits.blocks import TOO_DEEP, syntax_error

    parent = "def f(x):\n    return x\n\n\ndef g(y):\n    return y + 1\n"
    child = "import math\n\n\ndef f(x):\n    return math.floor(x)\n\n\ndef g(y):\n    return y + 1\n"
    assert normalize_code(parent) == ast.unparse(ast.parse(parent))
    assert normalize_code(child) == ast.unparse(ast.parse(child))
    # The same line, different statements on it.
    assert normalize_code("a = 1; b = 2\n") == "a = 1\nb = 2"
    assert normalize_code("b = 2; a = 1\n") == "b = 2\na = 1"
    # A statement too deep stays too deep where a kept one is shallow.
    deep = "def g(y):\n    return " + " + ".join(["y"] * 300) + "\n"
    assert syntax_error(parent) is None and syntax_error("def f(x):\n    return x\n\n\n" + deep) == TOO_DEEP


LONG = "x" * 70  # past unparse.MIN_MEMO_CHARS: from the memo the second time
LITERAL_CASES = [
    f'def f():\n    """{LONG}\n    second line, a tab:\t, ends in a quote: x"\n    """\n    return 1\n',
    f"def f():\n    '''{LONG} with \"\"\" inside and a backslash \\\\ and \\x00'''\n    return 1\n",
    f"x = '{LONG} every quote: \\' \" \"\"\" \\'\\'\\' and a newline \\n'\n",  # repr's fallback
    f"x = f'{LONG} {{y!r:>{{w}}}} and {LONG}\\n'\n",  # an f-string's constant parts
    f"x = '{LONG} ünïcødé and \\u2028 and \\r'\n",
    f"class C:\n    u'{LONG} a u-prefixed docstring'\n    y = b'{LONG}'\n",
]


@pytest.mark.parametrize("code", LITERAL_CASES)
def test_long_string_literals_are_written_as_ast_unparse_writes_them(code: str) -> None:
    """The hash's unparser keeps each long literal's escaped text; what it writes is
    ast.unparse's to the character, the first time and from the memo."""
    import ast

    from evolve.edits.unparse import unparse

    tree = ast.parse(code)
    assert unparse(tree) == ast.unparse(tree)
    assert unparse(tree) == ast.unparse(tree)
    for node in tree.body:
        assert unparse(node) == ast.unparse(node)


def test_the_shipped_programs_hash_as_ast_unparse_writes_them() -> None:
    import ast
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = sorted([*root.glob("problems/*/seed.py"), *root.glob("problems/*/baselines/*.py")])
    assert len(files) > 10
    for path in files:
        code = path.read_text()
        for _ in range(2):
            expected = hashlib.sha256(ast.unparse(ast.parse(code)).encode("utf-8")).hexdigest()
            assert code_hash(code) == expected, path
