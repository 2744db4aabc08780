"""What ``[export] append`` in problem.toml adds to an exported program.

A rule-only problem's program is a priority rule; the problem's dispatcher
turns it into a schedule.  ``append`` names numpy-only sources (the trusted
dispatcher module itself, by import name, and a small entry-point file beside
problem.toml) whose text follows the program in the export, so the module
schedules on its own.  They are appended verbatim except for ``from __future__``
imports, which are legal only at a module's top: the export states them once, as its
first statement (``with_future``), so a source whose annotations name its own classes
(``from __future__ import annotations``) still defines them.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.errors import UserError

FRAMEWORK_MODULES = {"evolve", "evaluators", "problems"}


@dataclass(frozen=True)
class Appended:
    label: str  # the problem.toml entry: a module name or a file beside problem.toml
    text: str  # without its ``from __future__`` imports
    future: frozenset[str] = frozenset()  # the features those imported


def appended_sources(problem: Any) -> list[Appended]:
    """The sources ``problem``'s ``[export] append`` names, in order, ready to append."""
    where = f"{problem.toml_path} [export] append"
    out = []
    for entry in problem.spec.export.append:
        path = _locate(entry, problem, where)
        try:
            source = path.read_text()
        except OSError as err:
            raise UserError(f"{where}: '{entry}': cannot read {path} ({err.strerror})") from None
        internal = sorted(imported_modules(source, f"{where}: '{entry}'") & FRAMEWORK_MODULES)
        if internal:
            raise UserError(f"{where}: '{entry}' imports {', '.join(internal)}: the export would not run without evolve")
        tree = ast.parse(source)
        out.append(Appended(entry, _without_future(source, tree), future_features(tree)))
    return out


def clashes(program_code: str, sources: list[Appended]) -> list[str]:
    """Top-level names the program and the appended sources both bind, differently: appended,
    one would replace the other's (a helper of the rule, or a function of the dispatcher)."""
    program = _bindings(ast.parse(program_code))
    found: set[str] = set()
    for source in sources:
        for name, target in _bindings(ast.parse(source.text)).items():
            if name in program and (target is None or program[name] != target):
                found.add(name)
    return sorted(found)


def _locate(entry: str, problem: Any, where: str) -> Path:
    if entry.endswith(".py"):
        path = (problem.dir / entry).resolve()
        if not path.is_file():
            raise UserError(f"{where}: '{entry}': no such file {path}")
        return path
    for folder in problem.sys_path:
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        spec = importlib.util.find_spec(entry)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise UserError(f"{where}: '{entry}': no importable module of that name with a .py source "
                        "(a module name, or a .py file beside problem.toml)")
    return Path(spec.origin)


def imported_modules(code: str, where: str) -> set[str]:
    """Top-level names of every module the code imports."""
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        line = f"line {err.lineno}: " if err.lineno else ""  # none for a null byte
        raise UserError(f"{where}: does not parse ({line}{err.msg})") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def future_features(tree: ast.Module) -> frozenset[str]:
    return frozenset(alias.name for node in tree.body
                     if isinstance(node, ast.ImportFrom) and node.module == "__future__" for alias in node.names)


def with_future(code: str, features: set[str]) -> str:
    """``code`` with every ``from __future__`` import in ``features`` (and its own) stated once,
    where Python requires it: first, after the module docstring if there is one."""
    tree = ast.parse(code)
    wanted = set(features) | future_features(tree)
    if not wanted:
        return code
    rest = _without_future(code, tree) if future_features(tree) else code
    lines = rest.splitlines()
    body = ast.parse(rest).body
    first = body[0] if body else None
    docstring = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                 and isinstance(first.value.value, str))
    at = first.end_lineno if docstring and first is not None and first.end_lineno else 0
    lines.insert(at, f"from __future__ import {', '.join(sorted(wanted))}")
    return "\n".join(lines).rstrip("\n") + "\n"


def _without_future(source: str, tree: ast.Module) -> str:
    lines = source.splitlines()
    for node in reversed(tree.body):
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            del lines[node.lineno - 1:node.end_lineno]
    return "\n".join(lines).strip("\n") + "\n"


def _bindings(tree: ast.Module) -> dict[str, str | None]:
    """Module-level name -> what an import binds it to (``numpy``), or None for anything else.

    Statements inside top-level ``if``, ``try``, ``with``, ``for`` and ``while`` blocks bind
    module names too: a helper defined in a ``try`` block was not seen, and the appended
    dispatcher's function of the same name replaced it in the export (seventh red team)."""
    out: dict[str, str | None] = {}
    for node in _module_statements(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                out[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = None
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    out[sub.id] = None
    return out


_BLOCKS = (ast.If, ast.Try, ast.TryStar, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)


def _module_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements that run at module level: ``body``'s, and those of its compound statements
    (the header's own bindings, a ``for`` target or ``with ... as``, as the statement itself)."""
    out: list[ast.stmt] = []
    for node in body:
        if not isinstance(node, _BLOCKS):
            out.append(node)
            continue
        header = [getattr(node, "target", None), *[item.optional_vars for item in getattr(node, "items", [])]]
        out += [ast.Expr(value=ast.Tuple(elts=[h for h in header if h is not None], ctx=ast.Store()))]
        for field in ("body", "orelse", "finalbody"):
            out += _module_statements(getattr(node, field, []))
        for handler in getattr(node, "handlers", []):
            if handler.name:
                out.append(ast.Expr(value=ast.Name(id=handler.name, ctx=ast.Store())))
            out += _module_statements(handler.body)
    return out
