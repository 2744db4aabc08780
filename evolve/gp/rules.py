"""Where a declared rule lives in a program, and whether the declaration fits the seed.

A problem's ``[rule]`` tables (``evolve.config.RuleSpec``) name functions inside
the EVOLVE-BLOCK.  The offline search rewrites only their bodies, so it needs
their exact place in the source; this module finds it and checks, once per run,
that the seed defines each declared function with exactly the declared inputs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from evolve.config import RuleSpec
from evolve.edits import EditError, evolve_blocks
from evolve.errors import UserError
from evolve.gp.codegen import NotATree, parse
from evolve.gp.tree import Signature, kind, reads, well_typed


@dataclass(frozen=True)
class RuleSite:
    """A rule function inside an EVOLVE-BLOCK: its node and its 0-based line span."""

    node: ast.FunctionDef
    first: int  # line of ``def`` (decorators are not supported on rules)
    body_first: int  # first line of the body (after the docstring, if any)
    last: int  # last line of the function, inclusive
    docstring: str | None
    params: tuple[str, ...]


def find_rule(code: str, function: str, tree: ast.Module | None = None) -> RuleSite | None:
    """The top-level ``def function`` inside an EVOLVE-BLOCK, or None."""
    try:
        blocks = evolve_blocks(code)
        tree = tree or ast.parse(code)
    except (SyntaxError, EditError):
        return None
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name == function):
            continue
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        if node.decorator_list or not any(s <= first and last < e for s, e in blocks):
            return None
        docstring = ast.get_docstring(node, clean=False)
        body = node.body[1:] if docstring is not None else node.body
        body_first = body[0].lineno - 1 if body else last + 1
        args = node.args
        params = tuple(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs])
        return RuleSite(node, first, body_first, last, docstring, params)
    return None


def check_rules(seed_code: str, rules: list[RuleSpec], source: str) -> None:
    """One-line error unless the seed defines every declared rule with the declared inputs."""
    for rule in rules:
        site = find_rule(seed_code, rule.function)
        if site is None:
            raise UserError(f"{source}: [rule] function '{rule.function}' is not a top-level function "
                            "inside the seed's EVOLVE-BLOCK")
        args = site.node.args
        if args.vararg or args.kwarg or args.defaults or args.kw_defaults and any(args.kw_defaults):
            raise UserError(f"{source}: [rule] function '{rule.function}' must take plain named "
                            "parameters (no *args, **kwargs or defaults)")
        declared = [i.name for i in rule.inputs]
        if sorted(site.params) != sorted(declared):
            missing = sorted(set(site.params) - set(declared))
            extra = sorted(set(declared) - set(site.params))
            what = (f"the seed's parameters {missing} are not declared" if missing
                    else f"declared inputs {extra} are not parameters of the seed's function")
            raise UserError(f"{source}: [rule] function '{rule.function}': {what}; the inputs must "
                            f"be exactly its parameters ({', '.join(site.params)})")
        sig = Signature(tuple((i.name, i.kind) for i in rule.inputs), rule.returns)
        for field, exprs in (("starts", rule.starts), ("terminals", rule.terminals), ("gates", rule.gates)):
            for k, expr in enumerate(exprs):
                where = f"{source}: [rule] '{rule.function}' {field}[{k}] = {expr!r}"
                try:
                    tree = parse(expr, set(declared))
                except NotATree as err:
                    raise UserError(f"{where}: {err}; expected an expression of the GP's operators "
                                    "over the inputs") from None
                if field == "starts" and not well_typed(tree, sig):
                    raise UserError(f"{where}: must give one value per candidate ({rule.returns})")
                if field == "terminals" and tree[0] in ("x", "c"):
                    raise UserError(f"{where}: is a bare input or constant; a derived terminal must "
                                    "compute something")
                if field == "terminals" and not well_typed(tree, Signature(sig.inputs, kind(tree, sig))):
                    raise UserError(f"{where}: not a well-typed expression over the inputs")
                if field == "gates" and (not reads(tree) or not well_typed(tree, Signature(sig.inputs, "scalar"))):
                    raise UserError(f"{where}: a gate must be a scalar expression that reads an input "
                                    "(one value per decision, whose sign splits them), e.g. 'n - 75'")
