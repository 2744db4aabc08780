"""Request traces from CSV, in the two common public formats.

* ``arrived_at,num_prefill_tokens,num_decode_tokens`` (Vidur's trace format;
  ``arrived_at`` in seconds);
* ``TIMESTAMP,ContextTokens,GeneratedTokens`` (the Azure LLM inference traces
  2023/2024; ``TIMESTAMP`` is a date-time such as ``2023-11-16 18:15:46.6805900``).

Columns may come in any order and extra columns are ignored; an optional
``client`` column (integer tenant id) feeds the fair-share baseline.  Rows are
sorted by arrival (stably) and times are shifted to start at 0.  A request
that generated 0 tokens is simulated as generating 1 (an engine always
samples at least one token); every other bad value is a one-line error naming
its line and field.  Read with pandas and checked column by column (the public
traces have millions of rows); trusted side only, imported when a trace is read.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from evolve.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {
    "vidur": ("arrived_at", "num_prefill_tokens", "num_decode_tokens"),
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
}
EXPECTED = " or ".join(",".join(cols) for cols in FORMATS.values())
# Token counts beyond this are not a request's (and would wrap around in int64 arithmetic).
MAX_TOKENS = 10**9


def read_trace(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(arrival s, prompt tokens, output tokens, client) sorted by arrival."""
    frame = _read(path, as_text=False)  # numeric columns parsed by pandas' C reader
    fmt = _format(path, frame)
    columns = _columns(frame, fmt)
    if any(bad.any() for _, _, bad, _ in columns.checks):
        _refuse(path, fmt)
    times, prompts, outputs, clients = columns.values
    order = np.argsort(times, kind="stable")
    arrival = times[order] - times[order[0]]
    return arrival, prompts[order], outputs[order], clients[order]


@dataclass
class _Columns:
    values: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    checks: list[tuple[str, pd.Series, np.ndarray, str]]  # field, its cells, which are bad, what was expected


def _read(path: Path, as_text: bool) -> pd.DataFrame:
    """The rows after the header (blank lines dropped); ``as_text``: every cell as written."""
    import pandas as pd

    try:
        if as_text:  # index = line - 2, for error messages
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False, index_col=False)
            frame = frame[(frame != "").any(axis=1)]
        else:
            with warnings.catch_warnings():  # extra fields in a row are ignored, as extra columns are
                warnings.simplefilter("ignore", pd.errors.ParserWarning)
                frame = pd.read_csv(path, index_col=False)
    except OSError as err:
        raise UserError(f"{path}: cannot read the trace ({err.strerror or err})") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file; expected a CSV header with {EXPECTED}") from None
    except pd.errors.ParserError as err:
        raise UserError(f"{path}: {' '.join(str(err).split())}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _format(path: Path, frame: pd.DataFrame) -> str:
    fmt = next((name for name, cols in FORMATS.items() if all(c in frame.columns for c in cols)), None)
    if fmt is None:
        raise UserError(f"{path}: line 1: header {','.join(frame.columns)!r} has neither "
                        + " nor ".join(",".join(cols) for cols in FORMATS.values()))
    if frame.empty:
        raise UserError(f"{path}: no requests after the header")
    return fmt


def _columns(frame: pd.DataFrame, fmt: str) -> _Columns:
    """The four arrays and, per field, which rows are bad."""
    import pandas as pd

    t_col, p_col, o_col = FORMATS[fmt]
    raw_t = frame[t_col]
    if fmt == "vidur":
        times = pd.to_numeric(raw_t, errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad_t = ~np.isfinite(times) | (times < 0)
        what = "seconds >= 0"
    else:
        # utc: offsets may differ from row to row (or be absent: UTC); without it pandas refuses
        # mixed offsets with a ValueError
        stamps = pd.to_datetime(raw_t.astype(str).str.strip(), format="ISO8601", errors="coerce", utc=True)
        bad_t = stamps.isna().to_numpy()
        times = (stamps - stamps.min()).dt.total_seconds().to_numpy(dtype=float)
        what = "a date-time like 2023-11-16 18:15:46.6805900"
    whole = f"a whole number from 0 to {MAX_TOKENS:,}"
    prompts, bad_p = _counts(frame[p_col], 1)
    outputs, bad_o = _counts(frame[o_col], 1)
    checks = [(t_col, raw_t, bad_t, what), (p_col, frame[p_col], bad_p, whole), (o_col, frame[o_col], bad_o, whole)]
    if "client" in frame.columns:
        clients, bad_c = _counts(frame["client"], 0)
        checks.append(("client", frame["client"], bad_c, whole))
    else:
        clients = np.zeros(len(frame), dtype=np.int64)
    return _Columns((times, prompts, outputs, clients), checks)


def _counts(raw: pd.Series, low: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole numbers from 0 to MAX_TOKENS (raised to ``low``), and which cells are not one."""
    import pandas as pd

    value = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(value) | (value < 0) | (value != np.floor(value)) | (value > MAX_TOKENS)
    return np.maximum(np.where(bad, 0, value), low).astype(np.int64), bad


def _refuse(path: Path, fmt: str) -> NoReturn:
    """The one-line error for the first bad cell, read again as text for its line and content."""
    checks = _columns(_read(path, as_text=True), fmt).checks
    rows = [(int(np.argmax(bad)), k) for k, (_, _, bad, _) in enumerate(checks) if bad.any()]
    if not rows:  # the typed read refused what the text does not show: say what we know
        raise UserError(f"{path}: a value is not what its column expects ({EXPECTED})")
    row, k = min(rows)
    name, cells, _, what = checks[k]
    raise UserError(f"{path}: line {cells.index[row] + 2}: field '{name}': expected {what}, got {cells.iloc[row]!r}")
