"""A problem defined in Python: a verifier class and a seed string instead of a folder.

The sandbox runs candidates in a fresh interpreter that imports the verifier
by its entry ``module:Class``, so the class must live in an importable module
(not ``__main__``, not inside a function).  The definition is written as an
ordinary problem folder (``problem.toml``, ``seed.py``, ``baselines/``) whose
``verifier.path`` names the module's folder: every command then treats it like
any other problem, and a run keeps a copy in ``RUN/problem/`` so that
``evolve resume`` and ``evolve review`` work from the run folder alone.
"""

from __future__ import annotations

import ast
import atexit
import json
import math
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evolve.config import validate
from evolve.errors import UserError
from evolve.problem import Problem, _from_dir

_TEMP_DIRS: list[str] = []
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def define_problem(
    name: str,
    verifier: type,
    seed: str,
    *,
    function: str | None = None,
    signature: str | None = None,
    contract: str = "",
    objective: str = "objective",
    direction: str | None = None,
    score: str = "gap_mean",
    title: str | None = None,
    description: str = "",
    context: str = "",
    baselines: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    features: list[Mapping[str, Any]] | None = None,
    run: Mapping[str, Any] | None = None,
    folder: Path | str | None = None,
) -> Problem:
    """A problem from a verifier class and the seed program's source code.

    ``verifier`` is the class itself (the sandbox builds it as
    ``cls(problem_dir, options)``); it must be defined at the top level of an
    importable module, not in ``__main__``.  ``function`` is the function the
    heuristic defines (default: the seed's first top-level function outside its
    EVOLVE-BLOCKs);
    ``signature`` defaults to that function's ``def`` line.  ``baselines`` maps
    names to source code; ``features`` are MAP-Elites dimensions as in
    ``problem.toml`` (default: code length); ``run`` holds default run
    settings; ``score`` is ``gap_mean``, ``gap_group_mean``, ``gap_ratio`` or ``objective``.  ``direction``
    (``minimize`` or ``maximize``) defaults to the class attribute of that name; given
    both, they must agree.
    The problem is written to ``folder`` (default: a temporary folder removed
    at exit); pass a folder to keep it.
    """
    if not isinstance(seed, str):  # it was a TypeError from compile()
        raise UserError(f"define_problem: seed: expected the seed program's source code (a str), got "
                        f"{type(seed).__name__}")
    if baselines is not None and not (isinstance(baselines, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in baselines.items())):  # it was a ValueError
        raise UserError(f"define_problem: baselines: expected a dict of name -> source code (str), got "
                        f"{type(baselines).__name__} {str(baselines)[:60]}")
    entry, module_root = verifier_entry(verifier)
    declared = getattr(verifier, "direction", None)
    if direction is not None and declared is not None and direction != declared:
        raise UserError(f"define_problem: direction={direction!r} but verifier {verifier.__qualname__} "
                        f"declares direction = {declared!r}; make them agree")
    direction = direction or declared
    if direction not in ("minimize", "maximize"):
        raise UserError(f"verifier {verifier.__qualname__}: give direction='minimize' or 'maximize' "
                        f"(or declare it on the class), got {direction!r}")
    fn_name, fn_signature = _function_of(seed, function)
    document: dict[str, Any] = {
        "name": name,
        "title": title or name,
        "description": description or title or name,
        "function": {"name": fn_name, "signature": signature or fn_signature, "contract": contract},
        "objective": {"name": objective, "direction": direction, "score": score},
        "verifier": {"entry": entry, "options": dict(options or {}), "path": module_root},
        "run": dict(run or {}),
    }
    if features:  # else the default: code length (ProblemSpec.features)
        document["features"] = [dict(f) for f in features]
    from evolve.config import ProblemSpec

    validate(ProblemSpec, document, f"problem '{name}'")  # a bad argument fails here, named
    target = Path(folder) if folder is not None else _temp_dir(name)
    write_problem_folder(target, document, seed, context, dict(baselines or {}))
    problem = _from_dir(target, "python")
    return problem


def verifier_entry(cls: Any) -> tuple[str, str]:
    """``module:Class`` and the folder to put on sys.path for a fresh interpreter to import it."""
    if not isinstance(cls, type):
        raise UserError(f"verifier: expected the verifier class, got {type(cls).__name__} instance "
                        "(the sandbox builds it as cls(problem_dir, options))")
    module_name, qualname = cls.__module__, cls.__qualname__
    if module_name == "__main__":
        raise UserError(f"verifier {qualname} is defined in __main__, which the sandbox's fresh interpreter "
                        f"cannot import: move it into a module (e.g. {_snake(qualname)}.py next to your "
                        "script) and import it from there")
    if "." in qualname:
        raise UserError(f"verifier {qualname} is defined inside a function or class: define it at the "
                        f"top level of module {module_name}")
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        raise UserError(f"verifier {qualname}: module {module_name} has no file, so a fresh interpreter "
                        "cannot import it: define the class in a .py module")
    path = Path(file).resolve()
    depth = len(module_name.split(".")) - (0 if path.name == "__init__.py" else 1)
    return f"{module_name}:{qualname}", str(path.parents[depth])


def write_problem_folder(
    folder: Path, document: dict[str, Any], seed: str, context: str, baselines: dict[str, str]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()) and not (folder / "problem.toml").is_file():
        raise UserError(f"{folder}: not empty and not a problem folder; give an empty or new folder")
    (folder / "problem.toml").write_text(to_toml(document))
    (folder / "seed.py").write_text(seed)
    (folder / "context.md").write_text(context)
    target = folder / "baselines"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for baseline, code in baselines.items():
        if not _BARE_KEY.match(baseline):
            raise UserError(f"baseline name {baseline!r}: use letters, digits, '-' and '_'")
        (target / f"{baseline}.py").write_text(code)


def to_toml(document: dict[str, Any]) -> str:
    """TOML for a problem document: scalars first, then tables and arrays of tables."""
    lines: list[str] = []
    _table(document, [], lines)
    return "\n".join(lines).strip() + "\n"


def _table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    nested = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    arrays = {k: v for k, v in table.items() if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v)}
    for key, value in table.items():
        if key not in nested and key not in arrays and value is not None:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested.items():
        lines += ["", f"[{'.'.join(_key(p) for p in [*path, key])}]"]
        _table(value, [*path, key], lines)
    for key, items in arrays.items():
        for item in items:
            lines += ["", f"[[{'.'.join(_key(p) for p in [*path, key])}]]"]
            _table(item, [*path, key], lines)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise UserError(f"cannot store {type(value).__name__} value {value!r} in problem.toml "
                    "(use numbers, strings, booleans, lists and tables)")


def _function_of(seed: str, function: str | None) -> tuple[str, str]:
    try:
        tree = ast.parse(seed)
    except SyntaxError as err:
        line = f"line {err.lineno}: " if err.lineno else ""  # a null byte has no line
        raise UserError(f"seed: does not parse ({line}{err.msg})") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if function:
        chosen = next((d for d in defs if d.name == function), None)
    else:  # the entry point: the first function outside the EVOLVE-BLOCKs (fixed code)
        evolving = _block_lines(seed)
        fixed = [d for d in defs if d.lineno not in evolving]
        chosen = (fixed or defs or [None])[0]
    if chosen is None:
        wanted = f"function {function!r}" if function else "a top-level function"
        raise UserError(f"seed: defines no {wanted}")
    returns = f" -> {ast.unparse(chosen.returns)}" if chosen.returns else ""
    return chosen.name, f"{chosen.name}({ast.unparse(chosen.args)}){returns}"


def _block_lines(code: str) -> set[int]:
    inside, lines = False, set()
    for number, line in enumerate(code.splitlines(), 1):
        if "EVOLVE-BLOCK-START" in line:
            inside = True
        elif "EVOLVE-BLOCK-END" in line:
            inside = False
        elif inside:
            lines.add(number)
    return lines


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _temp_dir(name: str) -> Path:
    folder = tempfile.mkdtemp(prefix=f"evolve-problem-{name}-")
    if not _TEMP_DIRS:
        atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _TEMP_DIRS])
    _TEMP_DIRS.append(folder)
    return Path(folder)
