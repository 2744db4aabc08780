"""Answers made of code: a whole program with its markers, or just the definitions that change.

* **A program with markers**: the text between its markers replaces the
  parent's blocks, block by block; the parent's frame is kept verbatim.
  Helper functions and imports the model put *outside* its markers move into
  the block (the frame is fixed, so they would otherwise be lost).
* **Definitions without markers** (a whole program without them, the block
  alone, or only the function that changes): every top-level function, class
  or constant of the answer replaces the one of the same name in the parent's
  blocks; new ones and new imports are added to the block; definitions of the
  fixed frame and test code (``if __name__ == ...``, prints) are ignored.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

from evolve.edits.blocks import (
    END_MARKER,
    MARKER_RE,
    START_MARKER,
    EditError,
    evolve_blocks,
    is_elision,
    too_large,
)


@dataclass(frozen=True)
class Unit:
    """A top-level statement: a def/class (``name``), an assignment, an import, or other."""

    kind: str  # "def", "assign", "import", "docstring", "other"
    name: str
    start: int  # 0-based first line (decorators included)
    end: int  # 0-based, exclusive
    dump: str  # ast.dump of the node: equal for the same code in another layout


def units(source: str) -> list[Unit]:
    if (why := too_large(source, "the code in the answer")) is not None:
        raise EditError(why)
    tree = ast.parse(source)
    found: list[Unit] = []
    for index, node in enumerate(tree.body):
        first = min([node.lineno, *[d.lineno for d in getattr(node, "decorator_list", [])]]) - 1
        last = node.end_lineno or node.lineno
        dump = ast.dump(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(Unit("def", node.name, first, last, dump))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and _target(node):
            found.append(Unit("assign", _target(node), first, last, dump))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(Unit("import", "", first, last, dump))
        elif index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            found.append(Unit("docstring", "", first, last, dump))
        else:
            found.append(Unit("other", "", first, last, dump))
    return found


def _target(node: ast.Assign | ast.AnnAssign) -> str:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if len(targets) == 1 and isinstance(targets[0], ast.Name):
        return targets[0].id
    return ""


# --------------------------------------------------------------------------
# a program with markers


def splice_program(parent: str, program: str) -> tuple[str, list[str]]:
    """The parent with its blocks replaced by the program's, plus notes."""
    parent_blocks = evolve_blocks(parent)
    try:
        new_blocks = evolve_blocks(program)
    except EditError as e:
        raise EditError(f"in the rewritten program, {e}") from None
    if not new_blocks:
        raise EditError(f"the rewrite contains no '{START_MARKER}' / '{END_MARKER}' markers")
    if len(new_blocks) != len(parent_blocks):
        raise EditError(f"the rewrite has {len(new_blocks)} EVOLVE-BLOCKs but the program has "
                        f"{len(parent_blocks)}; keep every marker pair and change only the code "
                        "between them")
    lines = parent.split("\n")
    new_lines = program.split("\n")
    moved, notes = _outside_helpers(parent, program, new_blocks)
    # Splice from the last block backwards so earlier ranges stay valid.
    for k, ((s, e), (ns, ne)) in enumerate(zip(reversed(parent_blocks), reversed(new_blocks),
                                               strict=True)):
        body = new_lines[ns:ne]
        if k == 0 and moved:
            body = body + [""] + moved
        lines[s:e] = body
    return "\n".join(lines), notes


def _outside_helpers(parent: str, program: str, blocks: list[tuple[int, int]]) -> tuple[list[str], list[str]]:
    """Definitions and imports the rewrite put outside its markers that the parent lacks."""
    try:
        found = units(program)
        known = units(parent)
    except SyntaxError:
        return [], []
    lines = program.split("\n")
    names = {u.name for u in known if u.name}
    dumps = {u.dump for u in known}
    moved: list[str] = []
    names_moved: list[str] = []
    for unit in found:
        if any(s <= unit.start and unit.end <= e for s, e in blocks):
            continue
        text = lines[unit.start: unit.end]
        if unit.kind == "def" and unit.name not in names:
            moved += text + [""]
            names_moved.append(unit.name)
        elif unit.kind == "import" and unit.dump not in dumps:
            moved = text + moved
            names_moved.append(text[0].strip())
    notes = [f"moved {', '.join(names_moved)} from outside the markers into the EVOLVE-BLOCK"] \
        if names_moved else []
    while moved and not moved[-1].strip():
        moved.pop()
    return moved, notes


# --------------------------------------------------------------------------
# definitions without markers


def _parse_answer_code(code: str) -> str:
    text = textwrap.dedent(code).strip("\n")
    if (why := too_large(text, "the code in the answer")) is not None:
        raise EditError(why)
    try:
        ast.parse(text)
    except SyntaxError as e:
        where = f" at its line {e.lineno}" if e.lineno else ""  # a null byte has no line
        raise EditError(f"the code in the answer does not parse: {e.msg}{where}; "
                        "check brackets, colons and indentation") from None
    return text


def merge_definitions(parent: str, codes: list[str]) -> tuple[str, list[str]]:
    """The parent with the answer's definitions merged into its blocks, plus notes.

    ``codes`` are the answer's code blocks in order; a later definition of a
    name wins over an earlier one (a model may quote the old code first).
    """
    blocks = evolve_blocks(parent)
    parent_units = units(parent)
    in_block = {u.name: u for u in parent_units if u.name and _within(u, blocks)}
    in_frame = {u.name: u for u in parent_units if u.name and not _within(u, blocks)}
    parent_imports = {u.dump for u in parent_units if u.kind == "import"}
    replacements: dict[str, list[str]] = {}
    additions: dict[str, list[str]] = {}
    imports: list[list[str]] = []
    ignored: list[str] = []
    for code in codes:
        text = _parse_answer_code(code)
        lines = text.split("\n")
        for unit in units(text):
            body = lines[unit.start: unit.end]
            if unit.kind in ("def", "assign") and unit.name in in_block:
                _check_complete(unit, body)
                replacements[unit.name] = body
            elif unit.kind in ("def", "assign") and unit.name in in_frame:
                if unit.dump != in_frame[unit.name].dump:
                    ignored.append(unit.name)
            elif unit.kind in ("def", "assign"):
                additions[unit.name] = body
            elif unit.kind == "import" and unit.dump not in parent_imports and body not in imports:
                imports.append(body)
    if not replacements:
        defined = ", ".join(sorted(additions)) or "nothing at the top level"
        raise EditError(f"the code in the answer redefines no function of the EVOLVE-BLOCK "
                        f"(it defines {defined}); give the complete new version of "
                        f"{', '.join(sorted(in_block)) or 'the block'}")
    out = parent.split("\n")
    # Bottom-up, so earlier line numbers stay valid.
    for unit in sorted((in_block[n] for n in replacements), key=lambda u: -u.start):
        out[unit.start: unit.end] = replacements[unit.name]
    notes = []
    if additions or imports:
        new_blocks = evolve_blocks("\n".join(out))
        start, end = new_blocks[-1]
        added = [line for body in additions.values() for line in ["", "", *body]]
        out[end:end] = added
        out[start:start] = [line for body in imports for line in body]
        if additions:
            notes.append(f"added {', '.join(additions)} to the EVOLVE-BLOCK")
    if ignored:
        notes.append(f"ignored changes to {', '.join(ignored)}: outside the EVOLVE-BLOCK, fixed")
    return "\n".join(out), notes


def _within(unit: Unit, blocks: list[tuple[int, int]]) -> bool:
    return any(s <= unit.start and unit.end <= e for s, e in blocks)


def _check_complete(unit: Unit, body: list[str]) -> None:
    """A definition that elides part of itself ('...', '# rest unchanged') is not one to use."""
    if any(is_elision(line) for line in body) or _ellipsis_statement("\n".join(body)):
        raise EditError(f"the answer's {unit.name} elides code ('...' or 'rest unchanged'); give "
                        "the complete definition")


def _ellipsis_statement(source: str) -> bool:
    if too_large(source) is not None:  # a unit of code that was parsed, so never here
        return False
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        for stmt in body if isinstance(body, list) else []:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                    and stmt.value.value is Ellipsis:
                return True
    return False


def has_markers(code: str) -> bool:
    return any(MARKER_RE.match(line) for line in code.split("\n"))
