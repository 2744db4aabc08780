"""What the stub knows about names and calls: the operator swaps its mutations make, the
numeric functions of numpy, math and the builtins (and which of their arguments are numeric
values), and the evidence that a name holds a container, a callable or an index array rather
than a number.  Used by the site finder (``stub_sites.py``), ``analyse`` (``stub_analysis.py``)
and the operators (``mutations.py``).
"""

from __future__ import annotations

import ast
import builtins

BUILTIN_NAMES = frozenset(dir(builtins))

ARITH = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
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
NUMPY_FUNCS: dict[str, tuple[int, ...] | None] = {
    **dict.fromkeys(["maximum", "minimum", "fmax", "fmin", "clip", "power", "hypot"]),
    **dict.fromkeys(["abs", "absolute", "sqrt", "exp", "log", "log1p", "expm1", "square"]),
    **dict.fromkeys(["tanh", "sign", "floor", "ceil", "arctan"]),
    **dict.fromkeys(["sum", "mean", "max", "min", "round", "cumsum"], (0,)),
    "where": (1, 2),
}
MATH_FUNCS: dict[str, tuple[int, ...] | None] = dict.fromkeys(
    ["sqrt", "exp", "log", "log1p", "fabs", "floor", "ceil", "pow", "tanh", "atan", "hypot"]
)
BUILTIN_FUNCS: dict[str, tuple[int, ...] | None] = {
    "abs": None,
    "min": None,
    "max": None,
    "float": None,
    "pow": None,
    "round": (0,),
}
# Reductions change shape, so "prune to an argument" is only offered for
# element-wise calls.
NO_PRUNE = frozenset(["sum", "mean", "cumsum", "where"])

# Evidence that a name holds a container, callable or index array rather
# than a number: methods called on it, or what it is assigned from.
CONTAINER_METHODS = frozenset(
    ["append", "extend", "insert", "pop", "remove", "sort", "reverse", "add", "update"]
    + ["keys", "values", "items", "get", "popleft", "appendleft", "discard", "setdefault"]
    + ["index", "count"]
)
NON_NUMERIC_CALLS = frozenset(
    ["list", "dict", "set", "tuple", "sorted", "str", "reversed", "enumerate", "zip"]
    + ["range", "map", "filter", "deque", "frozenset", "len", "int"]
)
INDEX_ARRAY_FUNCS = frozenset(
    ["argsort", "argmin", "argmax", "arange", "nonzero", "flatnonzero", "lexsort", "argwhere"]
)
NON_NUMERIC_VALUES = (
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


def non_numeric_value(value: ast.AST, aliases: dict[str, str]) -> bool:
    if isinstance(value, NON_NUMERIC_VALUES):
        return True
    if isinstance(value, ast.Constant):
        return not is_number_literal(value)
    if isinstance(value, ast.Call):
        f = value.func
        if isinstance(f, ast.Name):
            return f.id in NON_NUMERIC_CALLS
        if isinstance(f, ast.Attribute):
            if isinstance(f.value, ast.Name) and aliases.get(f.value.id) == "numpy":
                return f.attr in INDEX_ARRAY_FUNCS
            return f.attr in ("copy", "tolist") or f.attr in CONTAINER_METHODS
    return False


def call_signature(
    node: ast.Call, aliases: dict[str, str]
) -> tuple[str | None, tuple[int, ...] | None]:
    """(function name, numeric argument positions) for known numeric calls."""
    f = node.func
    if isinstance(f, ast.Name) and f.id in BUILTIN_FUNCS:
        # min/max with one argument reduce an iterable: not a numeric pair.
        if f.id in ("min", "max") and len(node.args) < 2:
            return None, None
        return f.id, BUILTIN_FUNCS[f.id]
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        module = aliases.get(f.value.id)
        if module == "numpy" and f.attr in NUMPY_FUNCS:
            return f.attr, NUMPY_FUNCS[f.attr]
        if module == "math" and f.attr in MATH_FUNCS:
            return f.attr, MATH_FUNCS[f.attr]
    return None, None
