"""What the stub may mutate: the mutation sites of a program's EVOLVE-BLOCKs.

:func:`analyse` parses a program and lists its :class:`Site` objects, each an
expression (or augmented assignment) tagged with the kinds of change an
operator in :mod:`evolve.llm.mutations` may make to it.

Only expressions inside statements are sites: never docstrings, function
signatures, decorators, assignment targets, subscripts/indices, ``range``
arguments or marker lines.  Which names count as numeric is a cheap,
name-based guess over the whole module (see :class:`Analysis`).

``analyse`` makes that guess; the tables it reads are in ``stub_vocabulary.py``, the walk
that finds the sites in ``stub_sites.py``.  Every name this module had is still importable
from it.
"""

from __future__ import annotations

import ast

from evolve.edits import evolve_blocks
from evolve.llm.stub_sites import Analysis, Site, SiteFinder
from evolve.llm.stub_vocabulary import (
    BINOP_SWAP,
    BUILTIN_NAMES,
    CMP_SWAP,
    CONTAINER_METHODS,
    MINMAX_SWAP,
    call_signature,
    is_number_literal,
    node_count,
    non_numeric_value,
)

__all__ = [
    "BINOP_SWAP", "BUILTIN_NAMES", "CMP_SWAP", "MINMAX_SWAP", "Analysis", "Site", "analyse", "call_signature",
    "is_number_literal", "node_count",
]


def analyse(code: str) -> Analysis:
    """Parse ``code`` and collect the mutation sites inside its EVOLVE-BLOCKs."""
    tree = ast.parse(code)
    aliases: dict[str, str] = {}
    excluded: set[str] = set(BUILTIN_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom):
            excluded.update(a.asname or a.name for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            excluded.add(node.name)
    excluded.update(aliases)
    has_numpy = "numpy" in aliases.values()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                excluded.add(f.id)  # called, so a function
            elif (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and f.attr in CONTAINER_METHODS
                and f.value.id not in aliases
            ):
                excluded.add(f.value.id)
        elif isinstance(node, ast.Subscript) and not has_numpy:
            # Without numpy a subscripted name is a list or dict, not a number.
            if isinstance(node.value, ast.Name):
                excluded.add(node.value.id)
        elif (
            isinstance(node, (ast.Assign, ast.AnnAssign))
            and node.value is not None
            and non_numeric_value(node.value, aliases)
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            excluded.update(t.id for t in targets if isinstance(t, ast.Name))
    module_numeric = {
        t.id
        for stmt in tree.body
        if isinstance(stmt, ast.Assign) and is_number_literal(stmt.value)
        for t in stmt.targets
        if isinstance(t, ast.Name)
    } - excluded
    analysis = Analysis(code, tree, aliases, excluded, module_numeric)
    SiteFinder(analysis, evolve_blocks(code)).run()
    return analysis
