"""Finding a SEARCH part in the program, with the tolerance of a careful reader,
and saying where the nearest thing is when it is not there.

SEARCH is looked up exactly, then with whitespace drift (trailing spaces,
blank lines), then with the indentation shifted by a constant, then with the
indentation scaled (a model writing 2-space indents against 4-space code).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from evolve.edits.blocks import inside
from evolve.edits.indent import Reindent, continuation_lines, indent_scale, indent_width


@dataclass(frozen=True)
class Match:
    start: int  # parent lines [start, end) matched by SEARCH
    end: int
    reindent: Reindent | None = None  # None: matched exactly, REPLACE is taken as written

    @property
    def tolerant(self) -> bool:
        return self.reindent is not None

    def placed(self, lines: list[str], tab: bool) -> list[str]:
        """REPLACE lines in the program's indentation."""
        return lines if self.reindent is None else self.reindent.apply(lines, tab)


def find_matches(lines: list[str], search: list[str]) -> list[Match]:
    """All matches at the strictest level that has any: exact, drifted, shifted, scaled."""
    n = len(search)
    exact = [Match(i, i + n) for i in range(len(lines) - n + 1) if lines[i: i + n] == search]
    if exact:
        return exact
    wanted = [s.rstrip() for s in search if s.strip()]
    if not wanted:
        return []
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    levels: dict[str, list[Match]] = {"same": [], "shifted": [], "scaled": []}
    k = len(wanted)
    stripped = [w.strip() for w in wanted]
    structural = [not c for c in continuation_lines(wanted)]
    search_w = [indent_width(w) for w, keep in zip(wanted, structural, strict=True) if keep]
    for j in range(len(nonblank) - k + 1):
        idx = nonblank[j: j + k]
        if any(lines[i].strip() != s for i, s in zip(idx, stripped, strict=True)):
            continue
        program = [indent_width(lines[i]) for i, keep in zip(idx, structural, strict=True) if keep]
        scale = indent_scale(program, search_w)
        if scale is None:
            continue
        m = Match(idx[0], idx[-1] + 1, Reindent(program[0], search_w[0], scale))
        level = "scaled" if scale != 1 else "same" if program[0] == search_w[0] else "shifted"
        levels[level].append(m)
    return levels["same"] or levels["shifted"] or levels["scaled"]


def first_line(text_lines: list[str]) -> str:
    return next((line.strip() for line in text_lines if line.strip()), "")


def not_found_hint(lines: list[str], search: list[str], blocks: list[tuple[int, int]]) -> str:
    """A sentence on where SEARCH comes closest to the program ("" if nowhere)."""
    return _partial_match(lines, search) or _closest_line(lines, first_line(search), blocks)


def _closest_line(lines: list[str], wanted: str, blocks: list[tuple[int, int]]) -> str:
    if not wanted:
        return ""
    best, best_i = 0.0, -1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        ratio = difflib.SequenceMatcher(None, wanted, line.strip()).ratio()
        # Prefer editable lines on ties: they are the ones the model may edit.
        if ratio > best or (ratio == best and inside(blocks, i, i + 1)):
            best, best_i = ratio, i
    if best < 0.5:
        return ""
    return f" The closest line in the program is line {best_i + 1}: {lines[best_i].strip()!r}."


def _partial_match(lines: list[str], search: list[str]) -> str:
    """Where the longest run of leading SEARCH lines matches, and what breaks it."""
    wanted = [w.strip() for w in search if w.strip()]
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    best_len, best_at = 0, 0
    for j in range(len(nonblank)):
        k = 0
        while k < len(wanted) and j + k < len(nonblank) and lines[nonblank[j + k]].strip() == wanted[k]:
            k += 1
        if k > best_len:
            best_len, best_at = k, j
    if best_len == 0 or best_len == len(wanted):
        return ""
    start = nonblank[best_at] + 1
    if best_at + best_len >= len(nonblank):
        return f" Its first {best_len} line(s) match from line {start}, then the program ends."
    at = nonblank[best_at + best_len]
    return (f" Its first {best_len} line(s) match from line {start}, but its next line "
            f"{wanted[best_len]!r} differs from line {at + 1}: {lines[at].strip()!r}.")
