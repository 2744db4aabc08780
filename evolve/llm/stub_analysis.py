"""What the stub may mutate: the mutation sites of a program's EVOLVE-BLOCKs.

:func:`analyse` parses a program and lists its :class:`Site` objects, each an
expression (or augmented assignment) tagged with the kinds of change an
operator in :mod:`evolve.llm.mutations` may make to it.

Only expressions inside statements are sites: never docstrings, function
signatures, decorators, assignment targets, subscripts/indices, ``range``
arguments or marker lines.  Which names count as numeric is a cheap,
name-based guess over the whole module (see :class:`Analysis`).
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from evolve.edits import evolve_blocks

BUILTIN_NAMES = frozenset(dir(builtins))

_ARITH = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.Pow: ast.Mult,
}
CMP_SWAP: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
}
MINMAX_SWAP = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum"}
MINMAX_SWAP.update({"fmin": "fmax", "fmax": "fmin"})

# Numeric functions whose listed positional arguments are numeric values
# (None: all of them); other arguments (axis, ndigits, conditions) are left
# alone because changing them changes types, not values.
_NUMPY_FUNCS: dict[str, tuple[int, ...] | None] = {
    **dict.fromkeys(["maximum", "minimum", "fmax", "fmin", "clip", "power", "hypot"]),
    **dict.fromkeys(["abs", "absolute", "sqrt", "exp", "log", "log1p", "expm1", "square"]),
    **dict.fromkeys(["tanh", "sign", "floor", "ceil", "arctan"]),
    **dict.fromkeys(["sum", "mean", "max", "min", "round", "cumsum"], (0,)),
    "where": (1, 2),
}
_MATH_FUNCS: dict[str, tuple[int, ...] | None] = dict.fromkeys(
    ["sqrt", "exp", "log", "log1p", "fabs", "floor", "ceil", "pow", "tanh", "atan", "hypot"]
)
_BUILTIN_FUNCS: dict[str, tuple[int, ...] | None] = {
    "abs": None,
    "min": None,
    "max": None,
    "float": None,
    "pow": None,
    "round": (0,),
}
# Reductions change shape, so "prune to an argument" is only offered for
# element-wise calls.
_NO_PRUNE = frozenset(["sum", "mean", "cumsum", "where"])

# Evidence that a name holds a container, callable or index array rather
# than a number: methods called on it, or what it is assigned from.
_CONTAINER_METHODS = frozenset(
    ["append", "extend", "insert", "pop", "remove", "sort", "reverse", "add", "update"]
    + ["keys", "values", "items", "get", "popleft", "appendleft", "discard", "setdefault"]
    + ["index", "count"]
)
_NON_NUMERIC_CALLS = frozenset(
    ["list", "dict", "set", "tuple", "sorted", "str", "reversed", "enumerate", "zip"]
    + ["range", "map", "filter", "deque", "frozenset", "len", "int"]
)
_INDEX_ARRAY_FUNCS = frozenset(
    ["argsort", "argmin", "argmax", "arange", "nonzero", "flatnonzero", "lexsort", "argwhere"]
)
_NON_NUMERIC_VALUES = (
    ast.List,
    ast.ListComp,
    ast.Dict,
    ast.DictComp,
    ast.Set,
    ast.SetComp,
    ast.Tuple,
    ast.JoinedStr,
    ast.Lambda,
    ast.GeneratorExp,
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
                and f.attr in _CONTAINER_METHODS
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
            and _non_numeric_value(node.value, aliases)
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
    _SiteFinder(analysis, evolve_blocks(code)).run()
    return analysis


def node_count(node: ast.AST) -> int:
    return sum(1 for _ in ast.walk(node))


def is_number_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    )


def _non_numeric_value(value: ast.AST, aliases: dict[str, str]) -> bool:
    if isinstance(value, _NON_NUMERIC_VALUES):
        return True
    if isinstance(value, ast.Constant):
        return not is_number_literal(value)
    if isinstance(value, ast.Call):
        f = value.func
        if isinstance(f, ast.Name):
            return f.id in _NON_NUMERIC_CALLS
        if isinstance(f, ast.Attribute):
            if isinstance(f.value, ast.Name) and aliases.get(f.value.id) == "numpy":
                return f.attr in _INDEX_ARRAY_FUNCS
            return f.attr in ("copy", "tolist") or f.attr in _CONTAINER_METHODS
    return False


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


class _SiteFinder:
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
            if not isinstance(node.op, _ARITH):
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
            if args and name not in _NO_PRUNE:
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


def call_signature(
    node: ast.Call, aliases: dict[str, str]
) -> tuple[str | None, tuple[int, ...] | None]:
    """(function name, numeric argument positions) for known numeric calls."""
    f = node.func
    if isinstance(f, ast.Name) and f.id in _BUILTIN_FUNCS:
        # min/max with one argument reduce an iterable: not a numeric pair.
        if f.id in ("min", "max") and len(node.args) < 2:
            return None, None
        return f.id, _BUILTIN_FUNCS[f.id]
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        module = aliases.get(f.value.id)
        if module == "numpy" and f.attr in _NUMPY_FUNCS:
            return f.attr, _NUMPY_FUNCS[f.attr]
        if module == "math" and f.attr in _MATH_FUNCS:
            return f.attr, _MATH_FUNCS[f.attr]
    return None, None
