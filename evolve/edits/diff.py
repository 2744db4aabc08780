"""SEARCH/REPLACE blocks (and unified diffs), applied with the tolerance of a careful reader.

SEARCH is looked up exactly, then with whitespace drift (trailing spaces,
blank lines), then with the indentation shifted by a constant, then with the
indentation scaled (a model writing 2-space indents against 4-space code).
REPLACE is re-indented the same way.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from evolve.edits.blocks import (
    MARKER_RE,
    EditError,
    describe_blocks,
    evolve_blocks,
    inside,
    is_elision,
    syntax_error,
)
from evolve.edits.reply import is_fence_line

# Models drift on the marker lines (7 vs 8 '<', missing or extra spaces, the
# older ORIGINAL/UPDATED words); five or more of the character is unambiguous
# enough in Python source.
_SEARCH_RE = re.compile(r"^\s*<{5,}\s*(?:SEARCH|ORIGINAL)\s*$")
_DIVIDER_RE = re.compile(r"^\s*={5,}\s*$")
_REPLACE_RE = re.compile(r"^\s*>{5,}\s*(?:REPLACE|UPDATED)\s*$")
_HUNK_RE = re.compile(r"^@@ .*@@")


def parse_diff(text: str) -> list[tuple[str, str]]:
    """``(search, replace)`` pairs in order of appearance.

    Fences and prose around the blocks are ignored, as are fence lines at the
    edges of a SEARCH or REPLACE part.  A block that is opened but not
    completed raises :class:`EditError` (typically a truncated answer).
    """
    pairs: list[tuple[str, str]] = []
    state = "out"  # out -> search -> replace -> out
    search: list[str] = []
    replace: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if state == "out":
            if _SEARCH_RE.match(line):
                state, search, replace = "search", [], []
        elif state == "search":
            if _DIVIDER_RE.match(line):
                state = "replace"
            elif _SEARCH_RE.match(line) or _REPLACE_RE.match(line):
                raise EditError(f"edit {len(pairs) + 1} has no '=======' line between its SEARCH "
                                "and REPLACE parts")
            else:
                search.append(line)
        else:
            if _REPLACE_RE.match(line):
                pairs.append(("\n".join(_unfenced(search)), "\n".join(_unfenced(replace))))
                state = "out"
            elif _SEARCH_RE.match(line):
                raise EditError(f"edit {len(pairs) + 1} is not closed by '>>>>>>> REPLACE' before "
                                "the next SEARCH")
            else:
                replace.append(line)
    if state != "out":
        raise EditError(f"edit {len(pairs) + 1} is not closed by '>>>>>>> REPLACE' (was the answer "
                        "cut off?)")
    return pairs


def _unfenced(lines: list[str]) -> list[str]:
    """Drop a fence line a model put at the start or end of a SEARCH or REPLACE part."""
    out = list(lines)
    first = next((i for i, line in enumerate(out) if line.strip()), None)
    if first is not None and is_fence_line(out[first]):
        out = out[first + 1:]
    last = next((i for i in range(len(out) - 1, -1, -1) if out[i].strip()), None)
    if last is not None and is_fence_line(out[last]):
        out = out[:last]
    return out


def parse_unified(text: str) -> list[tuple[str, str]]:
    """``(search, replace)`` pairs from the hunks of a unified diff (line numbers ignored)."""
    pairs: list[tuple[str, str]] = []
    hunk: list[str] | None = None

    def close() -> None:
        if hunk:
            old = [h[1:] for h in hunk if h[:1] in (" ", "-", "")]
            new = [h[1:] for h in hunk if h[:1] in (" ", "+", "")]
            pairs.append(("\n".join(old), "\n".join(new)))

    for line in text.split("\n"):
        if _HUNK_RE.match(line):
            close()
            hunk = []
        elif hunk is not None and line[:1] in (" ", "-", "+", "") and not line.startswith(
                ("---", "+++")) and not is_fence_line(line):
            hunk.append(line)
        elif hunk is not None and line.startswith("\\"):
            continue  # "\ No newline at end of file"
        else:
            close()
            hunk = None
    close()
    # Trailing blank context lines are where the hunk ended, not part of it.
    return [(s.rstrip("\n"), r.rstrip("\n")) for s, r in pairs if s.strip() or r.strip()]


# --------------------------------------------------------------------------
# matching


def indent_width(line: str) -> int:
    stripped = line.lstrip()
    return len(line[: len(line) - len(stripped)].expandtabs(4))


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


@dataclass(frozen=True)
class _Match:
    start: int  # parent lines [start, end) matched by SEARCH
    end: int
    tolerant: bool
    base_program: int = 0  # indent of the first matched program line
    base_search: int = 0  # indent of the first SEARCH line
    scale: Fraction = Fraction(1)  # program indent steps per SEARCH indent step

    def reindent(self, lines: list[str], tab: bool) -> list[str]:
        """REPLACE lines in the program's indentation.

        A continuation line (inside brackets) keeps its offset from the start
        of its statement: its indentation is layout, not block structure.
        """
        if not self.tolerant:
            return lines
        out: list[str] = []
        shift = 0  # how far the current statement's first line moved
        for line, continued in zip(lines, continuation_lines(lines), strict=True):
            if not line.strip():
                out.append(line)
                continue
            old = indent_width(line)
            if continued:
                width = max(0, old + shift)
            else:
                width = max(0, int(round(self.base_program + self.scale * (old - self.base_search))))
                shift = width - old
            pad = "\t" * (width // 4) + " " * (width % 4) if tab else " " * width
            out.append(pad + line.lstrip())
        return out


_STRING_RE = re.compile(r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")


def continuation_lines(lines: list[str]) -> list[bool]:
    """Which lines continue a statement begun above (open brackets or a backslash)."""
    flags: list[bool] = []
    depth, backslash = 0, False
    for line in lines:
        flags.append(depth > 0 or backslash)
        code = _STRING_RE.sub("''", line).split("#", 1)[0]
        depth = max(0, depth + sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}"))
        backslash = code.rstrip().endswith("\\")
    return flags


def _indent_map(program: list[int], search: list[int]) -> Fraction | None:
    """The scale s with program_rel == s * search_rel for every line, if one exists."""
    rel_p = [p - program[0] for p in program]
    rel_s = [s - search[0] for s in search]
    if rel_p == rel_s:
        return Fraction(1)
    scale: Fraction | None = None
    for p, s in zip(rel_p, rel_s, strict=True):
        if s == 0:
            if p != 0:
                return None
            continue
        ratio = Fraction(p, s)
        if ratio <= 0 or (scale is not None and ratio != scale):
            return None
        scale = ratio
    return scale


def _find_matches(lines: list[str], search: list[str]) -> list[_Match]:
    """All matches at the strictest level that has any: exact, drifted, shifted, scaled."""
    n = len(search)
    exact = [_Match(i, i + n, False) for i in range(len(lines) - n + 1) if lines[i: i + n] == search]
    if exact:
        return exact
    wanted = [s.rstrip() for s in search if s.strip()]
    if not wanted:
        return []
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    levels: dict[str, list[_Match]] = {"same": [], "shifted": [], "scaled": []}
    k = len(wanted)
    stripped = [w.strip() for w in wanted]
    structural = [not c for c in continuation_lines(wanted)]
    search_w = [indent_width(w) for w, keep in zip(wanted, structural, strict=True) if keep]
    for j in range(len(nonblank) - k + 1):
        idx = nonblank[j: j + k]
        if any(lines[i].strip() != s for i, s in zip(idx, stripped, strict=True)):
            continue
        program = [indent_width(lines[i]) for i, keep in zip(idx, structural, strict=True) if keep]
        scale = _indent_map(program, search_w)
        if scale is None:
            continue
        m = _Match(idx[0], idx[-1] + 1, True, program[0], search_w[0], scale)
        level = "scaled" if scale != 1 else "same" if program[0] == search_w[0] else "shifted"
        levels[level].append(m)
    return levels["same"] or levels["shifted"] or levels["scaled"]


def _changed_span(lines: list[str], m: _Match, new: list[str]) -> tuple[int, int, int, int]:
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


def _first_line(text_lines: list[str]) -> str:
    return next((line.strip() for line in text_lines if line.strip()), "")


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


class SearchNotFound(EditError):
    """SEARCH matches nowhere; the other blocks of the answer may still apply."""


def _already_applied(lines: list[str], replace: list[str]) -> bool:
    """REPLACE is already in the program (a block repeated in the same answer)."""
    wanted = [r.strip() for r in replace if r.strip()]
    if not wanted:
        return False
    program = [line.strip() for line in lines if line.strip()]
    return any(program[i: i + len(wanted)] == wanted for i in range(len(program) - len(wanted) + 1))


def indent_unit(lines: list[str]) -> int:
    """The indentation step of code: the gcd of its statements' indent widths (4 if none)."""
    unit = 0
    for line, continued in zip(lines, continuation_lines(lines), strict=True):
        if line.strip() and not continued:
            unit = math.gcd(unit, indent_width(line))
    return unit or 4


def _rescaled(new: list[str], unit: int) -> list[str]:
    """REPLACE lines re-indented from the model's indent step to the program's ``unit``."""
    step = indent_unit(new)
    if step >= unit or unit % step:
        return new
    structural = [line for line, c in zip(new, continuation_lines(new), strict=True)
                  if line.strip() and not c]
    base = indent_width(structural[0]) if structural else 0
    match = _Match(0, 0, True, base, base, Fraction(unit, step))
    return match.reindent(new, tab=False)


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
    matches = _find_matches(lines, search)
    if not matches:
        first = _first_line(search)
        hint = _partial_match(lines, search) or _closest_line(lines, first, blocks)
        raise SearchNotFound(
            f"edit {number}: its SEARCH text was not found in the program (its first line is "
            f"{first!r}).{hint} SEARCH must repeat the current lines exactly, including "
            "indentation, in program order")
    tab = any(line.startswith("\t") for line in lines)
    candidates = []
    for m in matches:
        new = m.reindent(replace, tab)
        if rescale:
            new = _rescaled(new, indent_unit(lines))
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
    notes: list[str] = []
    for number, (search, replace) in enumerate(pairs, start=1):
        try:
            lines = apply_one(lines, number, search, replace, rescale)
            applied.append(replace)
        except SearchNotFound as err:
            if _already_applied(lines, _split_lines(replace)):
                notes.append(f"edit {number} repeats a change already made; skipped")
            else:
                skipped.append((err, replace))
    if skipped and not applied:
        raise skipped[0][0]
    parent_text = "\n".join(parent.split("\n"))
    for err, replace in skipped:
        needed = {n for n in _defined(replace) if n not in _defined(parent_text)}
        used = [n for n in needed if any(re.search(rf"\b{re.escape(n)}\b", a) for a in applied)]
        if used:
            raise EditError(f"{err} The other edits use {used[0]!r}, which this one defines, so "
                            "none was applied") from None
        notes.append(f"{str(err).split('.')[0]}; skipped, the other edits were applied")
    return "\n".join(lines), notes
