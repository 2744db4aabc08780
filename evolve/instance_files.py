"""Shared plumbing for verifiers that read ``--instances FILE``.

The common JSON envelope is ``{"instances": [ {...}, ... ]}``; each verifier
checks the rows' own fields. Errors are one line naming the file and where.
"""

from __future__ import annotations

import json
from typing import Any

from evolve.errors import UserError


def render(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = json.dumps(value) if isinstance(value, str | int | float | bool | None) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def json_instance_rows(label: str, text: str) -> list[Any]:
    """The rows of a ``{"instances": [...]}`` document (not yet validated)."""
    first = text.lstrip()[:1]
    if first and first not in "{[":  # an OR-Library text file, a CSV: say what is expected, not "Expecting value"
        line = text.lstrip().splitlines()[0]
        raise UserError(f'{label}: not a JSON instance file (expected {{"instances": [...]}}), it starts with {render(line)}')
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{label}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise UserError(f"{label}: JSON nested too deeply to be an instance file") from None
    if isinstance(data, list):  # the rows alone: "got list" after "expected a JSON object" read as a riddle
        raise UserError(f'{label}: a JSON list at the top; wrap the instances as {{"instances": [...]}}')
    if isinstance(data, dict) and "instances" not in data:
        keys = ", ".join(render(k) for k in sorted(data)[:3]) + (", ..." if len(data) > 3 else "")
        raise UserError(f"{label}: no key 'instances' (expected {{\"instances\": [...]}}"
                        + (f"; it has {keys})" if keys else "; it is empty)"))
    if not isinstance(data, dict):  # unreachable from text starting with { or [; kept for safety
        raise UserError(f'{label}: expected a JSON object {{"instances": [...]}}, got {render(data)}')
    extra = sorted(set(data) - {"instances"})
    if extra:
        raise UserError(f"{label}: unknown key {extra[0]!r} (expected only 'instances')")
    rows = data["instances"]
    if not isinstance(rows, list) or not rows:
        raise UserError(f"{label}: instances: expected a non-empty list of instances")
    return rows
