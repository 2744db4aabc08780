"""Reading user instance files (``--instances FILE``): strict, one-line errors.

Accepted, told apart by content:

* JSON: ``{"instances": [{"name", "jobs": [[[machine, duration], ...], ...],
  "optimum"?, "upper_bound"?, "lower_bound"?}]}`` (machines 0-based);
* OR-Library / JSPLIB "standard" text: ``n m`` then one line per job of
  ``machine duration`` pairs (0-based), ``#`` comments; several instances in
  one file each start after an ``instance NAME`` line (as in jobshop1.txt);
* Taillard's text: a ``Nb of jobs, Nb of Machines, ...`` header with the
  upper and lower bound, a ``Times`` matrix and a ``Machines`` matrix
  (1-based); several instances may follow each other;
* JSPLIB's "Taillard specification": ``n m``, then n rows of m durations and
  n rows of m machines (1-based), without the titles; told from the standard
  format by its machine rows, each a permutation of 1..m.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.errors import UserError
from evolve.evaluators.jssp.model import MAX_DURATION, MAX_OPERATIONS, JobShop
from evolve.instance_files import json_instance_rows, render

JSON_KEYS = ("name", "jobs", "optimum", "upper_bound", "lower_bound")
MAX_MACHINES = 10_000


@dataclass(frozen=True)
class FileInstance:
    shop: JobShop
    optimum: int | None = None
    upper_bound: int | None = None
    lower_bound: int | None = None
    where: str = ""  # "FILE: instances[3]" or "FILE: line 12": for later messages




def _nonneg_int(where: str, value: Any, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{where}: expected a non-negative integer, got {render(value)}")
    if maximum is not None and value > maximum:
        raise UserError(f"{where}: expected at most {maximum}, got {value}")
    return value


def parse_instance_file(path: Path) -> list[FileInstance]:
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is dropped
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{label}: cannot read instance file ({type(exc).__name__}: {exc})") from None
    if text.lstrip().startswith("{"):
        found = _parse_json(label, text)
    elif re.search(r"^\s*Nb of jobs", text, re.MULTILINE):
        found = _parse_taillard(label, path.stem, text)
    else:
        found = _parse_standard(label, path.stem, text)
    if not found:
        raise UserError(f"{label}: no instance found (expected JSON, OR-Library/standard or Taillard format)")
    names: dict[str, str] = {}
    for item in found:
        if item.shop.name in names:
            raise UserError(f"{item.where}: duplicate instance name {item.shop.name!r} (also {names[item.shop.name]})")
        names[item.shop.name] = item.where
        if item.shop.n_operations > MAX_OPERATIONS:
            raise UserError(f"{item.where}: {item.shop.n_operations} operations, at most {MAX_OPERATIONS} supported")
        if not item.shop.durations.any():
            raise UserError(f"{item.where}: instance {item.shop.name!r}: every duration is 0, so every schedule has "
                            "makespan 0 and no gap can be measured")
    return found


# -- JSON ---------------------------------------------------------------------------------


def _parse_json(label: str, text: str) -> list[FileInstance]:
    rows = json_instance_rows(label, text)
    return [_json_instance(f"{label}: instances[{i}]", row) for i, row in enumerate(rows)]


def _json_instance(where: str, row: Any) -> FileInstance:
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected an object with keys name, jobs, got {render(row)}")
    unknown = sorted(set(row) - set(JSON_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r} (expected one of {', '.join(JSON_KEYS)})")
    for key in ("name", "jobs"):
        if key not in row:
            raise UserError(f"{where}: missing key {key!r}")
    name = row["name"]
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"{where}.name: expected a non-empty string, got {render(name)}")
    jobs_raw = row["jobs"]
    if not isinstance(jobs_raw, list) or not jobs_raw:
        raise UserError(f"{where}.jobs: expected a non-empty list of jobs, got {render(jobs_raw)}")
    jobs: list[list[tuple[int, int]]] = []
    for j, job in enumerate(jobs_raw):
        at = f"{where}.jobs[{j}]"
        if not isinstance(job, list) or not job:
            raise UserError(f"{at}: expected a non-empty list of [machine, duration] pairs, got {render(job)}")
        ops = []
        for k, op in enumerate(job):
            if not isinstance(op, list) or len(op) != 2:
                raise UserError(f"{at}[{k}]: expected a pair [machine, duration], got {render(op)}")
            machine = _nonneg_int(f"{at}[{k}] machine", op[0], MAX_MACHINES - 1)
            duration = _nonneg_int(f"{at}[{k}] duration", op[1], MAX_DURATION)
            ops.append((machine, duration))
        jobs.append(ops)
    bounds = {key: _nonneg_int(f"{where}.{key}", row[key]) if key in row else None
              for key in ("optimum", "upper_bound", "lower_bound")}
    return FileInstance(JobShop.from_jobs(name.strip(), jobs), where=where, **bounds)


# -- OR-Library / standard ------------------------------------------------------------------


def _ints(label: str, number: int, line: str, what: str) -> list[int]:
    try:
        return [int(x) for x in line.split()]
    except ValueError:
        raise UserError(f"{label}: line {number}: expected {what} (integers), got {render(line.strip())}") from None


def _is_int_line(line: str) -> bool:
    # signed: a header '-2 2' is an error naming it, not a line skipped as text
    return bool(line.split()) and all(re.fullmatch(r"-?\d+", x) for x in line.split())


def _parse_standard(label: str, stem: str, text: str) -> list[FileInstance]:
    lines = text.splitlines()
    out: list[FileInstance] = []
    name: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i].split("#", 1)[0]
        header = re.match(r"^\s*instance\s+(\S+)\s*$", line)
        if header:
            name = header.group(1)
        elif _is_int_line(line):
            values = [int(x) for x in line.split()]
            if len(values) != 2:
                raise UserError(f"{label}: line {i + 1}: expected the header 'jobs machines', got {render(line.strip())}")
            where = f"{label}: line {i + 1}"
            shop_name = name or (stem if not out else f"{stem}-{len(out)}")
            spec = _taillard_spec(label, lines, i + 1, values[0], values[1], shop_name)
            shop, i = spec or _standard_jobs(label, lines, i + 1, values[0], values[1], shop_name)
            out.append(FileInstance(shop, where=where))
            name = None
            continue
        i += 1
    return out


def _standard_jobs(label: str, lines: list[str], i: int, n: int, m: int, name: str) -> tuple[JobShop, int]:
    if n < 1 or not 1 <= m <= MAX_MACHINES:
        raise UserError(f"{label}: line {i}: instance {name!r}: expected at least 1 job and 1 to {MAX_MACHINES} machines, got {n} x {m}")
    jobs: list[list[tuple[int, int]]] = []
    while len(jobs) < n:
        if i >= len(lines):
            raise UserError(f"{label}: instance {name!r}: expected {n} job lines, the file ends after {len(jobs)}")
        line = lines[i].split("#", 1)[0]
        i += 1
        if not line.strip():
            continue
        j = len(jobs)
        values = _ints(label, i, line, f"job {j} as 'machine duration' pairs")
        if len(values) % 2:
            raise UserError(f"{label}: line {i}: instance {name!r} job {j}: expected 'machine duration' pairs, got an odd number of integers ({len(values)})")
        if len(values) != 2 * m:  # a short line (a wrapped or cut one) was read as a shorter job
            raise UserError(f"{label}: line {i}: instance {name!r} job {j}: expected {m} 'machine duration' pairs "
                            f"(one per machine, {2 * m} integers), got {len(values) // 2} ({len(values)} integers)")
        ops = []
        for k in range(0, len(values), 2):
            machine, duration = values[k], values[k + 1]
            if not 0 <= machine < m:
                raise UserError(f"{label}: line {i}: instance {name!r} job {j} operation {k // 2}: machine {machine} is outside 0..{m - 1}")
            if not 0 <= duration <= MAX_DURATION:
                raise UserError(f"{label}: line {i}: instance {name!r} job {j} operation {k // 2}: duration {duration} is outside 0..{MAX_DURATION}")
            ops.append((machine, duration))
        jobs.append(ops)
    return JobShop.from_jobs(name, jobs, m), i


def _taillard_spec(label: str, lines: list[str], i: int, n: int, m: int, name: str) -> tuple[JobShop, int] | None:
    """JSPLIB's Taillard specification after the header ``n m`` at line ``i``: n rows of m
    durations, then n rows of m 1-based machines, each a permutation of 1..m (which the
    standard format, 0-based, never has); None when the rows are not that."""
    if n < 1 or not 1 <= m <= MAX_MACHINES:
        return None
    rows: list[tuple[int, list[int]]] = []  # (line number, values)
    while len(rows) < 2 * n and i < len(lines):
        line = lines[i].split("#", 1)[0]
        i += 1
        if not line.strip():
            continue
        if not _is_int_line(line) or len(line.split()) != m:
            return None
        rows.append((i, [int(x) for x in line.split()]))
    if len(rows) < 2 * n or any(sorted(values) != list(range(1, m + 1)) for _, values in rows[n:]):
        return None
    jobs = []
    for j in range(n):
        number, times = rows[j]
        for k, duration in enumerate(times):
            if not 0 <= duration <= MAX_DURATION:
                raise UserError(f"{label}: line {number}: instance {name!r} job {j} operation {k}: duration {duration} "
                                f"is outside 0..{MAX_DURATION}")
        jobs.append([(machine - 1, duration) for machine, duration in zip(rows[n + j][1], times, strict=True)])
    return JobShop.from_jobs(name, jobs, m), i


# -- Taillard -------------------------------------------------------------------------------


def _parse_taillard(label: str, stem: str, text: str) -> list[FileInstance]:
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("Nb of jobs")]
    out = []
    for count, first in enumerate(starts):
        end = starts[count + 1] if count + 1 < len(starts) else len(lines)
        name = stem if len(starts) == 1 else f"{stem}-{count + 1}"
        out.append(_taillard_block(label, lines, first, end, name))
    return out


def _matrix(label: str, lines: list[str], i: int, n: int, m: int, what: str) -> tuple[list[list[int]], int]:
    rows: list[list[int]] = []
    while len(rows) < n:
        if i >= len(lines):
            raise UserError(f"{label}: line {i}: the '{what}' section has {len(rows)} rows, expected {n}")
        text = lines[i]
        i += 1
        if not text.strip():
            continue
        values = _ints(label, i, text, f"row {len(rows)} of {what}")
        if len(values) != m:
            raise UserError(f"{label}: line {i}: row {len(rows)} of {what} has {len(values)} values, expected {m}")
        rows.append(values)
    return rows, i


def _taillard_block(label: str, lines: list[str], first: int, end: int, name: str) -> FileInstance:
    where = f"{label}: line {first + 1}"
    if first + 1 >= end:
        raise UserError(f"{where}: the header line must be followed by its six values")
    header = _ints(label, first + 2, lines[first + 1], "jobs, machines, time seed, machine seed, upper bound, lower bound")
    if len(header) != 6:
        raise UserError(f"{label}: line {first + 2}: expected 6 header values, got {len(header)}")
    n, m, _, _, upper, lower = header
    if n < 1 or not 1 <= m <= MAX_MACHINES:
        raise UserError(f"{label}: line {first + 2}: expected at least 1 job and 1 to {MAX_MACHINES} machines, got {n} x {m}")
    i = first + 2
    sections = {}
    for title in ("Times", "Machines"):
        while i < end and not lines[i].strip():
            i += 1
        if i >= end or lines[i].strip().lower() != title.lower():
            raise UserError(f"{label}: line {i + 1}: expected the '{title}' section")
        sections[title], i = _matrix(label, lines[:end], i + 1, n, m, title)
    jobs = []
    for j in range(n):
        ops = []
        for k in range(m):
            duration, machine = sections["Times"][j][k], sections["Machines"][j][k]
            if not 1 <= machine <= m:
                raise UserError(f"{where}: instance {name!r} job {j} operation {k}: machine {machine} is outside 1..{m} (Taillard machines are 1-based)")
            if not 0 <= duration <= MAX_DURATION:
                raise UserError(f"{where}: instance {name!r} job {j} operation {k}: duration {duration} is outside 0..{MAX_DURATION}")
            ops.append((machine - 1, duration))
        jobs.append(ops)
    return FileInstance(JobShop.from_jobs(name, jobs, m), upper_bound=upper, lower_bound=lower, where=where)
