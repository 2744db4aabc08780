"""Typed expression trees over a rule's inputs: the genome of the offline search.

A tree is a nested tuple, hashable and immutable:

* ``("x", name)``: an input of the rule;
* ``("c", value)``: a numeric constant;
* ``(op, child, ...)``: an operator from :data:`OPS`.

Every node has a kind: ``"array"`` (one value per candidate) or ``"scalar"``
(one value per decision).  Elementwise operators return an array when any
child is one; reductions turn an array into a scalar (``max``/``min``/``mean``
over the candidates).  Trees are evaluated with numpy exactly as the emitted
code computes them, which is what the behaviour signature relies on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Kind = Literal["array", "scalar"]
Tree = tuple[Any, ...]


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    reduce: bool = False  # array -> scalar


OPS: dict[str, Op] = {op.name: op for op in (
    Op("add", 2), Op("sub", 2), Op("mul", 2), Op("div", 2),
    Op("max", 2), Op("min", 2),
    Op("neg", 1), Op("abs", 1), Op("sqrt", 1), Op("square", 1), Op("log", 1),
    Op("ifpos", 3),  # np.where(a > 0, b, c)
    Op("rmax", 1, reduce=True), Op("rmin", 1, reduce=True), Op("rmean", 1, reduce=True),
)}
# Relative weights when a random operator is drawn: arithmetic first, as in the rules people write.
OP_WEIGHTS: dict[str, float] = {
    "add": 3.0, "sub": 3.0, "mul": 3.0, "div": 3.0, "max": 1.5, "min": 1.5,
    "neg": 0.5, "abs": 0.3, "sqrt": 0.5, "square": 0.5, "log": 0.3, "ifpos": 0.7,
    "rmax": 0.4, "rmin": 0.3, "rmean": 0.4,
}
CONSTANTS = (0.5, 1.0, 2.0, 3.0, 0.1, 0.25, 10.0)


@dataclass(frozen=True)
class Signature:
    """What a tree may read: each input's kind, and the kind the root must have."""

    inputs: tuple[tuple[str, Kind], ...]
    returns: Kind = "array"
    # Derived terminals: small trees over the inputs (``[rule] terminals``, e.g. the remaining
    # problem's tardiness factor) that a random leaf may be, written out in full in the program.
    derived: tuple[Tree, ...] = ()
    # Gates: scalar trees whose sign splits the decisions (``[rule] gates``, e.g. ``n - 75``),
    # the conditions of gated insertion's coefficients.
    gates: tuple[Tree, ...] = ()
    # Whether a tree may reduce an array over the candidates (rmax, rmin, rmean): off
    # (``[run.gp] reductions = false``) for a problem that asks for an index rule, each
    # candidate's value a function of its own entries and the scalars only.
    reductions: bool = True

    def names(self, kind: Kind) -> list[str]:
        return [n for n, k in self.inputs if k == kind]

    def kind_of(self, name: str) -> Kind | None:
        return next((k for n, k in self.inputs if n == name), None)


# --- structure --------------------------------------------------------------


def kind(tree: Tree, sig: Signature) -> Kind:
    tag = tree[0]
    if tag == "x":
        return sig.kind_of(tree[1]) or "array"
    if tag == "c":
        return "scalar"
    if OPS[tag].reduce:
        return "scalar"
    return "array" if any(kind(c, sig) == "array" for c in tree[1:]) else "scalar"


def size(tree: Tree) -> int:
    return 1 if tree[0] in ("x", "c") else 1 + sum(size(c) for c in tree[1:])


def depth(tree: Tree) -> int:
    return 0 if tree[0] in ("x", "c") else 1 + max(depth(c) for c in tree[1:])


def paths(tree: Tree, prefix: tuple[int, ...] = ()) -> Iterator[tuple[int, ...]]:
    """Every node's path (child indices from the root), pre-order."""
    yield prefix
    if tree[0] not in ("x", "c"):
        for i, child in enumerate(tree[1:], start=1):
            yield from paths(child, (*prefix, i))


def get(tree: Tree, path: tuple[int, ...]) -> Tree:
    for i in path:
        tree = tree[i]
    return tree


def replace(tree: Tree, path: tuple[int, ...], new: Tree) -> Tree:
    if not path:
        return new
    i = path[0]
    return (*tree[:i], replace(tree[i], path[1:], new), *tree[i + 1:])


def reads(tree: Tree) -> set[str]:
    if tree[0] == "x":
        return {tree[1]}
    if tree[0] == "c":
        return set()
    return set().union(*(reads(c) for c in tree[1:]))


def reduces(tree: Tree) -> bool:
    """Whether the tree reduces an array over the candidates anywhere (rmax, rmin, rmean)."""
    if tree[0] in ("x", "c"):
        return False
    return OPS[tree[0]].reduce or any(reduces(c) for c in tree[1:])


def well_typed(tree: Tree, sig: Signature) -> bool:
    """Every input exists, every reduction reads an array (and the signature allows
    reductions), the root has the declared kind."""
    def ok(t: Tree) -> bool:
        if t[0] == "x":
            return sig.kind_of(t[1]) is not None
        if t[0] == "c":
            return isinstance(t[1], float) and math.isfinite(t[1])
        op = OPS.get(t[0])
        if op is None or len(t) != op.arity + 1 or not all(ok(c) for c in t[1:]):
            return False
        return not op.reduce or (sig.reductions and kind(t[1], sig) == "array")
    return ok(tree) and kind(tree, sig) == sig.returns


# --- random trees -------------------------------------------------------------


def random_constant(rng: random.Random) -> Tree:
    if rng.random() < 0.6:
        return ("c", rng.choice(CONSTANTS))
    return ("c", float(f"{rng.uniform(0.05, 5.0):.3g}"))


# How often a leaf is one of the derived terminals, when the rule declares some (a draw taken only
# then: a rule without them grows the same trees as before).
DERIVED_P = 0.25


def _terminal(want: Kind, sig: Signature, rng: random.Random) -> Tree:
    if sig.derived and rng.random() < DERIVED_P:
        fitting = [t for t in sig.derived if kind(t, sig) == want]
        if fitting:
            return rng.choice(fitting)
    if want == "array":
        return ("x", rng.choice(sig.names("array")))
    scalars = sig.names("scalar")
    if scalars and rng.random() < 0.5:
        return ("x", rng.choice(scalars))
    return random_constant(rng)


def _pick_op(want: Kind, sig: Signature, rng: random.Random) -> Op:
    names = [n for n in OPS if not (OPS[n].reduce and (want == "array" or not sig.reductions))]
    return OPS[rng.choices(names, [OP_WEIGHTS[n] for n in names])[0]]


def random_tree(sig: Signature, rng: random.Random, max_depth: int, full: bool = False,
                want: Kind | None = None) -> Tree:
    """A random tree of kind ``want`` (default: the root's), no deeper than ``max_depth``.

    ``full`` grows every branch to the depth limit (Koza's full method), else branches stop
    early at random (grow); ramped half-and-half alternates both over depths.
    """
    want = want or sig.returns
    if want == "array" and not sig.names("array"):
        raise ValueError("an array-valued tree needs an array input")
    if max_depth <= 0 or (not full and rng.random() < 0.3):
        return _terminal(want, sig, rng)
    op = _pick_op(want, sig, rng)
    if op.reduce:
        return (op.name, random_tree(sig, rng, max_depth - 1, full, "array"))
    kinds: list[Kind] = ["scalar" if rng.random() < 0.3 else "array" for _ in range(op.arity)]
    if want == "scalar":
        kinds = ["scalar"] * op.arity
    elif "array" not in kinds:
        kinds[rng.randrange(op.arity)] = "array"
    if op.name == "ifpos":  # the condition may be anything; keep one branch of the wanted kind
        kinds[0] = "array" if want == "array" and rng.random() < 0.5 else kinds[0]
    return (op.name, *(random_tree(sig, rng, max_depth - 1, full, k) for k in kinds))


# --- evaluation ---------------------------------------------------------------


def _div(a: Any, b: Any) -> Any:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    zero = b == 0.0
    if not zero.any():  # the usual case: a / b is exactly what the masked form below gives
        return a / b
    return np.where(zero, a, a / np.where(zero, 1.0, b))


_NUMPY: dict[str, Callable[..., Any]] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": _div,
    "max": np.maximum, "min": np.minimum, "neg": np.negative, "abs": np.abs,
    "sqrt": lambda a: np.sqrt(np.abs(a)), "square": np.square,
    "log": lambda a: np.log1p(np.abs(a)),
    "ifpos": lambda a, b, c: np.where(np.asarray(a) > 0, b, c),
    "rmax": lambda a: np.max(a, axis=-1, keepdims=True),
    "rmin": lambda a: np.min(a, axis=-1, keepdims=True),
    "rmean": lambda a: np.mean(a, axis=-1, keepdims=True),
}


def evaluate(tree: Tree, env: dict[str, Any]) -> Any:
    """The tree's value for inputs ``env``, computed as the emitted code computes it."""
    tag = tree[0]
    if tag == "x":
        return env[tree[1]]
    if tag == "c":
        return tree[1]
    return _NUMPY[tag](*(evaluate(c, env) for c in tree[1:]))


def compile_tree(tree: Tree) -> Callable[[dict[str, Any]], Any]:
    """``evaluate(tree, env)`` as one compiled function: the same numpy calls on the same
    arguments, so the same values, without a Python call per node.

    The GP's screen evaluates a tree once per dispatching decision (870 decisions per
    screen of smtt_rule's train, each over a batch of instances). A subtree that occurs more
    than once is computed once, into a local (MDDC computes ``np.minimum(p / (t + p_max), 1)``
    twice): its value is the same wherever it is used, as every operator is a pure function of
    its arguments.
    Only trees the engine built or ``codegen.parse`` accepted: names and constants enter the
    source only as subscripts of tables, never as text of their own.
    """
    constants: list[Any] = []
    seen: dict[Tree, int] = {}

    def count(t: Tree) -> None:
        if t[0] in ("x", "c"):
            return
        seen[t] = seen.get(t, 0) + 1
        if seen[t] == 1:
            for c in t[1:]:
                count(c)

    shared: dict[Tree, str] = {}
    lines: list[str] = []

    def source(t: Tree) -> str:
        if t[0] == "x":
            return f"env[{t[1]!r}]"
        if t[0] == "c":
            constants.append(t[1])
            return f"_c[{len(constants) - 1}]"
        if t in shared:
            return shared[t]
        expr = f"_f[{t[0]!r}]({', '.join(source(c) for c in t[1:])})"
        if seen[t] > 1:
            shared[t] = f"_v{len(shared)}"
            lines.append(f"    {shared[t]} = {expr}\n")
            return shared[t]
        return expr

    try:
        count(tree)
        body = source(tree)
        scope = {"_f": _NUMPY, "_c": constants}
        exec(f"def _rule(env):\n{''.join(lines)}    return {body}\n", scope)  # noqa: S102 (built above)
        return scope["_rule"]  # type: ignore[return-value]
    except (SyntaxError, RecursionError, MemoryError):
        # Deeper than CPython's parser nests (about 200 calls): a tree parsed from a program,
        # not one the GP grew. It runs node by node instead, with the same values.
        return lambda env: evaluate(tree, env)


def fold_known(tree: Tree, known: Mapping[str, float]) -> Tree:
    """``tree`` where the inputs ``known`` are fixed (``n`` over a batch of instances of one size):
    every ``ifpos`` whose condition reads only those inputs and constants is replaced by the
    branch the condition picks, the condition computed as ``evaluate`` computes it.

    The kept branch's values are the ones ``np.where`` would have taken from it, so a screen
    of the folded tree gives the same scores; the other branch is not computed, and a rule
    split at a gate screens the same at every size as its side there (a cache key,
    ``evaluators/smtt/screen.py``). A tree that reduces over the candidates is left whole: a
    branch folded to one value per decision would be reduced over one entry, not all of them.
    """
    if reduces(tree):
        return tree

    def fold(t: Tree) -> Tree:
        if t[0] in ("x", "c"):
            return t
        if t[0] == "ifpos" and reads(t[1]) <= known.keys():
            with np.errstate(all="ignore"):
                picked = bool(np.asarray(evaluate(t[1], dict(known))) > 0)
            return fold(t[2] if picked else t[3])
        return (t[0], *(fold(c) for c in t[1:]))

    return fold(tree)


# --- simplification -------------------------------------------------------------


def simplify(tree: Tree) -> Tree:
    """Fold constants and drop identities (x + 0, x * 1, max(x, x), --x, x - x, ...).

    Only rewrites that hold for every input, protected division included, so the
    simplified tree computes the same values.
    """
    tag = tree[0]
    if tag in ("x", "c"):
        return tree
    kids = tuple(simplify(c) for c in tree[1:])
    if all(k[0] == "c" for k in kids) and not OPS[tag].reduce:
        with np.errstate(all="ignore"):
            value = float(np.asarray(_NUMPY[tag](*(k[1] for k in kids))).reshape(-1)[0])
        if math.isfinite(value):
            return ("c", value)
    if OPS[tag].reduce and kids[0][0] == "c":
        return kids[0]
    a = kids[0]
    b = kids[1] if len(kids) > 1 else None
    if tag == "add":
        if _is_const(a, 0.0):
            return b  # type: ignore[return-value]
        if _is_const(b, 0.0):
            return a
    if tag == "sub":
        if _is_const(b, 0.0):
            return a
        if a == b:
            return ("c", 0.0)
        if _is_const(a, 0.0):
            return ("neg", b)
    if tag == "mul":
        if _is_const(a, 1.0):
            return b  # type: ignore[return-value]
        if _is_const(b, 1.0):
            return a
        if _is_const(a, 0.0) or _is_const(b, 0.0):
            return ("c", 0.0)
    if tag == "div":
        if _is_const(b, 1.0):
            return a
        if _is_const(a, 0.0):
            return ("c", 0.0)
    if tag in ("max", "min") and a == b:
        return a
    if tag == "neg" and a[0] == "neg":
        return a[1]
    if tag == "abs" and a[0] in ("abs", "square", "sqrt", "log"):
        return a
    if tag == "ifpos" and kids[1] == kids[2]:
        return kids[1]
    if tag == "ifpos" and a[0] == "c":
        return kids[1] if a[1] > 0 else kids[2]
    return (tag, *kids)


def _is_const(tree: Tree | None, value: float) -> bool:
    return tree is not None and tree[0] == "c" and tree[1] == value
