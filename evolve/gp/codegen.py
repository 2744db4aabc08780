"""Trees to Python source and back.

The emitted expression is plain numpy that a person can paste into a
scheduler: ``np.maximum(d, t + p)``.  Division is protected (``x / 0`` is
``x``: GP's closure rule, so no candidate dies of a NaN) through a two-line
helper written into the EVOLVE-BLOCK once, next to the rule.

``parse`` reads an expression back into a tree when it uses only what
``emit`` writes (plus plain ``/``, ``**2`` and unary minus on constants), so
the search can continue from any program in the archive, including a
model's, whenever its rule is a single ``return`` expression.
"""

from __future__ import annotations

import ast
import math

from evolve.gp.tree import OPS, Tree

DIV_HELPER = "protected_div"
HELPER_SOURCE = (
    f"def {DIV_HELPER}(a, b):\n"
    '    """a / b, and a where b == 0 (keeps every priority finite)."""\n'
    "    return np.where(b == 0, a, a / np.where(b == 0, 1.0, b))\n"
)
_BINOPS = {"add": ast.Add, "sub": ast.Sub, "mul": ast.Mult}
_NP_CALLS = {"max": "maximum", "min": "minimum", "abs": "abs", "square": "square"}
_REDUCE = {"rmax": "max", "rmin": "min", "rmean": "mean"}


def _np(attr: str) -> ast.expr:
    return ast.Attribute(ast.Name("np", ast.Load()), attr, ast.Load())


def _call(func: ast.expr, args: list[ast.expr], keywords: list[ast.keyword] | None = None) -> ast.expr:
    return ast.Call(func, args, keywords or [])


def format_constant(value: float) -> float | int:
    """Four significant digits, and integers without a decimal point."""
    short = float(f"{value:.4g}")
    return int(short) if short.is_integer() and abs(short) < 1e15 else short


def to_ast(tree: Tree) -> ast.expr:
    tag = tree[0]
    if tag == "x":
        return ast.Name(tree[1], ast.Load())
    if tag == "c":
        value = format_constant(tree[1])
        if value < 0:
            return ast.UnaryOp(ast.USub(), ast.Constant(-value))
        return ast.Constant(value)
    kids = [to_ast(c) for c in tree[1:]]
    if tag in _BINOPS:
        return ast.BinOp(kids[0], _BINOPS[tag](), kids[1])
    if tag == "div":
        return _call(ast.Name(DIV_HELPER, ast.Load()), kids)
    if tag == "neg":
        return ast.UnaryOp(ast.USub(), kids[0])
    if tag in _NP_CALLS:
        return _call(_np(_NP_CALLS[tag]), kids)
    if tag == "sqrt":
        return _call(_np("sqrt"), [_call(_np("abs"), kids)])
    if tag == "log":
        return _call(_np("log1p"), [_call(_np("abs"), kids)])
    if tag == "ifpos":
        test = ast.Compare(kids[0], [ast.Gt()], [ast.Constant(0)])
        return _call(_np("where"), [test, kids[1], kids[2]])
    if tag in _REDUCE:
        keywords = [ast.keyword("axis", ast.UnaryOp(ast.USub(), ast.Constant(1))),
                    ast.keyword("keepdims", ast.Constant(True))]
        return _call(_np(_REDUCE[tag]), kids, keywords)
    raise ValueError(f"unknown operator {tag!r}")


def emit(tree: Tree) -> str:
    return ast.unparse(to_ast(tree))


def uses_division(tree: Tree) -> bool:
    if tree[0] in ("x", "c"):
        return False
    return tree[0] == "div" or any(uses_division(c) for c in tree[1:])


# --- parsing ------------------------------------------------------------------


class NotATree(ValueError):
    """The expression uses something the search does not represent."""


def _np_attr(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("np", "numpy"):
        return node.attr
    return None


def _number(node: ast.expr) -> float | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        try:
            return float(node.value)
        except OverflowError:  # an integer literal of hundreds of digits: a model can write one
            raise NotATree("an integer constant too large for a float") from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        if inner is not None:
            return -inner if isinstance(node.op, ast.USub) else inner
    return None


def _reduction_axis_ok(call: ast.Call) -> bool:
    keywords = {k.arg: k.value for k in call.keywords}
    axis, keep = keywords.get("axis"), keywords.get("keepdims")
    return (set(keywords) == {"axis", "keepdims"} and axis is not None and _number(axis) == -1.0
            and isinstance(keep, ast.Constant) and keep.value is True)


def from_ast(node: ast.expr, names: set[str]) -> Tree:
    value = _number(node)
    if value is not None:
        if not math.isfinite(value):
            raise NotATree("a non-finite constant")
        return ("c", value)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise NotATree(f"'{node.id}' is not an input of the rule")
        return ("x", node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return ("neg", from_ast(node.operand, names))
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow) and _number(node.right) == 2.0:
            return ("square", from_ast(node.left, names))
        left, right = from_ast(node.left, names), from_ast(node.right, names)
        for tag, op in _BINOPS.items():
            if isinstance(node.op, op):
                return (tag, left, right)
        if isinstance(node.op, ast.Div):
            return ("div", left, right)
        raise NotATree(f"operator {type(node.op).__name__}")
    if isinstance(node, ast.Call):
        return _from_call(node, names)
    raise NotATree(type(node).__name__)


def _from_call(node: ast.Call, names: set[str]) -> Tree:
    if isinstance(node.func, ast.Name) and node.func.id == DIV_HELPER and len(node.args) == 2 and not node.keywords:
        return ("div", from_ast(node.args[0], names), from_ast(node.args[1], names))
    attr = _np_attr(node.func)
    args = node.args
    if attr is None:
        raise NotATree("a call that is not numpy")
    if attr in _REDUCE.values() and len(args) == 1 and _reduction_axis_ok(node):
        tag = next(t for t, a in _REDUCE.items() if a == attr)
        return (tag, from_ast(args[0], names))
    if node.keywords:
        raise NotATree(f"np.{attr} with keywords")
    if attr in ("sqrt", "log1p") and len(args) == 1:
        inner = args[0]
        if isinstance(inner, ast.Call) and _np_attr(inner.func) == "abs" and len(inner.args) == 1 and not inner.keywords:
            return ("sqrt" if attr == "sqrt" else "log", from_ast(inner.args[0], names))
        raise NotATree(f"np.{attr} without np.abs")
    if attr == "where" and len(args) == 3:
        test = args[0]
        if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Gt)
                and _number(test.comparators[0]) == 0.0):
            return ("ifpos", from_ast(test.left, names), from_ast(args[1], names), from_ast(args[2], names))
        raise NotATree("np.where with another condition")
    for tag, name in _NP_CALLS.items():
        if attr == name and len(args) == OPS[tag].arity:
            return (tag, *(from_ast(a, names) for a in args))
    raise NotATree(f"np.{attr}")


def parse(source: str, names: set[str]) -> Tree:
    try:
        expr = ast.parse(source, mode="eval").body
    except SyntaxError as err:
        raise NotATree(f"syntax: {err.msg}") from None
    return from_ast(expr, names)
