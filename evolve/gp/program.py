"""Reading a rule's tree out of a program, and writing a new tree into it.

Only the body of the rule function changes (its ``def`` line and docstring
stay), so a child differs from its parent exactly where the search changed
something, and review's diffs and lineage read like a model's edits.
"""

from __future__ import annotations

import ast
import dataclasses

from evolve.config import RuleSpec
from evolve.edits import evolve_blocks
from evolve.gp.codegen import (
    DIV_HELPER,
    HELPER_SOURCE,
    NotATree,
    emit,
    from_ast,
    parse,
    uses_division,
)
from evolve.gp.rules import RuleSite, find_rule
from evolve.gp.tree import Signature, Tree, reads, size, well_typed

# The most nodes a rule read out of a program may have to be read as a tree. Trees run in the
# controller (the GP's screen, a refit, behaviour keys), once per decision of every instance: a
# model's 9 KB rule of 1,800 nodes took 2.7 s of the controller's CPU per screen of smtt_rule's fit
# split, and 256 KiB of code hold ~65,000 (fifteenth red team). The GP's own trees are at most twice
# its largest max_size (400: a rule split at a gate, each side within it) and a gate; a larger rule
# is read as code, as any rule that is not one expression: the sandbox runs it, nothing screens it.
MAX_TREE_SIZE = 1000


def signature_of(rule: RuleSpec, reductions: bool = True) -> Signature:
    """What the rule's trees may read; ``reductions``: as ``[run.gp] reductions`` (a rule read out
    of a program is read with them, so a parent is a tree whatever the setting)."""
    names = {i.name for i in rule.inputs}
    return Signature(tuple((i.name, i.kind) for i in rule.inputs), rule.returns,
                     tuple(parse(term, names) for term in rule.terminals),
                     tuple(parse(gate, names) for gate in rule.gates), reductions)


def taken_by(sig: Signature, params: tuple[str, ...]) -> Signature:
    """``sig`` narrowed to the inputs a program's rule function takes.  A child keeps its parent's
    ``def`` line (and the frame that calls it), so a parent written before an input was declared
    (moe's ``gpu_cost`` before ``num_groups``, an archive resumed) must get children that do not
    read it: they failed with a NameError, every one of them a lost iteration."""
    missing = {name for name, _ in sig.inputs} - set(params)
    if not missing:
        return sig
    return dataclasses.replace(sig, inputs=tuple(i for i in sig.inputs if i[0] not in missing),
                               derived=tuple(t for t in sig.derived if not reads(t) & missing),
                               gates=tuple(t for t in sig.gates if not reads(t) & missing))


def return_expression(code: str, rule: RuleSpec, tree: ast.Module | None = None) -> str | None:
    """The source of ``return EXPR`` when that is the rule's whole body (after its docstring)."""
    site = find_rule(code, rule.function, tree)
    node = None if site is None else _returned(site)
    return None if node is None else ast.unparse(node)


def _returned(site: RuleSite) -> ast.expr | None:
    """``EXPR`` of ``return EXPR`` when that is the rule's whole body (after its docstring)."""
    body = site.node.body[1:] if site.docstring is not None else site.node.body
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return None
    return body[0].value


def rule_tree(code: str, rule: RuleSpec, tree: ast.Module | None = None) -> Tree | None:
    """The rule as a well-typed tree, or None when its body is anything else."""
    site = find_rule(code, rule.function, tree)
    return None if site is None else site_tree(site, rule)


def site_tree(site: RuleSite, rule: RuleSpec) -> Tree | None:
    """``rule_tree`` of a rule already found, read from its parsed expression."""
    node = _returned(site)
    if node is None:
        return None
    sig = signature_of(rule)
    try:
        parsed = from_ast(node, {n for n, _ in sig.inputs})
    except NotATree:
        return None
    return parsed if size(parsed) <= MAX_TREE_SIZE and well_typed(parsed, sig) else None


def with_rule(code: str, rule: RuleSpec, tree: Tree) -> str:
    """``code`` with the rule's body replaced by ``return <tree>`` (and the division helper)."""
    site = find_rule(code, rule.function)
    if site is None:
        raise ValueError(f"no rule function '{rule.function}' in the EVOLVE-BLOCK")
    lines = code.split("\n")
    indent = " " * (site.node.col_offset + 4)
    body = [f"{indent}return {emit(tree)}"]
    new = lines[: site.body_first] + body + lines[site.last + 1:]
    if uses_division(tree) and not _defines(code, DIV_HELPER):
        new = new[: site.first] + HELPER_SOURCE.rstrip("\n").split("\n") + ["", ""] + new[site.first:]
    return "\n".join(new)


def _defines(code: str, name: str) -> bool:
    try:
        module = ast.parse(code)
    except SyntaxError:
        return False
    blocks = evolve_blocks(code)
    return any(
        isinstance(node, ast.FunctionDef) and node.name == name
        and any(s <= node.lineno - 1 < e for s, e in blocks)
        for node in module.body
    )
