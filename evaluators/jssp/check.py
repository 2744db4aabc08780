"""Trusted validation of a schedule returned by the sandbox.

``check_schedule`` treats the solution as hostile: it checks the shape and
types, then in this order exact durations, precedence within each job, no
overlap on any machine, and that the schedule belongs to the class its scheme
generates (non-delay, or active), and returns the first violation as a
sentence.  The makespan is computed here from the validated start times.

Zero-duration operations take part in precedence only: they occupy no machine, and in a
scheme's schedule they run when their job reaches them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from evolve.evaluators.jssp.model import JobShop

MAX_TIME = 2**53  # beyond this float64 stops being exact for integers
_INTS = frozenset((int,))  # exactly int: not bool, not a float, not a subclass


@dataclass(frozen=True)
class Checked:
    """A valid schedule: start times (padded with -1) and the makespan."""

    start: np.ndarray
    makespan: int


def _render(value: Any) -> str:
    text = repr(value) if isinstance(value, int | float | str | bool | None) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _int_matrix(shop: JobShop, rows: Any, key: str) -> tuple[str | None, np.ndarray]:
    """Parse ``rows`` (one list of integers per job) into a padded int64 matrix."""
    out = np.full(shop.durations.shape, -1, dtype=np.int64)
    if not isinstance(rows, list) or len(rows) != shop.n_jobs:
        got = f"{len(rows)} entries" if isinstance(rows, list) else _render(rows)
        return f"'{key}' must be a list with one list per job ({shop.n_jobs}), got {got}", out
    lengths = shop.lengths.tolist()
    if all(isinstance(row, list) and len(row) == length for row, length in zip(rows, lengths, strict=True)):
        flat = list(chain.from_iterable(rows))
        if _INTS.issuperset(map(type, flat)) and (not flat or (min(flat) >= 0 and max(flat) <= MAX_TIME)):
            # Plain ints in range, as a schedule sent as JSON gives: checked and copied in C, row by row
            # (the mask's True cells in row-major order). Anything else: the loop below names it.
            out[np.arange(out.shape[1])[None, :] < shop.lengths[:, None]] = flat
            return None, out
    for j, row in enumerate(rows):
        length = lengths[j]
        if not isinstance(row, list) or len(row) != length:
            got = f"{len(row)} entries" if isinstance(row, list) else _render(row)
            return f"'{key}'[{j}] must list the {length} operations of job {j}, got {got}", out
        for k, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"'{key}'[{j}][{k}] must be an integer time, got {_render(value)}", out
            if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
                return f"'{key}'[{j}][{k}] must be an integer time, got {_render(value)}", out
            if not 0 <= value <= MAX_TIME:
                return f"'{key}'[{j}][{k}] = {_render(value)} is outside [0, 2**53]", out
            out[j, k] = int(value)
    return None, out


def _op(j: int, k: int) -> str:
    return f"operation {k} of job {j}"


def check_schedule(shop: JobShop, solution: Any, scheme: str | None) -> tuple[str | None, Checked | None]:
    """(first violation or None, validated schedule or None).

    ``scheme`` None checks feasibility only (reference schedules from CP-SAT).
    """
    if not isinstance(solution, dict):
        return f"the solution must be an object with 'start' and 'end', got {_render(solution)}", None
    claimed = solution.get("scheme")
    if scheme is not None and claimed != scheme:
        return f"the schedule was built with scheme {_render(claimed)}, expected {scheme!r}", None
    reason, start = _int_matrix(shop, solution.get("start"), "start")
    if reason:
        return reason, None
    reason, end = _int_matrix(shop, solution.get("end"), "end")
    if reason:
        return reason, None
    valid = np.arange(start.shape[1])[None, :] < shop.lengths[:, None]
    reason = (
        _durations(shop, start, end, valid)
        or _precedence(shop, start, valid)
        or (_instant(shop, start, valid) if scheme is not None else None)
        or _machines(shop, start, valid, scheme)
    )
    if reason:
        return reason, None
    ends = np.where(valid, start + shop.durations, 0)
    makespan = int(ends.max()) if ends.size else 0
    return None, Checked(start=start, makespan=makespan)


def _durations(shop: JobShop, start: np.ndarray, end: np.ndarray, valid: np.ndarray) -> str | None:
    bad = np.argwhere(valid & (end - start != shop.durations))
    if bad.size:
        j, k = (int(x) for x in bad[0])
        return (f"{_op(j, k)} runs {end[j, k] - start[j, k]} time units ([{start[j, k]}, {end[j, k]})), "
                f"its duration is {shop.durations[j, k]}")
    return None


def _precedence(shop: JobShop, start: np.ndarray, valid: np.ndarray) -> str | None:
    if start.shape[1] < 2:
        return None
    prev_end = start[:, :-1] + shop.durations[:, :-1]
    bad = np.argwhere(valid[:, 1:] & (start[:, 1:] < prev_end))
    if bad.size:
        j, k = int(bad[0][0]), int(bad[0][1]) + 1
        return (f"precedence: {_op(j, k)} starts at {start[j, k]} before {_op(j, k - 1)} "
                f"ends at {prev_end[j, k - 1]}")
    return None


def _instant(shop: JobShop, start: np.ndarray, valid: np.ndarray) -> str | None:
    """A zero-duration operation runs when its job reaches it, as the schemes run it.

    Later, it would hold back the job's next operation with no machine busy, and the class
    checks below would take that idle time for a wait: a schedule outside the class would pass.
    """
    release = _releases(shop, start)
    bad = np.argwhere(valid & (shop.durations == 0) & (start != release))
    if bad.size:
        j, k = (int(x) for x in bad[0])
        return (f"{_op(j, k)} takes no time and runs when its job reaches it, at {release[j, k]}, "
                f"not at {start[j, k]}")
    return None


def _releases(shop: JobShop, start: np.ndarray) -> np.ndarray:
    """Time each operation's job predecessor ends (0 for the first operation)."""
    release = np.zeros_like(start)
    release[:, 1:] = start[:, :-1] + shop.durations[:, :-1]
    return release


def _machines(shop: JobShop, start: np.ndarray, valid: np.ndarray, scheme: str | None) -> str | None:
    occupying = valid & (shop.durations > 0)
    jobs, ks = np.nonzero(occupying)
    machines = shop.machines[jobs, ks]
    s = start[jobs, ks]
    p = shop.durations[jobs, ks]
    r = _releases(shop, start)[jobs, ks]
    order = np.lexsort((jobs, s, machines))  # by machine, then start time
    jobs, ks, machines, s, p, r = (a[order] for a in (jobs, ks, machines, s, p, r))
    e = s + p
    same = machines[1:] == machines[:-1]
    clash = np.flatnonzero(same & (s[1:] < e[:-1]))
    if clash.size:
        i = int(clash[0])
        return (f"machine {machines[i]}: {_op(jobs[i], ks[i])} [{s[i]}, {e[i]}) overlaps "
                f"{_op(jobs[i + 1], ks[i + 1])} [{s[i + 1]}, {e[i + 1]})")
    # The machine is free from prev_end until each operation starts.
    prev_end = np.where(np.r_[False, same], np.r_[0, e[:-1]], 0)
    if scheme is None:
        return None
    if scheme == "non_delay":
        return _non_delay(jobs, ks, machines, s, r, prev_end, same)
    return _active(jobs, ks, machines, s, p, r, prev_end)


def _non_delay(jobs: np.ndarray, ks: np.ndarray, machines: np.ndarray, s: np.ndarray, r: np.ndarray,
               prev_end: np.ndarray, same: np.ndarray) -> str | None:
    """No machine idles while an operation waits for it.

    The machine is busy without a break from ``block_start`` to each start;
    it was idle just before ``block_start``, so an operation released before
    that waited while the machine stood idle.
    """
    new_block = ~np.r_[False, same] | (s > prev_end)
    first = np.maximum.accumulate(np.where(new_block, np.arange(s.size), 0))
    bad = np.flatnonzero(r < s[first])
    if bad.size:
        i = int(bad[0])
        idle_from = max(int(r[i]), int(prev_end[first[i]]))
        return (f"not a non-delay schedule: machine {machines[i]} is idle at time {idle_from} while "
                f"{_op(jobs[i], ks[i])} has been ready since {r[i]} (it starts at {s[i]})")
    return None


def _active(jobs: np.ndarray, ks: np.ndarray, machines: np.ndarray, s: np.ndarray, p: np.ndarray,
            r: np.ndarray, prev_end: np.ndarray) -> str | None:
    """No operation can start earlier without delaying another one.

    Either it starts later than both its release and its machine predecessor's
    end (a plain left shift), or it fits whole into an earlier idle gap of its
    machine after its release.
    """
    late = np.flatnonzero(s > np.maximum(r, prev_end))
    if late.size:
        i = int(late[0])
        return (f"not an active schedule: {_op(jobs[i], ks[i])} starts at {s[i]} but could start at "
                f"{max(int(r[i]), int(prev_end[i]))} on machine {machines[i]}")
    for machine in np.unique(machines):
        idx = np.flatnonzero(machines == machine)
        gap_a, gap_b = prev_end[idx], s[idx]  # the idle gap before each operation
        fits = np.maximum(gap_a[None, :], r[idx][:, None]) + p[idx][:, None] <= gap_b[None, :]
        fits &= np.tri(idx.size, k=-1, dtype=bool)  # only gaps before the operation
        fits &= (gap_b > gap_a)[None, :]
        bad = np.argwhere(fits)
        if bad.size:
            q, g = (int(x) for x in bad[0])
            i = int(idx[q])
            return (f"not an active schedule: {_op(jobs[i], ks[i])} (ready at {r[i]}, duration {p[i]}) "
                    f"fits into the idle gap [{gap_a[g]}, {gap_b[g]}) of machine {machine} "
                    f"before its start at {s[i]}")
    return None


def schedule_shape(shop: JobShop, checked: Checked) -> dict[str, float]:
    """A deterministic measure of a valid schedule's shape, the search's MAP-Elites feature
    (never a time, so a run repeats): completion_share, the mean job's completion time over the
    makespan. Rules that favour the work remaining (MWKR, MOPNR) finish the jobs together (0.87-0.88
    on train), FIFO 0.82, SPT 0.74, LWKR 0.65."""
    valid = np.arange(checked.start.shape[1])[None, :] < shop.lengths[:, None]
    ends = np.where(valid, checked.start + shop.durations, 0)
    return {"completion_share": float(ends.max(axis=1).mean() / max(checked.makespan, 1))}
