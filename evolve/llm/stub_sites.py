"""The mutation sites of a program's EVOLVE-BLOCKs: a :class:`Site` is an expression (or
augmented assignment) tagged with the kinds of change an operator may make to it; the
:class:`SiteFinder` walks a parsed program and lists them in its :class:`Analysis`, with the
numeric names readable at each.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from evolve.llm.stub_vocabulary import (
    ARITH,
    BINOP_SWAP,
    CMP_SWAP,
    MINMAX_SWAP,
    NO_PRUNE,
    call_signature,
    is_number_literal,
    node_count,
)

_FuncDef = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Site:
    """An expression (or augmented assignment) an operator may rewrite."""

    node: ast.AST
    kinds: frozenset[str]  # const, binop, compare, minmax, numeric, prune
    scope: tuple[str, ...]  # numeric names readable at this point, sorted
    func: str  # innermost enclosing function ("" at module level)
    root_size: int  # AST nodes of the statement expression the site lies in


@dataclass
class Analysis:
    """What the operators need to know about one program text."""

    code: str
    tree: ast.Module
    aliases: dict[str, str]  # import alias -> module ("np" -> "numpy")
    excluded: set[str]  # names that are never numeric terms
    module_numeric: set[str]
    sites: list[Site] = field(default_factory=list)
    size: int = 0  # AST nodes of all statement expressions in the blocks

    @property
    def numpy_alias(self) -> str | None:
        names = [a for a, m in self.aliases.items() if m == "numpy"]
        return "np" if "np" in names else (names[0] if names else None)


def _params(fn: _FuncDef | ast.Lambda) -> list[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    return names


def _bound_names(fn: _FuncDef) -> list[tuple[int, str]]:
    """(line, name) of every local binding in ``fn``, not in nested scopes."""
    out: list[tuple[int, str]] = []
    stack: list[ast.AST] = list(fn.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.append((node.lineno, node.id))
        stack.extend(ast.iter_child_nodes(node))
    return out


class SiteFinder:
    def __init__(self, analysis: Analysis, blocks: list[tuple[int, int]]) -> None:
        self.a = analysis
        self.blocks = blocks
        self.funcs: list[_FuncDef] = []
        self.bound: dict[int, list[tuple[int, str]]] = {}
        self.line = 0
        self.lambda_params: frozenset[str] = frozenset()
        self.root_size = 0
        self.receivers: set[int] = set()  # id() of methods whose first parameter is self/cls

    def run(self) -> None:
        self.stmts(self.a.tree.body, docstring_allowed=True)

    def _in_block(self, node: ast.stmt) -> bool:
        end = node.end_lineno or node.lineno
        return any(s <= node.lineno - 1 and end <= e for s, e in self.blocks)

    # -- scope ---------------------------------------------------------------

    def scope(self) -> tuple[str, ...]:
        names = set(self.a.module_numeric) | self.lambda_params
        for fn in self.funcs:
            params = _params(fn)
            names.update(params[1:] if id(fn) in self.receivers else params)
        if self.funcs:
            fn = self.funcs[-1]
            if id(fn) not in self.bound:
                self.bound[id(fn)] = _bound_names(fn)
            bound = self.bound[id(fn)]
            # Only names bound by earlier statements: later ones would be unbound.
            names.update(n for line, n in bound if line < self.line)
        return tuple(sorted(names - self.a.excluded))

    def add(self, node: ast.AST, *kinds: str) -> None:
        func = self.funcs[-1].name if self.funcs else ""
        self.a.sites.append(Site(node, frozenset(kinds), self.scope(), func, self.root_size))

    # -- statements ----------------------------------------------------------

    def stmts(self, body: list[ast.stmt], docstring_allowed: bool = False) -> None:
        for i, stmt in enumerate(body):
            is_doc = (
                i == 0
                and docstring_allowed
                and isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            )
            if not is_doc:
                self.stmt(stmt)

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.funcs.append(node)
            self.stmts(node.body, docstring_allowed=True)
            self.funcs.pop()
            return
        if isinstance(node, ast.ClassDef):
            for child in node.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and not any(
                    isinstance(d, ast.Name) and d.id == "staticmethod" for d in child.decorator_list
                ):
                    self.receivers.add(id(child))  # self/cls is an object, not a number
            self.stmts(node.body, docstring_allowed=True)
            return
        for name in ("body", "orelse", "finalbody"):
            self.stmts(getattr(node, name, []) or [])
        for handler in getattr(node, "handlers", []) or []:
            self.stmts(handler.body)
        if not self._in_block(node):
            return
        self.line = node.lineno
        root = getattr(node, "test", None) or getattr(node, "value", None)
        self.root_size = node_count(root) if isinstance(root, ast.AST) else 0
        self.a.size += self.root_size
        if isinstance(node, (ast.Return, ast.Assign, ast.AnnAssign)):
            if node.value is not None:
                self.expr(node.value, numeric=True)
        elif isinstance(node, ast.AugAssign):
            target_ok = not (
                isinstance(node.target, ast.Name) and node.target.id in self.a.excluded
            )
            if target_ok and type(node.op) in BINOP_SWAP and not isinstance(node.op, ast.Pow):
                self.add(node, "binop")
            self.expr(node.value, numeric=target_ok)
        elif isinstance(node, (ast.If, ast.While)):
            self.expr(node.test, numeric=False)
        elif isinstance(node, ast.Expr):
            self.expr(node.value, numeric=False)

    # -- expressions ---------------------------------------------------------

    def expr(self, node: ast.expr, numeric: bool) -> None:
        if is_number_literal(node):
            if numeric:
                self.add(node, "const", "numeric")
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                self.expr(node.operand, numeric=False)
            elif numeric:
                self.add(node, "numeric", "prune")
                self.expr(node.operand, numeric=True)
        elif isinstance(node, ast.Name):
            if numeric and node.id in self.scope():
                self.add(node, "numeric")
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, ARITH):
                return  # %, //, bit ops: integer logic, left alone
            if numeric:
                self.add(node, "numeric", "prune", "binop")
            self.expr(node.left, numeric=True)
            self.expr(node.right, numeric=True)
        elif isinstance(node, ast.Compare):
            if any(type(op) in CMP_SWAP for op in node.ops):
                self.add(node, "compare")
            if all(isinstance(op, (*CMP_SWAP, ast.Eq, ast.NotEq)) for op in node.ops):
                for operand in [node.left, *node.comparators]:
                    self.expr(operand, numeric=True)
        elif isinstance(node, ast.BoolOp):
            for v in node.values:
                self.expr(v, numeric=False)
        elif isinstance(node, ast.IfExp):
            self.expr(node.test, numeric=False)
            self.expr(node.body, numeric)
            self.expr(node.orelse, numeric)
        elif isinstance(node, ast.Call):
            self.call(node, numeric)
        elif isinstance(node, ast.Subscript):
            if numeric and isinstance(node.value, ast.Name) and node.value.id in self.scope():
                self.add(node, "numeric")
        elif isinstance(node, ast.Lambda):
            self.lambda_(node)

    def call(self, node: ast.Call, numeric: bool) -> None:
        name, positions = call_signature(node, self.a.aliases)
        if name is None:
            # Unknown call: its arguments have unknown types, but a key=lambda
            # body is a numeric expression worth evolving.
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Lambda):
                    self.lambda_(arg)
            return
        args = [
            a
            for i, a in enumerate(node.args)
            if not isinstance(a, ast.Starred) and (positions is None or i in positions)
        ]
        if numeric:
            kinds = ["numeric"]
            if args and name not in NO_PRUNE:
                kinds.append("prune")
            if name in MINMAX_SWAP:
                kinds.append("minmax")
            self.add(node, *kinds)
        for a in args:
            self.expr(a, numeric=True)

    def lambda_(self, node: ast.Lambda) -> None:
        saved = self.lambda_params
        self.lambda_params = saved | frozenset(_params(node))
        self.expr(node.body, numeric=True)
        self.lambda_params = saved
