"""Realising a node replacement as a source splice, for the stub's mutations.

:func:`splice` replaces an AST node's exact source span by
``ast.unparse(new_node)``, parenthesised only when the re-parsed program
would otherwise differ, so comments and layout elsewhere survive and the
change can be written as a SEARCH/REPLACE block.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from evolve.llm.stub_analysis import Analysis


def _byte_col(line: str, col: int) -> int:
    """ast columns count UTF-8 bytes; convert to a str index."""
    return len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))


def _parents(tree: ast.AST) -> dict[int, tuple[ast.AST, str, int | None]]:
    out: dict[int, tuple[ast.AST, str, int | None]] = {}
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        out[id(item)] = (parent, name, i)
            elif isinstance(value, ast.AST):
                out[id(value)] = (parent, name, None)
    return out


def _top_index(tree: ast.Module, node: ast.AST) -> int:
    line = node.lineno  # type: ignore[attr-defined]
    for i, stmt in enumerate(tree.body):
        if stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno):
            return i
    raise ValueError("node outside the module body")


def _expected_dump(tree: ast.Module, old: ast.AST, new: ast.AST) -> str:
    """ast.dump of the top-level statement holding ``old``, with ``old`` -> ``new``.

    Only that statement can change, so dumping it (not the whole module)
    is enough to tell whether the spliced text parses to the intended tree.
    """
    top = tree.body[_top_index(tree, old)]
    if top is old:
        return ast.dump(new)
    parent, name, index = _parents(top)[id(old)]
    if index is None:
        setattr(parent, name, new)
    else:
        getattr(parent, name)[index] = new
    try:
        return ast.dump(top)
    finally:
        if index is None:
            setattr(parent, name, old)
        else:
            getattr(parent, name)[index] = old


@dataclass(frozen=True)
class Splice:
    code: str  # the whole program after the change
    first: int  # 0-based first line touched in the old text
    last: int  # 0-based last line touched (inclusive)
    new_lines: list[str]  # what replaces old lines[first:last + 1]


def splice(analysis: Analysis, old: ast.AST, new: ast.AST) -> Splice | None:
    """Replace ``old``'s source span by ``new``; None if that cannot be done cleanly."""
    lines = analysis.code.split("\n")
    first, last = old.lineno - 1, (old.end_lineno or old.lineno) - 1  # type: ignore[attr-defined]
    head = lines[first][: _byte_col(lines[first], old.col_offset)]  # type: ignore[attr-defined]
    tail = lines[last][_byte_col(lines[last], old.end_col_offset or 0) :]  # type: ignore[attr-defined]
    index = _top_index(analysis.tree, old)
    expected = _expected_dump(analysis.tree, old, new)
    src = ast.unparse(new)
    # Parenthesise only when precedence demands it: the re-parsed program
    # must be exactly the intended tree.
    variants = [(head, src, tail), (head, f"({src})", tail)]
    if head.endswith("(") and tail.startswith(")"):
        # The old node sat in its own parentheses; try without them first so
        # that `(d + p)` -> `np.sqrt(p)` does not leave `(np.sqrt(p))`.
        variants.insert(0, (head[:-1], src, tail[1:]))
    for before, text, after in variants:
        new_line = before + text + after
        code = "\n".join(lines[:first] + [new_line] + lines[last + 1 :])
        try:
            body = ast.parse(code).body
        except SyntaxError:
            body = []
        if len(body) == len(analysis.tree.body) and ast.dump(body[index]) == expected:
            return Splice(code, first, last, [new_line])
        if isinstance(old, ast.stmt):
            break  # statements are never parenthesised
    return None
