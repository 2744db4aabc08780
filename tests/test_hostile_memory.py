"""What the controller keeps of a model's texts is bounded by their size, not only their number.

A model writes programs of up to MAX_PROGRAM_CHARS (256 KiB) and replies of up to MAX_REPLY_CHARS
(1 MiB), and the controller memoises what it works out from them: a parse (an ``ast`` tree holds up
to ~350 bytes per character of its code: 90 MB for a 256 KiB program of ``a;``), diffs, idea lines.
Those memos were ``lru_cache``s bounded by entries: 16 trees of the largest programs held ~1.4 GB,
4,096 replies' idea lines 4 GiB (fifteenth red team). Memory is measured with tracemalloc (what
Python allocated and still holds), not time.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref

from evolve.edits import MAX_PROGRAM_CHARS, code_hash, parse_module
from evolve.edits.blocks import syntax_error
from evolve.prompt_history import _idea
from evolve.prompt_programs import changed_functions
from evolve.records import MAX_REPLY_CHARS
from evolve.text_cache import text_cache

MB = 1_000_000


def _statement_soup(k: int) -> str:
    """A program of ~MAX_PROGRAM_CHARS that parses into the largest tree per character found
    (a name expression per two characters); ``k`` makes each one different."""
    head = f"import numpy as np\n\n# EVOLVE-BLOCK-START\ndef priority(x):\n    return x * {k}.0\n\n\n"
    tail = "# EVOLVE-BLOCK-END\n"
    soup = "a;" * ((MAX_PROGRAM_CHARS - len(head) - len(tail) - 200) // 2)
    return head + soup + "\n" + tail


def _held_after(work) -> int:  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.start()
    try:
        work()
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return held


def test_parses_of_the_largest_programs_are_kept_within_a_bound() -> None:
    programs = [_statement_soup(k) for k in range(4)]
    assert all(len(p) <= MAX_PROGRAM_CHARS for p in programs)
    trees = []
    for program in programs:  # what the controller does with each child: check, hash, read its rules
        assert syntax_error(program) is None
        code_hash(program)
        trees.append(weakref.ref(parse_module(program)))
    gc.collect()
    # Before: all were kept (six held 650 MB by tracemalloc, ~100 MB a tree); now two at most.
    assert sum(ref() is not None for ref in trees) <= 2


def test_replies_and_programs_are_kept_within_a_bound_of_characters() -> None:
    parent = "import numpy as np\n\n# EVOLVE-BLOCK-START\ndef priority(x):\n    return x\n# EVOLVE-BLOCK-END\n"

    def prompts() -> None:  # each prompt reads the idea line of each attempt and what its edit changed
        for k in range(100):  # as the archive hands them out: read, used, let go
            reply = f"idea {k}: try a thing\n" + chr(ord("a") + k % 26) * (MAX_REPLY_CHARS - 30)
            assert _idea(reply, 160).startswith(f"idea {k}")
            changed_functions(parent, parent.replace("return x", f"return x * {k}  # {'#' * 200_000}"))

    held = _held_after(prompts)
    # Before: the 100 replies (100 MiB) and 100 programs of 200 KB were kept; now 16 MiB of
    # arguments per memo.
    assert held < 80 * MB, f"{held / MB:.0f} MB held after 100 replies of 1 MiB"


def test_the_text_cache_keeps_what_fits_and_forgets_the_oldest() -> None:
    calls: list[str] = []

    @text_cache(maxsize=3, max_chars=10)
    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    assert [upper("abc"), upper("abc")] == ["ABC", "ABC"] and calls == ["abc"]
    upper("defg")
    upper("hijk")  # 11 characters in all: "abc", the oldest, goes
    assert upper.cache_info() == (2, 8)
    upper("abc")
    assert calls == ["abc", "defg", "hijk", "abc"]
    upper("x" * 11)  # larger than the whole bound: worked out, not kept
    assert upper.cache_info() == (2, 7) and upper("x" * 11) == "X" * 11 and calls.count("x" * 11) == 2
    for text in "lmnop":
        upper(text)
    assert upper.cache_info()[0] == 3  # maxsize still holds
