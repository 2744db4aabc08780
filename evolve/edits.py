"""Turn a model's completion into a child program, or say precisely why not.

Two answer formats are accepted (see docs/edits.md):

* ``diff``: one or more ``<<<<<<< SEARCH`` / ``=======`` / ``>>>>>>> REPLACE``
  blocks, applied in order to the parent;
* ``rewrite``: the whole program in a fenced ```python block, of which only
  the text between the ``# EVOLVE-BLOCK-START`` / ``# EVOLVE-BLOCK-END``
  markers is taken.

Only lines between the markers may change.  Every failure raises
:class:`EditError` whose message is one paragraph meant to be shown to the
model in its next prompt, so it names the edit, the lines and the fix.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "EditError",
    "apply_diff",
    "apply_edit",
    "apply_rewrite",
    "block_text",
    "code_hash",
    "evolve_blocks",
    "normalize_code",
    "parse_diff",
]

START_MARKER = "# EVOLVE-BLOCK-START"
END_MARKER = "# EVOLVE-BLOCK-END"

_MARKER_RE = re.compile(r"^\s*#\s*EVOLVE-BLOCK-(START|END)\b")
# Models drift on the marker lines (7 vs 8 '<', missing or extra spaces);
# five or more of the character is unambiguous enough in Python source.
_SEARCH_RE = re.compile(r"^\s*<{5,}\s*SEARCH\s*$")
_DIVIDER_RE = re.compile(r"^\s*={5,}\s*$")
_REPLACE_RE = re.compile(r"^\s*>{5,}\s*REPLACE\s*$")
_FENCE_RE = re.compile(r"^\s*```\s*([A-Za-z0-9_+-]*)\s*$")
_PY_LANGS = {"", "python", "py", "python3"}

DIFF_FORMAT_HINT = (
    "answer with one or more blocks, each made of a line '<<<<<<< SEARCH', the lines to "
    "change copied exactly from the current program, a line '=======', the new lines, and "
    "a line '>>>>>>> REPLACE'"
)


class EditError(Exception):
    """A completion that cannot be turned into a valid child.

    ``str(e)`` is a self-contained paragraph that goes back into the next
    prompt, so it must say what was wrong and what to do instead.
    """


# --------------------------------------------------------------------------
# markers


def evolve_blocks(code: str) -> list[tuple[int, int]]:
    """0-based ``[start, end)`` line ranges of the editable lines.

    ``start`` is the line after a START marker, ``end`` the END marker's own
    line, so ``code.split("\\n")[start:end]`` are the editable lines.  A
    program without markers has no blocks (an empty list); unbalanced or
    nested markers raise :class:`EditError`.
    """
    blocks: list[tuple[int, int]] = []
    open_at: int | None = None
    for i, line in enumerate(code.split("\n")):
        m = _MARKER_RE.match(line)
        if not m:
            continue
        if m.group(1) == "START":
            if open_at is not None:
                raise EditError(
                    f"line {i + 1} opens an EVOLVE-BLOCK inside the one opened at line "
                    f"{open_at}; blocks cannot nest, close each with '{END_MARKER}' first"
                )
            open_at = i + 1  # 1-based marker line == 0-based first editable line
        else:
            if open_at is None:
                raise EditError(
                    f"line {i + 1} has '{END_MARKER}' without a matching '{START_MARKER}' "
                    "before it; the markers must come in START/END pairs"
                )
            blocks.append((open_at, i))
            open_at = None
    if open_at is not None:
        raise EditError(
            f"the EVOLVE-BLOCK opened at line {open_at} is never closed; "
            f"add '{END_MARKER}' after its last line"
        )
    return blocks


def _describe_blocks(blocks: list[tuple[int, int]]) -> str:
    spans = ", ".join(f"lines {s + 1}-{e}" for s, e in blocks)
    return f"the EVOLVE-BLOCK{'s' if len(blocks) > 1 else ''} ({spans})"


def block_text(code: str) -> str:
    """The editable lines only, blocks joined by a newline ("" if no blocks)."""
    lines = code.split("\n")
    return "\n".join("\n".join(lines[s:e]) for s, e in evolve_blocks(code))


def _frame(code: str) -> list[str]:
    """The fixed lines (markers and everything outside the blocks)."""
    lines = code.split("\n")
    inside: set[int] = set()
    for s, e in evolve_blocks(code):
        inside.update(range(s, e))
    return [line for i, line in enumerate(lines) if i not in inside]


# --------------------------------------------------------------------------
# duplicate detection


def normalize_code(code: str) -> str:
    """Canonical text: equal for programs differing only in layout/comments.

    Uses ``ast.unparse`` (which drops comments and normalises spacing and
    quotes); unparsable code falls back to its stripped, non-blank,
    non-comment lines.
    """
    try:
        return ast.unparse(ast.parse(code))
    except (SyntaxError, ValueError):
        kept = (line.strip() for line in code.splitlines())
        return "\n".join(s for s in kept if s and not s.startswith("#"))


def code_hash(code: str) -> str:
    """sha256 hex digest of :func:`normalize_code`."""
    return hashlib.sha256(normalize_code(code).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------
# diff format


def parse_diff(text: str) -> list[tuple[str, str]]:
    """``(search, replace)`` pairs in order of appearance.

    Fences and prose around the blocks are ignored.  A block that is opened
    but not completed raises :class:`EditError` (typically a truncated answer).
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
                raise EditError(
                    f"edit {len(pairs) + 1} has no '=======' line between its SEARCH "
                    f"and REPLACE parts; {DIFF_FORMAT_HINT}"
                )
            else:
                search.append(line)
        else:
            if _REPLACE_RE.match(line):
                pairs.append(("\n".join(search), "\n".join(replace)))
                state = "out"
            elif _SEARCH_RE.match(line):
                raise EditError(
                    f"edit {len(pairs) + 1} is not closed by '>>>>>>> REPLACE' before the "
                    f"next SEARCH; {DIFF_FORMAT_HINT}"
                )
            else:
                replace.append(line)
    if state != "out":
        raise EditError(
            f"edit {len(pairs) + 1} is not closed by '>>>>>>> REPLACE' (was the answer "
            f"cut off?); {DIFF_FORMAT_HINT}"
        )
    return pairs


def _indent(line: str) -> int:
    stripped = line.lstrip()
    return len(line[: len(line) - len(stripped)].expandtabs(4))


def _reindent(line: str, offset: int) -> str:
    if not line.strip() or offset == 0:
        return line
    if offset > 0:
        return " " * offset + line
    cut = min(-offset, len(line) - len(line.lstrip()))
    return line[cut:]


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
    offset: int  # parent indent minus SEARCH indent
    tolerant: bool


def _find_matches(lines: list[str], search: list[str]) -> list[_Match]:
    """All matches at the strictest level that has any: exact, then drifted."""
    n = len(search)
    exact = [
        _Match(i, i + n, 0, False) for i in range(len(lines) - n + 1) if lines[i : i + n] == search
    ]
    if exact:
        return exact
    wanted = [s.rstrip() for s in search if s.strip()]
    if not wanted:
        return []
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    same_indent: list[_Match] = []
    shifted: list[_Match] = []
    k = len(wanted)
    for j in range(len(nonblank) - k + 1):
        idx = nonblank[j : j + k]
        offset = _indent(lines[idx[0]]) - _indent(wanted[0])
        if all(
            lines[i].strip() == w.strip() and _indent(lines[i]) - _indent(w) == offset
            for i, w in zip(idx, wanted, strict=True)
        ):
            m = _Match(idx[0], idx[-1] + 1, offset, True)
            (same_indent if offset == 0 else shifted).append(m)
    return same_indent or shifted


def _changed_span(lines: list[str], m: _Match, new: list[str]) -> tuple[int, int, int, int]:
    """Trim context lines that the edit leaves unchanged.

    Models often quote a marker or a line outside the block as context and
    repeat it verbatim in REPLACE; only the lines that really change are
    checked against the blocks.  Returns (start, end) in the parent and
    (lo, hi) in ``new``.
    """
    old = lines[m.start : m.end]
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


def _inside(blocks: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in blocks)


def _first_line(text_lines: list[str]) -> str:
    for line in text_lines:
        if line.strip():
            return line.strip()
    return ""


def _closest_line(lines: list[str], wanted: str, blocks: list[tuple[int, int]]) -> str:
    if not wanted:
        return ""
    best, best_i = 0.0, -1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        ratio = difflib.SequenceMatcher(None, wanted, line.strip()).ratio()
        # Prefer editable lines on ties: they are the ones the model may edit.
        if ratio > best or (ratio == best and _inside(blocks, i, i + 1)):
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
        while (
            k < len(wanted)
            and j + k < len(nonblank)
            and lines[nonblank[j + k]].strip() == wanted[k]
        ):
            k += 1
        if k > best_len:
            best_len, best_at = k, j
    if best_len == 0 or best_len == len(wanted):
        return ""
    start = nonblank[best_at] + 1
    if best_at + best_len >= len(nonblank):
        return f" Its first {best_len} line(s) match from line {start}, then the program ends."
    at = nonblank[best_at + best_len]
    return (
        f" Its first {best_len} line(s) match from line {start}, but its next line "
        f"{wanted[best_len]!r} differs from line {at + 1}: {lines[at].strip()!r}."
    )


def _apply_one(lines: list[str], number: int, search_text: str, replace_text: str) -> list[str]:
    blocks = evolve_blocks("\n".join(lines))
    search = _split_lines(search_text)
    replace = _split_lines(replace_text)
    if not any(s.strip() for s in search):
        raise EditError(
            f"edit {number} has an empty SEARCH part; copy the exact lines to be replaced "
            "from the current program into it"
        )
    if any(_MARKER_RE.match(r) for r in replace) and not any(_MARKER_RE.match(s) for s in search):
        raise EditError(
            f"edit {number} adds an EVOLVE-BLOCK marker line; the markers are fixed and "
            "may not be added, moved or removed"
        )
    matches = _find_matches(lines, search)
    if not matches:
        first = _first_line(search)
        hint = _partial_match(lines, search) or _closest_line(lines, first, blocks)
        raise EditError(
            f"edit {number}: its SEARCH text was not found in the program (its first line is "
            f"{first!r}).{hint} SEARCH must repeat the current lines exactly, including "
            "indentation, in program order"
        )
    candidates = []
    for m in matches:
        new = [_reindent(r, m.offset) for r in replace]
        if m.tolerant:
            # Blank edges of SEARCH were not matched; drop the same number of
            # blank edges from REPLACE so spacing does not grow on every edit.
            s_lo, s_hi = _strip_blank_edges(search)
            r_lo, r_hi = _strip_blank_edges(new)
            new = new[min(s_lo, r_lo) : len(new) - min(len(search) - s_hi, len(new) - r_hi)]
        span = _changed_span(lines, m, new)
        if span[0] == span[1] and span[2] == span[3]:
            return lines  # REPLACE repeats SEARCH; the whole-answer no-op check reports it
        candidates.append((m, new, span))
    for _m, new, (a, b, lo, hi) in candidates:
        if _inside(blocks, a, b):
            if any(_MARKER_RE.match(r) for r in new[lo:hi]):
                raise EditError(
                    f"edit {number} changes an EVOLVE-BLOCK marker line; the markers are "
                    "fixed and may not be added, moved or removed"
                )
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
    raise EditError(
        f"edit {number} {where}, outside {_describe_blocks(blocks)}; only code between "
        "the markers may change"
    )


def _check_child(parent: str, child: str) -> str:
    if child == parent:
        raise EditError(
            "the edit does not change the program; propose a change to the code inside "
            "the EVOLVE-BLOCK"
        )
    try:
        ast.parse(child)
    except SyntaxError as e:
        lines = child.split("\n")
        where = ""
        if e.lineno is not None and 0 < e.lineno <= len(lines):
            where = f" at line {e.lineno}: {lines[e.lineno - 1].strip()!r}"
        raise EditError(
            f"the edited program does not parse: {e.msg}{where}; check brackets, colons and "
            "indentation of the new lines"
        ) from None
    if _frame(child) != _frame(parent):  # defensive: construction should ensure it
        raise EditError(
            "the edit changes code outside the EVOLVE-BLOCK; only code between the markers "
            "may change"
        )
    return child


def apply_diff(parent: str, completion: str) -> str:
    """Apply every SEARCH/REPLACE block of ``completion`` in order."""
    pairs = parse_diff(completion)
    if not pairs:
        raise EditError(f"no SEARCH/REPLACE block found; {DIFF_FORMAT_HINT}")
    if not evolve_blocks(parent):
        raise EditError("the program has no EVOLVE-BLOCK, so nothing in it may change")
    lines = parent.split("\n")
    for number, (search, replace) in enumerate(pairs, start=1):
        lines = _apply_one(lines, number, search, replace)
    return _check_child(parent, "\n".join(lines))


# --------------------------------------------------------------------------
# rewrite format


def _fenced_blocks(text: str) -> list[str]:
    """Bodies of ``` fences whose language is Python or unspecified."""
    bodies: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE_RE.match(lines[i])
        if m is None:
            i += 1
            continue
        lang = m.group(1).lower()
        j = i + 1
        while j < len(lines) and not _FENCE_RE.match(lines[j]):
            j += 1
        if lang in _PY_LANGS:
            # An unclosed fence runs to the end: a truncated answer is still
            # judged on its markers rather than rejected for the fence.
            bodies.append("\n".join(lines[i + 1 : j]))
        i = j + 1
    return bodies


def apply_rewrite(parent: str, completion: str) -> str:
    """Splice the block contents of a full-program answer into the parent.

    The last fenced Python block that contains a START marker is used (or
    the whole text).  Everything outside the blocks comes from the parent
    verbatim, whatever the rewrite did there.
    """
    text = completion.replace("\r\n", "\n")
    with_markers = [
        body
        for body in _fenced_blocks(text)
        if any(_MARKER_RE.match(line) for line in body.split("\n"))
    ]
    program = with_markers[-1] if with_markers else text
    parent_blocks = evolve_blocks(parent)
    if not parent_blocks:
        raise EditError("the program has no EVOLVE-BLOCK, so nothing in it may change")
    try:
        new_blocks = evolve_blocks(program)
    except EditError as e:
        raise EditError(f"in the rewritten program, {e}") from None
    if not new_blocks:
        raise EditError(
            f"the rewrite contains no '{START_MARKER}' / '{END_MARKER}' markers; return the "
            "whole program in one ```python block with the markers kept where they are"
        )
    if len(new_blocks) != len(parent_blocks):
        raise EditError(
            f"the rewrite has {len(new_blocks)} EVOLVE-BLOCKs but the program has "
            f"{len(parent_blocks)}; keep every marker pair and change only the code between them"
        )
    lines = parent.split("\n")
    new_lines = program.split("\n")
    # Splice from the last block backwards so earlier ranges stay valid.
    for (s, e), (ns, ne) in zip(reversed(parent_blocks), reversed(new_blocks), strict=True):
        lines[s:e] = new_lines[ns:ne]
    return _check_child(parent, "\n".join(lines))


def apply_edit(parent: str, completion: str, mode: Literal["diff", "rewrite"]) -> str:
    """Apply a completion in the format the model was asked for."""
    if mode == "diff":
        # Models asked for a diff sometimes answer with the whole program: take
        # it as a rewrite rather than waste the proposal.
        if not parse_diff(completion) and START_MARKER in completion:
            return apply_rewrite(parent, completion)
        return apply_diff(parent, completion)
    if mode == "rewrite":
        return apply_rewrite(parent, completion)
    raise ValueError(f"unknown edit mode {mode!r}; expected 'diff' or 'rewrite'")
