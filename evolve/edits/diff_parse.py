"""Reading the edits of an answer: SEARCH/REPLACE blocks or unified-diff hunks as
``(search, replace)`` pairs, in order.  Applying them is ``diff.py``'s job."""

from __future__ import annotations

import re

from evolve.edits.blocks import EditError
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
