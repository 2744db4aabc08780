"""Reading user instance files: strict, with one-line errors that locate the problem.

Format (public sets as published: due dates may be negative)::

    {"instances": [{"name": "a", "p": [3, 5], "d": [4, -2], "optimum": 6}, ...]}

Per instance at most one stated reference, ``optimum``, ``best_known`` or
``upper_bound`` (a value some sequence attains; the last two are the same
thing under two names), plus an optional proven ``lower_bound``.  Whether a
statement can be true is checked later, by the verifier.
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
CLAIM_KEYS = ("optimum", "best_known", "upper_bound")
INSTANCE_KEYS = ("name", "p", "d", *CLAIM_KEYS, "lower_bound")


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    p: np.ndarray
    d: np.ndarray
    claim: str | None = None  # which of CLAIM_KEYS the file states, if any
    value: int | None = None  # the stated value
    lower_bound: int | None = None
    where: str = ""  # "FILE: instances[3]", for later messages

    @property
    def optimum(self) -> int | None:
        return self.value if self.claim == "optimum" else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(where: str, value: Any, minimum: int | None = 0, maximum: int | None = MAX_VALUE) -> int:
    """An integer in [minimum, maximum] (None: unbounded on that side)."""
    low_ok = minimum is None or (_is_int(value) and value >= minimum)
    high_ok = maximum is None or (_is_int(value) and value <= maximum)
    if not _is_int(value) or not low_ok or not high_ok:
        what = "a non-negative integer" if minimum == 0 else "an integer"
        if maximum is not None and _is_int(value) and value > maximum:
            what += f" at most {maximum}"
        elif minimum is not None and minimum < 0 and _is_int(value) and value < minimum:
            what += f" at least {minimum}"
        raise UserError(f"{where}: expected {what}, got {render(value)}")
    return value


def _int_list(where: str, value: Any, length: int | None, minimum: int) -> np.ndarray:
    kind = "non-negative integers" if minimum == 0 else "integers"
    if not isinstance(value, list):
        raise UserError(f"{where}: expected a list of {kind}, got {render(value)}")
    if not value:
        raise UserError(f"{where}: expected a non-empty list")
    if length is not None and len(value) != length:
        raise UserError(f"{where}: has {len(value)} entries, expected {length} (the length of p)")
    for k, x in enumerate(value):
        _int_field(f"{where}[{k}]", x, minimum=minimum)
    return np.asarray(value, dtype=np.int64)


def _row(label: str, i: int, row: Any, seen: dict[str, int]) -> InstanceSpec:
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
    p = _int_list(f"{where}.p", row["p"], None, minimum=0)
    # Due dates may be negative: such a job is tardy whatever its position.
    d = _int_list(f"{where}.d", row["d"], len(p), minimum=-MAX_VALUE)
    claims = [key for key in CLAIM_KEYS if key in row]
    if len(claims) > 1:
        raise UserError(f"{where}: both {claims[0]!r} and {claims[1]!r} given (expected at most one of "
                        f"{', '.join(CLAIM_KEYS)})")
    claim = claims[0] if claims else None
    # Total tardiness is a non-negative integer whatever the due dates.
    value = _int_field(f"{where}.{claim}", row[claim], maximum=None) if claim else None
    lower = _int_field(f"{where}.lower_bound", row["lower_bound"], maximum=None) if "lower_bound" in row else None
    if lower is not None and value is not None and lower > value:
        raise UserError(f"{where}.lower_bound: {lower} exceeds {claim} {value}")
    return InstanceSpec(name=name, p=p, d=d, claim=claim, value=value, lower_bound=lower, where=where)


def parse_instance_file(path: Path) -> list[InstanceSpec]:
    """Validate and read ``path``; raise UserError naming file, instance and field."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is dropped
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{label}: cannot read instance file ({exc.__class__.__name__}: {exc})") from None
    seen: dict[str, int] = {}
    return [_row(label, i, row, seen) for i, row in enumerate(json_instance_rows(label, text))]
