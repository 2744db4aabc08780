"""Request traces from CSV, in the two common public formats.

* ``arrived_at,num_prefill_tokens,num_decode_tokens`` (Vidur's trace format;
  ``arrived_at`` in seconds);
* ``TIMESTAMP,ContextTokens,GeneratedTokens`` (the Azure LLM inference traces
  2023/2024; ``TIMESTAMP`` is a date-time such as ``2023-11-16 18:15:46.6805900``).

Columns may come in any order and extra columns are ignored; an optional
``client`` column (integer tenant id) feeds the fair-share baseline.  Rows are
sorted by arrival (stably) and times are shifted to start at 0.  A request
that generated 0 tokens is simulated as generating 1 (an engine always
samples at least one token); every other bad value is a one-line error.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path

import numpy as np

from evolve.errors import UserError

FORMATS = {
    "vidur": ("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
}


def _timestamp(text: str) -> float:
    """Seconds since the epoch of an Azure TIMESTAMP (fractions beyond microseconds dropped)."""
    text = text.strip()
    head, dot, frac = text.partition(".")
    if dot:
        digits = "".join(ch for ch in frac if ch.isdigit())
        tail = frac[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{tail}"
    return datetime.fromisoformat(text).timestamp()


def _int_field(path: Path, line: int, name: str, raw: str, low: int) -> int:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise UserError(f"{path}: line {line}: field '{name}': expected a whole number >= 0, got {raw!r}")
    return max(int(value), low)


def read_trace(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(arrival s, prompt tokens, output tokens, client) sorted by arrival."""
    try:
        handle = path.open(newline="")
    except OSError as err:
        raise UserError(f"{path}: cannot read the trace ({err.strerror})") from None
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise UserError(f"{path}: empty file; expected a CSV header with "
                            + " or ".join(",".join(cols) for cols in FORMATS.values()))
        columns = [h.strip() for h in header]
        fmt = next((name for name, cols in FORMATS.items() if all(c in columns for c in cols)), None)
        if fmt is None:
            raise UserError(f"{path}: line 1: header {','.join(columns)!r} has neither "
                            + " nor ".join(",".join(cols) for cols in FORMATS.values()))
        t_col, p_col, o_col = (columns.index(c) for c in FORMATS[fmt])
        c_col = columns.index("client") if "client" in columns else None
        times, prompts, outputs, clients = [], [], [], []
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(columns):
                raise UserError(f"{path}: line {line}: {len(row)} fields, expected {len(columns)} "
                                f"({','.join(columns)})")
            raw_t = row[t_col]
            try:
                t = float(raw_t) if fmt == "vidur" else _timestamp(raw_t)
            except ValueError:
                t = math.nan
            if not math.isfinite(t) or (fmt == "vidur" and t < 0):
                what = "seconds >= 0" if fmt == "vidur" else "a date-time like 2023-11-16 18:15:46.6805900"
                raise UserError(f"{path}: line {line}: field '{columns[t_col]}': expected {what}, got {raw_t!r}")
            times.append(t)
            prompts.append(_int_field(path, line, columns[p_col], row[p_col], 1))
            outputs.append(_int_field(path, line, columns[o_col], row[o_col], 1))
            clients.append(_int_field(path, line, "client", row[c_col], 0) if c_col is not None else 0)
    if not times:
        raise UserError(f"{path}: no requests after the header")
    arrival = np.asarray(times, dtype=float)
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order] - arrival[order[0]]
    ints = [np.asarray(xs, dtype=np.int64)[order] for xs in (prompts, outputs, clients)]
    return arrival, ints[0], ints[1], ints[2]
