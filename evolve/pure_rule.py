"""Programs that are provably a function of their inputs: one numpy expression, nothing else.

A verifier's ``audit`` (evolve/verifier.py ``Audits``) re-asks a rule in a fresh process
because a program can keep state or replace the code that calls it.  A program that can do
neither needs no re-asking: its module holds only docstrings, ``import numpy as np`` and
function definitions, its rule function returns one expression the offline search can read
as a tree (``evolve.gp.codegen.from_ast``: inputs, constants, arithmetic and a few pure numpy
calls, no keywords but a reduction's axis), and the only other function is the search's own
protected-division helper, text for text.  Every program the GP writes has that form, so the
audit costs a GP run nothing; anything else a model writes is audited.

Where the audit also checks that the rule is an index rule (a job's priority from its own
inputs and the scalars: ``smtt_rule``, ``index_rules`` on its verifier), an expression that
reduces an array (``np.max(p, axis=-1, keepdims=True)``, min, mean) is not exempt: the
reduction makes every job's priority depend on the other jobs, and only the audit can say
whether the choice does.
"""

from __future__ import annotations

import ast

from evolve.gp.codegen import DIV_HELPER, HELPER_SOURCE, NotATree, from_ast
from evolve.gp.tree import OPS, Tree

_HELPER = ast.dump(ast.parse(HELPER_SOURCE).body[0])


def _docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _numpy_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module == "__future__"
    return isinstance(node, ast.Import) and all(
        alias.name == "numpy" and alias.asname in (None, "np") for alias in node.names)


def _plain_signature(fn: ast.FunctionDef) -> set[str] | None:
    """The parameter names, if the signature runs nothing when defined or called."""
    args = fn.args
    if fn.decorator_list or fn.returns is not None or args.defaults or args.kw_defaults or args.vararg:
        return None
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs, *([args.kwarg] if args.kwarg else [])]
    if any(p.annotation is not None for p in params):
        return None
    names = {p.arg for p in params}
    return None if names & {"np", "numpy", DIV_HELPER} else names


def _reduces(tree: Tree) -> bool:
    return tree[0] not in ("x", "c") and (OPS[tree[0]].reduce or any(_reduces(kid) for kid in tree[1:]))


def _pure_return(fn: ast.FunctionDef, reductions: bool) -> bool:
    body = fn.body[1:] if fn.body and _docstring(fn.body[0]) else fn.body
    names = _plain_signature(fn)
    if names is None or len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return False
    try:
        tree = from_ast(body[0].value, names - ({fn.args.kwarg.arg} if fn.args.kwarg else set()))
    except (NotATree, RecursionError):
        return False
    return reductions or not _reduces(tree)


def is_pure_rule(source: str, function: str, reductions: bool = True) -> bool:
    """Whether ``source`` is nothing but ``function`` returning one tree expression (and the
    GP's division helper): then it keeps no state and changes nothing outside itself.  With
    ``reductions`` False, only an expression that reduces no array (an index rule) is."""
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    try:
        return _only_the_rule(module, function, reductions)
    except RecursionError:  # a helper nested past ast.dump's reach (a sum of 1,200 terms parses): not the GP's
        return False


def _only_the_rule(module: ast.Module, function: str, reductions: bool) -> bool:
    found = False
    for node in module.body:
        if _docstring(node) or _numpy_import(node):
            continue
        if not isinstance(node, ast.FunctionDef):
            return False
        if node.name == DIV_HELPER and ast.dump(node) == _HELPER:
            continue
        if node.name != function or found or not _pure_return(node, reductions):
            return False
        found = True
    return found
