"""Trusted SMTT arithmetic: total tardiness, sequence validation, content hashes.

Everything here runs in the controller process on untrusted solutions, so the
validation never trusts types or values and the objective is recomputed from
the instance alone.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

INT = np.int64


def total_tardiness(p: np.ndarray, d: np.ndarray, seq: Sequence[int] | np.ndarray) -> int:
    """Sum of max(0, C_j - d_j) when jobs run back to back in the order ``seq``."""
    order = np.asarray(seq, dtype=INT)
    completion = np.cumsum(p[order])
    return int(np.maximum(completion - d[order], 0).sum())


def content_hash(p: np.ndarray, d: np.ndarray) -> str:
    """sha256 of the instance content, independent of its name and of dtype.

    p and d have the same length, so concatenating them is unambiguous.
    """
    payload = np.concatenate([np.asarray(p, dtype="<i8"), np.asarray(d, dtype="<i8")])
    return hashlib.sha256(b"smtt-v1:" + payload.tobytes()).hexdigest()


def _describe(value: Any) -> str:
    """A short, safe rendering of an untrusted value for an error message."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return text


def _as_job_index(value: Any) -> int | None:
    """The integer a sequence element stands for, or None if it is not one.

    Accepted: Python and numpy integers, and finite floats with an integral
    value (3.0); rejected: bools (True is not job 1), NaN, 2.5, strings, ...
    """
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        x = float(value)
        if math.isfinite(x) and x.is_integer():
            return int(x)
    return None


def array_shape_violation(solution: np.ndarray, n: int) -> str | None:
    if solution.ndim != 1:
        return f"solution is an array of shape {list(solution.shape)}, expected {n} job indices"
    return f"sequence has {solution.size} entries, expected {n}" if solution.size != n else None


def sequence_violation(solution: Any, n: int) -> tuple[str | None, np.ndarray | None]:
    """Check that ``solution`` is a permutation of range(n).

    Returns (reason, None) for the first violation in position order, or
    (None, the sequence as an int64 array).
    """
    if isinstance(solution, np.ndarray):  # solve() returns lists; be lenient anyway
        why = array_shape_violation(solution, n)  # before a list is made of it
        if why is not None:
            return why, None
        solution = solution.tolist()
    if not isinstance(solution, list | tuple):
        return f"solution is a {type(solution).__name__}, expected a list of job indices", None
    if len(solution) != n:
        return f"sequence has {len(solution)} entries, expected {n}", None
    seq: np.ndarray | None = None
    if all(type(x) is int for x in solution):  # the common case, checked fast
        try:
            seq = np.fromiter(solution, dtype=INT, count=n)
        except OverflowError:  # beyond int64: the slow path names it
            seq = None
    if seq is None:
        seq = np.empty(n, dtype=INT)
        for pos, value in enumerate(solution):
            job = _as_job_index(value)
            if job is None:
                return f"element at position {pos} is {_describe(value)}, not a job index", None
            if not 0 <= job < n:  # checked here: a huge int would not fit int64
                return f"element at position {pos} is {_describe(value)}, out of range 0..{n - 1}", None
            seq[pos] = job
    bad = np.flatnonzero((seq < 0) | (seq >= n))
    if bad.size:
        pos = int(bad[0])
        return f"element at position {pos} is {int(seq[pos])}, out of range 0..{n - 1}", None
    # All in range and length n: a permutation iff no job repeats.  Report
    # the repeat whose second occurrence comes first.
    order = np.argsort(seq, kind="stable")
    repeated = np.flatnonzero(seq[order][1:] == seq[order][:-1])
    if repeated.size:
        second = int(order[repeated + 1].min())
        job = int(seq[second])
        first = int(np.flatnonzero(seq == job)[0])
        return f"job {job} appears twice (positions {first} and {second})", None
    return None, seq
