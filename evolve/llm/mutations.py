"""AST mutation operators behind the offline stub backend.

Each operator takes a site found by :mod:`evolve.llm.stub_analysis` and
builds a new AST node for it; :func:`mutate_once` picks the operator and
site (with bloat control) and realises the change through
:mod:`evolve.llm.stub_splice`.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Iterator
from dataclasses import dataclass

from evolve.edits import EditError
from evolve.llm.stub_analysis import (
    BINOP_SWAP,
    BUILTIN_NAMES,
    CMP_SWAP,
    MINMAX_SWAP,
    Analysis,
    Site,
    analyse,
    call_signature,
    is_number_literal,
    node_count,
)
from evolve.llm.stub_splice import Splice, splice

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
        if is_number_literal(term) and is_number_literal(site.node):
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
    op = BINOP_SWAP[type(node.op)]()  # type: ignore[attr-defined]
    if isinstance(node, ast.AugAssign):
        new: ast.AST = ast.AugAssign(node.target, op, node.value)
    else:
        assert isinstance(node, ast.BinOp)
        # Occasionally try a small power instead of scaling.
        if (
            isinstance(node.op, (ast.Mult, ast.Div))
            and is_number_literal(node.right)
            and abs(ast.literal_eval(node.right)) <= 3
            and rng.random() < 0.15
        ):
            op = ast.Pow()
        new = ast.BinOp(node.left, op, node.right)
    return new, "swap an arithmetic operator"


def _swap_compare(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    node = site.node
    assert isinstance(node, ast.Compare)
    idx = [i for i, op in enumerate(node.ops) if type(op) in CMP_SWAP]
    i = rng.choice(idx)
    ops = list(node.ops)
    ops[i] = rng.choice(CMP_SWAP[type(ops[i])])()
    return ast.Compare(node.left, ops, node.comparators), "swap a comparison"


def _swap_minmax(a: Analysis, site: Site, rng: random.Random, donors: list[Donor]) -> _Result:
    node = site.node
    assert isinstance(node, ast.Call)
    f = node.func
    if isinstance(f, ast.Name):
        func: ast.expr = _load(MINMAX_SWAP[f.id])
    else:
        assert isinstance(f, ast.Attribute)
        func = ast.Attribute(f.value, MINMAX_SWAP[f.attr], ast.Load())
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
            if "numeric" not in site.kinds or isinstance(node, ast.Name) or is_number_literal(node):
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
