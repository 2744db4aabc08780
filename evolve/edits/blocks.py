"""EVOLVE-BLOCK regions, the edit error, and what every child must satisfy."""

from __future__ import annotations

import ast
import hashlib
import re
from functools import lru_cache
from typing import Any

from evolve.edits.unparse import unparse
from evolve.text_cache import text_cache

START_MARKER = "# EVOLVE-BLOCK-START"
END_MARKER = "# EVOLVE-BLOCK-END"

MARKER_RE = re.compile(r"^\s*#\s*EVOLVE-BLOCK-(START|END)\b")

# Lines by which a model says "the rest stays as it was" instead of writing it:
# a bare '...', a comment that is only '...', a comment with '...' and a word
# of that kind, or "rest of the function". Plain comments never match.
# A reply is hostile text: the comment's parts are searched one after the other (the first
# '...', then a word after it) rather than by one pattern with two '.*', which backtracked
# over every '...' of a line of dots (a 32,000-character line took ~14 s of the controller's CPU).
_BARE_ELISION = re.compile(r"\s*+(?:#\s*+)?(?:\.\.\.|…)\s*$")
_COMMENT = re.compile(r"\s*+#")
_DOTS = re.compile(r"\.\.\.|…")
_KEPT = "same|unchanged|existing|before|previous|rest|remaining|omitted|above|original"
_WORD_AFTER_DOTS = re.compile(rf"\b(?:{_KEPT}|as is)\b", re.I)  # "as is" counts only after the dots
_WORD_BEFORE_DOTS = re.compile(rf"\b(?:{_KEPT})\b", re.I)
_REST_OF = re.compile(r"\b(?:rest|remainder) of (?:the )?(?:code|function|file|body|loop|program)\b", re.I)


def is_elision(line: str) -> bool:
    if _BARE_ELISION.match(line):
        return True
    comment = _COMMENT.match(line)
    if comment is None:
        return False
    at = comment.end()
    dots = _DOTS.search(line, at)
    if dots is not None and _WORD_AFTER_DOTS.search(line, dots.end()):
        return True
    word = _WORD_BEFORE_DOTS.search(line, at)
    return (word is not None and _DOTS.search(line, word.end()) is not None) or _REST_OF.search(line, at) is not None


class EditError(Exception):
    """A completion that cannot be turned into a valid child.

    ``str(e)`` is a self-contained paragraph that goes back into the next
    prompt, so it says what was wrong and what to do instead -- without
    prescribing an answer format (the next prompt states that itself).
    """


def evolve_blocks(code: str) -> list[tuple[int, int]]:
    """0-based ``[start, end)`` line ranges of the editable lines.

    ``start`` is the line after a START marker, ``end`` the END marker's own
    line, so ``code.split("\\n")[start:end]`` are the editable lines.  A
    program without markers has no blocks (an empty list); unbalanced or
    nested markers raise :class:`EditError`.
    """
    return list(_blocks(code))


@lru_cache(maxsize=64)
def _blocks(code: str) -> tuple[tuple[int, int], ...]:
    """:func:`evolve_blocks`, kept for the codes in hand: an iteration asks for the blocks of its
    parent and its child a dozen times (edit, checks, features, prompt); a code whose markers
    are wrong raises every time (an exception is never kept)."""
    blocks: list[tuple[int, int]] = []
    open_at: int | None = None
    for i, line in enumerate(code.split("\n")):
        m = MARKER_RE.match(line)
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
    return tuple(blocks)


def describe_blocks(blocks: list[tuple[int, int]]) -> str:
    spans = ", ".join(f"lines {s + 1}-{e}" for s, e in blocks)
    return f"the EVOLVE-BLOCK{'s' if len(blocks) > 1 else ''} ({spans})"


def block_text(code: str) -> str:
    """The editable lines only, blocks joined by a newline ("" if no blocks)."""
    lines = code.split("\n")
    return "\n".join("\n".join(lines[s:e]) for s, e in evolve_blocks(code))


def frame(code: str) -> list[str]:
    """The fixed lines (markers and everything outside the blocks)."""
    lines = code.split("\n")
    inside: set[int] = set()
    for s, e in evolve_blocks(code):
        inside.update(range(s, e))
    return [line for i, line in enumerate(lines) if i not in inside]


def inside(blocks: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in blocks)


# --------------------------------------------------------------------------
# duplicate detection


def normalize_code(code: str) -> str:
    """Canonical text: equal for programs differing only in layout/comments.

    Uses ``ast.unparse`` (which drops comments and normalises spacing and
    quotes); unparsable code falls back to its stripped, non-blank,
    non-comment lines.
    """
    try:
        return _unparsed(code)
    except (SyntaxError, ValueError):
        kept = (line.strip() for line in code.splitlines())
        return "\n".join(s for s in kept if s and not s.startswith("#"))


def _unparsed(code: str) -> str:
    """``ast.unparse(ast.parse(code))``. That is its top-level statements' own, each a line
    after the one before, two (a blank line) before a def or a class: a child shares most of
    them with its parent, so each is unparsed once."""
    statements = _top_level(code)
    if statements is None:
        return unparse(_parsed(code))
    parts = []
    for key, node in statements:
        text = _UNPARSED.get(key)
        if text is None:  # a module's docstring is written as one, alone in a module
            text = _UNPARSED.put(key, unparse(ast.Module([node], [])) if key[4] else unparse(node))
        if parts:
            parts.append("\n\n" if isinstance(node, _DEFINITIONS) else "\n")
        parts.append(text)
    return "".join(parts)


def code_hash(code: str) -> str:
    """sha256 hex digest of :func:`normalize_code`."""
    return hashlib.sha256(normalize_code(code).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------
# the child


Key = tuple[str, int, int, int, bool]  # a top-level statement's (``_top_level``)


class StatementMemo:
    """What was worked out from a top-level statement, by its key (``_top_level``): at most
    ``size`` entries, emptied when full (statements of older programs go), and none for a
    statement over ``MEMO_CHARS`` characters (a model's reply is hostile text: up to 1 MiB)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[Key, Any] = {}

    def get(self, key: Key) -> Any:
        return self._items.get(key)

    def put(self, key: Key, value: Any) -> Any:
        if len(key[0]) <= MEMO_CHARS:
            if len(self._items) >= self.size:
                self._items.clear()
            self._items[key] = value
        return value


MEMO_CHARS = 20_000  # so the two memos hold at most ~20 MB, however large the programs
# The characters of code whose parse (and top-level statements) are kept: a tree holds 60-350
# bytes per character of its code (a 256 KiB program of 'a;' 90 MB), and 16 trees of the largest
# programs held 1.4 GB (fifteenth red team). Two of those now, ~180 MB; 16 programs of up to 32 KB.
TREE_CHARS = 512 * 1024
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_UNPARSED = StatementMemo(256)  # a top-level statement's ast.unparse
_DEPTHS = StatementMemo(256)  # its nesting


@text_cache(maxsize=16, max_chars=TREE_CHARS)
def _top_level(code: str) -> list[tuple[Key, ast.stmt]] | None:
    """Each top-level statement of ``code`` (which parses) with a key naming its source
    exactly: the text of the lines it spans (from its first decorator's), where it starts
    and ends on them, and whether it is the module's docstring (which ast.unparse writes
    apart). The same key is the same statement, wherever it stands (its line numbers are
    not part of it), so what is worked out from a statement alone is kept by key. None
    where the lines could be counted otherwise than by "\n" (a carriage return): worked
    out whole, as before."""
    body = _parsed(code).body
    if "\r" in code:
        return None
    lines = code.split("\n")
    found = []
    for node in body:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        end = node.end_lineno if node.end_lineno is not None else node.lineno
        source = "\n".join(lines[first - 1: end])
        docstring = not found and _docstring(node)
        found.append(((source, node.lineno - first, node.col_offset, node.end_col_offset or 0, docstring), node))
    return found


def block_statements(code: str) -> list[tuple[Key, ast.stmt]] | None:
    """The top-level statements inside ``code``'s EVOLVE-BLOCKs, in order, each with its key
    (``_top_level``), where every top-level statement lies wholly inside a block or wholly outside
    them all: they are then the statements of ``ast.parse(block_text(code))``, the same but for
    their line numbers, without a parse of their own. None where that is not so (a statement
    across a marker, a block inside a function), where the code does not parse, its markers are
    wrong or it holds a carriage return. The nodes are shared: only read them."""
    try:
        blocks = _blocks(code)
        statements = _top_level(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError, EditError):
        return None
    if statements is None:
        return None
    inside = []
    for key, node in statements:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
        last = node.end_lineno if node.end_lineno is not None else node.lineno
        # a block (s, e) holds the 1-based lines s + 1 .. e
        if any(s < first and last <= e for s, e in blocks):
            inside.append((key, node))
        elif any(first <= e and s < last for s, e in blocks):
            return None  # partly inside a block
    return inside


def statement_text(key: Key, node: ast.stmt) -> str:
    """``ast.unparse(node)`` of a top-level statement keyed as ``block_statements`` keys it,
    kept by its key as the hash keeps it (a child's statements are unparsed once, for its hash
    and for what its edit changed); a module's docstring, which the hash writes as one, is
    unparsed here as any statement."""
    if key[4]:
        return unparse(node)
    text = _UNPARSED.get(key)
    if text is None:
        text = _UNPARSED.put(key, unparse(node))
    return text  # type: ignore[no-any-return]


def _docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def parse_module(code: str) -> ast.Module:
    """``ast.parse(code)``, shared with the edit's check and the hash of the same code: the tree
    must only be read."""
    return _parsed(code)


@text_cache(maxsize=16, max_chars=TREE_CHARS)
def _parsed(code: str) -> ast.Module:
    """``ast.parse(code)``, kept for the few codes in hand: a child is checked after its edit
    is applied, checked again as a child, then hashed (one parse instead of three). The tree
    is only read (``ast.unparse`` does not change it); a code that does not parse is not kept."""
    return ast.parse(code)


# Levels of nesting a child may have (expressions inside expressions, blocks inside blocks).
# The engine reads every child in the trusted process with recursive readers (ast.unparse for
# its hash, the GP's parser for its behaviour key and pure_rule), which fail at ~330 levels:
# a sum of 500 terms took a whole run down.  Real programs stay under ~30.
MAX_NESTING = 100
TOO_DEEP = (f"the program nests expressions or blocks more than {MAX_NESTING} levels deep (a sum of "
            "hundreds of terms, a long elif chain); write it with loops, arrays or helper functions")


def nesting(tree: ast.AST) -> int:
    """The depth of ``tree`` (a module with one statement is 2), without recursion: level by
    level, reading each node's fields as ``ast.iter_child_nodes`` does, without its generator."""
    depth, level, node_type = 0, [tree], ast.AST
    while level:
        depth += 1
        below: list[ast.AST] = []
        for node in level:
            for name in node._fields:
                value = getattr(node, name, None)
                if isinstance(value, node_type):
                    below.append(value)
                elif isinstance(value, list):
                    below.extend(item for item in value if isinstance(item, node_type))
        level = below
    return depth


@lru_cache(maxsize=16)
def syntax_error(code: str) -> str | None:
    """Why ``code`` does not parse, naming the line, nests too deeply or is too long to read (it is
    not parsed then); None if none of these."""
    if (why := too_large(code)) is not None:
        return why
    try:
        tree = _parsed(code)
    except (RecursionError, MemoryError):  # deeper than Python's own parser goes
        return TOO_DEEP
    except SyntaxError as e:
        lines = code.split("\n")
        where = ""
        if e.lineno is not None and 0 < e.lineno <= len(lines):
            where = f" at line {e.lineno}: {lines[e.lineno - 1].strip()!r}"
        return f"{e.msg}{where}"
    return TOO_DEEP if _module_nesting(code, tree) > MAX_NESTING else None


def _module_nesting(code: str, tree: ast.Module) -> int:
    """``nesting(tree)``: one level more than its deepest statement's, each worked out once."""
    statements = _top_level(code)
    if statements is None:
        return nesting(tree)
    deepest = 0
    for key, node in statements:
        depth = _DEPTHS.get(key)
        if depth is None:
            depth = _DEPTHS.put(key, nesting(node))
        deepest = max(deepest, depth)
    return 1 + deepest


# Code from a model's answer is parsed in the trusted process (the edit's readings, the child's
# check, hash, behaviour key, pure_rule, prompts), and the parser holds about 1 KB per literal: a
# reply inserting a 9.5 MiB list of numbers took 12 s and 4.7 GB there, and the HTTP clients and
# files: read replies up to 64 MiB (fourteenth red team). Longer code is not parsed; whole programs
# written by models here are under 20 KB.
MAX_PROGRAM_CHARS = 256 * 1024


def too_large(code: str, what: str = "the edited program") -> str | None:
    """Why ``code`` is not parsed (longer than MAX_PROGRAM_CHARS), or None."""
    if len(code) <= MAX_PROGRAM_CHARS:
        return None
    return (f"{what} is {len(code):,} characters; at most {MAX_PROGRAM_CHARS:,} are read: write a table of "
            "thousands of numbers as a formula or a short loop, not as literals")


def check_child(parent: str, child: str) -> str:
    """The child, if it differs from the parent, parses, and keeps the parent's frame."""
    if (why := too_large(child)) is not None:
        raise EditError(why)
    if child == parent:
        raise EditError(
            "the edit does not change the program; propose a change to the code inside "
            "the EVOLVE-BLOCK"
        )
    error = syntax_error(child)
    if error == TOO_DEEP:
        raise EditError(error)
    if error is not None:
        raise EditError(
            f"the edited program does not parse: {error}; check brackets, colons and "
            "indentation of the new lines"
        )
    if frame(child) != frame(parent):  # defensive: construction should ensure it
        raise EditError(
            "the edit changes code outside the EVOLVE-BLOCK; only code between the markers "
            "may change"
        )
    return child
