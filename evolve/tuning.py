"""Constant tuning: fit the numeric literals inside the EVOLVE-BLOCK with CMA-ES.

The search (a model or the GP) proposes structure; this fits its constants.
Every trial is an ordinary program, the literals rewritten in place, judged
through the same sandbox and trusted verifier as any other (the caller passes
``evaluate``), so a tuned program is exactly as trustworthy as its parent.

The optimiser is CMA-ES from the ``cmaes`` package (the implementation behind
Optuna's CmaEsSampler; numpy only): a handful of correlated real parameters
and a noisy, expensive objective is the case it is made for.  Parameters are
searched relative to their starting magnitudes, and every trial's values are
rounded to four significant digits, so what is scored is what is written.
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from evolve.edits import EditError, evolve_blocks
from evolve.errors import UserError
from evolve.gp.codegen import DIV_HELPER, format_constant

# Calls whose integer arguments are counts or indices, not weights.
_STRUCTURAL_CALLS = {"range", "len", "int", "round", "reshape", "arange", "zeros", "ones", "full", "empty"}
PENALTY = 1e12  # CMA-ES needs a finite value for a failed trial


@dataclass(frozen=True)
class Constant:
    """A numeric literal in the source: 0-based line, str columns, its value."""

    line: int
    start: int
    end: int
    value: float
    is_int: bool


@dataclass
class Trial:
    values: tuple[float, ...]
    score: float | None


@dataclass
class TuneResult:
    code: str
    score: float | None
    start_score: float | None
    constants: list[Constant]
    values: tuple[float, ...]
    trials: list[Trial] = field(default_factory=list)

    @property
    def improved(self) -> bool:
        return self.score is not None and (self.start_score is None or self.score > self.start_score)


def _str_col(line: str, byte_col: int) -> int:
    """ast columns count UTF-8 bytes."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _excluded_nodes(tree: ast.Module) -> set[int]:
    """Ids of constants that are structure, not weights."""
    skip: set[int] = set()

    def mark(node: ast.AST) -> None:
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == DIV_HELPER:
            mark(node)
        elif isinstance(node, ast.keyword | ast.Subscript | ast.Slice | ast.arguments):
            mark(node.value if isinstance(node, ast.keyword) else node)
        elif isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Constant) and side.value == 0:
                    skip.add(id(side))
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in _STRUCTURAL_CALLS:
                mark(node)
    return skip


def _finite(value: float) -> bool:
    """Whether the literal is a finite float (an integer of hundreds of digits is not one)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def no_constants_reason(code: str) -> str:
    """Why :func:`tunable_constants` finds nothing in ``code``, in a few words."""
    try:
        ast.parse(code)
    except SyntaxError as e:
        return f"it does not parse (line {e.lineno}: {e.msg})"
    try:
        blocks = evolve_blocks(code)
    except EditError as e:
        return f"its EVOLVE-BLOCK markers are wrong: {e}"
    if not blocks:
        return "it has no EVOLVE-BLOCK (no '# EVOLVE-BLOCK-START' / '# EVOLVE-BLOCK-END' lines)"
    return "no constants to tune in its EVOLVE-BLOCK (no numeric literal other than 0, indices, axes or counts)"


# CMA-ES keeps an N x N covariance and decomposes it: one generation over 1,000 constants took
# 9.8 s of the controller's CPU here, over 4,000 more than 4 minutes (a model's rule holding a
# table of literals; bench/literal_tables.py; fourteenth red team). Shipped and model-written
# rules have at most ~50.
MAX_CONSTANTS = 200


def too_many_constants(count: int) -> str | None:
    """Why ``count`` constants are not tuned, or None."""
    if count <= MAX_CONSTANTS:
        return None
    return (f"it has {count} constants in its EVOLVE-BLOCK; tuning fits at most {MAX_CONSTANTS} (CMA-ES keeps "
            f"a {count} x {count} covariance: write a table as data the rule reads, not as literals to fit)")


def tunable_constants(code: str) -> list[Constant]:
    """Numeric literals inside the EVOLVE-BLOCK that act as weights (not 0, indices, axes, ...).

    A negative literal ``-2.5`` is one constant; the protected-division helper is left alone.
    """
    try:
        tree = ast.parse(code)
        blocks = evolve_blocks(code)
    except (SyntaxError, EditError):
        return []
    lines = code.split("\n")
    skip = _excluded_nodes(tree)
    found: list[Constant] = []
    negated: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
                and isinstance(node.operand, ast.Constant)):
            negated.add(id(node.operand))
            candidate, sign = node.operand, -1.0
            span: ast.AST = node
        elif isinstance(node, ast.Constant) and id(node) not in negated:
            candidate, sign, span = node, 1.0, node
        else:
            continue
        value = candidate.value
        if id(candidate) in skip or type(value) not in (int, float) or value == 0 or not _finite(value):
            continue
        line = span.lineno - 1  # type: ignore[attr-defined]
        if line != (span.end_lineno or 0) - 1 or not any(s <= line < e for s, e in blocks):  # type: ignore[attr-defined]
            continue
        text = lines[line]
        found.append(Constant(line, _str_col(text, span.col_offset), _str_col(text, span.end_col_offset),  # type: ignore[attr-defined]
                              sign * float(value), isinstance(value, int)))
    found.sort(key=lambda c: (c.line, c.start))
    return found


def with_constants(code: str, constants: Sequence[Constant], values: Sequence[float]) -> str:
    """``code`` with each constant's text replaced by its new value (4 significant digits)."""
    lines = code.split("\n")
    for const, value in sorted(zip(constants, values, strict=True), key=lambda cv: (cv[0].line, -cv[0].start)):
        number = format_constant(value)
        text = repr(number)
        if number < 0 and const.value > 0:
            text = f"({text})"  # a literal that was positive may sit where a sign binds wrongly
        line = lines[const.line]
        lines[const.line] = line[: const.start] + text + line[const.end:]
    return "\n".join(lines)


def tune_code(
    code: str,
    evaluate: Callable[[str], float | None],
    budget: int,
    seed: int = 0,
    sigma: float = 0.3,
    parallel: int = 1,
    start_score: float | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> TuneResult:
    """Fit the block's constants to maximise ``evaluate(code)`` (None: the program failed).

    ``budget`` is the number of distinct programs evaluated (the start included when its
    score is not given); ``parallel`` trials of a CMA-ES generation run at once.
    """
    from cmaes import CMA

    constants = tunable_constants(code)
    why = too_many_constants(len(constants))
    if why is not None:
        raise UserError(why)
    start = tuple(c.value for c in constants)
    if start_score is None:
        start_score = evaluate(code)
        budget -= 1
    result = TuneResult(code, start_score, start_score, constants, start)
    if not constants or budget <= 0:
        return result
    scale = np.array([max(abs(v), 0.05) for v in start])
    optimizer = CMA(mean=np.array(start) / scale, sigma=sigma, seed=seed,
                    population_size=max(4, min(12, 4 + int(3 * math.log(len(start))))))
    cache: dict[str, float | None] = {hashlib.sha256(code.encode()).hexdigest(): start_score}
    spent, asked = 0, 0
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        while spent < budget and asked < 20 * budget and not optimizer.should_stop():
            xs = [optimizer.ask() for _ in range(optimizer.population_size)]
            asked += len(xs)
            values = [tuple(float(format_constant(float(v))) for v in x * scale) for x in xs]
            codes = [with_constants(code, constants, v) for v in values]
            keys = [hashlib.sha256(c.encode()).hexdigest() for c in codes]
            fresh = [i for i, k in enumerate(keys) if k not in cache and keys.index(k) == i][: budget - spent]
            for i, score in zip(fresh, pool.map(evaluate, [codes[i] for i in fresh]), strict=True):
                cache[keys[i]] = score
                trial = Trial(values[i], score)
                result.trials.append(trial)
                if on_trial is not None:
                    on_trial(trial)
                if score is not None and (result.score is None or score > result.score):
                    result.code, result.score, result.values = codes[i], score, values[i]
            spent += len(fresh)
            if any(k not in cache for k in keys):
                break  # the budget ran out inside this generation
            optimizer.tell([(x, -cache[k] if cache[k] is not None else PENALTY)  # type: ignore[operator]
                            for x, k in zip(xs, keys, strict=True)])
    return result
