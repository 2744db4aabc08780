"""Number formatting and JSON safety shared by the CLI, the report and the library."""

from __future__ import annotations

import math
from typing import Any

# Near zero, two decimals hide what matters: a gap of 0.003 % printed "0.00%", and one of -0.004 %
# (below a best-known reference) "-0.00%" (an agent playing the model could not tell its programs
# apart). Below 0.1 in size a figure keeps two significant digits, up to this many places.
NEAR_ZERO_PLACES = 6


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value + 0.0:.{digits}g}"  # + 0.0 turns -0.0 into 0


def digits_to_tell_apart(values: list[float | None], least: int = 4, most: int = 8) -> int:
    """The fewest significant digits, from ``least`` to ``most``, at which the different values
    print differently (``fmt``): a leaderboard of -1.16951 and -1.16996 showed "-1.17" below
    "-1.169", and six rows of "-1.171" that were not equal."""
    distinct = sorted({v + 0.0 for v in values if v is not None})
    for digits in range(least, most + 1):
        if len({fmt(v, digits) for v in distinct}) == len(distinct):
            return digits
    return most


def pct(value: float | None) -> str:
    """A percentage: ``1.17%``, ``0.0031%``, ``-0.00042%``, ``0.00%`` (exactly zero, or below a millionth)."""
    return "-" if value is None else f"{figure(value)}%"


def figure(value: float, signed: bool = False) -> str:
    """Two decimals (``1.17``), but two significant digits below 0.1 in size (``0.0031``,
    ``-0.00042``), so that a figure near zero is not shown as ``0.00`` or ``-0.00``; a value
    under a millionth in size is ``0.00`` (``+0.00`` signed). ``signed``: always a sign."""
    sign = "+" if signed else ""
    if value != value or value in (math.inf, -math.inf):
        return f"{value:{sign}}"
    size = abs(value)
    places = 2 if size >= 0.1 or size == 0 else min(NEAR_ZERO_PLACES, 1 - math.floor(math.log10(size)))
    text = f"{value:{sign}.{places}f}"
    return f"{0.0:{sign}.2f}" if float(text) == 0 else text


def gap_words(value: float | None, against: str = "") -> str:
    """A program's headline gap in words: ``gap 1.17%`` against an optimum or best known; against
    a baseline named by the problem (``[objective] reference``, serving's "FCFS's mean E2E
    latency"), which a good program beats, ``12.65% below FCFS's mean E2E latency``, never
    ``gap -12.65%``, which read as a loss."""
    if not against:
        return f"gap {pct(value)}"
    return f"{side_of(value)} {against}" if value is not None else f"- against {against}"


def side_of(value: float | None) -> str:
    """``12.65% below``, ``3.10% above``, ``level with``: a signed gap to a baseline, in words."""
    if value is None:
        return "-"
    if round(value, 2) == 0:
        return "level with"
    return f"{abs(value):.2f}% {'below' if value < 0 else 'above'}"


def count(number: int, noun: str) -> str:
    """``1 instance``, ``2 instances``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: map them to None for the stable --json contract."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if type(value).__name__ == "ndarray":  # numpy arrays in solutions, without importing numpy here
        return json_safe(value.tolist())
    return value


def failure_summary(feedback: str) -> str:
    """A failed program's feedback in one line: its first line, and where that only announces a
    list ("1 of 6 instances failed:"), the list's first entry too, which holds the reason."""
    lines = [line.strip() for line in feedback.splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1].removeprefix('- ')}"
    return lines[0]
