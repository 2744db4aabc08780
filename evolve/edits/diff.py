"""Applying SEARCH/REPLACE pairs to a program, as a careful reader would.

Each SEARCH is found by ``matching.py`` (exactly, or with whitespace and
indentation drift) and its REPLACE is re-indented the same way; only lines
inside the EVOLVE-BLOCKs may change.  An edit whose SEARCH is nowhere may be
skipped when the others stand without it.  Reading the pairs out of an answer
is ``diff_parse.py``'s job.
"""

from __future__ import annotations

import re

from evolve.edits.blocks import (
    MARKER_RE,
    EditError,
    describe_blocks,
    evolve_blocks,
    inside,
    is_elision,
    syntax_error,
)
from evolve.edits.diff_parse import parse_diff, parse_unified
from evolve.edits.indent import indent_unit, rescaled
from evolve.edits.matching import Match, find_matches, first_line, not_found_hint

__all__ = ["SearchNotFound", "apply_one", "apply_pairs", "parse_diff", "parse_unified"]


def _split_lines(text: str) -> list[str]:
    # An empty REPLACE means "delete"; "".split("\n") would give one blank line.
    return text.split("\n") if text else []


def _strip_blank_edges(lines: list[str]) -> tuple[int, int]:
    lo, hi = 0, len(lines)
    while lo < hi and not lines[lo].strip():
        lo += 1
    while hi > lo and not lines[hi - 1].strip():
        hi -= 1
    return lo, hi


def _changed_span(lines: list[str], m: Match, new: list[str]) -> tuple[int, int, int, int]:
    """Trim context lines that the edit leaves unchanged.

    Models often quote a marker or a line outside the block as context and
    repeat it verbatim in REPLACE; only the lines that really change are
    checked against the blocks.  Returns (start, end) in the parent and
    (lo, hi) in ``new``.
    """
    old = lines[m.start: m.end]
    pre = 0
    while pre < min(len(old), len(new)) and old[pre].rstrip() == new[pre].rstrip():
        pre += 1
    post = 0
    while (
        post < min(len(old), len(new)) - pre
        and old[len(old) - 1 - post].rstrip() == new[len(new) - 1 - post].rstrip()
    ):
        post += 1
    return m.start + pre, m.end - post, pre, len(new) - post


class SearchNotFound(EditError):
    """SEARCH matches nowhere; the other blocks of the answer may still apply."""


def _already_applied(lines: list[str], replace: list[str]) -> bool:
    """REPLACE is already in the program (a block repeated in the same answer)."""
    wanted = [r.strip() for r in replace if r.strip()]
    if not wanted:
        return False
    program = [line.strip() for line in lines if line.strip()]
    return any(program[i: i + len(wanted)] == wanted for i in range(len(program) - len(wanted) + 1))


def apply_one(lines: list[str], number: int, search_text: str, replace_text: str,
              rescale: bool = False) -> list[str]:
    """The lines after one SEARCH/REPLACE edit, or EditError saying why not.

    ``rescale`` re-indents REPLACE from the model's indent step (2 spaces) to
    the program's (4), for answers whose new lines alone use another step.
    """
    blocks = evolve_blocks("\n".join(lines))
    search = _split_lines(search_text)
    replace = _split_lines(replace_text)
    if not any(s.strip() for s in search):
        raise EditError(f"edit {number} has an empty SEARCH part; copy the exact lines to be "
                        "replaced from the current program into it")
    if any(MARKER_RE.match(r) for r in replace) and not any(MARKER_RE.match(s) for s in search):
        raise EditError(f"edit {number} adds an EVOLVE-BLOCK marker line; the markers are fixed "
                        "and may not be added, moved or removed")
    if any(is_elision(r) for r in replace) and not any(is_elision(s) for s in search):
        raise EditError(f"edit {number} elides code in REPLACE ('...' or 'rest unchanged'); "
                        "REPLACE must hold every new line in full")
    matches = find_matches(lines, search)
    if not matches:
        first = first_line(search)
        hint = not_found_hint(lines, search, blocks)
        raise SearchNotFound(
            f"edit {number}: its SEARCH text was not found in the program (its first line is "
            f"{first!r}).{hint} SEARCH must repeat the current lines exactly, including "
            "indentation, in program order")
    tab = any(line.startswith("\t") for line in lines)
    candidates = []
    for m in matches:
        new = m.placed(replace, tab)
        if rescale:
            new = rescaled(new, indent_unit(lines))
        if not tab:  # a model's tab in space-indented code would be a TabError
            new = [r.expandtabs(4) if r.startswith("\t") else r for r in new]
        if m.tolerant:
            # Blank edges of SEARCH were not matched; drop the same number of
            # blank edges from REPLACE so spacing does not grow on every edit.
            s_lo, s_hi = _strip_blank_edges(search)
            r_lo, r_hi = _strip_blank_edges(new)
            new = new[min(s_lo, r_lo): len(new) - min(len(search) - s_hi, len(new) - r_hi)]
        span = _changed_span(lines, m, new)
        if span[0] == span[1] and span[2] == span[3]:
            return lines  # REPLACE repeats SEARCH; the whole-answer no-op check reports it
        candidates.append((m, new, span))
    for _m, new, (a, b, lo, hi) in candidates:
        if inside(blocks, a, b):
            if any(MARKER_RE.match(r) for r in new[lo:hi]):
                raise EditError(f"edit {number} changes an EVOLVE-BLOCK marker line; the markers "
                                "are fixed and may not be added, moved or removed")
            return lines[:a] + new[lo:hi] + lines[b:]
    _m, _new, (a, b, _lo, _hi) = candidates[0]
    if b - a > 1:
        where = f"changes lines {a + 1}-{b}"
    elif b - a == 1:
        where = f"changes line {b}"
    else:
        where = f"inserts lines before line {a + 1}"
    if not blocks:
        raise EditError(f"edit {number} {where}, but the program has no EVOLVE-BLOCK")
    raise EditError(f"edit {number} {where}, outside {describe_blocks(blocks)}; only code between "
                    "the markers may change")


_DEFINED_RE = re.compile(r"^\s*(?:def|class)\s+([A-Za-z_]\w*)|^\s*([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)")


def _defined(text: str) -> set[str]:
    names = set()
    for line in text.split("\n"):
        m = _DEFINED_RE.match(line)
        if m:
            names.add(m.group(1) or m.group(2))
    return names


def apply_pairs(parent: str, pairs: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """Apply the edits (see :func:`_apply_pairs`); if the result's indentation is broken
    because the new lines use another indent step, re-indent them as a careful reader would."""
    child, notes = _apply_pairs(parent, pairs, rescale=False)
    error = syntax_error(child)
    if error is None or "indent" not in error:
        return child, notes
    try:
        again, again_notes = _apply_pairs(parent, pairs, rescale=True)
    except EditError:
        return child, notes
    if syntax_error(again) is not None:
        return child, notes
    return again, [*again_notes, f"re-indented the new lines to the program's "
                                 f"{indent_unit(parent.split(chr(10)))}-space steps"]


def _apply_pairs(parent: str, pairs: list[tuple[str, str]], rescale: bool) -> tuple[str, list[str]]:
    """Apply the edits in order; returns the new text and notes on edits that were skipped.

    An edit whose SEARCH matches nowhere is skipped when its REPLACE is already
    in the program (the model repeated a block) or when the edits that did
    apply do not use a name it defines: a careful reader applies the hunks of
    a patch that stand on their own.  Any other failure rejects the answer.
    """
    lines = parent.split("\n")
    applied: list[str] = []
    skipped: list[tuple[SearchNotFound, str]] = []
    repeated: list[SearchNotFound] = []
    notes: list[str] = []
    for number, (search, replace) in enumerate(pairs, start=1):
        try:
            lines = apply_one(lines, number, search, replace, rescale)
            applied.append(replace)
        except SearchNotFound as err:
            if _already_applied(lines, _split_lines(replace)):
                notes.append(f"edit {number} repeats a change already made; skipped")
                repeated.append(err)
            else:
                skipped.append((err, replace))
    if skipped and not applied:
        raise skipped[0][0]
    if repeated and not applied:  # say why nothing changed: the SEARCH, not "no change" alone
        raise EditError(f"{repeated[0]} Its REPLACE lines are already in the program, so the answer "
                        "changes nothing.")
    parent_text = "\n".join(parent.split("\n"))
    for err, replace in skipped:
        needed = {n for n in _defined(replace) if n not in _defined(parent_text)}
        used = [n for n in needed if any(re.search(rf"\b{re.escape(n)}\b", a) for a in applied)]
        if used:
            raise EditError(f"{err} The other edits use {used[0]!r}, which this one defines, so "
                            "none was applied") from None
        notes.append(f"{str(err).split('.')[0]}; skipped, the other edits were applied")
    return "\n".join(lines), notes
