"""The reference store: reference values with their provenance, shipped with a problem or cached.

Trusted side only: nothing here enters the candidate's process (references are
exactly what a candidate must not see).  A verifier whose references cost
solver time keeps them in one store:

* the **shipped** file ``<problem>/data/references.json`` (format
  ``evolve-references-v1``): one record per instance content key, with its
  kind (``optimal``, ``best_known`` or ``bound``), its proven bound, where the
  value came from and, where the problem has one, a *witness* (a solution
  attaining the value) that the verifier re-checks on load; the header says
  which command computed it, on what software and machine;
* a per-user **cache** under ``$XDG_CACHE_HOME/evolve/references/<namespace>/``
  for instances of users' files.

``evolve references PROBLEM`` fills and refreshes the shipped file of any
problem whose verifier implements ``ComputesReferences`` (see
``evolve.reference_command``); the verifier package keeps only its
problem-specific compute function.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, get_args, runtime_checkable

from evolve.errors import UserError
from evolve.verifier import Reference, ReferenceKind

FORMAT = "evolve-references-v1"
SHIPPED_FILE = Path("data") / "references.json"
STORED_KINDS = tuple(k for k in get_args(ReferenceKind) if k != "none")


@dataclass(frozen=True)
class StoredReference:
    """A reference value with its provenance, and the solution that attains it (if any).

    ``kind`` says what ``value`` is: ``optimal`` (proven), ``best_known`` (a
    value some solution attains; ``bound`` is then the proven bound on the other
    side), or only a ``bound``.  ``details`` keeps problem-specific facts (the
    instance size, how many sub-problems were proven); ``seconds`` is what
    computing it cost.
    """

    name: str
    value: float
    kind: ReferenceKind
    bound: float | None
    source: str
    seconds: float = 0.0
    witness: Any = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_reference(self) -> Reference:
        return Reference(float(self.value), self.kind, self.source,
                         None if self.bound is None else float(self.bound))

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"name": self.name, "value": self.value, "kind": self.kind, "bound": self.bound,
                               "source": self.source, "seconds": self.seconds}
        if self.details:
            row["details"] = dict(self.details)
        if self.witness is not None:
            row["witness"] = self.witness
        return row

    @staticmethod
    def from_json(row: Any) -> StoredReference:
        """A record from its JSON row; ValueError naming what is wrong."""
        if not isinstance(row, dict):
            raise ValueError(f"expected an object, got {type(row).__name__}")
        unknown = set(row) - {"name", "value", "kind", "bound", "source", "seconds", "details", "witness"}
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
        kind, value, bound = row.get("kind"), row.get("value"), row.get("bound")
        if kind not in STORED_KINDS:
            raise ValueError(f"kind {kind!r} (expected one of {', '.join(STORED_KINDS)})")
        if not _number(value) or (bound is not None and not _number(bound)):
            raise ValueError(f"value {value!r} / bound {bound!r}: expected finite numbers")
        if not isinstance(row.get("name"), str) or not isinstance(row.get("source", ""), str):
            raise ValueError("name and source must be strings")
        details = row.get("details") or {}
        if not isinstance(details, dict):
            raise ValueError("details must be an object")
        return StoredReference(row["name"], value, kind, bound, row.get("source", ""),
                               float(row.get("seconds", 0.0)), row.get("witness"), details)


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class ReferenceTask:
    """An instance whose reference the store keeps: its content key, name and the data
    its compute function needs (the split's instance data, typically)."""

    key: str
    name: str
    data: Any


@runtime_checkable
class ComputesReferences(Protocol):
    """What a verifier adds so that ``evolve references`` can fill its shipped file.

    ``reference_tasks(split)`` lists the split's instances whose references are
    stored (possibly none: a split with curated or trivial references);
    ``compute_reference(task, time_limit_s)`` computes one (``None``: the
    verifier's default budget; the verifier says what the limit means).
    Optionally ``refresh_reference(task, record) -> record`` updates a kept
    record cheaply (e.g. raises its bound) without a solver.
    """

    def reference_tasks(self, split: str) -> list[ReferenceTask]: ...

    def compute_reference(self, task: ReferenceTask, time_limit_s: float | None) -> StoredReference: ...


def _command_name(problem_dir: Path) -> str:
    """How ``evolve references`` names this problem: a built-in by its name, others by folder."""
    from evolve import problems

    builtin = Path(problems.__file__).resolve().parent
    return problem_dir.name if problem_dir.resolve().parent == builtin else str(problem_dir)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evolve" / "references"


class ReferenceStore:
    """One problem's references: the shipped file, then the per-user cache.

    ``accept(record)`` hooks let the verifier re-check a record's witness, so no
    value on disk is trusted on faith.
    """

    def __init__(self, problem_dir: Path, namespace: str) -> None:
        self.path = Path(problem_dir) / SHIPPED_FILE
        self.namespace = namespace
        self.problem = _command_name(Path(problem_dir))

    # -- the shipped file -------------------------------------------------------------

    @cached_property
    def shipped(self) -> dict[str, StoredReference]:
        """Content key -> record (empty without a file); UserError when unreadable."""
        try:
            return read_file(self.path)[1]
        except FileNotFoundError:
            return {}

    def shipped_reference(self, task: ReferenceTask, split: str,
                          accept: Callable[[StoredReference], bool] | None = None) -> StoredReference:
        """The shipped record of a split's instance; a one-line error saying how to compute
        it when it is missing or its witness does not check out (never computed silently:
        a fresh clone must not spend minutes of solver time here)."""
        record = self.shipped.get(task.key)
        if record is not None and (accept is None or accept(record)):
            return record
        what = "no reference" if record is None else "a reference its witness does not attain"
        raise UserError(f"{self.path}: {what} for instance {task.name}; compute it with "
                        f"`evolve references {self.problem} --split {split}`")

    # -- the per-user cache -------------------------------------------------------------

    def _cache_path(self, key: str) -> Path:
        return cache_root() / self.namespace / f"{key}.json"

    def cached(self, key: str, accept: Callable[[StoredReference], bool] | None = None) -> StoredReference | None:
        """A cached record that checks out, else None (absent, unreadable or refuted: recompute)."""
        try:
            record = StoredReference.from_json(json.loads(self._cache_path(key).read_text()))
        except (OSError, ValueError):
            return None
        return record if accept is None or accept(record) else None

    def known(self, key: str, accept: Callable[[StoredReference], bool] | None = None) -> StoredReference | None:
        """Shipped, else cached."""
        record = self.shipped.get(key)
        if record is not None and (accept is None or accept(record)):
            return record
        return self.cached(key, accept)

    def remember(self, key: str, record: StoredReference) -> None:
        """Cache a computed record; a read-only home only costs a recomputation."""
        path = self._cache_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(record.to_json()))
            os.replace(tmp, path)
        except OSError:
            pass


def read_file(path: Path) -> tuple[dict[str, Any], dict[str, StoredReference]]:
    """The header and the records of a references file; UserError naming what is wrong."""
    text = path.read_text()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path}: unreadable references file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else None
        raise UserError(f"{path}: format {got!r}, expected {FORMAT!r}")
    rows = data.get("references")
    if not isinstance(rows, dict):
        raise UserError(f"{path}: no 'references' object")
    records = {}
    for key, row in rows.items():
        try:
            records[key] = StoredReference.from_json(row)
        except ValueError as exc:
            raise UserError(f"{path}: references.{key}: {exc}") from None
    header = {k: v for k, v in data.items() if k not in ("format", "references")}
    return header, records


def write_file(path: Path, header: Mapping[str, Any], records: Mapping[str, StoredReference]) -> None:
    """One record per line (diffable, witnesses inline), in name order, written atomically."""
    lines = [f"  {json.dumps(key)}: {json.dumps(rec.to_json())}"
             for key, rec in sorted(records.items(), key=lambda kv: (kv[1].name, kv[0]))]
    head = json.dumps({"format": FORMAT, **header}, indent=2)[:-2]
    body = ",\n  ".join(lines)
    text = head + ',\n  "references": {\n  ' + body + "\n  }\n}\n" if lines else \
        json.dumps({"format": FORMAT, **header, "references": {}}, indent=2) + "\n"
    json.loads(text)  # refuse to write a file we could not read back
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
