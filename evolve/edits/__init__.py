"""Turn a model's reply into a child program, or say precisely why not.

A reply is read the way a careful human reads it (see docs/edits.md): the
thinking section is set aside, then the answer is taken as whichever of these
it holds and applies cleanly, the requested format first:

* ``diff``: ``<<<<<<< SEARCH`` / ``=======`` / ``>>>>>>> REPLACE`` blocks
  (or a unified diff), applied in order to the parent;
* ``program``: a whole program with its ``# EVOLVE-BLOCK-START`` /
  ``# EVOLVE-BLOCK-END`` markers, of which only the blocks are taken;
* ``definitions``: code without markers (the block alone, the function that
  changes, or a whole program): each definition replaces the one of the same
  name in the blocks.

Only lines between the markers may change.  Every failure raises
:class:`EditError` whose message is one paragraph meant to be shown to the
model in its next prompt, so it names the edit, the lines and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from evolve.edits.blocks import (
    END_MARKER,
    MAX_PROGRAM_CHARS,
    START_MARKER,
    TOO_DEEP,
    EditError,
    block_text,
    check_child,
    code_hash,
    evolve_blocks,
    normalize_code,
    parse_module,
)
from evolve.edits.code import has_markers, merge_definitions, splice_program
from evolve.edits.diff import apply_pairs
from evolve.edits.diff_parse import parse_diff, parse_unified
from evolve.edits.reply import normalise_newlines, python_blocks, split_thinking

__all__ = [
    "END_MARKER",
    "START_MARKER",
    "Edit",
    "EditError",
    "apply_diff",
    "apply_edit",
    "apply_rewrite",
    "block_text",
    "code_hash",
    "edit_child",
    "evolve_blocks",
    "normalize_code",
    "parse_module",
    "parse_diff",
]

Form = Literal["diff", "unified diff", "program", "definitions"]


@dataclass(frozen=True)
class Edit:
    """A child program and how the reply was read."""

    code: str
    form: Form
    notes: list[str] = field(default_factory=list)  # e.g. a skipped block, a moved helper
    thinking: str = ""  # the reply's thinking section, never parsed for edits


def _diff(parent: str, answer: str) -> tuple[str, list[str]] | None:
    pairs = parse_diff(answer)
    return apply_pairs(parent, pairs) if pairs else None


def _unified(parent: str, answer: str) -> tuple[str, list[str]] | None:
    pairs = parse_unified(answer)
    return apply_pairs(parent, pairs) if pairs else None


def _program(parent: str, answer: str) -> tuple[str, list[str]] | None:
    marked = [body for body in python_blocks(answer) if has_markers(body)]
    if marked:
        return splice_program(parent, marked[-1])
    if has_markers(answer) and not python_blocks(answer):
        return splice_program(parent, answer)  # an unfenced program
    return None


def _definitions(parent: str, answer: str) -> tuple[str, list[str]] | None:
    codes = [body for body in python_blocks(answer) if body.strip() and not has_markers(body)]
    if not codes and not python_blocks(answer) and _looks_like_code(answer):
        codes = [answer]  # unfenced code
    return merge_definitions(parent, codes) if codes else None


def _looks_like_code(text: str) -> bool:
    import ast

    if len(text) > MAX_PROGRAM_CHARS:  # not parsed: no program is that long (blocks.MAX_PROGRAM_CHARS)
        return False
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in tree.body)


_READERS: dict[Form, Callable[[str, str], tuple[str, list[str]] | None]] = {
    "diff": _diff, "unified diff": _unified, "program": _program, "definitions": _definitions,
}
_ORDER: dict[str, tuple[Form, ...]] = {
    "diff": ("diff", "unified diff", "program", "definitions"),
    "rewrite": ("program", "definitions", "diff", "unified diff"),
}


def edit_child(parent: str, completion: str, mode: Literal["diff", "rewrite"]) -> Edit:
    """Read ``completion`` as an edit of ``parent``; the requested ``mode`` is tried first.

    The first reading that yields a valid child wins. If none does, the error
    of the first reading the answer holds is raised (a diff answer that does
    not apply is reported as such, not as a missing program).
    """
    if mode not in _ORDER:
        raise ValueError(f"unknown edit mode {mode!r}; expected 'diff' or 'rewrite'")
    if not evolve_blocks(parent):
        raise EditError("the program has no EVOLVE-BLOCK, so nothing in it may change")
    reply = split_thinking(completion)
    parent = normalise_newlines(parent)
    first_error: EditError | None = None
    for form in _ORDER[mode]:
        try:
            read = _READERS[form](parent, reply.answer)
            if read is None:
                continue
            child, notes = read
            return Edit(check_child(parent, child), form, notes, reply.thinking)
        except EditError as err:
            first_error = first_error or err
        except (RecursionError, MemoryError):  # the answer's code is deeper than the parser goes
            first_error = first_error or EditError(TOO_DEEP)
    if first_error is not None:
        raise first_error
    if not reply.answer.strip() and reply.thinking:
        raise EditError("the answer holds only a thinking section, no edit (was it cut off "
                        "before the answer?)")
    raise EditError("the answer holds no SEARCH/REPLACE block and no ```python code block")


def apply_edit(parent: str, completion: str, mode: Literal["diff", "rewrite"]) -> str:
    """The child program of ``completion`` (see :func:`edit_child`)."""
    return edit_child(parent, completion, mode).code


def apply_diff(parent: str, completion: str) -> str:
    """Apply every SEARCH/REPLACE block of ``completion`` in order (diff answers only)."""
    if not evolve_blocks(parent):
        raise EditError("the program has no EVOLVE-BLOCK, so nothing in it may change")
    answer = split_thinking(completion).answer
    pairs = parse_diff(answer)
    if not pairs:
        raise EditError("no SEARCH/REPLACE block found")
    child, _notes = apply_pairs(normalise_newlines(parent), pairs)
    return check_child(parent, child)


def apply_rewrite(parent: str, completion: str) -> str:
    """Splice the blocks of a whole-program answer (with markers) into the parent."""
    if not evolve_blocks(parent):
        raise EditError("the program has no EVOLVE-BLOCK, so nothing in it may change")
    answer = split_thinking(completion).answer
    marked = [body for body in python_blocks(answer) if has_markers(body)]
    child, _notes = splice_program(parent, marked[-1] if marked else answer)
    return check_child(parent, child)
