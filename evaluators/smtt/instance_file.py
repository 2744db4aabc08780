"""Reading user instance files: strict, with one-line errors that locate the problem.

Format::

    {"instances": [{"name": "a", "p": [3, 5], "d": [4, 0], "optimum": 4}, ...]}

``optimum`` is optional; when given it is trusted as the proven optimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evolve.errors import UserError
from evolve.instance_files import json_instance_rows, render

# Keeps sum(p) and every cumulative sum far inside int64 and CP-SAT's domains.
MAX_VALUE = 10**9
INSTANCE_KEYS = ("name", "p", "d", "optimum")


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    p: np.ndarray
    d: np.ndarray
    optimum: int | None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)




def _int_field(where: str, value: Any, maximum: int | None = MAX_VALUE) -> int:
    if not _is_int(value) or value < 0 or (maximum is not None and value > maximum):
        too_big = _is_int(value) and value > 0
        limit = f" at most {maximum}" if too_big else ""
        raise UserError(f"{where}: expected a non-negative integer{limit}, got {render(value)}")
    return value


def _int_list(where: str, value: Any, length: int | None) -> np.ndarray:
    if not isinstance(value, list):
        raise UserError(f"{where}: expected a list of non-negative integers, got {render(value)}")
    if not value:
        raise UserError(f"{where}: expected a non-empty list")
    if length is not None and len(value) != length:
        raise UserError(f"{where}: has {len(value)} entries, expected {length} (the length of p)")
    for k, x in enumerate(value):
        _int_field(f"{where}[{k}]", x)
    return np.asarray(value, dtype=np.int64)


def parse_instance_file(path: Path) -> list[InstanceSpec]:
    """Validate and read ``path``; raise UserError naming file, instance and field."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{label}: cannot read instance file ({exc.__class__.__name__}: {exc})") from None
    rows = json_instance_rows(label, text)
    out: list[InstanceSpec] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        where = f"{label}: instances[{i}]"
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected an object with keys name, p, d, got {render(row)}")
        unknown = sorted(set(row) - set(INSTANCE_KEYS))
        if unknown:
            raise UserError(f"{where}: unknown key {unknown[0]!r} (expected one of {', '.join(INSTANCE_KEYS)})")
        for key in ("name", "p", "d"):
            if key not in row:
                raise UserError(f"{where}: missing key {key!r}")
        name = row["name"]
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"{where}.name: expected a non-empty string, got {render(name)}")
        if name in seen:
            raise UserError(f"{where}.name: duplicate name {name!r} (also instances[{seen[name]}])")
        seen[name] = i
        p = _int_list(f"{where}.p", row["p"], None)
        d = _int_list(f"{where}.d", row["d"], len(p))
        optimum = None
        if "optimum" in row:
            optimum = _int_field(f"{where}.optimum", row["optimum"], maximum=None)
        out.append(InstanceSpec(name=name, p=p, d=d, optimum=optimum))
    return out
