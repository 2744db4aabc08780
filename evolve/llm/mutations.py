"""AST mutation operators behind the offline stub backend.

Each operator picks an expression inside an EVOLVE-BLOCK, builds a new AST
node for it and realises the change as a *source splice*: the node's exact
span is replaced by ``ast.unparse(new_node)`` (parenthesised only when the
re-parsed program would otherwise differ), so comments and layout elsewhere
survive and the change can be written as a SEARCH/REPLACE block.

Only expressions inside statements are touched: never docstrings, function
signatures, decorators, assignment targets, subscripts/indices, ``range``
arguments or marker lines.  Which names count as numeric is a cheap,
name-based guess over the whole module (see :class:`Analysis`).
"""

from __future__ import annotations

import ast
import builtins
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from evolve.edits import EditError, evolve_blocks

BUILTIN_NAMES = frozenset(dir(builtins))

_ARITH = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.Pow: ast.Mult,
}
_CMP_SWAP: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
}
_MINMAX_SWAP = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum"}
_MINMAX_SWAP.update({"fmin": "fmax", "fmax": "fmin"})

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
        if isinstance(stmt, ast.Assign) and _is_number_literal(stmt.value)
        for t in stmt.targets
        if isinstance(t, ast.Name)
    } - excluded
    analysis = Analysis(code, tree, aliases, excluded, module_numeric)
    _SiteFinder(analysis, evolve_blocks(code)).run()
    return analysis


def node_count(node: ast.AST) -> int:
    return sum(1 for _ in ast.walk(node))


def _is_number_literal(node: ast.AST) -> bool:
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
        return not _is_number_literal(value)
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
            if target_ok and type(node.op) in _BINOP_SWAP and not isinstance(node.op, ast.Pow):
                self.add(node, "binop")
            self.expr(node.value, numeric=target_ok)
        elif isinstance(node, (ast.If, ast.While)):
            self.expr(node.test, numeric=False)
        elif isinstance(node, ast.Expr):
            self.expr(node.value, numeric=False)

    # -- expressions ---------------------------------------------------------

    def expr(self, node: ast.expr, numeric: bool) -> None:
        if _is_number_literal(node):
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
            if any(type(op) in _CMP_SWAP for op in node.ops):
                self.add(node, "compare")
            if all(isinstance(op, (*_CMP_SWAP, ast.Eq, ast.NotEq)) for op in node.ops):
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
            if name in _MINMAX_SWAP:
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


# --------------------------------------------------------------------------
# splicing


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


def iter_weighted(rng: random.Random, items: list[tuple[float, object]]) -> Iterator[object]:
    """Draw without replacement, proportionally to weight."""
    pool = [(w, x) for w, x in items if w > 0]
    while pool:
        total = sum(w for w, _ in pool)
        r = rng.random() * total
        for i, (w, x) in enumerate(pool):
            r -= w
            if r <= 0 or i == len(pool) - 1:
                pool.pop(i)
                yield x
                break


# --------------------------------------------------------------------------
# operators

# Relative operator weights before bloat control; an operator without a
# usable site is skipped and the rest renormalise.
OPERATOR_WEIGHTS: dict[str, float] = {
    "perturb": 0.25,
    "swap_binop": 0.10,
    "swap_compare": 0.08,
    "swap_minmax": 0.05,
    "grow": 0.18,
    "wrap": 0.18,
    "crossover": 0.15,
    "prune": 0.10,
}
_SITE_KIND = {
    "perturb": "const",
    "swap_binop": "binop",
    "swap_compare": "compare",
    "swap_minmax": "minmax",
    "grow": "numeric",
    "wrap": "numeric",
    "crossover": "numeric",
    "prune": "prune",
}
_CONST_PALETTE = (0.5, 2.0, 0.25, 1.5, 0.1, 3.0)
# Bloat control.  A statement expression may not grow past _ROOT_CAP AST
# nodes (`np.maximum(d, t + p)` is 8); and as the blocks' expressions
# approach _BLOAT_NODES in total, growing operators fade and pruning rises.
_ROOT_CAP = 40
_BLOAT_NODES = 150
_GROWING = frozenset(["grow", "wrap", "crossover"])


@dataclass(frozen=True)
class Donor:
    """A sub-expression of an inspiration, for crossover."""

    src: str
    names: frozenset[str]  # free variables it reads
    modules: frozenset[tuple[str, str]]  # (alias, module) it uses
    func: str
    size: int  # AST nodes


@dataclass(frozen=True)
class Mutation:
    operator: str
    description: str
    splice: Splice


def _num(value: float) -> ast.expr:
    # A negative literal parses as USub(Constant): build it that way so the
    # spliced text re-parses to the same tree.
    if value < 0:
        return ast.UnaryOp(op=ast.USub(), operand=ast.Constant(-value))
    return ast.Constant(value)


def _load(name: str) -> ast.Name:
    # ctx matters: the spliced text is checked by comparing ast.dump output.
    return ast.Name(name, ast.Load())


def _small_const(rng: random.Random) -> float:
    if rng.random() < 0.5:
        return rng.choice(_CONST_PALETTE)
    return round(rng.uniform(0.05, 3.0), 2)


def _free_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _term(scope: tuple[str, ...], avoid: set[str], rng: random.Random) -> ast.expr:
    """A small new term: c * name, name, name OP name, or a constant."""
    if not scope:
        return _num(_small_const(rng))
    # Names the expression does not use yet are twice as likely: they are
    # what makes a rule depend on new information (e.g. t and p in EDD).
    weighted = [(1.0 if n in avoid else 2.0, n) for n in scope]
    names = list(iter_weighted(rng, weighted))
    form = rng.choices(["scaled", "name", "pair", "const"], weights=[0.3, 0.2, 0.35, 0.15])[0]
    fresh = [n for n in names if n not in avoid]
    if form in ("scaled", "name") and fresh:
        # A lone name the expression already uses mostly gives a no-op
        # (max(d, d)) or an order-preserving rescale (d + d); prefer new ones.
        names = fresh
    if form == "pair" and len(names) >= 2:
        op = rng.choice([ast.Add, ast.Sub, ast.Mult])()
        return ast.BinOp(_load(names[0]), op, _load(names[1]))
    if form == "const":
        return _num(_small_const(rng))
    if form == "name":
        return _load(names[0])
    return ast.BinOp(_num(_small_const(rng)), ast.Mult(), _load(names[0]))


_Result = tuple[ast.AST, str] | None


def _new_term(site: Site, rng: random.Random) -> ast.expr | None:
    for _ in range(3):
        term = _term(site.scope, _free_names(site.node), rng)
        # max(e, e), e - e and constant-with-constant (np.minimum(2.9, 3.0))
        # are no-ops or junk, not search.
        if ast.dump(term) == ast.dump(site.node):
            continue
        if _is_number_literal(term) and _is_number_literal(site.node):
            continue
        return term
    return None


def _perturb(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    old = ast.literal_eval(site.node)  # type: ignore[arg-type]
    if isinstance(old, int):
        new: float = -old if old and rng.random() < 0.1 else old + rng.choice([-2, -1, 1, 2])
    elif old and rng.random() < 0.1:
        new = -old
    elif old == 0:
        new = rng.choice([-1, 1]) * round(rng.uniform(0.05, 1.0), 2)
    else:
        new = float(f"{old * rng.uniform(0.5, 1.5):.3g}")
    if new == old:
        return None
    return _num(new), "change a constant"


def _swap_binop(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    node = site.node
    op = _BINOP_SWAP[type(node.op)]()  # type: ignore[attr-defined]
    if isinstance(node, ast.AugAssign):
        new: ast.AST = ast.AugAssign(node.target, op, node.value)
    else:
        assert isinstance(node, ast.BinOp)
        # Occasionally try a small power instead of scaling.
        if (
            isinstance(node.op, (ast.Mult, ast.Div))
            and _is_number_literal(node.right)
            and abs(ast.literal_eval(node.right)) <= 3
            and rng.random() < 0.15
        ):
            op = ast.Pow()
        new = ast.BinOp(node.left, op, node.right)
    return new, "swap an arithmetic operator"


def _swap_compare(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    node = site.node
    assert isinstance(node, ast.Compare)
    idx = [i for i, op in enumerate(node.ops) if type(op) in _CMP_SWAP]
    i = rng.choice(idx)
    ops = list(node.ops)
    ops[i] = rng.choice(_CMP_SWAP[type(ops[i])])()
    return ast.Compare(node.left, ops, node.comparators), "swap a comparison"


def _swap_minmax(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    node = site.node
    assert isinstance(node, ast.Call)
    f = node.func
    if isinstance(f, ast.Name):
        func: ast.expr = _load(_MINMAX_SWAP[f.id])
    else:
        assert isinstance(f, ast.Attribute)
        func = ast.Attribute(f.value, _MINMAX_SWAP[f.attr], ast.Load())
    return ast.Call(func, node.args, node.keywords), "swap min and max"


def _grow(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    term = _new_term(site, rng)
    if term is None:
        return None
    op = rng.choice([ast.Add, ast.Sub, ast.Mult])()
    return ast.BinOp(site.node, op, term), "add a term"  # type: ignore[arg-type]


def _wrap(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    term = _new_term(site, rng)
    if term is None:
        return None
    which = rng.choice(["maximum", "minimum"])
    alias = a.numpy_alias
    # Without numpy the operands are taken to be scalars: builtin max/min.
    func: ast.expr = ast.Attribute(_load(alias), which, ast.Load()) if alias else _load(which[:3])
    return ast.Call(func, [site.node, term], []), f"bound it with {which}"  # type: ignore[list-item]


def _compatible(a: Analysis, site: Site, donors: list[Donor]) -> list[Donor]:
    scope = set(site.scope)
    here = ast.unparse(site.node)
    return [
        d
        for d in donors
        if d.names <= scope and all(a.aliases.get(al) == m for al, m in d.modules) and d.src != here
    ]


def _crossover(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    options = _compatible(a, site, donors)
    if not options:
        return None
    # Material from the function of the same name is the most likely to fit;
    # small pieces are preferred so that crossover does not import bloat.
    weighted = [((3.0 if d.func == site.func else 1.0) / (1 + d.size / 10), d) for d in options]
    donor = next(iter_weighted(rng, weighted))
    assert isinstance(donor, Donor)
    return ast.parse(donor.src, mode="eval").body, "borrow from an inspiration"


def _prune(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    node = site.node
    if isinstance(node, ast.BinOp):
        return rng.choice([node.left, node.right]), "simplify"
    if isinstance(node, ast.UnaryOp):
        return node.operand, "simplify"
    assert isinstance(node, ast.Call)
    _, positions = call_signature(node, a.aliases)
    args = [
        x
        for i, x in enumerate(node.args)
        if not isinstance(x, ast.Starred) and (positions is None or i in positions)
    ]
    return (rng.choice(args), "simplify") if args else None


OPERATORS = {
    "perturb": _perturb,
    "swap_binop": _swap_binop,
    "swap_compare": _swap_compare,
    "swap_minmax": _swap_minmax,
    "grow": _grow,
    "wrap": _wrap,
    "crossover": _crossover,
    "prune": _prune,
}


def collect_donors(codes: list[str]) -> list[Donor]:
    """Non-trivial numeric sub-expressions of the inspirations' blocks."""
    donors: dict[str, Donor] = {}
    for code in codes:
        try:
            insp = analyse(code)
        except (SyntaxError, ValueError, RecursionError, EditError):
            # A broken inspiration is skipped: it only ever adds material.
            continue
        for site in insp.sites:
            node = site.node
            if (
                "numeric" not in site.kinds
                or isinstance(node, ast.Name)
                or _is_number_literal(node)
            ):
                continue
            names, modules = set(), set()
            for n in ast.walk(node):
                if isinstance(n, ast.Name):
                    if n.id in insp.aliases:
                        modules.add((n.id, insp.aliases[n.id]))
                    elif n.id not in BUILTIN_NAMES:
                        names.add(n.id)
            src = ast.unparse(node)
            donor = Donor(src, frozenset(names), frozenset(modules), site.func, node_count(node))
            donors.setdefault(src, donor)
    return list(donors.values())


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mutate_once(code: str, rng: random.Random, donors: list[Donor]) -> Mutation | None:
    """One mutation of ``code``; None if no operator finds a valid change."""
    a = analyse(code)
    bloat = min(1.0, a.size / _BLOAT_NODES)
    factor = {op: 1 - 0.7 * bloat for op in _GROWING}
    factor["prune"] = 1 + 3 * bloat
    by_op: dict[str, list[Site]] = {}
    for op, kind in _SITE_KIND.items():
        sites = [s for s in a.sites if kind in s.kinds]
        if op == "crossover":
            sites = [s for s in sites if _compatible(a, s, donors)]
        if sites:
            by_op[op] = sites
    weighted = [(OPERATOR_WEIGHTS[op] * factor.get(op, 1.0), op) for op in by_op]
    for op in iter_weighted(rng, weighted):
        assert isinstance(op, str)
        for _ in range(4):  # a few sites per operator before giving up on it
            site = rng.choice(by_op[op])
            result = OPERATORS[op](a, site, rng, donors)
            if result is None:
                continue
            new_node, what = result
            if ast.dump(new_node) == ast.dump(site.node):
                continue  # e.g. a swap that lands on the same operator
            growth = node_count(new_node) - node_count(site.node)
            if growth > 0 and site.root_size + growth > _ROOT_CAP:
                continue
            sp = splice(a, site.node, new_node)
            if sp is None:
                continue
            old_src, new_src = ast.unparse(site.node), ast.unparse(new_node)
            where = f" in {site.func}()" if site.func else ""
            desc = f"{what}{where}: `{_short(old_src)}` -> `{_short(new_src)}`"
            return Mutation(op, desc, sp)
    return None
